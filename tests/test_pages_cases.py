"""ケース一覧 and ケース詳細: what each person sees, the forms of the events allowed them now, refusals."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from engine import states
from engine.cases import joins
from engine.cases import lists as caselist
from engine.db import unit_of_work
from engine.models import AuditEvent, Case, ContactNote, Handoff, Meeting, Plan, utcnow
from engine.referrals import clients as api_clients
from tests.conftest import NOW
from tests.pages_support import (  # noqa: F401  (fixtures)
    FUTURE,
    app,
    case_in,
    case_state,
    case_version,
    count,
    error_beside,
    form_token,
    input_value,
    text_of,
    web,
)

# --- start page ---------------------------------------------------------------------------------

def test_the_start_page_counts_by_state_what_the_person_may_know_of(web, actors, case_in):
    case_in("handoff")
    case_in("assigned")
    case_in("intake")  # unrouted: the desk's, not 生活福祉課's
    r = web(actors.livelihood).get("/")
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    counts = dict(re.findall(r'/cases\?state=([a-z_]+)">(\d+)<', body))
    assert counts["handoff"] == "1" and counts["assigned"] == "1" and counts["intake"] == "0"
    assert "すべてのケースを見る（2件）" in text_of(r)
    assert "相談受付" in text_of(r) and "FMダッシュボード" not in text_of(r)
    assert "FMダッシュボード" in text_of(web(actors.fm).get("/"))


# --- ケース一覧 -----------------------------------------------------------------------------------

def test_the_list_shows_only_the_cases_a_person_may_know_of(web, actors, open_case):
    poverty = open_case(categories=["poverty"])
    open_case(categories=["hikikomori"], person={"name": "佐伯 次郎", "name_kana": "サエキ ジロウ"})
    page = text_of(web(actors.livelihood).get("/cases"))
    assert "廿日 太郎" in page and "佐伯 次郎" not in page and "1件" in page
    other = text_of(web(actors.hikikomori).get("/cases"))
    assert "佐伯 次郎" in other and "廿日 太郎" not in other
    assert poverty


def test_search_ignores_width_and_kana(web, actors, open_case):
    open_case(categories=["poverty"])
    open_case(categories=["poverty"], person={"name": "佐伯 一郎", "name_kana": "サエキ イチロウ"})
    client = web(actors.livelihood)
    for q in ("はつか", "ﾊﾂｶ", "ハツカ　タロウ", "廿日", "たろう"):
        page = text_of(client.get("/cases", query_string={"q": q}))
        assert "廿日 太郎" in page and "佐伯 一郎" not in page, q
    assert "該当するケースはありません" in text_of(client.get("/cases", query_string={"q": "みやじま"}))
    # The browser sends no more than the server takes, and never a URL the production server refuses.
    assert re.search(r'<input id="[^"]*" name="q"[^>]*maxlength="100"', client.get("/cases").get_data(as_text=True))


def test_search_folds_the_common_variant_characters(web, actors, open_case):
    """吉野 finds 𠮷野 and 高崎 finds 髙﨑 (and the other way round), as the kana search finds both."""
    open_case(categories=["poverty"], person={"name": "𠮷野 花子", "name_kana": "ヨシノ ハナコ"})
    open_case(categories=["poverty"], person={"name": "髙﨑 一郎", "name_kana": "タカサキ イチロウ"})
    open_case(categories=["poverty"], person={"name": "ヴィクトル 佐伯", "name_kana": ""})
    client = web(actors.livelihood)

    def found(q):
        page = text_of(client.get("/cases", query_string={"q": q}))
        return {n for n in ("𠮷野 花子", "髙﨑 一郎", "ヴィクトル 佐伯") if n in page}

    assert found("吉野") == found("𠮷野") == found("よしの") == {"𠮷野 花子"}
    assert found("高崎") == found("髙﨑") == found("高﨑") == found("たかさき") == {"髙﨑 一郎"}
    assert found("吉野 はなこ") == {"𠮷野 花子"} and found("吉野 いちろう") == set()
    assert found("ビクトル") == {"ヴィクトル 佐伯"}


def test_an_fm_outside_a_case_sees_its_state_but_cannot_find_it_by_name(web, actors, open_case):
    open_case(categories=["poverty"])
    client = web(actors.fm)
    listing = text_of(client.get("/cases"))
    assert "内容は閲覧できません" in listing and "廿日 太郎" not in listing and "1件" in listing
    assert "0件" in text_of(client.get("/cases", query_string={"q": "はつか"}))


def test_filters_by_state_department_area_category_and_overdue(web, actors, open_case, fire):
    a = open_case(categories=["poverty"])
    fire(actors.livelihood, a, "accept_handoff")
    # The list judges lateness by the real clock: a sheet sent just now is on time whatever the day.
    open_case(categories=["poverty"], person={"name": "大野 花", "area": "大野"}, now=utcnow())
    old = open_case(categories=["poverty", "debt"], now=NOW - timedelta(days=30),
                    person={"name": "宮島 古", "area": "宮島"})
    client = web(actors.livelihood)

    def names(**args):
        page = text_of(client.get("/cases", query_string=args))
        return {n for n in ("廿日 太郎", "大野 花", "宮島 古") if n in page}

    assert names(state="assigned") == {"廿日 太郎"}
    assert names(department="livelihood") == {"廿日 太郎"}
    assert names(area="大野") == {"大野 花"}
    assert names(category="debt") == {"宮島 古"}
    assert names(overdue="1") == {"宮島 古"}
    assert old


def test_a_filter_value_that_does_not_exist_is_marked_beside_it(web, actors, departments):
    r = web(actors.window).get("/cases", query_string={"state": "nowhere", "page": "x"})
    assert r.status_code == 422
    assert "ページ番号が正しくありません。" in text_of(r)  # no input of its own: in the summary at the top
    r = web(actors.window).get("/cases", query_string={"state": "nowhere"})
    assert r.status_code == 422 and "「nowhere」という状態はありません" in error_beside(r, "flt", "state")


def test_the_list_is_paginated_and_keeps_its_filters(web, actors, open_case, monkeypatch):
    for _ in range(3):
        open_case(categories=["poverty"])
    monkeypatch.setattr(caselist, "PER_PAGE", 2)
    client = web(actors.livelihood)
    first = client.get("/cases", query_string={"state": "handoff"})
    assert "1 / 2 ページ" in text_of(first)
    assert "/cases?page=2&amp;state=handoff" in first.get_data(as_text=True)
    second = text_of(client.get("/cases", query_string={"state": "handoff", "page": 2}))
    assert "3件（3〜3件目）" in second
    # A page past the end (a link kept after cases closed, a typed number) says so and leads to the last one.
    past = client.get("/cases", query_string={"state": "handoff", "page": 7})
    assert "3件（2ページまで）。7ページ目に表示するケースはありません。" in text_of(past)
    assert "件目" not in text_of(past)
    assert "/cases?page=2&amp;state=handoff" in past.get_data(as_text=True)


# --- ケース詳細 -----------------------------------------------------------------------------------

def test_the_owner_reads_the_case_and_the_read_is_audited(web, actors, case_in, sessions):
    case_id = case_in("assigned", household=[{"relationship": "長男", "birth_year": 1990}])
    r = web(actors.livelihood).get(f"/cases/{case_id}")
    assert r.status_code == 200
    page = text_of(r)
    for shown in ("廿日 太郎", "ハツカ タロウ", "昭和35年5月1日", "長男", "失職して家賃を滞納している。", "生活福祉課"):
        assert shown in page, shown
    assert count(sessions, AuditEvent, AuditEvent.action == "case.read", AuditEvent.case_id == case_id) == 1


def test_an_fm_outside_the_case_sees_handoff_metadata_only_and_no_read_is_logged(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    r = web(actors.fm).get(f"/cases/{case_id}")
    page = text_of(r)
    assert r.status_code == 200 and "内容（本人の情報・相談内容・記録）は閲覧できません" in page
    assert "廿日 太郎" not in page and "失職" not in page
    assert "生活福祉課" in page  # where the sheet went is metadata
    assert count(sessions, AuditEvent, AuditEvent.action == "case.read") == 0


def test_a_case_out_of_sight_answers_404_and_the_refusal_is_audited(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    r = web(actors.hikikomori).get(f"/cases/{case_id}")
    assert r.status_code == 404 and "見つかりません" in text_of(r)
    with unit_of_work(sessions) as s:
        row = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).one()
        assert (row.case_id, row.detail["code"]) == (case_id, "not_found")
    assert web(actors.livelihood).get("/cases/999999").status_code == 404


def test_the_diagram_marks_the_current_stage_and_the_readers_next_steps(web, actors, case_in):
    case_id = case_in("handoff")
    body = web(actors.livelihood).get(f"/cases/{case_id}").get_data(as_text=True)
    svg = body.split('<svg class="machine"')[1].split("</svg>")[0]
    assert re.search(r'<g class="state-box current[^"]*"><rect[^>]*/><text[^>]*>つなぐシート送付中</text>', svg)
    assert len(re.findall(r'<g class="state-box current', svg)) == 1
    # From つなぐシート送付中 this person may accept (→ 担当決定) or send back (→ 受付): two bold arrows.
    nexts = re.findall(r'<path class="edge[^"]* next"[^>]*><title>([^<]+)</title>', svg)
    assert sorted(nexts) == ["受理する", "返送する"]


def test_each_person_gets_the_forms_of_the_events_allowed_them_now(web, actors, case_in):
    case_id = case_in("handoff")
    receiving = web(actors.livelihood).get(f"/cases/{case_id}").get_data(as_text=True)
    forms = set(re.findall(rf'action="/cases/{case_id}/events/([a-z_]+)"', receiving))
    assert forms == {"accept_handoff", "decline_handoff"}
    window = web(actors.window).get(f"/cases/{case_id}").get_data(as_text=True)
    assert set(re.findall(rf'action="/cases/{case_id}/events/([a-z_]+)"', window)) == {"close"}


def test_accepting_from_the_case_page(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    client = web(actors.livelihood)
    client.get(f"/cases/{case_id}")
    r = client.post(f"/cases/{case_id}/events/accept_handoff", {"version": case_version(sessions, case_id)})
    assert r.status_code == 303
    page = text_of(client.get(r.headers["Location"]))
    assert "つなぐシートを受理しました。" in page and "を記録しました" not in page
    assert case_state(sessions, case_id) == "assigned"


def test_a_decline_without_a_reason_is_marked_and_applies_nothing(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    r = web(actors.livelihood).post(f"/cases/{case_id}/events/decline_handoff",
                                    {"version": case_version(sessions, case_id), "reason": "  "})
    assert r.status_code == 422
    assert error_beside(r, "ev-decline_handoff", "reason") == "必須項目です。"
    assert '<details class="event" id="event-decline_handoff" open>' in r.get_data(as_text=True)
    assert case_state(sessions, case_id) == "handoff"


def test_sending_a_sheet_back_from_the_case_page_returns_to_the_inbox_with_the_message(web, actors, case_in,
                                                                                     sessions):
    """The department that sends a sheet back no longer sees the case: it lands on its inbox, not a 404."""
    case_id = case_in("handoff")
    client = web(actors.livelihood)
    r = client.post(f"/cases/{case_id}/events/decline_handoff",
                    {"version": case_version(sessions, case_id), "reason": "所管外のため"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/inbox")
    landed = client.get("/inbox")
    assert landed.status_code == 200 and "返送しました" in text_of(landed)
    assert case_state(sessions, case_id) == "intake"


def test_a_stale_form_says_so_shows_the_current_state_and_applies_nothing_twice(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    version = case_version(sessions, case_id)
    client = web(actors.livelihood)
    assert client.post(f"/cases/{case_id}/events/accept_handoff", {"version": version}).status_code == 303
    after = case_version(sessions, case_id)
    again = client.post(f"/cases/{case_id}/events/decline_handoff", {"version": version, "reason": "所管外"})
    assert again.status_code == 409
    page = text_of(again)
    assert "画面が古くなっています" in page and "現在の状態は「担当決定」です" in page
    assert "既に記録されています" not in page
    # Another form, shown before the case changed: what was typed is kept, to copy, though 返送 is no
    # longer offered.
    summary = again.get_data(as_text=True).split('id="refusal"')[1].split("</div>")[0]
    assert "所管外" in summary and "今の状態ではできません" in summary
    assert case_state(sessions, case_id) == "assigned" and case_version(sessions, case_id) == after


def test_an_event_someone_may_not_fire_is_refused_with_403_and_audited(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    r = web(actors.window).post(f"/cases/{case_id}/events/accept_handoff", {"version": case_version(sessions, case_id)})
    assert r.status_code == 403 and "送付先の部署の職員だけです" in text_of(r)
    assert case_state(sessions, case_id) == "handoff"
    assert count(sessions, AuditEvent, AuditEvent.outcome == "refused", AuditEvent.case_id == case_id) == 1


def test_an_unknown_event_is_404_and_one_not_allowed_now_is_409(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    client = web(actors.livelihood)
    assert client.post(f"/cases/{case_id}/events/teleport", {"version": 1}).status_code == 404
    r = client.post(f"/cases/{case_id}/events/resume", {"version": case_version(sessions, case_id)})
    assert r.status_code == 409 and "現在の状態（つなぐシート送付中）では" in text_of(r)


def test_a_form_without_its_version_asks_to_reload(web, actors, case_in):
    case_id = case_in("handoff")
    r = web(actors.livelihood).post(f"/cases/{case_id}/events/accept_handoff", {})
    assert r.status_code == 422 and "読み込み直してから" in text_of(r)


def test_convening_a_support_meeting_marks_each_member_problem(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.fm)
    url = f"/cases/{case_id}/events/convene_support_meeting"
    v = case_version(sessions, case_id)
    r = client.post(url, {"version": v, "members.2.user": "nobody"})
    assert r.status_code == 422
    assert error_beside(r, "ev-convene_support_meeting", "members.2.user") == "「nobody」という職員はいません。"
    r = client.post(url, {"version": v, "members.0.user": "livelihood", "held_at": "2026-12-01T10:00"})
    assert r.status_code == 409
    said = error_beside(r, "ev-convene_support_meeting", "members")
    assert "守秘義務の確認が済んでいない構成員がいます" in said and "会議のページで構成員に加えて" in said
    assert 'value="livelihood" selected' in r.get_data(as_text=True)
    r = client.post(url, {"version": v, "members.1.user": "livelihood", "members.1.acknowledged": "1",
                          "held_at": "2026-12-01T10:00", "minutes": "生活状況を共有した。"})
    assert r.status_code == 303 and case_state(sessions, case_id) == "support_meeting"
    with unit_of_work(sessions) as s:
        meeting = s.scalars(select(Meeting)).one()
        assert meeting.held_at.isoformat() == "2026-12-01T01:00:00+00:00"  # 10:00 JST
        assert {m.user.login for m in meeting.members} == {"fm", "livelihood"}


def test_recording_consent_marks_missing_agencies_and_method(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    url = f"/cases/{case_id}/events/record_consent"
    r = client.post(url, {"version": case_version(sessions, case_id), "given_by": "本人"})
    assert r.status_code == 422
    assert error_beside(r, "ev-record_consent", "agencies") == "情報を共有してよい機関を1つ以上選んでください。"
    assert error_beside(r, "ev-record_consent", "method") == "必須項目です。"
    r = client.post(url, {"version": case_version(sessions, case_id), "given_by": "本人", "method": "oral",
                          "obtained_on": "令和8年11月30日", "agencies": ["livelihood", "shakyo"]})
    assert r.status_code == 303 and case_state(sessions, case_id) == "layered_meeting"


def test_the_plan_editor_marks_rows_guards_and_dates(web, actors, case_in, sessions):
    case_id = case_in("layered_meeting")
    client = web(actors.livelihood)
    url = f"/cases/{case_id}/events/adopt_plan"
    base = {"version": case_version(sessions, case_id), "goals": "「家賃を払えるようになりたい」",
            "main_department": "livelihood", "next_evaluation_date": FUTURE}
    r = client.post(url, {**base, "roles.1.department": "livelihood"})
    assert r.status_code == 422 and error_beside(r, "ev-adopt_plan", "roles.1.role") == "必須項目です。"
    r = client.post(url, {**base, "roles.0.department": "shakyo", "roles.0.role": "居場所"})
    assert r.status_code == 409
    assert error_beside(r, "ev-adopt_plan", "main_department") == "主担当の機関は役割分担の中に含めてください。"
    assert input_value(r, "ev-adopt_plan", "roles.0.role") == "居場所"
    r = client.post(url, {**base, "next_evaluation_date": "いつか", "roles.0.department": "livelihood",
                          "roles.0.role": "家計相談"})
    assert r.status_code == 422 and "日付は" in error_beside(r, "ev-adopt_plan", "next_evaluation_date")
    r = client.post(url, {**base, "roles.0.department": "livelihood", "roles.0.role": "家計相談",
                          "roles.3.department": "shakyo", "roles.3.role": "居場所の紹介",
                          "business_categories": ["participation"]})
    assert r.status_code == 303 and case_state(sessions, case_id) == "accompaniment"
    page = text_of(client.get(f"/cases/{case_id}"))
    assert "「家賃を払えるようになりたい」" in page and "居場所の紹介" in page
    with unit_of_work(sessions) as s:
        assert [r.role for r in s.scalars(select(Plan)).one().roles] == ["家計相談", "居場所の紹介"]


def test_an_evaluation_to_continue_needs_the_next_date(web, actors, case_in, sessions):
    case_id = case_in("accompaniment")
    client = web(actors.livelihood)
    url = f"/cases/{case_id}/events/evaluate"
    r = client.post(url, {"version": case_version(sessions, case_id), "goals_met": "partly", "decision": "continue"})
    assert r.status_code == 422
    assert error_beside(r, "ev-evaluate", "next_evaluation_date") == "継続する場合は次回評価日が必須です。"
    r = client.post(url, {"version": case_version(sessions, case_id), "goals_met": "partly", "decision": "continue",
                          "next_evaluation_date": FUTURE, "changes": "週1回通所できた。"})
    assert r.status_code == 303 and "週1回通所できた。" in text_of(client.get(f"/cases/{case_id}"))


def test_an_unknown_degree_of_goals_met_names_the_choices_in_japanese(web, actors, case_in, sessions):
    case_id = case_in("accompaniment")
    r = web(actors.livelihood).post(f"/cases/{case_id}/events/evaluate", {
        "version": case_version(sessions, case_id), "goals_met": "most", "decision": "replan"})
    assert r.status_code == 422
    assert error_beside(r, "ev-evaluate", "goals_met") == (
        "目標の達成度は 達成（met）・一部達成（partly）・未達成（not_met） から選んでください。")


def test_closing_needs_a_reason(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    r = client.post(f"/cases/{case_id}/events/close", {"version": case_version(sessions, case_id)})
    assert r.status_code == 422 and error_beside(r, "ev-close", "close_reason") == "必須項目です。"
    r = client.post(f"/cases/{case_id}/events/close", {"version": case_version(sessions, case_id),
                                                        "close_reason": "moved_out", "note": "市外へ転居",
                                                        "confirm": "1"})
    assert r.status_code == 303 and case_state(sessions, case_id) == "closed"
    assert "終結 " in text_of(client.get(f"/cases/{case_id}")) and "（転出）" in text_of(client.get(f"/cases/{case_id}"))


def test_closing_asks_for_a_ticked_confirmation_and_keeps_what_was_typed(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    form = page.split('id="event-close"')[1].split("</form>")[0]
    assert 'type="checkbox" name="confirm" value="1"' in form and "<script" not in page
    r = client.post(f"/cases/{case_id}/events/close", {"version": case_version(sessions, case_id),
                                                        "close_reason": "moved_out", "note": "市外へ転居"})
    assert r.status_code == 422 and case_state(sessions, case_id) == "assigned"
    assert error_beside(r, "ev-close", "confirm") == "終結してよいか確かめて、確認の欄にチェックを入れてください。"
    assert input_value(r, "ev-close", "note") == "市外へ転居"
    assert 'value="moved_out" selected' in r.get_data(as_text=True)
    assert 'id="event-close" open' in r.get_data(as_text=True)


def test_a_closed_case_still_shows_its_last_plan_marked_ended(web, actors, case_in, fire, sessions):
    case_id = case_in("accompaniment")
    fire(actors.livelihood, case_id, "close", close_reason="goal_met")
    plan = text_of(web(actors.livelihood).get(f"/cases/{case_id}")).split("支援プラン", 1)[1]
    assert "家賃を払えるようになりたい" in plan and "終了" in plan and "次回評価日" not in plan
    with unit_of_work(sessions) as s:
        assert s.scalars(select(Plan).where(Plan.case_id == case_id)).one().status == "ended"


def _note_form(client, case_id):
    body = client.get(f"/cases/{case_id}").get_data(as_text=True)
    return form_token(body, f"/cases/{case_id}/notes")


def test_contact_notes_are_checked_and_added_once(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    token = _note_form(client, case_id)
    r = client.post(f"/cases/{case_id}/notes", {"submission_token": token, "contact_on": "令和8年11月27日"})
    assert r.status_code == 422
    assert error_beside(r, "note", "body") == "必須項目です。"
    assert error_beside(r, "note", "method") == "必須項目です。"
    assert input_value(r, "note", "contact_on") == "令和8年11月27日"
    form = {"submission_token": token, "contact_on": "令和8年11月27日", "method": "home_visit", "body": "自宅を訪問した。"}
    assert client.post(f"/cases/{case_id}/notes", form).status_code == 303
    again = client.post(f"/cases/{case_id}/notes", form)
    assert again.status_code == 303
    assert "既に記録されています" in text_of(client.get(again.headers["Location"]))
    assert count(sessions, ContactNote) == 1
    assert "令和8年11月27日 ・訪問" in text_of(client.get(f"/cases/{case_id}"))


def test_a_contact_note_dated_long_before_the_case_is_refused_beside_its_date(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    form = {"submission_token": _note_form(client, case_id), "contact_on": "明治33年1月2日", "method": "phone",
            "body": "電話した。"}
    r = client.post(f"/cases/{case_id}/notes", form)
    assert r.status_code == 422
    assert "相談を受け付けた日（令和" in error_beside(r, "note", "contact_on")
    assert count(sessions, ContactNote) == 0


def test_a_contact_note_form_opened_before_the_closure_is_refused(web, actors, case_in, sessions, fire):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    token = _note_form(client, case_id)
    fire(actors.livelihood, case_id, "close", close_reason="goal_met")  # in another tab, meanwhile
    r = client.post(f"/cases/{case_id}/notes", {"submission_token": token, "contact_on": "令和8年11月27日",
                                                "method": "phone", "body": "電話した。"})
    assert r.status_code == 409 and "終結したケースには支援経過を記録できません" in text_of(r)
    assert count(sessions, ContactNote) == 0


def test_a_contact_note_from_someone_who_may_not_write_is_refused_and_audited_whatever_the_form(
        web, actors, case_in, sessions):
    from tests.access_matrix import refusals

    case_id = case_in("assigned")  # the recording window keeps its metadata sight, not the contact notes
    client = web(actors.window)
    for form in ({}, {"submission_token": "x" * 20, "method": "phone", "body": "電話した。"}):
        before = refusals(sessions)
        assert client.post(f"/cases/{case_id}/notes", form).status_code == 403
        assert refusals(sessions) == before + 1
    assert count(sessions, ContactNote) == 0


def test_a_contact_note_in_the_future_is_refused_beside_its_date(web, actors, case_in):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    token = _note_form(client, case_id)
    r = client.post(f"/cases/{case_id}/notes", {"submission_token": token, "contact_on": "2099-01-01",
                                                  "method": "phone", "body": "電話"})
    assert r.status_code == 422 and error_beside(r, "note", "contact_on") == "未来の日付は記録できません。"


def test_the_sheet_prints_for_those_who_may_read_the_case(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    with unit_of_work(sessions) as s:
        handoff_id = s.get(Case, case_id).handoffs[0].id
    r = web(actors.livelihood).get(f"/handoffs/{handoff_id}/sheet")
    assert r.status_code == 200
    page = text_of(r)
    assert 'class="page-sheet"' in r.get_data(as_text=True)
    for shown in ("つなぐシート", "廿日 太郎", "生活福祉課（生活困窮者自立相談支援）", "受理欄", "■生活困窮（主）"):
        assert shown in page, shown
    assert count(sessions, AuditEvent, AuditEvent.action == "handoff_sheet.read") == 1
    assert web(actors.fm).get(f"/handoffs/{handoff_id}/sheet").status_code == 404
    assert web(actors.livelihood).get("/handoffs/999999/sheet").status_code == 404


def test_a_refusal_reaches_the_trail_of_the_case_it_concerns(web, actors, case_in, sessions):
    """A refused print view or meeting page is about a case: it must reach that person's 開示請求 trail;
    a refused look at a case that does not exist must reach no case's trail."""
    case_id = case_in("assigned")
    with sessions() as s:
        sheet = s.scalar(select(Handoff.id).where(Handoff.case_id == case_id))
    outsider = web(actors.children)
    assert outsider.get(f"/handoffs/{sheet}/sheet").status_code == 404
    assert outsider.get(f"/cases/{case_id + 1000}").status_code == 404
    with sessions() as s:
        rows = s.execute(select(AuditEvent.action, AuditEvent.case_id, AuditEvent.object_type, AuditEvent.object_id)
                         .where(AuditEvent.outcome == "refused").order_by(AuditEvent.seq)).all()
    assert [tuple(r) for r in rows] == [("page.cases.sheet", case_id, "handoff", str(sheet)),
                                        ("page.cases.detail", None, "case", str(case_id + 1000))]


