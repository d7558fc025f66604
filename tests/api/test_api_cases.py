"""GET /cases/{id} and POST /cases/{id}/events: the staff view through a token, and every row of the table."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import states
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.models import AuditEvent, Case, CaseHistory, CaseNotice, OutboxEvent
from engine.referrals import clients as api_clients
from tests.api.support import assert_problem, auth, count, post_referral


@pytest.fixture
def staff(make_token, actors):
    """Tokens acting for the receiving department (生活福祉課), another department, and the FM."""
    class Tokens:
        livelihood = make_token("cases:read,cases:write", user=actors.livelihood, name="livelihood-system")
        elderly = make_token("cases:read,cases:write", user=actors.elderly, name="elderly-system")
        fm = make_token("cases:read,cases:write", user=actors.fm, name="fm-tool")
        reader = make_token("cases:read", user=actors.livelihood, name="livelihood-reader")

    return Tokens


@pytest.fixture
def case_id(open_case):
    return open_case(categories=["poverty"])  # routed to 生活福祉課: in `handoff`


def _get(client, token, case_id):
    return client.get(f"/api/v1/cases/{case_id}", headers=auth(token))


def _fire(client, token, case_id, body):
    return client.post(f"/api/v1/cases/{case_id}/events", json=body, headers=auth(token))


def _state(sessions, case_id):
    with unit_of_work(sessions) as s:
        c = s.get(Case, case_id)
        return c.state, c.version, len(c.history)


def test_case_view_has_version_allowed_events_and_content(client, staff, case_id, sessions):
    resp = _get(client, staff.livelihood, case_id)
    view = resp.get_json()
    assert resp.status_code == 200
    assert view["id"] == case_id and view["status"] == "handoff" and view["access"] == "content"
    assert isinstance(view["version"], int)
    assert view["allowed_events"] == ["accept_handoff", "decline_handoff"]
    assert view["person"]["name"] == "廿日 太郎" and view["categories"] == ["poverty"]
    assert view["handoffs"][0]["to_department"]["code"] == "livelihood"
    assert [h["event"] for h in view["history"]] == ["open", "send_handoff"]
    with unit_of_work(sessions) as s:  # reading content is audited, with the client
        row = s.scalar(select(AuditEvent).where(AuditEvent.action == "case.read"))
        assert row.case_id == case_id and row.actor_label == "livelihood" and row.client_id is not None


def test_fm_sees_metadata_only(client, staff, case_id):
    view = _get(client, staff.fm, case_id).get_json()
    assert view["access"] == "metadata"
    assert "person" not in view and "summary" not in view and "reason" not in view["handoffs"][0]


def test_case_outside_scope_is_404(client, staff, case_id):
    assert_problem(_get(client, staff.elderly, case_id), 404, "not-found")
    assert_problem(_fire(client, staff.elderly, case_id, {"event": "accept_handoff", "version": 1}), 404, "not-found")
    assert_problem(_get(client, staff.livelihood, 987654), 404, "not-found")


@pytest.mark.parametrize("body", [{}, {"event": "teleport", "version": 1}, {"event": "close", "version": "x"},
                                  {"event": "send_handoff", "version": 1, "to_department": 7}])
def test_a_case_outside_scope_is_404_whatever_the_body_says(client, staff, case_id, body):
    """The case is looked up before the body is read: a bad body must not answer 422 for a case the caller
    may not know of, nor a different status for an existing case than for a missing one."""
    assert_problem(_fire(client, staff.elderly, case_id, body), 404, "not-found")
    assert_problem(_fire(client, staff.elderly, 987654, body), 404, "not-found")


def test_event_answers_200_with_the_new_case_view(client, staff, case_id, sessions):
    version = _get(client, staff.livelihood, case_id).get_json()["version"]
    resp = _fire(client, staff.livelihood, case_id, {"event": "accept_handoff", "version": version})
    view = resp.get_json()
    assert resp.status_code == 200
    assert view["status"] == "assigned" and view["version"] == version + 1
    assert view["owning_department"] == {"code": "livelihood", "name": "生活福祉課（生活困窮者自立相談支援）"}
    assert "close" in view["allowed_events"] and "accept_handoff" in [h["event"] for h in view["history"]]
    assert _state(sessions, case_id)[:2] == ("assigned", version + 1)


def test_event_with_fields(client, staff, case_id, sessions):
    version = _get(client, staff.livelihood, case_id).get_json()["version"]
    view = _fire(client, staff.livelihood, case_id, {"event": "decline_handoff", "version": version,
                                                      "reason": "所管外のため"}).get_json()
    # Declined, the case is no longer 生活福祉課's: it leaves their sight, and the answer is a receipt.
    assert view["status"] == "intake" and view["version"] == version + 1
    assert view["access"] == "none" and view["handoffs"] == [] and view["history"] == []
    assert "person" not in view and "summary" not in view
    assert _get(client, staff.livelihood, case_id).status_code == 404
    with unit_of_work(sessions) as s:  # the decline was applied (the receipt is not a refusal)
        assert s.get(Case, case_id).state == "intake"


def test_stale_version_is_409_with_the_current_version(client, staff, case_id, sessions):
    before = _state(sessions, case_id)
    resp = _fire(client, staff.livelihood, case_id, {"event": "accept_handoff", "version": before[1] - 1})
    body = assert_problem(resp, 409, "stale-version")
    assert body["current_version"] == before[1]
    assert _state(sessions, case_id) == before


def test_event_not_allowed_is_409_with_allowed_events(client, staff, case_id, sessions):
    before = _state(sessions, case_id)
    for body in ({"event": "reopen", "version": before[1]}, {"event": "adopt_plan", "version": before[1]}):
        problem = assert_problem(_fire(client, staff.livelihood, case_id, body), 409, "event-not-allowed")
        assert problem["allowed_events"] == ["accept_handoff", "decline_handoff"]
        # The detail names the same events as allowed_events (the state would also let its owner close it).
        assert problem["detail"].endswith("できる操作: 受理する、返送する"), problem["detail"]
    assert _state(sessions, case_id) == before


def test_missing_field_is_422_naming_it(client, staff, case_id, sessions):
    before = _state(sessions, case_id)
    resp = _fire(client, staff.livelihood, case_id, {"event": "decline_handoff", "version": before[1]})
    problem = assert_problem(resp, 422, "missing-field")
    assert problem["errors"] == {"reason": ["必須項目です。"]}
    resp = _fire(client, staff.livelihood, case_id, {"event": "accept_handoff"})
    problem = assert_problem(resp, 422, "validation-error")
    assert "version" in problem["errors"]
    assert _state(sessions, case_id) == before


def test_unknown_event_is_422(client, staff, case_id):
    problem = assert_problem(_fire(client, staff.livelihood, case_id, {"event": "teleport", "version": 1}),
                             422, "unknown-event")
    assert problem["allowed_events"] == ["accept_handoff", "decline_handoff"]


@pytest.mark.parametrize("body,field", [
    ({"event": "accept_handoff", "version": "3"}, "version"),
    ({"event": "accept_handoff", "version": -1}, "version"),
    ({"event": 5, "version": 1}, "event"),
    ({"event": "decline_handoff", "version": 1, "reason": ["a"]}, "reason"),
    ({"event": "close", "version": 1, "close_reason": "goal_met", "note": "a\x00b"}, "note"),
])
def test_wrong_types_are_422(client, staff, case_id, body, field):
    problem = assert_problem(_fire(client, staff.livelihood, case_id, body), 422, "validation-error")
    assert field in problem["errors"]


def test_caller_who_may_not_fire_it_gets_403(client, staff, case_id, sessions, make_token, actors):
    before = _state(sessions, case_id)
    # The FM may see the case but only the receiving department accepts its つなぐシート.
    problem = assert_problem(_fire(client, staff.fm, case_id, {"event": "accept_handoff", "version": before[1]}),
                             403, "forbidden")
    assert "送付先の部署" in problem["detail"]
    # Staff of the receiving department may not convene a 支援会議 (FM only).
    accepted = _fire(client, staff.livelihood, case_id, {"event": "accept_handoff", "version": before[1]})
    version = accepted.get_json()["version"]
    problem = assert_problem(_fire(client, staff.livelihood, case_id, {
        "event": "convene_support_meeting", "version": version, "members": [{"user": "fm", "acknowledged": True}]}),
        403, "forbidden")
    assert _state(sessions, case_id)[1] == version
    with unit_of_work(sessions) as s:
        refused = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
        assert [(r.detail["status"], r.case_id) for r in refused] == [(403, case_id), (403, case_id)]


def test_read_scope_cannot_fire(client, staff, case_id):
    assert_problem(_fire(client, staff.reader, case_id, {"event": "accept_handoff", "version": 1}), 403,
                   "insufficient-scope")


def test_refusal_rolls_back_everything_but_its_audit_row(client, staff, case_id, sessions):
    # A refused event leaves the case, its history and the audit trail as they were, plus the refusal row.
    _fire(client, staff.livelihood, case_id, {"event": "accept_handoff", "version": _state(sessions, case_id)[1]})
    version = _state(sessions, case_id)[1]
    audit_before = count(sessions, AuditEvent)
    history_before = count(sessions, CaseHistory)
    resp = _fire(client, staff.livelihood, case_id, {"event": "record_consent", "version": version, "given_by": "本人",
                                                     "method": "written", "agencies": ["no-such-agency"]})
    assert_problem(resp, 422, "validation-error")
    assert count(sessions, CaseHistory) == history_before
    assert count(sessions, AuditEvent) == audit_before + 1
    assert _state(sessions, case_id)[1] == version
    with unit_of_work(sessions) as s:  # named as the document names the operation, on the case's trail
        row = s.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
        assert (row.action, row.case_id, row.outcome) == ("api POST /cases/{case_id}/events", case_id, "refused")


@pytest.mark.parametrize("raw,content_type,status,name", [
    (b"{oops", "application/json", 400, "malformed-json"),
    (b"[]", "application/json", 400, "not-a-json-object"),
    (b'{"event": "accept_handoff", "version": 1}', "text/plain", 415, "unsupported-media-type"),
])
def test_body_format_errors(client, staff, case_id, raw, content_type, status, name):
    resp = client.post(f"/api/v1/cases/{case_id}/events", data=raw, content_type=content_type,
                       headers=auth(staff.livelihood))
    assert_problem(resp, status, name)


def test_every_event_documents_its_fields(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    from schemas.events import component_name

    body = spec["paths"]["/api/v1/cases/{case_id}/events"]["post"]["requestBody"]["content"]["application/json"]
    assert len(body["schema"]["oneOf"]) == len(states.CASE_EVENT_LABELS)
    for event, declared in firing.EVENTS.items():
        fields = {f.name: f.description for f in declared.fields}
        schema = spec["components"]["schemas"][component_name(event)]
        assert schema["properties"]["event"]["enum"] == [event]
        assert {"event", "version", *fields} <= set(schema["properties"])
        for name, meaning in fields.items():
            assert schema["properties"][name]["description"] == meaning
            assert (name in schema["required"]) == ("必須" in meaning and "時必須" not in meaning)


def test_referral_status_changes_reach_the_outbox(client, partner, staff, sessions):
    with unit_of_work(sessions) as s:
        api_clients.register_webhook(s, "oono-houkatsu", "http://127.0.0.1:9/hook")
    created = post_referral(client, partner, None).get_json()  # 8050 → 高齢介護課
    version = _get(client, staff.elderly, created["id"]).get_json()["version"]
    resp = _fire(client, staff.elderly, created["id"], {"event": "accept_handoff", "version": version})
    assert resp.status_code == 200
    with unit_of_work(sessions) as s:
        events = s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        assert [(e.payload["previous_status"], e.payload["referral"]["status"]) for e in events] == [
            ("intake", "handoff"), ("handoff", "assigned")]
        assert all(e.event_type == "referral.status_changed" for e in events)


def test_api_answers_set_no_cookie(client, staff, case_id):
    response = _get(client, staff.livelihood, case_id)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_send_handoff_may_name_departments_to_tell(client, make_token, actors, open_case, sessions):
    desk = make_token("cases:read,cases:write", user=actors.window, name="desk-tool")
    case_id = open_case(categories=["other"])  # unrouted: stays in intake with the desk
    version = _state(sessions, case_id)[1]
    body = {"event": "send_handoff", "version": version, "to_department": "livelihood", "reason": "r",
            "summary": "s", "notify": ["shakyo", "nowhere"]}
    problem = assert_problem(_fire(client, desk, case_id, body), 422, "validation-error")
    assert problem["errors"] == {"notify": ["「nowhere」という部署はありません。"]}
    assert _state(sessions, case_id)[1] == version and count(sessions, CaseNotice) == 0
    resp = _fire(client, desk, case_id, {**body, "notify": ["shakyo"]})
    assert resp.status_code == 200 and resp.get_json()["status"] == "handoff"
    with unit_of_work(sessions) as s:
        assert [n.department.code for n in s.scalars(select(CaseNotice))] == ["shakyo"]


def test_sending_on_after_a_return_needs_only_the_contracts_fields(client, make_token, actors, case_id, sessions):
    """Declined, the case waits in intake; API.md's send_handoff fields send it elsewhere than the proposal."""
    livelihood = make_token("cases:read,cases:write", user=actors.livelihood, name="livelihood-2")
    desk = make_token("cases:read,cases:write", user=actors.window, name="desk-tool")
    version = _state(sessions, case_id)[1]
    assert _fire(client, livelihood, case_id, {"event": "decline_handoff", "version": version,
                                                "reason": "所管外のため"}).status_code == 200
    resp = _fire(client, desk, case_id, {"event": "send_handoff", "version": version + 1, "to_department": "health",
                                         "reason": "家計の立て直しを健康推進課で", "summary": "家賃滞納"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"] == "handoff"
    with unit_of_work(sessions) as s:
        assert s.get(Case, case_id).override_reason == "家計の立て直しを健康推進課で"


def test_a_token_that_cannot_write_is_offered_no_events(client, staff, case_id):
    assert _get(client, staff.livelihood, case_id).get_json()["allowed_events"] == ["accept_handoff",
                                                                                   "decline_handoff"]
    view = _get(client, staff.reader, case_id).get_json()  # the same user, a cases:read token
    assert view["allowed_events"] == [] and view["version"] >= 1


def test_a_field_the_event_does_not_take_is_422(client, staff, case_id, sessions):
    """Dropping it silently would lose what the caller meant to record."""
    before = _state(sessions, case_id)
    resp = _fire(client, staff.livelihood, case_id, {"event": "accept_handoff", "version": before[1],
                                                     "note": "受理します", "foo": 1})
    problem = assert_problem(resp, 422, "validation-error")
    assert problem["errors"] == {"note": ["不明な項目です。"], "foo": ["不明な項目です。"]}
    assert _state(sessions, case_id) == before


def test_a_token_that_may_fire_but_not_read_gets_the_receipt_only(client, make_token, actors, case_id, sessions):
    writer = make_token("cases:write", user=actors.livelihood, name="livelihood-writer")
    assert_problem(_get(client, writer, case_id), 403, "insufficient-scope")
    version = _state(sessions, case_id)[1]
    answer = _fire(client, writer, case_id, {"event": "accept_handoff", "version": version})
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["status"], body["version"], body["access"]) == ("assigned", version + 1, "none")
    assert "person" not in body and "summary" not in body and body["history"] == [] and body["categories"] is None
