"""The access matrix (tests/access_matrix.py), asserted through the staff pages over HTTP.

Each role signs in and tries every (record kind, read/write) cell that a page offers. A read is the case
page (or the meeting's page) and what it shows: a planted word of a record kind is on the page only where
the matrix lets the role read that kind. A write is the form's POST: an allowed one is applied (303 back to
the page); a refused one answers 404 (the case is not in the person's sight) or 403 (seen, not theirs to
do), leaves every table but the audit trail exactly as it was, and adds one audit row for the refusal.

Cells with no page (the engine's request_join and amend_case, which have no form) are listed in
NO_PAGE and checked to stay off the pages for everyone.
"""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import User
from tests import access_matrix as M
from tests.conftest import NOW
from tests.pages_support import FUTURE, app, text_of, web  # noqa: F401  (fixtures)

STATUS = {M.ALLOW: 200, M.FORBIDDEN: 403, M.SECRECY: 403, M.NOT_FOUND: 404}
WRITE_STATUS = {M.ALLOW: 303, M.FORBIDDEN: 403, M.SECRECY: 403, M.NOT_FOUND: 404}
PAGE_ROLES = [r for r in M.ROLES if r != "referral_client"]  # an outside system has no sign-in

# Writes in an order where an allowed one does not take the next one's ground away
# (withdrawing consent narrows access, so it goes last).
WRITES = {
    "case_metadata": lambda w, v: (f"/cases/{w.case_id}/join", {"version": v, "to_department": "shakyo",
                                                                "reason": "居場所の支援を依頼", "summary": "要約"}),
    "case_content": lambda w, v: (f"/cases/{w.case_id}/amend", {"version": v, "person.name": "廿日 太郎",
                                                                 "summary": "要約を訂正"}),
    "contact_notes": lambda w, v: (f"/cases/{w.case_id}/notes", {"method": "phone", "body": "電話で様子を確認",
                                                                 "submission_token": uuid.uuid4().hex}),
    "support_meeting": lambda w, v: (f"/meetings/{w.meeting_id}/record", {"minutes": "追記の内容",
                                                                         "submission_token": uuid.uuid4().hex}),
    "shared_facts": lambda w, v: (f"/meetings/{w.meeting_id}/facts", {"fact": "日中は在宅",
                                                                     "submission_token": uuid.uuid4().hex}),
    "plan": lambda w, v: (f"/cases/{w.case_id}/events/evaluate",
                          {"version": v, "goals_met": "partly", "decision": "continue",
                           "next_evaluation_date": FUTURE}),
    "consent": lambda w, v: (f"/cases/{w.case_id}/events/withdraw_consent", {"version": v, "given_by": "本人"}),
}


def page_expected(role: str, kind: str, op: str) -> str:
    """The matrix's cell, for what the page does. The meeting page's form adds to the records (stamped with
    the time and the member's name, never rewriting them): every member who may read them may add. Replacing
    the records (the matrix's cell, engine record_minutes) stays the secretariat's."""
    if (kind, op) == ("support_meeting", "write") and M.EXPECTED[(role, kind, "read")] == M.ALLOW:
        return M.ALLOW
    return M.EXPECTED[(role, kind, op)]


NO_PAGE: set[tuple[str, str]] = set()


@pytest.fixture
def world(sessions, make_user):
    return M.build_world(sessions, make_user, NOW)


def user_of(sessions, world, role):
    with unit_of_work(sessions) as s:
        user = s.scalar(select(User).where(User.login == world.logins[role]))
        s.expunge(user)
        return user


def test_every_cell_is_either_a_page_or_named_as_having_none():
    assert {(k, o) for k in M.KINDS for o in M.OPS} == (
        {(k, "read") for k in M.KINDS} | {(k, "write") for k in WRITES} | NO_PAGE)