def test_a_reader_outside_the_consent_learns_a_plan_exists_not_what_it_says(web, actors, case_in, fire, sessions):
    from tests.pages_support import CONSENT, PLAN

    case_id = case_in("assigned")
    with unit_of_work(sessions) as s:  # joined before the consent, which then covers 生活福祉課 and 社協 only
        h = joins.request_join(s, actors.livelihood, case_id, to_department="health",
                                  reason="通院の支援を", summary="日中の居場所が必要。")
        joins.answer_join(s, actors.health, h.id, "accept")
    fire(actors.livelihood, case_id, "record_consent", **CONSENT)
    fire(actors.livelihood, case_id, "adopt_plan", **PLAN)
    joined = text_of(web(actors.health).get(f"/cases/{case_id}"))
    plan = joined.split("支援プラン", 1)[1]
    assert "有効な支援プランがあります。" in plan
    assert "支援プランは、担当部署・担当FM・本人が同意した範囲の機関だけが閲覧できます。" in plan
    assert "有効な支援プランはありません" not in joined
    assert "家賃を払えるようになりたい" not in joined and "家計相談" not in joined
    covered = text_of(web(actors.shakyo).get(f"/cases/{case_id}"))
    assert "家賃を払えるようになりたい" in covered and "家計相談" in covered
    assert "だけが閲覧できます" not in covered.split("支援プラン", 1)[1].split("共有情報", 1)[0]


