"""GET /alerts, POST /alerts/{id}/acknowledge and /resolve, under the token user's access policy."""
from __future__ import annotations

import pytest

from engine.alerts import alerts
from engine.alerts.alerts import NOTE_WITHHELD
from engine.db import unit_of_work
from engine.models import Alert, Handoff
from tests.api.support import assert_problem, auth
from tests.test_alert_messages import REASON, _declined, _reads

ALERT_KEYS = {"id", "kind", "kind_label", "status", "case_id", "handoff_id", "department", "recipient", "message",
              "raised_at", "due_at", "acknowledged_at", "resolved_at", "note", "acknowledgement_note", "resolution_note"}


@pytest.fixture
def desk(make_token, actors):
    return make_token("alerts:read,alerts:write", user=actors.window, name="desk-tool")


@pytest.fixture
def unrouted(open_case, sessions):
    """Three unrouted cases (category `other`): three open `unrouted` alerts to the desk; their ids."""
    for _ in range(3):
        open_case(categories=["other"])
    with unit_of_work(sessions) as s:
        return [a.id for a in s.query(Alert).filter(Alert.kind == "unrouted").order_by(Alert.id)]


def test_list_newest_first_with_paging(client, desk, unrouted):
    page = client.get("/api/v1/alerts?limit=2", headers=auth(desk)).get_json()
    assert [a["id"] for a in page["items"]] == unrouted[::-1][:2]
    assert set(page["items"][0]) == ALERT_KEYS
    assert page["items"][0]["department"] == "desk" and page["items"][0]["status"] == "open"
    rest = client.get(page["next"], headers=auth(desk)).get_json()
    assert [a["id"] for a in rest["items"]] == unrouted[:1] and rest["next"] is None


def test_list_is_access_filtered(client, make_token, actors, unrouted):
    elderly = make_token("alerts:read", user=actors.elderly, name="elderly-tool")
    assert client.get("/api/v1/alerts", headers=auth(elderly)).get_json()["items"] == []
    fm = make_token("alerts:read", user=actors.fm, name="fm-tool")
    assert len(client.get("/api/v1/alerts", headers=auth(fm)).get_json()["items"]) == 3


def test_filters(client, desk, unrouted):
    client.post(f"/api/v1/alerts/{unrouted[0]}/acknowledge", headers=auth(desk))
    ids = lambda q: [a["id"] for a in client.get(f"/api/v1/alerts?{q}", headers=auth(desk)).get_json()["items"]]
    assert ids("status=acknowledged") == [unrouted[0]]
    assert ids("status=open") == unrouted[:0:-1]
    assert ids("kind=unrouted&status=open") == unrouted[:0:-1]
    assert ids("kind=evaluation_overdue") == []
    resp = client.get("/api/v1/alerts?status=done&kind=x", headers=auth(desk))
    problem = assert_problem(resp, 422, "validation-error")
    assert set(problem["errors"]) == {"status", "kind"}


def test_acknowledge_then_resolve(client, desk, unrouted, sessions):
    resp = client.post(f"/api/v1/alerts/{unrouted[0]}/acknowledge", headers=auth(desk))
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "acknowledged" and resp.get_json()["acknowledged_at"]
    again = client.post(f"/api/v1/alerts/{unrouted[0]}/acknowledge", headers=auth(desk))
    assert_problem(again, 409, "event-not-allowed")
    resp = client.post(f"/api/v1/alerts/{unrouted[0]}/resolve", json={"note": "担当を決めて連絡済み"}, headers=auth(desk))
    assert resp.status_code == 200
    assert (resp.get_json()["status"], resp.get_json()["note"]) == ("resolved", "担当を決めて連絡済み")
    assert_problem(client.post(f"/api/v1/alerts/{unrouted[0]}/resolve", json={"note": "再度"}, headers=auth(desk)),
                   409, "event-not-allowed")
    with unit_of_work(sessions) as s:
        assert s.get(Alert, unrouted[0]).resolved_by_id is not None


def test_acknowledge_with_a_note_body(client, desk, unrouted):
    resp = client.post(f"/api/v1/alerts/{unrouted[1]}/acknowledge", json={"note": "確認中"}, headers=auth(desk))
    assert resp.status_code == 200 and resp.get_json()["note"] == "確認中"


def test_resolve_needs_a_note(client, desk, unrouted):
    resp = client.post(f"/api/v1/alerts/{unrouted[0]}/resolve", json={"note": " "}, headers=auth(desk))
    problem = assert_problem(resp, 422, "validation-error")
    assert "note" in problem["errors"]
    assert_problem(client.post(f"/api/v1/alerts/{unrouted[0]}/resolve", json={}, headers=auth(desk)), 422,
                   "validation-error")
    assert_problem(client.post(f"/api/v1/alerts/{unrouted[0]}/resolve", headers=auth(desk)), 400, "malformed-json")


def test_alert_outside_scope_is_404_and_read_scope_cannot_write(client, make_token, actors, unrouted):
    elderly = make_token("alerts:read,alerts:write", user=actors.elderly, name="elderly-tool")
    assert_problem(client.post(f"/api/v1/alerts/{unrouted[0]}/acknowledge", headers=auth(elderly)), 404, "not-found")
    assert_problem(client.post("/api/v1/alerts/424242/acknowledge", headers=auth(elderly)), 404, "not-found")
    reader = make_token("alerts:read", user=actors.window, name="reader")
    assert_problem(client.post(f"/api/v1/alerts/{unrouted[0]}/acknowledge", headers=auth(reader)), 403,
                   "insufficient-scope")
    partner_like = make_token("referrals:read", name="partner")
    assert_problem(client.get("/api/v1/alerts", headers=auth(partner_like)), 403, "insufficient-scope")


