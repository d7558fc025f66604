"""支援会議 / 重層的支援会議 pages: 守秘義務 first, records only to members, additions stamped and applied once."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.cases import joins
from engine.db import unit_of_work
from engine.models import AuditEvent, Case, Meeting, MeetingMember, SharedFact, User
from tests.pages_support import app, case_in, count, error_beside, form_token, text_of, web  # noqa: F401  (fixtures)


def _meeting(sessions, case_id, kind="support_meeting") -> int:
    with unit_of_work(sessions) as s:
        return s.scalar(select(Meeting.id).where(Meeting.case_id == case_id, Meeting.kind == kind))


def test_a_member_reads_the_records_and_the_read_is_audited(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    meeting_id = _meeting(sessions, case_id)
    r = web(actors.livelihood).get(f"/meetings/{meeting_id}")
    assert r.status_code == 200
    page = text_of(r)
    assert "支援会議" in page and "構成員と守秘義務の確認" in page and "事務局" in page
    assert "livelihood" in page and "fm" in page
    assert count(sessions, AuditEvent, AuditEvent.action == "meeting.read") == 1
    with unit_of_work(sessions) as s:
        read = s.scalars(select(AuditEvent).where(AuditEvent.action == "meeting.read")).one()
        assert (read.object_type, read.object_id, read.case_id) == ("meeting", str(meeting_id), case_id)

        number = s.get(Case, case_id).case_number
    title = re.search(r"<title>(.*?)</title>", r.get_data(as_text=True)).group(1)
    assert title.startswith(f"支援会議 ケース {number} 令和")  # tabs of several meetings tell apart


def test_someone_outside_the_meeting_sees_that_it_exists_but_not_its_records(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    meeting_id = _meeting(sessions, case_id)
    with unit_of_work(sessions) as s:
        s.get(Meeting, meeting_id).minutes = "秘密の記録"
    r = web(actors.window).get(f"/meetings/{meeting_id}")  # created the case: may read the case, not the meeting
    assert r.status_code == 200
    assert "守秘義務を確認した構成員だけが閲覧できます" in text_of(r) and "秘密の記録" not in text_of(r)
    # No read of the records; the attempt itself is kept, refused.
    assert count(sessions, AuditEvent, AuditEvent.action == "meeting.read", AuditEvent.outcome == "ok") == 0
    assert count(sessions, AuditEvent, AuditEvent.action == "meeting.read", AuditEvent.outcome == "refused") == 1
    assert web(actors.hikikomori).get(f"/meetings/{meeting_id}").status_code == 404
    assert web(actors.livelihood).get("/meetings/999999").status_code == 404


def test_an_invited_member_acknowledges_the_duty_before_reading(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    meeting_id = _meeting(sessions, case_id)
    with unit_of_work(sessions) as s:
        s.get(Meeting, meeting_id).minutes = "長男の生活状況を共有した。"
        shakyo = s.scalar(select(User).where(User.login == "shakyo"))
        s.add(MeetingMember(meeting_id=meeting_id, user_id=shakyo.id, department_id=shakyo.department_id))
    client = web(actors.shakyo)
    before = client.get(f"/meetings/{meeting_id}")
    assert before.status_code == 200
    assert "守秘義務の確認" in text_of(before) and "長男の生活状況" not in text_of(before)
    # Before acknowledging, the member only learns that the case exists: no person, no content.
    case_page = client.get(f"/cases/{case_id}")
    assert case_page.status_code == 200 and "廿日 太郎" not in text_of(case_page)
    r = client.post(f"/meetings/{meeting_id}/acknowledge")
    assert r.status_code == 303
    after = text_of(client.get(f"/meetings/{meeting_id}"))
    assert "守秘義務を確認しました" in after and "長男の生活状況を共有した。" in after
    assert count(sessions, AuditEvent, AuditEvent.action == "meeting.acknowledge_secrecy") == 1


def test_members_add_to_the_records_once_stamped_with_their_name(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    meeting_id = _meeting(sessions, case_id)
    client = web(actors.livelihood)
    body = client.get(f"/meetings/{meeting_id}").get_data(as_text=True)
    token = form_token(body, f"/meetings/{meeting_id}/record")
    empty = client.post(f"/meetings/{meeting_id}/record", {"submission_token": token})
    assert empty.status_code == 422
    assert error_beside(empty, "rec", "minutes") == "記録か決定事項のどちらかを入力してください。"
    form = {"submission_token": token, "minutes": "訪問の結果を報告した。", "decisions": "次回は12月に開く。"}
    assert client.post(f"/meetings/{meeting_id}/record", form).status_code == 303
    assert client.post(f"/meetings/{meeting_id}/record", form).status_code == 303
    with unit_of_work(sessions) as s:
        meeting = s.get(Meeting, meeting_id)
        assert meeting.minutes.count("訪問の結果を報告した。") == 1
        assert re.search(r"【令和\d+年\d+月\d+日 \d\d:\d\d livelihood】\n次回は12月に開く。", meeting.decisions)


def test_only_acknowledged_members_may_add_to_the_records(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    meeting_id = _meeting(sessions, case_id)
    r = web(actors.window).post(f"/meetings/{meeting_id}/record", {"submission_token": "t" * 20, "minutes": "x"})
    assert r.status_code == 403


@pytest.mark.parametrize("action", ["", "/acknowledge", "/record", "/members", "/facts"])
def test_a_meeting_of_a_case_out_of_sight_answers_as_a_missing_one(web, actors, case_in, sessions, action):
    """こども家庭課 has no part in the case: each of the meeting's addresses answers as for a meeting that does
    not exist, so that the answer does not tell which meeting numbers are in use."""
    meeting_id = _meeting(sessions, case_in("support_meeting"))
    client = web(actors.children)
    form = {"submission_token": "t" * 20, "minutes": "x", "user": "shakyo", "text": "x"}

    def ask(number):
        return client.get(f"/meetings/{number}") if not action else client.post(f"/meetings/{number}{action}", form)

    found, missing = ask(meeting_id), ask(999999)
    assert found.status_code == missing.status_code == 404
    assert text_of(found).replace(str(meeting_id), "N") == text_of(missing).replace("999999", "N")


def test_a_layered_meeting_shows_the_plan_and_its_roles(web, actors, case_in, sessions):
    case_id = case_in("accompaniment")
    meeting_id = _meeting(sessions, case_id, kind="layered_meeting")
    page = text_of(web(actors.livelihood).get(f"/meetings/{meeting_id}"))
    assert "重層的支援会議" in page and "家計相談" in page and "居場所の紹介" in page and "主担当" in page


def test_a_members_note_is_kept_on_the_meeting_page_not_the_case_page(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    meeting_id = _meeting(sessions, case_id)
    client = web(actors.fm)  # the secretariat writes into the meeting's track
    r = client.post(f"/cases/{case_id}/notes", {"method": "home_visit", "body": "訪問して長男と面談した。",
                                               "submission_token": "note-1"})
    # The writer is taken to where the note is kept, and told why it is not on the case page.
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/meetings/{meeting_id}")
    page = text_of(client.get(f"/meetings/{meeting_id}"))
    assert "支援会議の記録として保存しました" in page and "訪問して長男と面談した。" in page
    assert "訪問して長男と面談した。" not in text_of(web(actors.livelihood).get(f"/cases/{case_id}"))
    assert "訪問して長男と面談した。" in text_of(web(actors.livelihood).get(f"/meetings/{meeting_id}"))


def test_a_member_carries_one_fact_to_the_agencies_the_consent_covers(web, actors, case_in, fire, sessions):
    from tests.pages_support import CONSENT

    case_id = case_in("consent")  # a 支援会議 was held; consent is being sought
    meeting_id = _meeting(sessions, case_id)
    fm = web(actors.fm)
    page = fm.get(f"/meetings/{meeting_id}").get_data(as_text=True)
    assert f'action="/meetings/{meeting_id}/facts"' not in page  # no consent yet: nothing to carry to
    early = fm.post(f"/meetings/{meeting_id}/facts", {"fact": "長男は日中在宅", "submission_token": "f-0"})
    assert early.status_code == 409 and "同意" in text_of(early)
    assert count(sessions, SharedFact) == 0

    fire(actors.livelihood, case_id, "record_consent", **CONSENT)  # covers 生活福祉課 and 社協
    assert f'action="/meetings/{meeting_id}/facts"' in fm.get(f"/meetings/{meeting_id}").get_data(as_text=True)
    blank = fm.post(f"/meetings/{meeting_id}/facts", {"fact": "", "submission_token": "f-1"})
    assert blank.status_code == 422 and error_beside(blank, "fact", "fact")
    for _ in range(2):  # the same form sent twice carries the fact once
        r = fm.post(f"/meetings/{meeting_id}/facts", {"fact": "長男は日中在宅", "submission_token": "f-2"})
        assert r.status_code == 303
    assert count(sessions, SharedFact) == 1
    assert "長男は日中在宅" in text_of(fm.get(f"/meetings/{meeting_id}"))
    # The covered partner reads it on the case page; the meeting's records stay closed to it.
    partner_case = text_of(web(actors.shakyo).get(f"/cases/{case_id}"))
    assert "支援会議から共有された情報" in partner_case and "長男は日中在宅" in partner_case
    assert count(sessions, AuditEvent, AuditEvent.action == "shared_fact.carry") == 1
    # Withdrawal takes it away from the partner at once.
    fire(actors.livelihood, case_id, "withdraw_consent", given_by="本人")
    assert "長男は日中在宅" not in text_of(web(actors.shakyo).get(f"/cases/{case_id}"))


def test_the_secretariat_adds_a_member_who_acknowledges_before_reading(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")  # convened by the FM (secretariat) with 生活福祉課 as a member
    meeting_id = _meeting(sessions, case_id)
    with unit_of_work(sessions) as s:
        s.get(Meeting, meeting_id).minutes = "長男の生活状況を共有した。"
    # A member who is not the secretariat is offered no such form, and may not add anyone.
    member = web(actors.livelihood)
    assert "構成員に加える" not in text_of(member.get(f"/meetings/{meeting_id}"))
    assert member.post(f"/meetings/{meeting_id}/members", data={"user": "shakyo"}).status_code == 403
    fm = web(actors.fm)
    page = text_of(fm.get(f"/meetings/{meeting_id}"))
    assert "構成員に加える" in page
    missing = fm.post(f"/meetings/{meeting_id}/members", data={"user": ""})
    assert missing.status_code == 422 and "構成員: 必須項目です。" in missing.get_data(as_text=True)
    r = fm.post(f"/meetings/{meeting_id}/members", data={"user": "shakyo"})
    assert r.status_code == 303
    assert "shakyoさんを構成員に加えました。本人が守秘義務を確認するまで" in text_of(fm.get(f"/meetings/{meeting_id}"))
    again = fm.post(f"/meetings/{meeting_id}/members", data={"user": "shakyo"})
    assert again.status_code == 409 and "既にこの会議の構成員です" in text_of(again)
    with unit_of_work(sessions) as s:
        shakyo = s.scalar(select(User).where(User.login == "shakyo"))
        row = s.scalar(select(MeetingMember).where(MeetingMember.meeting_id == meeting_id,
                                                   MeetingMember.user_id == shakyo.id))
        assert row.acknowledged_at is None and not row.secretariat
    assert count(sessions, AuditEvent, AuditEvent.action == "meeting.add_member") == 1
    # The new member must acknowledge the 守秘義務 before the records open.
    client = web(actors.shakyo)
    assert "長男の生活状況" not in text_of(client.get(f"/meetings/{meeting_id}"))
    assert client.post(f"/meetings/{meeting_id}/acknowledge").status_code == 303
    assert "長男の生活状況を共有した。" in text_of(client.get(f"/meetings/{meeting_id}"))


def test_a_layered_meeting_takes_members_only_from_the_agencies_the_consent_covers(web, actors, case_in, sessions):
    case_id = case_in("accompaniment")  # the plan's 重層的支援会議, 生活福祉課 its secretariat; consent: 生活福祉課, 社協
    meeting_id = _meeting(sessions, case_id, kind="layered_meeting")
    secretariat = web(actors.livelihood)
    page = secretariat.get(f"/meetings/{meeting_id}").get_data(as_text=True)
    form = page.split('name="user"', 1)[1].split("</select>", 1)[0]
    assert 'value="shakyo"' in form and 'value="children"' not in form  # offered: the covered agencies' staff
    r = secretariat.post(f"/meetings/{meeting_id}/members", data={"user": "children"})
    assert r.status_code == 409
    assert "こども家庭課は本人の同意の範囲に含まれていないため" in text_of(r)
    assert count(sessions, AuditEvent, AuditEvent.action == "meeting.add_member") == 0
    assert web(actors.children).get(f"/cases/{case_id}").status_code == 404
    assert secretariat.post(f"/meetings/{meeting_id}/members", data={"user": "shakyo"}).status_code == 303


def test_a_layered_meeting_member_sees_the_case_only_while_the_consent_covers_them(web, actors, case_in, fire,
                                                                                    sessions):
    case_id = case_in("accompaniment")  # consent: 生活福祉課, 社協; 生活福祉課 the meeting's secretariat
    meeting_id = _meeting(sessions, case_id, kind="layered_meeting")
    assert web(actors.livelihood).post(f"/meetings/{meeting_id}/members", data={"user": "shakyo"}).status_code == 303
    shakyo = web(actors.shakyo)
    assert shakyo.post(f"/meetings/{meeting_id}/acknowledge").status_code == 303
    assert shakyo.get(f"/cases/{case_id}").status_code == 200
    fire(actors.livelihood, case_id, "withdraw_consent", given_by="本人")
    # The membership does not outlast the consent the meeting met under.
    assert shakyo.get(f"/cases/{case_id}").status_code == 404


def test_a_layered_meeting_invitation_lapses_with_the_consent(web, actors, case_in, fire, sessions):
    """Invited to a 重層的支援会議 and not yet acknowledged when the consent is withdrawn: the meeting is as
    unknown to them as the case (its page, its number, the acknowledgement)."""
    case_id = case_in("accompaniment")  # consent: 生活福祉課, 社協
    meeting_id = _meeting(sessions, case_id, kind="layered_meeting")
    assert web(actors.livelihood).post(f"/meetings/{meeting_id}/members", data={"user": "shakyo"}).status_code == 303
    shakyo = web(actors.shakyo)
    assert "守秘義務" in text_of(shakyo.get(f"/meetings/{meeting_id}"))  # invited: asked to acknowledge
    fire(actors.livelihood, case_id, "withdraw_consent", given_by="本人")
    missing = shakyo.get("/meetings/999999")
    lapsed = shakyo.get(f"/meetings/{meeting_id}")
    assert lapsed.status_code == missing.status_code == 404
    assert text_of(lapsed).replace(str(meeting_id), "N") == text_of(missing).replace("999999", "N")
    assert shakyo.post(f"/meetings/{meeting_id}/acknowledge").status_code == 404
    with sessions() as s:
        assert s.scalar(select(MeetingMember.acknowledged_at).where(
            MeetingMember.meeting_id == meeting_id, MeetingMember.user_id == actors.shakyo.id)) is None


def test_a_layered_meetings_records_follow_the_consent_not_the_membership(web, actors, case_in, fire, sessions):
    """A department that joined before the consent stays in the case after a withdrawal, as before the
    consent; but the 重層的支援会議 met under the consent, and its member reads its records no longer."""
    from datetime import timedelta

    from tests.conftest import NOW
    from tests.pages_support import PLAN

    case_id = case_in("assigned")  # owner 生活福祉課
    with unit_of_work(sessions) as s:
        h = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department="health",
                                  reason="通院の支援", summary="要約", now=NOW - timedelta(hours=1))
        joins.answer_join(s, s.get(User, actors.health.id), h.id, "accept", now=NOW - timedelta(hours=1))
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written",
         agencies=["livelihood", "health"])
    fire(actors.livelihood, case_id, "adopt_plan", **{**PLAN, "minutes": "重層MARK-役割を決めた",
                                                      "roles": [{"department": "livelihood", "role": "家計相談"}]})
    meeting_id = _meeting(sessions, case_id, kind="layered_meeting")
    assert web(actors.livelihood).post(f"/meetings/{meeting_id}/members", data={"user": "health-staff"}).status_code == 303
    member = web(actors.health)
    assert member.post(f"/meetings/{meeting_id}/acknowledge").status_code == 303
    assert "重層MARK" in text_of(member.get(f"/meetings/{meeting_id}"))
    fire(actors.livelihood, case_id, "withdraw_consent", given_by="本人")
    assert member.get(f"/cases/{case_id}").status_code == 200  # joined before the consent: still in the case
    assert "重層MARK" not in text_of(member.get(f"/meetings/{meeting_id}"))
