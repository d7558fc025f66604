"""Every form of the pages: refused without its CSRF token (nothing applied), and each required input
of each event's form marked beside it when left blank."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Alert, AuditEvent, Case, ContactNote, Handoff, Meeting
from tests.pages_support import (  # noqa: F401  (fixtures)
    app, case_in, case_state, case_version, count, error_beside, text_of, web,
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
        (None, "/login", {"login": "window", "password": "x"}),
    ]
    audit_rows = count(sessions, AuditEvent)
    for who, url, data in posts:
        client = web(who)
        r = client.post(url, data, csrf=False)
        assert r.status_code == 400 and "送信できませんでした" in text_of(r), url
        r = client.post(url, {**data, "csrf_token": "forged"}, csrf=False)
        assert r.status_code == 400, url
    assert case_state(sessions, case_id) == "support_meeting" and case_version(sessions, case_id) == version
    assert count(sessions, ContactNote) == 0 and count(sessions, AuditEvent) == audit_rows


# event, the state its form is offered in, who sees the form, the inputs it requires
REQUIRED = [
    ("send_handoff", "intake", "window", ["to_department", "reason", "summary"]),
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
