"""Every form of the pages: refused without its CSRF token (nothing applied), and each required input
of each event's form marked beside it when left blank."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Alert, AuditEvent, Case, ContactNote, Handoff, Meeting
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    case_state,
    case_version,
    count,
    error_beside,
    form_token,
    text_of,
    web,
)


def test_every_form_is_refused_without_its_csrf_token(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    with unit_of_work(sessions) as s:
        handoff_id = s.scalar(select(Handoff.id).where(Handoff.case_id == case_id))
        meeting_id = s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id))
    version = case_version(sessions, case_id)
    posts = [
        (actors.window, "/intake", {"action": "preview"}),
        (actors.fm, f"/cases/{case_id}/events/seek_consent", {"version": version}),
        (actors.livelihood, f"/cases/{case_id}/notes", {"method": "phone", "body": "電話", "submission_token": "k" * 20}),
        (actors.livelihood, f"/inbox/{handoff_id}", {"decision": "accept", "version": version}),
        (actors.fm, f"/dashboard/alerts/{alert_id or 1}/acknowledge", {}),
        (actors.livelihood, f"/meetings/{meeting_id}/acknowledge", {}),
        (actors.livelihood, f"/meetings/{meeting_id}/record", {"minutes": "追記", "submission_token": "k" * 20}),
        (actors.window, "/logout", {}),
    ]
    audit_rows = count(sessions, AuditEvent)
    for who, url, data in posts:
        client = web(who)
        r = client.post(url, data, csrf=False)
        assert r.status_code == 400 and "送信できませんでした" in text_of(r), url
        r = client.post(url, {**data, "csrf_token": "forged"}, csrf=False)
        assert r.status_code == 400, url
    # The sign-in form is shown again (with a notice), signing no one in.
    from tests.conftest import PASSWORD

    for data in ({"login": "window", "password": PASSWORD},
                 {"login": "window", "password": PASSWORD, "csrf_token": "forged"}):
        client = web(None)
        r = client.post("/login", data, csrf=False)
        assert r.status_code == 303 and "/login" in r.headers["Location"]
        assert client.get("/cases").status_code == 302  # not signed in
    assert case_state(sessions, case_id) == "support_meeting" and case_version(sessions, case_id) == version
    assert count(sessions, ContactNote) == 0 and count(sessions, AuditEvent) == audit_rows


# event, the state its form is offered in, who sees the form, the inputs it requires
REQUIRED = [
    # (The summary is the engine's to require, of a sender who may read the case: test_pages_cases.)
    ("send_handoff", "intake", "window", ["to_department", "reason"]),
    ("decline_handoff", "handoff", "livelihood", ["reason"]),
    ("record_consent", "assigned", "livelihood", ["given_by", "method", "agencies"]),
    ("refuse_consent", "consent", "fm", ["given_by"]),
    ("adopt_plan", "layered_meeting", "livelihood", ["goals", "main_department", "next_evaluation_date"]),
    ("evaluate", "accompaniment", "livelihood", ["goals_met", "decision"]),
    ("withdraw_consent", "accompaniment", "livelihood", ["given_by"]),
    ("close", "assigned", "livelihood", ["close_reason"]),
    ("reopen", "closed", "livelihood", ["reason"]),
]


@pytest.mark.parametrize("event,state,who,required", REQUIRED, ids=[r[0] for r in REQUIRED])
def test_each_required_input_is_marked_beside_it(web, actors, case_in, sessions, event, state, who, required):
    case_id = case_in(state)
    client = web(getattr(actors, who))
    blank = {name: "" for name in required if name not in ("agencies",)}
    if event == "send_handoff":
        blank["summary"] = ""
    r = client.post(f"/cases/{case_id}/events/{event}", {"version": case_version(sessions, case_id), **blank})
    assert r.status_code == 422, r.status_code
    for name in required:
        message = error_beside(r, f"ev-{event}", name)
        assert message and ("必須" in message or "選んで" in message), (name, message)
    assert case_state(sessions, case_id) == state


def test_a_contact_note_on_a_case_out_of_sight_is_not_found(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    r = web(actors.hikikomori).post(f"/cases/{case_id}/notes", {"method": "phone", "body": "電話",
                                                                 "submission_token": "k" * 20})
    assert r.status_code == 404 and count(sessions, ContactNote) == 0
    assert count(sessions, Case) == 1


def _summary(response) -> list[tuple[str, str]]:
    """The error summary at the top of the page: (the input it links to, its text) per line."""
    body = response.get_data(as_text=True)
    box = re.search(r'<div class="error-summary[^"]*"[^>]*>(.*?)</div>', body, flags=re.S).group(1)
    return [(target, html.unescape(re.sub(r"<[^>]+>", "", text)).strip())
            for target, text in re.findall(r'<li><a href="#([^"]+)">(.*?)</a></li>', box, flags=re.S)]


def test_the_error_summary_names_each_input_by_its_label(web, actors, case_in, sessions):
    case_id = case_in("closed")
    client = web(actors.livelihood)
    r = client.post(f"/cases/{case_id}/events/reopen", {"version": case_version(sessions, case_id)})
    assert r.status_code == 422
    assert _summary(r) == [("ev-reopen-reason", "再開の理由: 必須項目です。")]
    assert "field-label" not in r.get_data(as_text=True)  # no mark is left in the page


def test_the_summary_of_a_contact_note_links_to_its_inputs_and_names_them(web, actors, case_in):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    token = form_token(client.get(f"/cases/{case_id}"), f"/cases/{case_id}/notes")
    r = client.post(f"/cases/{case_id}/notes", {"method": "", "body": "", "submission_token": token})
    assert r.status_code == 422
    assert sorted(_summary(r)) == [("note-body", "内容: 必須項目です。"), ("note-method", "方法: 必須項目です。")]


def test_the_dashboard_summary_names_the_reassign_inputs(web, actors, case_in, sessions):
    case_id = case_in("intake")
    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id, Alert.kind == "unrouted"))
    r = web(actors.fm).post(f"/dashboard/alerts/{alert_id}/reassign", {"to_department": "", "reason": ""})
    assert r.status_code == 422
    assert _summary(r) == [(f"a{alert_id}-to_department", "新しい送付先: 必須項目です。"),
                           (f"a{alert_id}-reason", "振り替える理由: 必須項目です。")]


def test_rows_are_named_by_row_and_a_message_naming_its_input_not_twice(web, actors, case_in, sessions):
    case_id = case_in("layered_meeting")
    r = web(actors.livelihood).post(f"/cases/{case_id}/events/adopt_plan", {
        "version": case_version(sessions, case_id), "goals": "目標", "main_department": "livelihood",
        "next_evaluation_date": "2026-13-45", "roles.0.department": "livelihood", "roles.0.role": "x" * 2001})
    assert r.status_code == 422
    lines = dict(_summary(r))
    assert lines["ev-adopt_plan-next_evaluation_date"].startswith("次回評価日: ")  # the hint in brackets left out
    assert lines["ev-adopt_plan-roles-0-role"] == "1行目の役割: 2000文字以内で入力してください。"
    case_id = case_in("assigned")
    r = web(actors.livelihood).post(f"/cases/{case_id}/events/record_consent", {
        "version": case_version(sessions, case_id), "given_by": "本人", "method": "written"})
    assert r.status_code == 422
    assert _summary(r) == [("ev-record_consent-agencies", "情報を共有してよい機関を1つ以上選んでください。")]