def test_a_return_reason_only_for_those_with_content_sight(client, make_token, open_case, fire, actors, sessions):
    """A 返送 alert quotes the reason typed by the receiver: case content (tests/test_alert_messages.py)."""
    _, alert_id = _declined(open_case, fire, actors, sessions)
    fm = make_token("alerts:read,alerts:write", user=actors.fm, name="fm-tool")
    desk = make_token("alerts:read", user=actors.window, name="desk-tool")
    fm_items = client.get("/api/v1/alerts?kind=handoff_declined", headers=auth(fm)).get_json()["items"]
    assert [a["id"] for a in fm_items] == [alert_id] and REASON not in fm_items[0]["message"]
    answer = client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=auth(fm))
    assert answer.status_code == 200 and REASON not in answer.get_json()["message"]
    assert _reads(sessions, alert_id) == 0
    desk_items = client.get("/api/v1/alerts?kind=handoff_declined", headers=auth(desk)).get_json()["items"]
    assert REASON in desk_items[0]["message"]
    assert _reads(sessions, alert_id) == 1


def test_alerts_to_the_fm_name_the_department_they_concern(client, make_token, actors, open_case, sessions):
    case_id = open_case(categories=["elder_care", "hikikomori"])  # 8050: to 高齢介護課, a 多機関協働 candidate
    with unit_of_work(sessions) as s:
        h = s.query(Handoff).filter(Handoff.case_id == case_id).one()
        alerts.raise_alert(s, kind="handoff_escalated", case_id=case_id, handoff_id=h.id, message="m")
    fm = make_token("alerts:read", user=actors.fm, name="fm-tool")
    items = client.get("/api/v1/alerts", headers=auth(fm)).get_json()["items"]
    assert sorted((a["kind"], a["department"], a["recipient"]) for a in items) == [
        ("handoff_escalated", "elderly", "fm"), ("multi_agency_candidate", "elderly", "fm")]
    desk = make_token("alerts:read", user=actors.window, name="desk-tool")
    open_case(categories=["other"])
    [unrouted] = client.get("/api/v1/alerts", headers=auth(desk)).get_json()["items"]
    assert (unrouted["department"], unrouted["recipient"]) == ("desk", "department")


def test_a_typed_note_only_for_its_writer_and_those_with_content_sight(client, make_token, open_case, fire, actors,
                                                                       sessions):
    """A note may say anything about the case (「DV被害の疑い」): like a return reason, it is case content."""
    _, alert_id = _declined(open_case, fire, actors, sessions)
    note = "本人からDV被害の疑いを聞き取り"
    fm = make_token("alerts:read,alerts:write", user=actors.fm, name="fm-tool")
    fm2 = make_token("alerts:read", user=actors.fm2, name="fm2-tool")
    desk = make_token("alerts:read", user=actors.window, name="desk-tool")
    answer = client.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"note": note}, headers=auth(fm))
    assert answer.status_code == 200 and answer.get_json()["note"] == note  # its writer
    reads = _reads(sessions, alert_id)
    other = client.get("/api/v1/alerts?kind=handoff_declined", headers=auth(fm2)).get_json()["items"][0]
    assert other["note"] == NOTE_WITHHELD and note not in str(other)
    assert _reads(sessions, alert_id) == reads
    reader = client.get("/api/v1/alerts?kind=handoff_declined", headers=auth(desk)).get_json()["items"][0]
    assert reader["note"] == note
    assert _reads(sessions, alert_id) == reads + 1


def test_newest_means_raised_last_not_written_last(client, desk, unrouted, sessions):
    """A scan back-filled with an earlier --now writes alerts that were due earlier: the list follows
    raised_at, and its pages follow on without gaps or repeats."""
    from datetime import timedelta

    from tests.conftest import NOW

    with unit_of_work(sessions) as s:
        for hours, alert_id in zip((5, 1, 3), unrouted):  # the first written is the newest raised
            s.get(Alert, alert_id).raised_at = NOW + timedelta(hours=hours)
    first = client.get("/api/v1/alerts?limit=2", headers=auth(desk)).get_json()
    rest = client.get(first["next"], headers=auth(desk)).get_json()
    assert [a["id"] for a in first["items"] + rest["items"]] == [unrouted[0], unrouted[2], unrouted[1]]
    assert rest["next"] is None


def test_the_note_of_the_acknowledgement_survives_the_resolution(client, make_token, open_case, fire, actors,
                                                                  sessions):
    """Each note keeps its own writer: the one who acknowledged reads their note, not the resolver's."""
    _, alert_id = _declined(open_case, fire, actors, sessions)
    fm = make_token("alerts:read,alerts:write", user=actors.fm, name="fm-tool")
    fm2 = make_token("alerts:read,alerts:write", user=actors.fm2, name="fm2-tool")
    client.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"note": "電話で督促した"}, headers=auth(fm))
    done = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "本人の事情を聞き取った"}, headers=auth(fm2))
    assert done.status_code == 200
    assert (done.get_json()["acknowledgement_note"], done.get_json()["resolution_note"], done.get_json()["note"]) == (
        NOTE_WITHHELD, "本人の事情を聞き取った", "本人の事情を聞き取った")
    reads = _reads(sessions, alert_id)
    mine = client.get("/api/v1/alerts?status=resolved", headers=auth(fm)).get_json()["items"][0]
    assert (mine["acknowledgement_note"], mine["resolution_note"]) == ("電話で督促した", NOTE_WITHHELD)
    assert _reads(sessions, alert_id) == reads
    with sessions() as s:
        alert = s.get(Alert, alert_id)
        assert (alert.note, alert.resolution_note) == ("電話で督促した", "本人の事情を聞き取った")
