"""Odd input on the pages gets a Japanese answer, never a 500: ids past what the database holds, a group
posted as a plain value, dates before 明治 or outside their era, and values no checkbox sends; and every
person's name a page shows leaves its row in the person's 開示請求 trail."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.audit import trail
from engine.db import unit_of_work
from engine.models import AuditEvent, Case, Handoff, Meeting, Person
from engine.privacy.disclosure import PAGE_LABELS, action_label
from tests.pages_support import app, case_in, case_version, count, error_beside, text_of, web  # noqa: F401
from tests.test_pages_intake import VALID, _preview

HUGE = 2 ** 63


@pytest.mark.parametrize("url", [f"/cases/{HUGE}", f"/handoffs/{HUGE}/sheet", f"/meetings/{HUGE}",
                                 "/cases/99999999999999999999999", "/cases/0"])
def test_an_id_past_what_the_database_holds_is_404(web, actors, url):
    r = web(actors.window).get(url)
    assert r.status_code == 404 and "ページは見つかりませんでした" in text_of(r)


def test_a_post_to_an_id_past_what_the_database_holds_is_404(web, actors):
    r = web(actors.window).post(f"/inbox/{HUGE}", {"decision": "accept", "version": 1})
    assert r.status_code == 404


def test_a_group_posted_as_a_plain_value_is_marked_not_a_500(web, actors, sessions, case_in):
    r = _preview(web(actors.window), **{"person": "x"})
    assert r.status_code == 422 and "入力の形式が正しくありません" in text_of(r)
    case_id = case_in("assigned")
    r = web(actors.livelihood).post(f"/cases/{case_id}/amend", {"person": "x", "person.name": "y", "summary": "s",
                                                                "version": case_version(sessions, case_id)})
    assert r.status_code == 422


@pytest.mark.parametrize("typed", ["1868-01-01", "1899-12-31"])
def test_a_birth_date_before_1900_is_refused_beside_the_field(web, actors, typed):
    r = _preview(web(actors.window), **{"person.birth_date": typed})
    assert r.status_code == 422
    assert error_beside(r, "in", "person.birth_date").startswith("生年月日が古すぎます")


@pytest.mark.parametrize("typed, says", [
    ("令和0年1月1日", "令和0年という年はありません"), ("平成31年5月1日", "平成31年5月1日は平成の期間にありません"),
    ("明治1年1月1日", "明治元年1月1日は明治の期間にありません"), ("昭和64年1月8日", "昭和の期間にありません"),
    ("令和5年2月30日", "2月30日という日付はありません"), ("令和5年2月29日", "令和5年2月29日という日付はありません"),
    ("2023-02-29", "2023年2月29日という日付はありません"), ("R8.4.31", "4月31日という日付はありません"),
])
def test_a_date_that_does_not_exist_is_named_as_such(web, actors, typed, says):
    r = _preview(web(actors.window), **{"person.birth_date": typed})
    assert r.status_code == 422 and says in error_beside(r, "in", "person.birth_date")


def test_a_date_of_no_known_form_says_which_forms_are_taken(web, actors):
    r = _preview(web(actors.window), **{"person.birth_date": "三十五年五月"})
    assert r.status_code == 422
    assert error_beside(r, "in", "person.birth_date") == "日付は 令和8年11月30日 または 2026-11-30 の形で入力してください。"


def test_a_case_stored_with_a_date_before_meiji_still_opens(web, actors, sessions, case_in):
    """Written before the check existed (or by hand): the page shows 西暦 rather than failing for good."""
    from datetime import date

    case_id = case_in("assigned")
    with unit_of_work(sessions) as s:
        person = s.get(Person, s.get(Case, case_id).person_id)
        person.birth_date = date(1867, 5, 1)
    r = web(actors.livelihood).get(f"/cases/{case_id}")
    assert r.status_code == 200 and "1867年5月1日" in text_of(r)


def test_a_meeting_time_out_of_range_is_marked_not_a_500(web, actors, sessions, case_in):
    case_id = case_in("assigned")
    r = web(actors.fm).post(f"/cases/{case_id}/events/convene_support_meeting", {
        "version": case_version(sessions, case_id), "held_at": "0001-01-01T00:00",
        "members.0.user": "livelihood", "members.0.acknowledged": "1"})
    assert r.status_code == 422 and "日時は" in text_of(r)


@pytest.mark.parametrize(("url", "expected"), [
    ("/cases?page=0", "ページ番号は1から100000までです。"),
    ("/cases?overdue=maybe", "チェックの値が正しくありません。"),
])
def test_list_filters_answer_in_japanese(web, actors, url, expected):
    r = web(actors.window).get(url)
    assert r.status_code == 422 and expected in text_of(r)
    assert "Must be" not in text_of(r) and "Not a valid" not in text_of(r)


def test_names_shown_in_lists_and_sheets_in_the_inbox_are_in_the_trail(web, actors, case_in, sessions):
    case_id = case_in("handoff")  # sent to 生活福祉課, waiting in its inbox
    receiver = web(actors.livelihood)
    assert "廿日 太郎" in text_of(receiver.get("/inbox"))
    rows = lambda action: count(sessions, AuditEvent, AuditEvent.action == action, AuditEvent.case_id == case_id)
    assert rows("handoff_sheet.read") == 1
    assert "廿日 太郎" in text_of(receiver.get("/cases"))
    assert rows("case.found") == 1
    fm = web(actors.fm)  # metadata only: no name shown, nothing read
    assert "廿日 太郎" not in text_of(fm.get("/cases"))
    assert rows("case.found") == 1
    with sessions() as s:
        actors_seen = set(s.scalars(select(AuditEvent.actor_label).where(AuditEvent.case_id == case_id,
                                                                          AuditEvent.action == "case.found")))
    assert actors_seen == {"livelihood"}

    with sessions() as s:  # rows written together are chained as any others
        assert trail.verify(s).ok


def test_valid_form_still_passes(web, actors):
    assert _preview(web(actors.window), **VALID).status_code == 200


def test_every_page_that_can_refuse_has_a_japanese_name_in_the_trail(app):
    """A refusal is recorded as page.<endpoint>; the 開示請求 answer must name it in Japanese."""
    refusing = {rule.endpoint for rule in app.url_map.iter_rules()
                if rule.arguments & {"case_id", "handoff_id", "meeting_id", "alert_id", "notice_id", "offer_id",
                                     "person_id"}
                and not rule.rule.startswith("/api/")}
    assert refusing and refusing <= set(PAGE_LABELS), refusing - set(PAGE_LABELS)
    assert action_label("page.cases.detail") == "ケース詳細の表示（画面）"
    assert action_label("api GET /cases/{case_id}") == "連携システムからの操作（GET /cases/{case_id}）"
    assert action_label("meeting.append_record") == "会議記録への追記"


def test_a_correction_reads_in_japanese_in_the_timeline(web, actors, sessions, case_in):
    case_id = case_in("assigned")
    owner = web(actors.livelihood)
    form = {"summary": "家賃を3か月滞納している。", "person.name": "廿日 太郎", "version": case_version(sessions, case_id)}
    assert owner.post(f"/cases/{case_id}/amend", form).status_code == 303
    timeline = text_of(owner.get(f"/cases/{case_id}")).split("経過")[-1]
    assert "内容の修正" in timeline and " amend " not in timeline


def test_rows_and_ticks_have_a_limit(web, actors, sessions):
    many_rows = {f"household.{i}.relationship": "同居人" for i in range(31)}
    r = _preview(web(actors.window), **many_rows)
    assert r.status_code == 422 and "世帯員は30件までです。" in text_of(r)
    form = [(k, v) for k, v in {**VALID, "action": "preview"}.items() if k != "categories"]
    r = web(actors.window).post("/intake", form + [("categories", "poverty")] * 101)
    assert r.status_code == 422 and "選べるのは100個までです。" in text_of(r)
    assert count(sessions, Case) == 0


def test_a_household_birth_year_reads_in_wareki(web, actors, sessions):
    r = _preview(web(actors.window), **VALID)
    assert "昭和37年（1962年）生まれ" in text_of(r)


@pytest.mark.parametrize("year, shown", [(1926, "大正15年・昭和元年（1926年）"), (1912, "明治45年・大正元年（1912年）"),
                                         (1989, "昭和64年・平成元年（1989年）"), (2019, "平成31年・令和元年（2019年）"),
                                         (1975, "昭和50年（1975年）")])
def test_a_birth_year_two_eras_share_is_named_by_both(web, actors, year, shown):
    r = _preview(web(actors.window), **{**VALID, "household.0.birth_year": str(year)})
    assert f"{shown}生まれ" in text_of(r)


def test_a_record_of_a_case_out_of_sight_answers_as_one_that_does_not_exist(web, actors, case_in, sessions):
    """The refusal must not tell an existing sheet or meeting from a missing one."""
    case_id = case_in("support_meeting")
    with sessions() as s:
        sheet = s.scalar(select(Handoff.id).where(Handoff.case_id == case_id))
        meeting = s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))
    outsider = web(actors.children)
    for existing, missing in ((f"/handoffs/{sheet}/sheet", "/handoffs/999999/sheet"),
                              (f"/meetings/{meeting}", "/meetings/999999")):
        a, b = outsider.get(existing), outsider.get(missing)
        assert (a.status_code, text_of(a)) == (b.status_code, text_of(b)) == (404, text_of(b))
    a = outsider.post(f"/inbox/{sheet}", {"decision": "accept", "version": 1})
    b = outsider.post("/inbox/999999", {"decision": "accept", "version": 1})
    assert a.status_code == b.status_code == 404
    assert "つなぐシートは見つかりません" in text_of(a) and "つなぐシートは見つかりません" in text_of(b)


def test_a_forms_address_opened_as_a_page_leads_to_the_page_it_belongs_to(web, actors, case_in, sessions):
    """After a refused form the address bar shows the form's address; opening it is not a dead end."""
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    for url in (f"/cases/{case_id}/events/close", f"/cases/{case_id}/notes", f"/cases/{case_id}/amend"):
        r = client.get(url)
        assert (r.status_code, r.headers["Location"]) == (303, f"/cases/{case_id}"), url
    admin = web(actors.admin).get("/admin/users/fm/disable")
    assert (admin.status_code, admin.headers["Location"]) == (303, "/admin/")
    r = client.get("/logout")  # nothing above it: the start page, still signed in
    assert (r.status_code, r.headers["Location"]) == (303, "/")
    assert client.get("/cases").status_code == 200


def test_a_sign_in_form_left_open_past_its_token_comes_back_with_a_notice(web, actors):
    client = web()
    client.get("/login")
    r = client.post("/login", {"login": "window", "password": "x", "csrf_token": "stale"}, csrf=False)
    assert r.status_code == 303 and "/login" in r.headers["Location"]
    assert "もう一度ログインしてください" in text_of(client.get(r.headers["Location"]))