def test_a_reader_outside_the_consent_is_told_when_there_is_no_plan(web, actors, case_in, sessions):

    case_id = case_in("assigned")
    with unit_of_work(sessions) as s:
        h = joins.request_join(s, actors.livelihood, case_id, to_department="health",
                                  reason="通院の支援を", summary="日中の居場所が必要。")
        joins.answer_join(s, actors.health, h.id, "accept")
    page = text_of(web(actors.health).get(f"/cases/{case_id}"))
    assert "有効な支援プランはありません。" in page and "支援プランがあります" not in page


def test_the_sender_changes_where_a_waiting_sheet_goes(web, actors, case_in, sessions):
    case_id = case_in("handoff")  # the desk's window sent it; 生活福祉課 has not answered
    desk = web(actors.window)
    page = text_of(desk.get(f"/cases/{case_id}"))
    assert "つなぐシートの送付先を変更する" in page
    assert "つなぐシートの送付先を変更する" not in text_of(web(actors.livelihood).get(f"/cases/{case_id}"))
    with unit_of_work(sessions) as s:
        version = s.get(Case, case_id).version
    missing = desk.post(f"/cases/{case_id}/redirect", data={"version": version, "to_department": "health"})
    assert missing.status_code == 422
    r = desk.post(f"/cases/{case_id}/redirect",
                  data={"version": version, "to_department": "health", "reason": "居場所の相談が中心のため"})
    assert r.status_code == 303
    with unit_of_work(sessions) as s:
        sheets = {h.to_department.code: h.state for h in s.scalars(select(Handoff).where(Handoff.case_id == case_id))}
        case = s.get(Case, case_id)
        assert sheets == {"livelihood": "withdrawn", "health": "sent"} and case.state == "handoff"
        assert case.override_reason == "居場所の相談が中心のため"
        version = case.version
    # Back to the rules' proposal: allowed here, and the case no longer departs from it.
    r = desk.post(f"/cases/{case_id}/redirect",
                  data={"version": version, "to_department": "livelihood", "reason": "やはり生活福祉課"})
    assert r.status_code == 303
    with unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        assert case.override_reason is None and case.open_primary_handoff.to_department.code == "livelihood"
    # A stale form changes nothing.
    stale = desk.post(f"/cases/{case_id}/redirect",
                      data={"version": version, "to_department": "health", "reason": "古い画面から"})
    assert stale.status_code == 409


