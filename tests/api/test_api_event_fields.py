"""POST /cases/{id}/events with fields that are there but wrong: repeated entries, blank text, times out of
range, fields that the decision does not take. Each is a 422 naming the field (or a 409 saying what may be
done now), and nothing is written."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Consent, Meeting, Plan
from tests.api.support import assert_problem, auth, count
from tests.conftest import NOW

FUTURE = (NOW + timedelta(days=60)).date().isoformat()


@pytest.fixture
def tokens(make_token, actors):
    class Tokens:
        livelihood = make_token("cases:read,cases:write", user=actors.livelihood, name="livelihood-system")
        fm = make_token("cases:read,cases:write", user=actors.fm, name="fm-tool")

    return Tokens


@pytest.fixture
def assigned(open_case, fire, actors):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    return case_id


def _version(client, token, case_id) -> int:
    return client.get(f"/api/v1/cases/{case_id}", headers=auth(token)).get_json()["version"]


def _fire(client, token, case_id, event, **fields):
    body = {"event": event, "version": _version(client, token, case_id), **fields}
    return client.post(f"/api/v1/cases/{case_id}/events", json=body, headers=auth(token))


def test_a_member_named_twice_is_422(client, tokens, assigned, sessions):
    members = [{"user": "hikikomori", "acknowledged": True}, {"user": "hikikomori", "acknowledged": True}]
    body = assert_problem(_fire(client, tokens.fm, assigned, "convene_support_meeting", members=members),
                          422, "validation-error")
    assert "2回以上" in body["errors"]["members.1.user"][0]
    assert count(sessions, Meeting) == 0


@pytest.mark.parametrize("held_at,message", [
    ("9999-12-31T23:59:59-12:00", "までの日時"),
    ("0001-01-01T00:00:00+14:00", "までの日時"),
    ((datetime.now(timezone.utc) + timedelta(days=1)).isoformat(), "未来"),
    ("2026-02-30T10:00:00+09:00", "「2026-02-30T10:00:00+09:00」という日時はありません"),
    ("2026-11-30T24:30:00+09:00", "という日時はありません"),
])
def test_a_meeting_time_out_of_range_or_to_come_is_422(client, tokens, assigned, sessions, held_at, message):
    members = [{"user": "hikikomori", "acknowledged": True}]
    resp = _fire(client, tokens.fm, assigned, "convene_support_meeting", members=members, held_at=held_at)
    body = assert_problem(resp, 422, "validation-error")
    assert message in body["errors"]["held_at"][0]
    assert count(sessions, Meeting) == 0


def test_an_agency_named_twice_is_422(client, tokens, assigned, sessions):
    resp = _fire(client, tokens.livelihood, assigned, "record_consent", given_by="本人", method="written",
                 agencies=["elderly", "elderly", "livelihood"])
    body = assert_problem(resp, 422, "validation-error")
    assert "2回以上" in body["errors"]["agencies"][0]
    assert count(sessions, Consent) == 0


def test_consent_without_agencies_is_a_missing_field(client, tokens, assigned, sessions):
    resp = _fire(client, tokens.livelihood, assigned, "record_consent", given_by="本人", method="written")
    body = assert_problem(resp, 422, "missing-field")
    assert set(body["errors"]) == {"agencies"}
    assert count(sessions, Consent) == 0


def test_a_consent_date_before_1900_is_422(client, tokens, assigned, sessions):
    resp = _fire(client, tokens.livelihood, assigned, "record_consent", given_by="本人", method="written",
                 agencies=["livelihood"], obtained_on="0001-01-01")
    assert "obtained_on" in assert_problem(resp, 422, "validation-error")["errors"]


@pytest.mark.parametrize("reason", ["  ", "\u3000", "\n\t"])
def test_a_reason_of_spaces_alone_is_missing(client, tokens, open_case, sessions, reason):
    case_id = open_case(categories=["poverty"])
    body = assert_problem(_fire(client, tokens.livelihood, case_id, "decline_handoff", reason=reason),
                          422, "missing-field")
    assert set(body["errors"]) == {"reason"}


def test_blank_given_by_and_goals_are_missing(client, tokens, assigned):
    body = assert_problem(_fire(client, tokens.livelihood, assigned, "record_consent", given_by=" \u3000",
                                method="written", agencies=["livelihood"]), 422, "missing-field")
    assert set(body["errors"]) == {"given_by"}


@pytest.fixture
def accompanied(assigned, fire, actors):
    fire(actors.livelihood, assigned, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    fire(actors.livelihood, assigned, "adopt_plan", goals="「働きたい」", main_department="livelihood",
         next_evaluation_date=FUTURE, roles=[{"department": "livelihood", "role": "家計相談"}])
    return assigned


@pytest.mark.parametrize("fields,field", [
    ({"decision": "close"}, "close_reason"),
    ({"decision": "continue"}, "next_evaluation_date"),
])
def test_what_a_decision_needs_is_a_missing_field(client, tokens, accompanied, fields, field):
    resp = _fire(client, tokens.livelihood, accompanied, "evaluate", goals_met="partly", **fields)
    assert set(assert_problem(resp, 422, "missing-field")["errors"]) == {field}


def test_a_close_reason_on_an_evaluation_that_does_not_close_is_refused(client, tokens, accompanied, sessions):
    resp = _fire(client, tokens.livelihood, accompanied, "evaluate", goals_met="partly", decision="continue",
                 next_evaluation_date=(NOW + timedelta(days=90)).date().isoformat(), close_reason="goal_met")
    assert "close_reason" in assert_problem(resp, 422, "validation-error")["errors"]


def test_a_meeting_long_before_the_case_is_422_and_one_held_shortly_before_is_taken(client, tokens, assigned,
                                                                                     sessions):
    """A 支援会議 is often recorded after it was held, even before the case was typed in; a year like 1900
    is a mistake, and would leave the meeting out of every yearly report."""
    members = [{"user": "hikikomori", "acknowledged": True}]
    resp = _fire(client, tokens.fm, assigned, "convene_support_meeting", members=members,
                 held_at="1900-01-01T10:00:00+09:00")
    message = assert_problem(resp, 422, "validation-error")["errors"]["held_at"][0]
    assert "相談を受け付けた日" in message and "30日前" in message and "令和" in message
    assert count(sessions, Meeting) == 0
    shortly = (NOW - timedelta(days=20)).isoformat()
    assert _fire(client, tokens.fm, assigned, "convene_support_meeting", members=members,
                 held_at=shortly).status_code == 200


def test_a_next_evaluation_years_ahead_is_422(client, tokens, assigned, fire, actors, sessions):
    """A mistyped year (2999, 2207) would never fall due: an evaluation is set within three years."""
    fire(actors.livelihood, assigned, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    plan = {"goals": "「働きたい」", "main_department": "livelihood",
            "roles": [{"department": "livelihood", "role": "家計相談"}]}
    resp = _fire(client, tokens.livelihood, assigned, "adopt_plan", next_evaluation_date="2999-12-31", **plan)
    assert "3年以内" in assert_problem(resp, 422, "validation-error")["errors"]["next_evaluation_date"][0]
    assert count(sessions, Plan) == 0
    two_years = (datetime.now(timezone.utc) + timedelta(days=730)).date().isoformat()
    assert _fire(client, tokens.livelihood, assigned, "adopt_plan", next_evaluation_date=two_years,
                 **plan).status_code == 200
    resp = _fire(client, tokens.livelihood, assigned, "evaluate", goals_met="partly", decision="continue",
                 next_evaluation_date="2207-04-01")
    assert "3年以内" in assert_problem(resp, 422, "validation-error")["errors"]["next_evaluation_date"][0]


def test_a_plan_naming_an_agency_or_a_category_twice_is_422(client, tokens, assigned, fire, actors):
    fire(actors.livelihood, assigned, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    plan = {"goals": "「働きたい」", "main_department": "livelihood", "next_evaluation_date": FUTURE}
    twice = [{"department": "livelihood", "role": "家計相談"}, {"department": "livelihood", "role": "就労"}]
    body = assert_problem(_fire(client, tokens.livelihood, assigned, "adopt_plan", roles=twice, **plan),
                          422, "validation-error")
    assert "roles.1.department" in body["errors"]
    once = twice[:1]
    body = assert_problem(_fire(client, tokens.livelihood, assigned, "adopt_plan", roles=once,
                                business_categories=["multi_agency", "multi_agency"], **plan),
                          422, "validation-error")
    assert "business_categories" in body["errors"]


def test_a_guard_refusal_says_what_may_be_done_now(client, tokens, assigned, fire, actors):
    fire(actors.livelihood, assigned, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    past = (NOW - timedelta(days=1)).date().isoformat()
    resp = _fire(client, tokens.livelihood, assigned, "adopt_plan", goals="「働きたい」", main_department="livelihood",
                 next_evaluation_date=past, roles=[{"department": "livelihood", "role": "家計相談"}])
    body = assert_problem(resp, 409, "guard-refused")
    now_allowed = client.get(f"/api/v1/cases/{assigned}", headers=auth(tokens.livelihood)).get_json()
    assert body["allowed_events"] == now_allowed["allowed_events"] and "adopt_plan" in body["allowed_events"]


@pytest.mark.parametrize("path", ["/api/v1/cases/%EF%BC%99", "/api/v1/cases/0{id}", "/api/v1/referrals/%D9%A1",
                                  "/api/v1/cases/{id}%20"])
def test_an_id_is_ascii_digits_spelled_one_way(client, tokens, assigned, path):
    resp = client.get(path.format(id=assigned), headers=auth(tokens.livelihood))
    assert resp.status_code == 404
    assert client.get(f"/api/v1/cases/{assigned}", headers=auth(tokens.livelihood)).status_code == 200


@pytest.mark.parametrize("limit", ["%EF%BC%95", "%2B5", "%205", "5.0"])
def test_a_page_size_is_ascii_digits(client, make_token, actors, limit):
    token = make_token("alerts:read", user=actors.livelihood, name="alerts-reader")
    resp = client.get(f"/api/v1/alerts?limit={limit}", headers=auth(token))
    assert "limit" in assert_problem(resp, 422, "validation-error")["errors"]


def test_a_cursor_past_every_id_starts_from_the_newest(client, partner, sessions):
    from tests.api.support import post_referral

    assert post_referral(client, partner).status_code == 201
    resp = client.get("/api/v1/referrals?cursor=9999999999", headers=auth(partner))
    assert resp.status_code == 200 and len(resp.get_json()["items"]) == 1


@pytest.mark.parametrize("method", ["", "  "])
def test_an_optional_method_left_empty_is_not_given(client, tokens, assigned, fire, actors, sessions, method):
    """refuse_consent and withdraw_consent take a method but do not need one: empty is none, not a 500."""
    fire(actors.fm, assigned, "convene_support_meeting",
         members=[{"user": "livelihood", "acknowledged": True}, {"user": "fm", "acknowledged": True}])
    fire(actors.fm, assigned, "seek_consent")
    r = _fire(client, tokens.livelihood, assigned, "refuse_consent", given_by="本人", method=method)
    assert r.status_code == 200, r.get_data(as_text=True)
    fire(actors.fm, assigned, "seek_consent")
    fire(actors.livelihood, assigned, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    r = _fire(client, tokens.livelihood, assigned, "withdraw_consent", given_by="本人", method=method)
    assert r.status_code == 200, r.get_data(as_text=True)
    with unit_of_work(sessions) as s:
        assert list(s.scalars(select(Consent.method).order_by(Consent.id))) == [None, "written", None]


def test_consent_for_a_case_without_an_owner_is_refused_and_not_offered(client, tokens, open_case, fire, actors,
                                                                         sessions):
    """A 支援会議 may meet from 受付 (a sheet came back); the 重層的支援会議 needs an owning department."""
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "decline_handoff", reason="所管外")
    fire(actors.fm, case_id, "convene_support_meeting",
         members=[{"user": "livelihood", "acknowledged": True}, {"user": "fm", "acknowledged": True}])
    case = client.get(f"/api/v1/cases/{case_id}", headers=auth(tokens.fm)).get_json()
    assert case["status"] == "support_meeting" and case["owning_department"] is None
    assert "record_consent" not in case["allowed_events"]
    before = count(sessions, Consent)
    r = _fire(client, tokens.fm, case_id, "record_consent", given_by="本人", method="written", agencies=["elderly"])
    problem = assert_problem(r, 409, "guard-refused")
    assert "担当部署が決まっていない" in problem["detail"]
    assert count(sessions, Consent) == before


def test_an_unknown_event_names_the_field_as_every_422_does(client, tokens, assigned):
    body = assert_problem(_fire(client, tokens.livelihood, assigned, "teleport"), 422, "unknown-event")
    assert body["errors"] == {"event": ["「teleport」という操作はありません。"]} and body["allowed_events"]


def test_a_number_of_thousands_of_digits_is_a_field_error_not_unreadable_json(client, tokens, assigned, sessions):
    raw = '{"event": "close", "version": ' + "9" * 5000 + ', "close_reason": "consultation_ended"}'
    r = client.post(f"/api/v1/cases/{assigned}/events", data=raw, content_type="application/json",
                    headers=auth(tokens.livelihood))
    assert "version" in assert_problem(r, 422, "validation-error")["errors"]


@pytest.mark.parametrize("obtained_on", ["20261101", "2026-W44-1", "2026-11-1"])
def test_a_date_is_written_as_rfc3339_says(client, tokens, assigned, obtained_on):
    r = _fire(client, tokens.livelihood, assigned, "record_consent", given_by="本人", method="written",
              agencies=["livelihood"], obtained_on=obtained_on)
    assert "obtained_on" in assert_problem(r, 422, "validation-error")["errors"]


def test_a_plan_names_when_its_layered_meeting_was_held_and_the_agencies_there(client, tokens, assigned, fire,
                                                                              actors):
    fire(actors.livelihood, assigned, "record_consent", given_by="本人", method="written",
         agencies=["livelihood", "shakyo"])
    plan = {"goals": "「働きたい」", "main_department": "livelihood", "next_evaluation_date": FUTURE,
            "roles": [{"department": "livelihood", "role": "家計相談"}]}
    body = assert_problem(_fire(client, tokens.livelihood, assigned, "adopt_plan", attendees=["children"], **plan),
                          422, "validation-error")
    assert "こども家庭課" in body["errors"]["attendees"][0]
    resp = _fire(client, tokens.livelihood, assigned, "adopt_plan", held_at="2026-12-01T14:30:00+09:00",
                 attendees=["shakyo"], **plan)
    assert resp.status_code == 200
    (meeting,) = resp.get_json()["meetings"]
    assert meeting["held_at"] == "2026-12-01T05:30:00+00:00" and meeting["plan_number"] == 1
    assert [a["code"] for a in meeting["attendees"]] == ["livelihood", "shakyo"]
