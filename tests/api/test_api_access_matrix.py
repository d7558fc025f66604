"""The access matrix (tests/access_matrix.py), asserted through the REST API.

Each role calls with a token bound to that person (`cases:read`, `cases:write`); the referrer is an outside
system with its own referrals token. A read is GET /cases/{id} (GET /referrals/{id} for the referrer): a
planted word of a record kind is in the answer only where the matrix lets the role read that kind, and a
支援会議's records are in no answer at all, before or after consent, members included. A write is an event
(POST /cases/{id}/events); a refusal answers 404 or 403 as problem+json, changes no table but the audit
trail, and adds one audit row for itself.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from engine.cases import notes
from engine.db import unit_of_work
from engine.referrals import clients as api_clients
from tests import access_matrix as M
from tests.api.support import assert_problem, auth
from tests.conftest import NOW

STATUS = {M.ALLOW: 200, M.FORBIDDEN: 403, M.SECRECY: 403, M.NOT_FOUND: 404}
PROBLEM = {403: "forbidden", 404: "not-found"}
FUTURE = (max(NOW.date(), NOW.date().today()) + timedelta(days=60)).isoformat()
STAFF_ROLES = [r for r in M.ROLES if r != "referral_client"]

# Events for the cells the API offers, in an order where an allowed one leaves the next one's ground
# (withdrawing consent narrows access, so it goes last).
WRITES = {
    "plan": lambda v: {"event": "evaluate", "version": v, "goals_met": "partly", "decision": "continue",
                       "next_evaluation_date": FUTURE},
    "consent": lambda v: {"event": "withdraw_consent", "version": v, "given_by": "本人"},
}
# Cells with no API: contact notes, meeting records, carried facts, amending the summary and asking another
# department to join are done on the pages.
NO_API = {(k, "write") for k in M.KINDS} - {(k, "write") for k in WRITES}
MEETING_WORDS = [M.MARKERS[n] for n in M.MARKERS if M.marker_kind(n) == "support_meeting"]


@pytest.fixture
def world(sessions, make_user):
    return M.build_world(sessions, make_user, NOW)


@pytest.fixture
def tokens(world, sessions):
    """role → bearer token: staff roles act as their person; the referrer is the world's own client."""
    out = {}
    with unit_of_work(sessions) as s:
        for role in STAFF_ROLES:
            out[role] = api_clients.create_token(s, client_name=f"matrix-{role}", scopes=["cases:read", "cases:write"],
                                                 user_login=world.logins[role])[1]
        out["referral_client"] = api_clients.create_token(s, client_name="houkatsu-oono",
                                                          scopes=["referrals:read", "referrals:write"])[1]
    return out


def test_every_cell_is_either_an_api_call_or_named_as_having_none():
    assert {(k, o) for k in M.KINDS for o in M.OPS} == (
        {(k, "read") for k in M.KINDS} | {(k, "write") for k in WRITES} | NO_API)


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_case_answer_carries_only_what_the_matrix_opens(world, tokens, client, sessions, role):
    before = M.refusals(sessions)
    r = client.get(f"/api/v1/cases/{world.case_id}", headers=auth(tokens[role]))
    expected = M.EXPECTED[(role, "case_metadata", "read")]
    if expected != M.ALLOW:
        assert_problem(r, STATUS[expected], PROBLEM[STATUS[expected]])
        assert M.refusals(sessions) == before + 1
        assert world.person_name not in r.get_data(as_text=True)
        return
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    text = json.dumps(body, ensure_ascii=False)
    assert (world.person_name in text) == (M.EXPECTED[(role, "case_content", "read")] == M.ALLOW), role
    for name, word in M.MARKERS.items():
        allowed = M.EXPECTED[(role, M.marker_kind(name), "read")] == M.ALLOW
        if M.marker_kind(name) == "support_meeting":
            allowed = False  # never through the API
        assert (word in text) == allowed, f"{role}: {name} {'missing from' if allowed else 'leaked into'} the answer"
    assert body["status"] == "accompaniment" and body["owning_department"]["code"] == "livelihood"
    assert body["handoffs"][0]["sent_at"] and body["handoffs"][0]["to_department"]["code"] == "livelihood"
    for meeting in body.get("meetings", []):  # that it was held (on which case, with which others), for those
        if meeting["kind"] == "support_meeting":  # who see the content
            assert set(meeting) <= {"id", "kind", "held_at", "member_count", "readable", "case_id", "case_number",
                                    "discussed_cases"}