def test_an_fm_who_may_not_read_the_case_sends_it_on_with_its_own_summary(web, actors, case_in, sessions):
    """An FM sending on a case that waits in 受付 reads only its metadata: the case's recorded summary goes
    on the sheet, not words the FM would have to make up."""
    case_id = case_in("intake")
    client = web(actors.fm)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    form = page.split('id="event-send_handoff"', 1)[1].split("</form>", 1)[0]
    assert 'name="summary"' not in form and "ケースに記録された要約がそのまま" in form
    r = client.post(f"/cases/{case_id}/events/send_handoff", {"version": case_version(sessions, case_id),
                                                               "to_department": "livelihood", "reason": "生活困窮の相談"})
    assert r.status_code == 303, text_of(r)
    with unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        sheet = s.scalars(select(Handoff).where(Handoff.case_id == case_id)).one()
        assert (case.state, sheet.summary) == ("handoff", case.summary)
    # Whoever reads the case writes the summary themselves: without one, it is missing.
    other = case_in("intake")
    r = web(actors.window).post(f"/cases/{other}/events/send_handoff", {
        "version": case_version(sessions, other), "to_department": "livelihood", "reason": "生活困窮の相談", "summary": ""})
    assert r.status_code == 422 and error_beside(r, "ev-send_handoff", "summary") == "必須項目です。"


