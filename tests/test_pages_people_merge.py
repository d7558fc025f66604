"""名寄せ on the person page: candidates confirmed (同一人物) or rejected (別人) by those who read the newer
record's case; merges and their undoing by an FM or the administrator; refusals that change nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import AuditEvent, Case, Person, PersonCandidate, PersonMerge
from tests.access_matrix import tables_but_audit
from tests.pages_support import app, count, error_beside, text_of, web  # noqa: F401  (fixtures)

KNOWN = {"name": "佐伯 花子", "name_kana": "サエキ ハナコ", "birth_date": "1950-01-02", "area": "佐伯"}
# The same person at another window, her name typed with a full-width space and no kana.
NEWER = {"name": "佐伯　花子", "birth_date": "1950-01-02", "area": "佐伯"}


@pytest.fixture
def pair(open_case, fire, actors, make_user, sessions):
    """A known person (her case with 生活福祉課) and a newer record that may be her (its case with 障害福祉課)."""
    known_case = open_case(person=KNOWN, categories=["poverty"])
    fire(actors.livelihood, known_case, "accept_handoff")
    newer_case = open_case(person=NEWER, categories=["disability"])
    with sessions() as s:
        known, newer = s.get(Case, known_case).person_id, s.get(Case, newer_case).person_id
        candidate = s.scalar(select(PersonCandidate.id).where(PersonCandidate.person_id == newer))
        assert s.get(Case, newer_case).person_match == "candidate" and candidate is not None
    return {"known_case": known_case, "newer_case": newer_case, "known": known, "newer": newer,
            "candidate": candidate, "disability": make_user("staff", "disability", login="disability")}


def _person_of(sessions, case_id):
    with sessions() as s:
        return s.get(Case, case_id).person_id


def _actions(sessions, action):
    return count(sessions, AuditEvent, AuditEvent.action == action)


def test_the_reader_of_the_newer_case_sees_the_candidate_with_what_a_decision_rests_on(pair, web):
    page = text_of(web(pair["disability"]).get(f"/people/{pair['newer']}"))
    assert "名寄せの候補" in page
    for shown in ("佐伯 花子", "サエキ ハナコ", "昭和25年1月2日", "佐伯", "生活福祉課（生活困窮者自立相談支援）",
                  "生年月日と氏名が一致", f"記録番号 {pair['known']}"):
        assert shown in page, shown


def test_the_known_persons_reader_is_told_only_that_someone_else_decides(pair, web, actors):
    page = text_of(web(actors.livelihood).get(f"/people/{pair['known']}"))
    assert "判断する候補が1件あります" in page and f"記録番号 {pair['newer']}" not in page
    assert "同一人物（記録を1つにする）" not in page


def test_a_confirmed_candidate_files_the_newer_case_under_the_known_person(pair, web, sessions):
    staff = web(pair["disability"])
    staff.get(f"/people/{pair['newer']}")
    r = staff.post(f"/people/{pair['newer']}/candidates/{pair['candidate']}",
                   {"decision": "confirm", "note": "電話で生年月日と住所を確認"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/people/{pair['known']}#candidates")
    page = text_of(staff.get(r.headers["Location"]))
    assert "同一人物と確認し、2つの記録を1つにしました。" in page
    assert _person_of(sessions, pair["newer_case"]) == pair["known"]
    # 障害福祉課 sees its own case, and that 生活福祉課 has one: nothing more of it.
    with sessions() as s:
        known_number = s.get(Case, pair["known_case"]).case_number
        merge = s.scalar(select(PersonMerge))
        assert (merge.survivor_id, merge.merged_id, merge.reason) == (pair["known"], pair["newer"],
                                                                      "電話で生年月日と住所を確認")
    assert "（担当: 生活福祉課（生活困窮者自立相談支援））のケースがあります" in page and known_number not in page
    assert _actions(sessions, "person.candidate_confirm") == 1 and _actions(sessions, "person.merge") == 1
    # The newer record's page now leads to the person it became; a form from it is stale.
    moved = staff.get(f"/people/{pair['newer']}")
    assert moved.status_code == 303 and moved.headers["Location"].endswith(f"/people/{pair['known']}")
    again = staff.post(f"/people/{pair['newer']}/candidates/{pair['candidate']}", {"decision": "confirm"})
    assert again.status_code == 409 and "別の記録に統合されました" in text_of(again)
    assert _actions(sessions, "person.merge") == 1


def test_a_rejected_candidate_keeps_two_people_and_is_not_shown_again(pair, web, sessions):
    staff = web(pair["disability"])
    staff.get(f"/people/{pair['newer']}")
    url = f"/people/{pair['newer']}/candidates/{pair['candidate']}"
    r = staff.post(url, {"decision": "reject"})
    assert r.status_code == 303
    page = text_of(staff.get(r.headers["Location"]))
    assert "別人と判断しました。" in page and "名寄せの候補" not in page
    with sessions() as s:
        assert s.get(PersonCandidate, pair["candidate"]).status == "rejected"
    assert _person_of(sessions, pair["newer_case"]) == pair["newer"]
    assert _actions(sessions, "person.candidate_reject") == 1 and _actions(sessions, "person.merge") == 0
    # Decided already: a second answer is refused and changes nothing.
    again = staff.post(url, {"decision": "confirm"})
    assert again.status_code == 409 and "この候補は既に判断されています。" in text_of(again)
    assert _person_of(sessions, pair["newer_case"]) == pair["newer"]


def test_a_decision_must_be_one_of_the_two(pair, web, sessions):
    staff = web(pair["disability"])
    staff.get(f"/people/{pair['newer']}")
    before = tables_but_audit(sessions)
    r = staff.post(f"/people/{pair['newer']}/candidates/{pair['candidate']}", {"decision": "maybe", "note": "迷う"})
    assert r.status_code == 422 and "confirm（同一人物）か reject（別人）を指定してください。" in text_of(r)
    assert tables_but_audit(sessions) == before


def test_staff_may_not_merge_records(pair, web, sessions, actors):
    staff = web(actors.livelihood)
    body = staff.get(f"/people/{pair['known']}").get_data(as_text=True)
    assert "別の記録をこの記録に統合する" not in body
    before, refused = tables_but_audit(sessions), count(sessions, AuditEvent, AuditEvent.outcome == "refused")
    r = staff.post(f"/people/{pair['known']}/merge", {"merged_id": str(pair["newer"]), "reason": "同じ人"})
    assert r.status_code == 403
    assert tables_but_audit(sessions) == before
    assert count(sessions, AuditEvent, AuditEvent.outcome == "refused", AuditEvent.action == "page.people.merge",
                 AuditEvent.object_id == str(pair["known"])) == refused + 1


def test_an_fm_merges_and_undoes_the_merge_once(pair, web, sessions, actors):
    fm = web(actors.fm)
    assert "別の記録をこの記録に統合する" in text_of(fm.get(f"/people/{pair['known']}"))
    r = fm.post(f"/people/{pair['known']}/merge", {"merged_id": str(pair["newer"]), "reason": "本人に確認した"})
    assert r.status_code == 303 and r.headers["Location"].endswith("#merges")
    page = text_of(fm.get(r.headers["Location"]))
    assert f"佐伯 花子（記録番号 {pair['newer']}）→ 佐伯 花子（記録番号 {pair['known']}）" in page
    assert _person_of(sessions, pair["newer_case"]) == pair["known"]
    with sessions() as s:
        merge_id = s.scalar(select(PersonMerge.id))
    undo = f"/people/{pair['known']}/merges/{merge_id}/undo"
    r = fm.post(undo, {"reason": ""})
    assert r.status_code == 422 and error_beside(r, f"undo{merge_id}", "reason") == "必須項目です。"
    assert _person_of(sessions, pair["newer_case"]) == pair["known"]
    r = fm.post(undo, {"reason": "別人と判明"})
    assert r.status_code == 303
    assert _person_of(sessions, pair["newer_case"]) == pair["newer"]
    assert "取り消し" in text_of(fm.get(r.headers["Location"]))
    # Undone already: the second is a conflict, and nothing moves.
    again = fm.post(undo, {"reason": "もう一度"})
    assert again.status_code == 409 and "この統合は既に取り消されています。" in text_of(again)
    assert _person_of(sessions, pair["newer_case"]) == pair["newer"]
    assert _actions(sessions, "person.merge") == 1 and _actions(sessions, "person.unmerge") == 1


def test_records_with_different_resident_ids_are_not_merged(web, sessions, actors, open_case):
    a = _person_of(sessions, open_case(person={**KNOWN, "resident_id": "0000000201"}, categories=["poverty"]))
    b = _person_of(sessions, open_case(person={**KNOWN, "resident_id": "0000000202"}, categories=["poverty"]))
    admin = web(actors.admin)
    admin.get(f"/people/{a}")
    before = tables_but_audit(sessions)
    r = admin.post(f"/people/{a}/merge", {"merged_id": str(b), "reason": "同じ名前"})
    assert r.status_code == 422
    assert error_beside(r, "merge", "merged_id") == \
        "宛名番号が異なる2人の記録は統合できません（宛名番号が違えば別の人です）。"
    assert "同じ名前" in r.get_data(as_text=True)  # the reason typed stays in its box
    assert tables_but_audit(sessions) == before


@pytest.mark.parametrize("merged_id, reason, field, message", [
    ("", "同じ人", "merged_id", "必須項目です。"),
    ("abc", "同じ人", "merged_id", "半角の数字で入力してください。"),
    ("999999", "同じ人", "merged_id", "この記録番号の人は見つかりません。"),
    ("SELF", "同じ人", "merged_id", "同じ記録どうしは統合できません。"),
    ("OTHER", "", "reason", "必須項目です。"),
])
def test_a_bad_merge_form_is_marked_beside_its_input(pair, web, sessions, actors, merged_id, reason, field, message):
    fm = web(actors.fm)
    fm.get(f"/people/{pair['known']}")
    merged_id = {"SELF": str(pair["known"]), "OTHER": str(pair["newer"])}.get(merged_id, merged_id)
    before = tables_but_audit(sessions)
    r = fm.post(f"/people/{pair['known']}/merge", {"merged_id": merged_id, "reason": reason})
    assert r.status_code == 422 and error_beside(r, "merge", field) == message
    assert tables_but_audit(sessions) == before


def test_a_form_from_a_page_whose_record_was_merged_meanwhile_applies_nothing(pair, web, sessions, actors):
    first, second = web(actors.fm), web(actors.fm2)
    first.get(f"/people/{pair['newer']}")
    second.get(f"/people/{pair['known']}")
    assert second.post(f"/people/{pair['known']}/merge", {"merged_id": str(pair["newer"]),
                                                         "reason": "本人に確認"}).status_code == 303
    with unit_of_work(sessions) as s:
        s.add(Person(name="佐伯 次郎", created_at=s.get(Person, pair["known"]).created_at))
        s.flush()
        third = s.scalar(select(Person.id).where(Person.name == "佐伯 次郎"))
    before = tables_but_audit(sessions)
    r = first.post(f"/people/{pair['newer']}/merge", {"merged_id": str(third), "reason": "同じ人"})
    assert r.status_code == 409 and "別の記録に統合されました" in text_of(r)
    assert tables_but_audit(sessions) == before