def test_the_referrer_reads_its_referral_and_nothing_of_the_case(world, tokens, client, sessions):
    r = client.get(f"/api/v1/referrals/{world.case_id}", headers=auth(tokens["referral_client"]))
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    assert r.get_json()["status"] == "accompaniment"
    for word in [*M.MARKERS.values(), world.person_name, "ハツカ"]:
        assert word not in text
    # Staff views and events are outside its scopes: refused before the case is looked at.
    before = M.tables_but_audit(sessions)
    assert_problem(client.get(f"/api/v1/cases/{world.case_id}", headers=auth(tokens["referral_client"])),
                   403, "insufficient-scope")
    assert_problem(client.post(f"/api/v1/cases/{world.case_id}/events", headers=auth(tokens["referral_client"]),
                               json=WRITES["consent"](M.version(sessions, world.case_id))), 403, "insufficient-scope")
    assert M.tables_but_audit(sessions) == before


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_api_events_follow_the_matrix_and_a_refusal_changes_nothing(world, tokens, client, sessions, role):
    mismatches = []
    for kind, body_of in WRITES.items():
        expected = M.EXPECTED[(role, kind, "write")]
        before_tables, before_refusals = M.tables_but_audit(sessions), M.refusals(sessions)
        r = client.post(f"/api/v1/cases/{world.case_id}/events", headers=auth(tokens[role]),
                        json=body_of(M.version(sessions, world.case_id)))
        if r.status_code != STATUS[expected]:
            mismatches.append(f"{kind}: expected {STATUS[expected]} ({expected}), got {r.status_code} "
                              f"{r.get_data(as_text=True)[:200]}")
            continue
        if expected == M.ALLOW:
            assert M.tables_but_audit(sessions) != before_tables
        else:
            assert_problem(r, STATUS[expected], PROBLEM[STATUS[expected]])
            assert M.tables_but_audit(sessions) == before_tables, f"{role}: refused {kind} changed the database"
            assert M.refusals(sessions) == before_refusals + 1, f"{role}: refused {kind} was not audited once"
    assert not mismatches, f"{role} ({M.ROLES[role]}):\n" + "\n".join(mismatches)


def test_withdrawal_refuses_a_covered_agencys_next_read_of_the_plan(world, tokens, client, sessions):
    partner = auth(tokens["covered_partner"])
    first = client.get(f"/api/v1/cases/{world.case_id}", headers=partner).get_json()
    assert first["plan"]["goals"] == M.MARKERS["plan"]
    r = client.post(f"/api/v1/cases/{world.case_id}/events", headers=auth(tokens["receiving"]),
                    json=WRITES["consent"](first["version"]))
    assert r.status_code == 200, r.get_data(as_text=True)
    # The partner is in the case only through the consent: with it withdrawn, the case is out of its sight.
    again = client.get(f"/api/v1/cases/{world.case_id}", headers=partner)
    assert_problem(again, 404, "not-found")
    assert M.MARKERS["plan"] not in again.get_data(as_text=True)


def test_no_answer_carries_a_support_meeting_record_before_or_after_consent(
        open_case, fire, actors, make_token, client, sessions):
    """The minutes and a member's note of a 支援会議 are in no API answer, for its members either: not
    while the meeting runs, not after consent (consent opens the consented track, not the old minutes)."""
    minutes, note = "会議MARK-長男の借金の詳細", "会議メモMARK-訪問時に長男と面談"
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.fm, case_id, "convene_support_meeting", minutes=minutes,
         members=[{"user": "livelihood", "acknowledged": True}, {"user": "hikikomori", "acknowledged": True}])
    with unit_of_work(sessions) as s:
        notes.add_contact_note(s, actors.hikikomori, case_id, {"method": "home_visit", "body": note},
                                  now=NOW)
    callers = {who: make_token("cases:read,alerts:read", user=getattr(actors, who))
               for who in ("fm", "livelihood", "hikikomori", "fm2", "shakyo", "admin")}

    def answers():
        for who, token in callers.items():
            for url in (f"/api/v1/cases/{case_id}", "/api/v1/alerts"):
                r = client.get(url, headers=auth(token))
                assert r.status_code in (200, 404), (who, url, r.status_code)
                text = r.get_data(as_text=True)
                assert minutes not in text and note not in text, f"{who}: a 支援会議 record in {url}"

    answers()
    # The answer to an event a member fires is the case view too: no records in it either.
    version = M.version(sessions, case_id)
    r = client.post(f"/api/v1/cases/{case_id}/events", json={"event": "seek_consent", "version": version},
                    headers=auth(make_token("cases:read,cases:write", user=actors.livelihood)))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert [m for m in r.get_json()["meetings"] if m["readable"]], "the member reads that the meeting was held"
    assert minutes not in r.get_data(as_text=True) and note not in r.get_data(as_text=True)
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written",
         agencies=["livelihood", "shakyo", "hikikomori_station"])
    answers()