def test_the_desk_redirects_a_referral_the_rules_sent(web, actors, app, sessions):
    """A sheet the rules sent on a referral's arrival has no sending department: the desk, offered 送付先を
    変更する, may use it (the handoff machine's withdraw alone would answer 403)."""
    from tests.api.support import post_referral

    with unit_of_work(sessions) as s:
        _, token = api_clients.create_token(s, client_name="partner", scopes=["referrals:write"])
    created = post_referral(app.test_client(), token).get_json()
    case_id = created["id"]
    desk = web(actors.window)
    assert "つなぐシートの送付先を変更する" in text_of(desk.get(f"/cases/{case_id}"))
    r = desk.post(f"/cases/{case_id}/redirect", data={"version": case_version(sessions, case_id),
                                                       "to_department": " health ", "reason": "地域の見守りが中心のため"})
    assert r.status_code == 303, text_of(r)  # the code is read as typed, spaces around it aside
    with unit_of_work(sessions) as s:
        assert {h.to_department.code: h.state for h in s.scalars(select(Handoff).where(Handoff.case_id == case_id))
                }["health"] == "sent"
    shown = text_of(desk.get(f"/cases/{case_id}"))
    assert "つなぐシート取下げ（送付先の変更に伴う）" in shown and "つなぐシートの送付先の変更" in shown
    assert "routing_override" not in shown


