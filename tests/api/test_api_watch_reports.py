"""見守り通報 (POST /watch-reports): a 見守り協定 partner says who, where, what it saw and when; the report lands at
the desk with its own alert, unrouted; the partner reads back only that it was received."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine.cases.events import firing
from engine.db import unit_of_work
from engine.models import Alert, Case, Department, Handoff, IdempotencyKey
from schemas.watch import EXAMPLE
from tests.api.support import assert_problem, auth, count, post_referral
from tests.conftest import NOW


def _post(client, token, body=None, key="w-1"):
    return client.post("/api/v1/watch-reports", json=EXAMPLE if body is None else body,
                       headers={**auth(token), "Idempotency-Key": key})


@pytest.fixture
def watcher(make_token):
    return make_token("watch:write,watch:read", name="mimamori-denki")


def test_a_report_opens_a_case_at_the_desk_with_its_own_alert(client, watcher, sessions):
    resp = _post(client, watcher)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"id", "external_ref", "received", "received_at"}  # nothing of what becomes of the person
    assert body["received"] is True and body["external_ref"] == EXAMPLE["external_ref"]
    assert resp.headers["Location"].endswith(f"/api/v1/watch-reports/{body['id']}")
    with sessions() as s:
        case = s.get(Case, body["id"])
        assert (case.state, case.source, [c.code for c in case.categories]) == ("intake", "partner", ["other"])
        assert case.person.name == EXAMPLE["who"] and case.person.address == EXAMPLE["where"]
        assert case.summary.startswith("【見守り通報】令和8年12月6日") and EXAMPLE["seen"] in case.summary
        assert case.referrer["seen_at"] == "2026-12-06T09:30:00+09:00"
        assert s.scalars(select(Handoff).where(Handoff.case_id == case.id)).all() == []  # not routed
        (alert,) = s.scalars(select(Alert).where(Alert.case_id == case.id)).all()
        desk = s.scalar(select(Department).where(Department.code == "desk"))
        assert (alert.kind, alert.status, alert.department_id) == ("watch_report", "open", desk.id)


def test_a_retry_is_answered_once_and_a_second_key_for_the_same_report_is_refused(client, watcher, sessions):
    first = _post(client, watcher)
    again = _post(client, watcher)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    other_key = _post(client, watcher, key="w-2")
    assert_problem(other_key, 409, "duplicate-referral")
    changed = _post(client, watcher, {**EXAMPLE, "seen": "別の内容"})
    assert_problem(changed, 409, "idempotency-key-reused")
    assert count(sessions, Case) == 1


def test_the_partner_reads_back_that_it_was_received_and_nothing_more(client, watcher, make_token):
    created = _post(client, watcher).get_json()
    got = client.get(f"/api/v1/watch-reports/{created['id']}", headers=auth(watcher))
    assert got.status_code == 200 and got.get_json() == created
    another = make_token("watch:write,watch:read", name="mimamori-shinbun")
    assert_problem(client.get(f"/api/v1/watch-reports/{created['id']}", headers=auth(another)), 404, "not-found")
    referrer = make_token("referrals:write,referrals:read", name="oono")
    assert client.get(f"/api/v1/watch-reports/{created['id']}", headers=auth(referrer)).status_code == 403
    assert client.get(f"/api/v1/referrals/{created['id']}", headers=auth(watcher)).status_code == 403


def test_a_partner_sends_only_reports(client, watcher, sessions, cli):
    assert post_referral(client, watcher).status_code == 403
    mixed = cli("token", "create", "--client", "x", "--scopes", "watch:write,referrals:write")
    assert mixed.exit_code == 1 and "ほかのスコープと併せて持てません" in mixed.output
    as_staff = cli("token", "create", "--client", "y", "--scopes", "watch:write", "--user", "admin")
    assert as_staff.exit_code == 1


@pytest.mark.parametrize("change,field", [
    ({"who": ""}, "who"),
    ({"seen": None}, "seen"),
    ({"seen_at": "2026-12-06T09:30:00"}, "seen_at"),
    ({"seen_at": (datetime.now().astimezone() + timedelta(days=1)).isoformat()}, "seen_at"),
    ({"area": "東京"}, "area"),
    ({"reporter": {}}, "reporter.organization"),
    ({"who": "大野\u202eウメ"}, "who"),
])
def test_bad_input_is_refused_by_field_and_nothing_is_written(client, watcher, sessions, change, field):
    body = copy.deepcopy(EXAMPLE)
    body.update(change)
    problem = assert_problem(_post(client, watcher, body), 422, "validation-error")
    assert field in problem["errors"]
    assert count(sessions, Case) == 0 and count(sessions, IdempotencyKey) == 0


def test_sending_the_report_on_resolves_its_alert(client, watcher, sessions, actors):
    case_id = _post(client, watcher).get_json()["id"]
    with unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        firing.fire_event(s, s.get(type(actors.window), actors.window.id), case_id, "send_handoff",
                          version=case.version, now=NOW + timedelta(days=30),
                          fields={"to_department": "elderly", "reason": "様子を確かめたところ介護が必要。",
                                  "summary": "一人暮らしの高齢者。"})
    with sessions() as s:
        (alert,) = s.scalars(select(Alert).where(Alert.case_id == case_id, Alert.kind == "watch_report")).all()
        assert alert.status == "resolved"


def test_what_became_of_the_person_never_reaches_the_partner(client, watcher, sessions, actors, cli):
    """No webhook and no export of statuses for a partner, whatever it registered."""
    from engine.models import OutboxEvent

    assert cli("webhooks", "register", "--client", "mimamori-denki", "--url", "https://partner.example/hook").exit_code == 0
    case_id = _post(client, watcher).get_json()["id"]
    with unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        firing.fire_event(s, s.get(type(actors.window), actors.window.id), case_id, "send_handoff",
                          version=case.version, now=NOW + timedelta(days=30),
                          fields={"to_department": "elderly", "reason": "介護が必要。", "summary": "高齢者。"})
    assert count(sessions, OutboxEvent) == 0
    export = cli("cases", "export", "--client", "mimamori-denki")
    assert export.exit_code == 1 and "referrals:read のスコープがなく" in export.output