@pytest.mark.parametrize("role", PAGE_ROLES)
def test_case_page_shows_only_what_the_matrix_opens(world, web, sessions, role):
    client = web(user_of(sessions, world, role))
    before = M.refusals(sessions)
    r = client.get(f"/cases/{world.case_id}")
    expected = M.EXPECTED[(role, "case_metadata", "read")]
    assert r.status_code == STATUS[expected], f"{role}: {r.status_code}"
    page = text_of(r)
    if expected == M.NOT_FOUND:
        assert M.refusals(sessions) == before + 1
        assert world.person_name not in page
        return
    assert (world.person_name in page) == (M.EXPECTED[(role, "case_content", "read")] == M.ALLOW), role
    for name, word in M.MARKERS.items():
        allowed = M.EXPECTED[(role, M.marker_kind(name), "read")] == M.ALLOW
        if M.marker_kind(name) == "support_meeting":
            allowed = False  # the case page never carries a 支援会議's records: its own page does
        assert (word in page) == allowed, f"{role}: {name} {'missing from' if allowed else 'leaked into'} the page"
    # Metadata for everyone who sees the case: the state and the owning department.
    assert "伴走支援" in page or "accompaniment" in r.get_data(as_text=True)
    assert "生活福祉" in page


@pytest.mark.parametrize("role", PAGE_ROLES)
def test_meeting_page_opens_its_records_only_to_acknowledged_members(world, web, sessions, role):
    client = web(user_of(sessions, world, role))
    r = client.get(f"/meetings/{world.meeting_id}")
    expected = M.EXPECTED[(role, "support_meeting", "read")]
    page = text_of(r)
    for name in ("support_meeting", "support_meeting_note"):
        assert (M.MARKERS[name] in page) == (expected == M.ALLOW), f"{role}: {name} on the meeting page"
    if expected == M.ALLOW:
        assert r.status_code == 200
    elif expected == M.SECRECY:
        # The member reaches the page that asks for the acknowledgement, and nothing more.
        assert r.status_code == 200 and "守秘義務" in page
    elif M.EXPECTED[(role, "case_metadata", "read")] == M.NOT_FOUND:
        assert r.status_code == 404
    else:
        assert r.status_code in (200, 403)  # that a meeting was held is case metadata; its records are not


@pytest.mark.parametrize("role", PAGE_ROLES)
def test_page_writes_follow_the_matrix_and_a_refusal_changes_nothing(world, web, sessions, role):
    client = web(user_of(sessions, world, role))
    client.get(f"/cases/{world.case_id}")  # a CSRF token, whatever the answer
    mismatches = []
    for kind, request_of in WRITES.items():
        expected = page_expected(role, kind, "write")
        url, form = request_of(world, M.version(sessions, world.case_id))
        before_tables, before_refusals = M.tables_but_audit(sessions), M.refusals(sessions)
        r = client.post(url, form)
        if r.status_code != WRITE_STATUS[expected]:
            mismatches.append(f"{kind}: expected {WRITE_STATUS[expected]} ({expected}), got {r.status_code}")
            continue
        if expected == M.ALLOW:
            assert M.tables_but_audit(sessions) != before_tables, f"{role}: {kind} answered 303 but changed nothing"
        else:
            assert M.tables_but_audit(sessions) == before_tables, f"{role}: refused {kind} changed the database"
            assert M.refusals(sessions) == before_refusals + 1, f"{role}: refused {kind} was not audited once"
            if expected == M.SECRECY:
                assert "守秘義務" in text_of(r)
    assert not mismatches, f"{role} ({M.ROLES[role]}):\n" + "\n".join(mismatches)


@pytest.mark.parametrize("role", PAGE_ROLES)
def test_the_case_page_offers_the_join_and_amend_forms_exactly_as_the_matrix_allows(world, web, sessions, role):
    body = web(user_of(sessions, world, role)).get(f"/cases/{world.case_id}").get_data(as_text=True)
    for path, kind in (("join", "case_metadata"), ("amend", "case_content")):
        offered = f'action="/cases/{world.case_id}/{path}"' in body
        assert offered == (M.EXPECTED[(role, kind, "write")] == M.ALLOW), (role, path)


def test_withdrawal_refuses_a_covered_agencys_next_read_of_the_plan(world, web, sessions):
    partner = web(user_of(sessions, world, "covered_partner"))
    first = partner.get(f"/cases/{world.case_id}")
    assert first.status_code == 200 and M.MARKERS["plan"] in text_of(first)
    receiving = web(user_of(sessions, world, "receiving"))
    receiving.get(f"/cases/{world.case_id}")
    r = receiving.post(f"/cases/{world.case_id}/events/withdraw_consent",
                       {"version": M.version(sessions, world.case_id), "given_by": "本人"})
    assert r.status_code == 303
    again = partner.get(f"/cases/{world.case_id}")
    assert again.status_code == 404 and M.MARKERS["plan"] not in text_of(again)
