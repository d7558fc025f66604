"""A field name that is not valid Unicode (a lone surrogate, sent as a \\ud800 escape) on every POST of /api/v1:
a clean 422 naming where it is, never the name itself (no answer could carry it), and nothing written."""
from __future__ import annotations

import pytest

from engine.db import unit_of_work
from engine.models import Alert, AuditEvent, Case, IdempotencyKey
from tests.api.support import assert_problem, auth, count

BAD_NAME = "項目名に使えない文字（対になっていないサロゲート）が含まれています。"

# Raw JSON text: the escapes are the sender's, as a client would write them.
REFERRAL_BODIES = [
    ("top level", rb'{"\ud800": 1}', "body"),
    ("inside person", rb'{"external_ref": "R1", "person": {"name": "a", "\udc00x": "b"}}', "person"),
    ("inside a household row", rb'{"household": [{"relationship": "a"}, {"\ud83d": 1}]}', "household.1"),
    ("inside the consent", rb'{"consent": {"given_by": "a", "\udfff": []}}', "consent"),
    ("under an unknown name", rb'{"extra": {"deeper": [{"\ud800": null}]}}', "extra.deeper.0"),
]


def _post(client, token, path, raw: bytes, **headers):
    return client.post(path, data=raw, content_type="application/json", headers=auth(token, **headers))


def _said_without_the_name(resp, where: str) -> dict:
    problem = assert_problem(resp, 422, "validation-error")
    assert problem["errors"][where] == [BAD_NAME]
    assert problem["detail"].startswith(f"{where}: ")
    text = resp.get_data(as_text=True)
    assert "\\ud" not in text.lower() and "\ufffd" not in text  # neither the name nor a stand-in for it
    return problem


@pytest.mark.parametrize("why,raw,where", REFERRAL_BODIES, ids=[b[0] for b in REFERRAL_BODIES])
def test_referral_with_an_unreadable_field_name_is_422_and_writes_nothing(client, partner, sessions, why, raw,
                                                                         where):
    resp = _post(client, partner, "/api/v1/referrals", raw, **{"Idempotency-Key": "k"})
    _said_without_the_name(resp, where)
    assert count(sessions, Case) == 0 and count(sessions, IdempotencyKey) == 0
    assert count(sessions, AuditEvent, AuditEvent.outcome == "refused") == 1


def test_every_unreadable_name_is_reported_once_by_where_it_is(client, partner):
    raw = rb'{"\ud800": 1, "\udbff": 2, "person": {"\udc00": 1}, "household": [{"\ud800": 1}]}'
    problem = _said_without_the_name(_post(client, partner, "/api/v1/referrals", raw, **{"Idempotency-Key": "k"}),
                                     "body")
    assert problem["errors"] == {"body": [BAD_NAME], "person": [BAD_NAME], "household.0": [BAD_NAME]}


def test_the_idempotency_key_is_still_checked_first(client, partner):
    assert_problem(_post(client, partner, "/api/v1/referrals", rb'{"\ud800": 1}'), 400, "idempotency-key-missing")


def test_an_unreadable_name_given_twice_is_400_without_the_name(client, partner, sessions):
    raw = rb'{"person": {"\ud800": 1, "\ud800": 2}}'
    resp = _post(client, partner, "/api/v1/referrals", raw, **{"Idempotency-Key": "k"})
    problem = assert_problem(resp, 400, "malformed-json")
    assert "2回以上" in problem["detail"] and "使えない文字を含む名前" in problem["detail"]
    assert "\\ud" not in resp.get_data(as_text=True).lower() and "\ufffd" not in problem["detail"]
    assert count(sessions, Case) == 0


@pytest.fixture
def staff(make_token, actors):
    return make_token("cases:read,cases:write", user=actors.livelihood, name="livelihood-system")


@pytest.mark.parametrize("raw,where", [
    (rb'{"event": "accept_handoff", "version": %d, "\ud800": 1}', "body"),
    (rb'{"event": "decline_handoff", "version": %d, "reason": "r", "basis": {"\udc00": 1}}', "basis"),
])
def test_event_with_an_unreadable_field_name_is_422_and_changes_nothing(client, staff, open_case, sessions, raw,
                                                                       where):
    case_id = open_case(categories=["poverty"])  # in `handoff` to 生活福祉課
    with unit_of_work(sessions) as s:
        before = (s.get(Case, case_id).state, s.get(Case, case_id).version)
    resp = _post(client, staff, f"/api/v1/cases/{case_id}/events", raw % before[1])
    _said_without_the_name(resp, where)
    with unit_of_work(sessions) as s:
        assert (s.get(Case, case_id).state, s.get(Case, case_id).version) == before


@pytest.fixture
def desk(make_token, actors):
    return make_token("alerts:read,alerts:write", user=actors.window, name="desk-tool")


@pytest.mark.parametrize("action,raw", [
    ("acknowledge", rb'{"\ud800": "x"}'),
    ("resolve", rb'{"note": "done", "\udfff": "x"}'),
])
def test_alert_action_with_an_unreadable_field_name_is_422_and_changes_nothing(client, desk, open_case, sessions,
                                                                               action, raw):
    open_case(categories=["other"])  # unrouted: an open alert to the desk
    with unit_of_work(sessions) as s:
        alert_id = s.query(Alert.id).filter(Alert.kind == "unrouted").scalar()
    _said_without_the_name(_post(client, desk, f"/api/v1/alerts/{alert_id}/{action}", raw), "body")
    with unit_of_work(sessions) as s:
        alert = s.get(Alert, alert_id)
        assert (alert.status, alert.acknowledged_at, alert.resolved_at) == ("open", None, None)


def test_a_problem_repeating_text_that_is_not_unicode_is_still_answered(app):
    """Whatever text of a request a refusal repeats, the refusal itself never fails to be encoded."""
    from web.api.problems import problem_response

    with app.test_request_context("/api/v1/referrals"):
        resp = problem_response("validation-error", "「a\ud800b」", errors={"x\udc00": ["c\udfff"]})
    assert resp.status_code == 422
    assert resp.get_json() == {"type": "/api/v1/problems/validation-error", "title": "入力内容に誤りがあります",
                               "status": 422, "detail": "「a\ufffdb」", "code": "validation_error",
                               "errors": {"x\ufffd": ["c\ufffd"]}}