def test_the_timeline_keeps_what_each_closure_and_reopening_said(web, actors, open_case, fire, sessions):
    """A reopen clears the case's closure fields; the timeline keeps each closure's reason and note and the
    reason for reopening, for those who read the case. A note typed during a 支援会議 is its members'."""
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="oral", agencies=["livelihood"])
    fire(actors.livelihood, case_id, "adopt_plan", goals="g", main_department="livelihood",
         next_evaluation_date="2027-03-01", roles=[{"department": "livelihood", "role": "r"}])
    fire(actors.livelihood, case_id, "evaluate", goals_met="met", decision="close", close_reason="goal_met")
    fire(actors.livelihood, case_id, "reopen", reason="家賃の滞納が再発したと本人から電話")
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "livelihood", "acknowledged": True}])
    fire(actors.fm, case_id, "close", close_reason="moved_out", note="会議で共有された転居先の情報")
    with sessions() as s:
        assert s.get(Case, case_id).close_reason == "moved_out"
    timeline = web(actors.livelihood).get(f"/cases/{case_id}").get_data(as_text=True).split('id="history"')[1]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", timeline))
    assert "終結理由: 目標達成 結論: 終結" in text
    assert "理由: 家賃の滞納が再発したと本人から電話" in text
    assert "終結理由: 転出" in text and "メモ: 会議で共有された転居先の情報" in text
    # The desk, which recorded the case, reads its content but sat in no 支援会議: the note is withheld.
    desk = web(actors.window).get(f"/cases/{case_id}").get_data(as_text=True)
    assert "会議で共有された転居先の情報" not in desk and "支援会議の構成員だけに表示されるメモがあります" in desk


def test_a_consent_note_typed_in_the_support_meeting_is_its_members(web, actors, open_case, fire, sessions,
                                                                    make_user):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "livelihood", "acknowledged": True}])
    fire(actors.fm, case_id, "seek_consent")
    fire(actors.livelihood, case_id, "refuse_consent", given_by="本人", method="oral", note="会議で聞いた借金の額に触れた")
    colleague = make_user("staff", "livelihood", login="livelihood2")  # owner's department, not in the meeting
    assert "会議で聞いた借金の額に触れた" in web(actors.livelihood).get(f"/cases/{case_id}").get_data(as_text=True)
    other = web(colleague).get(f"/cases/{case_id}").get_data(as_text=True)
    assert "会議で聞いた借金の額に触れた" not in other and "支援会議の構成員だけに表示されるメモがあります" in other


def test_a_contact_note_the_owner_types_as_a_support_meeting_member_stays_with_the_meeting(
        web, actors, case_in, fire, sessions, make_user, app):
    """In 支援会議 and 同意確認中 a member's contact note may carry what the meeting shared without consent: it
    is a record of that meeting even when its writer owns the case, and does not reach the agencies a later
    consent covers, on the page or through the API. After consent the owner writes into the consented track."""
    from tests.api.support import auth

    case_id = case_in("support_meeting")  # 生活福祉課 owns it and sits in the 支援会議
    owner = web(actors.livelihood)
    page = owner.get(f"/cases/{case_id}")
    assert "この記録は支援会議の記録になります" in text_of(page)
    form = {"submission_token": _note_form(owner, case_id), "method": "home_visit", "body": "会議で聞いた長男の借金の額"}
    r = owner.post(f"/cases/{case_id}/notes", form)
    assert r.status_code == 303 and "/meetings/" in r.headers["Location"]
    with sessions() as s:
        note = s.scalar(select(ContactNote).where(ContactNote.case_id == case_id))
        assert note.meeting_id is not None
    # Sent again, it points at the meeting's page, where the note is.
    again = owner.get(owner.post(f"/cases/{case_id}/notes", form).headers["Location"]).get_data(as_text=True)
    assert f'<a href="/meetings/{note.meeting_id}#note-{note.id}">記録した支援経過を見る</a>' in again
    assert f'<li id="note-{note.id}">' in owner.get(f"/meetings/{note.meeting_id}").get_data(as_text=True)
    fire(actors.fm, case_id, "seek_consent")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written",
         agencies=["livelihood", "shakyo"])
    assert "この記録は支援会議の記録になります" not in text_of(owner.get(f"/cases/{case_id}"))
    form = {"submission_token": _note_form(owner, case_id), "method": "phone", "body": "同意後に電話した"}
    assert "/cases/" in owner.post(f"/cases/{case_id}/notes", form).headers["Location"]
    covered = text_of(web(actors.shakyo).get(f"/cases/{case_id}"))
    colleague = text_of(web(make_user("staff", "livelihood", login="livelihood2")).get(f"/cases/{case_id}"))
    for seen in (covered, colleague):
        assert "同意後に電話した" in seen and "会議で聞いた長男の借金の額" not in seen
    with unit_of_work(sessions) as s:

        _, token = api_clients.create_token(s, client_name="shakyo-system", scopes=["cases:read"],
                                            user_login="shakyo")
    api = app.test_client().get(f"/api/v1/cases/{case_id}", headers=auth(token)).get_json()
    assert [n["body"] for n in api["contact_notes"]] == ["同意後に電話した"]


def test_every_event_of_the_machines_has_a_name_in_the_timeline():
    from web.views import HISTORY_LABELS

    events = {t["trigger"] for t in states.CASE_TRANSITIONS} | {f"handoff.{t['trigger']}" for t in states.HANDOFF_TRANSITIONS}
    assert events - set(HISTORY_LABELS) == set()
