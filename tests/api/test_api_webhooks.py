"""Webhook delivery to a receiver this test starts on 127.0.0.1: each status change once, in order, signed;
retried while the receiver is down; nothing lost when the deliverer is killed in the middle of a batch."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import ApiClient, OutboxEvent, WebhookDelivery, utcnow
from engine.referrals import clients as api_clients
from engine.referrals import intake as referrals
from engine.referrals import webhooks
from schemas.referrals import ReferralIn
from tests.api.support import referral
from tests.conftest import NOW
from web.cli import main


class Receiver:
    """An HTTP endpoint that records what it is sent; it can answer errors or hold a request."""

    def __init__(self, port: int = 0):
        self.received: list[dict] = []
        self.status = 200
        self.hold_at: int | None = None  # hold the n-th request (1-based) until `release` is set
        self.arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body, "doc": json.loads(body)})
                if receiver.hold_at == len(receiver.received):
                    receiver.arrived.set()
                    receiver.release.wait(30)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def event_ids(self) -> list[int]:
        return [r["doc"]["id"] for r in self.received]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def _client(sessions, name: str, url: str) -> tuple[int, str]:
    with unit_of_work(sessions) as s:
        client, _ = api_clients.create_token(s, client_name=name, scopes=["referrals:write", "referrals:read"])
        secret = api_clients.register_webhook(s, name, url)
        return client.id, secret


def _refer(sessions, client_id: int, n: int, prefix: str) -> list[int]:
    """Send n referrals for the client (each is routed: one status change intake → handoff each)."""
    ids = []
    for i in range(n):
        with unit_of_work(sessions) as s:
            answer = referrals.receive(s, s.get(ApiClient, client_id), key=f"{prefix}{i}",
                                       payload=ReferralIn().load(referral(external_ref=f"{prefix}{i}")), now=NOW)
            ids.append(answer.case_id)
    return ids


def _outbox(sessions, client_id: int | None = None) -> list[int]:
    with unit_of_work(sessions) as s:
        q = select(OutboxEvent.id).order_by(OutboxEvent.id)
        if client_id is not None:
            q = q.where(OutboxEvent.client_id == client_id)
        return list(s.scalars(q))


def test_each_status_change_arrives_once_in_order_and_signed(sessions, receiver, fire, actors):
    client_id, secret = _client(sessions, "oono", receiver.url)
    case_id = _refer(sessions, client_id, 1, "A")[0]
    fire(actors.elderly, case_id, "accept_handoff")
    fire(actors.elderly, case_id, "close", close_reason="goal_met")
    now = NOW + timedelta(minutes=1)  # the referrals and `fire` act at NOW
    report = webhooks.deliver(sessions, now=now)
    assert (report.delivered, report.failed) == (3, 0)
    docs = [r["doc"] for r in receiver.received]
    assert [(d["data"]["previous_status"], d["data"]["referral"]["status"]) for d in docs] == [
        ("intake", "handoff"), ("handoff", "assigned"), ("assigned", "closed")]
    assert all(d["type"] == "referral.status_changed" and d["data"]["referral"]["id"] == case_id for d in docs)
    assert docs[2]["data"]["referral"]["outcome"] == "goal_met"
    for r in receiver.received:
        h = r["headers"]
        assert h["X-Tsunagu-Event"] == "referral.status_changed" and h["X-Tsunagu-Delivery"] == str(r["doc"]["id"])
        assert h["X-Tsunagu-Signature"] == webhooks.sign(secret, int(h["X-Tsunagu-Timestamp"]), r["body"])
        assert webhooks.verify(secret, h["X-Tsunagu-Timestamp"], r["body"], h["X-Tsunagu-Signature"], now=now)
        assert not webhooks.verify("wrong", h["X-Tsunagu-Timestamp"], r["body"], h["X-Tsunagu-Signature"], now=now)
        tampered = r["body"] + b" "
        assert not webhooks.verify(secret, h["X-Tsunagu-Timestamp"], tampered, h["X-Tsunagu-Signature"], now=now)
    # Once: nothing is sent again.
    assert webhooks.deliver(sessions, now=now + timedelta(hours=2)).delivered == 0
    assert len(receiver.received) == 3
    with unit_of_work(sessions) as s:
        assert [d.status_code for d in s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))] == [200] * 3
        assert webhooks.pending(s) == 0


def test_a_client_whose_tokens_are_revoked_hears_nothing_more(sessions, receiver, fire, actors):
    """Revoking a partner's tokens cuts it off: what was queued is not sent, later changes are not queued."""
    client_id, _ = _client(sessions, "oono", receiver.url)
    case_id = _refer(sessions, client_id, 1, "A")[0]
    with unit_of_work(sessions) as s:
        assert api_clients.revoke_tokens(s, "oono") == 1
    fire(actors.elderly, case_id, "accept_handoff")
    assert len(_outbox(sessions, client_id)) == 1  # the routing, queued before; not the acceptance
    now = NOW + timedelta(minutes=1)
    assert webhooks.deliver(sessions, now=now).delivered == 0
    assert receiver.received == []
    # Given a token again, it hears what was queued while it was trusted, and what comes next.
    with unit_of_work(sessions) as s:
        api_clients.create_token(s, client_name="oono", scopes=["referrals:read"])
    fire(actors.elderly, case_id, "close", close_reason="goal_met")
    assert webhooks.deliver(sessions, now=now + timedelta(hours=1)).delivered == 2
    assert [r["doc"]["data"]["referral"]["status"] for r in receiver.received] == ["handoff", "closed"]


def test_receiver_down_then_back(sessions, fire, actors):
    down = Receiver()
    url, port = down.url, down.port
    down.stop()  # nothing listens on the port now
    client_id, _ = _client(sessions, "oono", url)
    case_id = _refer(sessions, client_id, 1, "A")[0]
    fire(actors.elderly, case_id, "accept_handoff")
    first, second = _outbox(sessions)
    now = NOW + timedelta(minutes=1)  # the referrals and `fire` act at NOW
    report = webhooks.deliver(sessions, now=now)
    assert (report.delivered, report.failed) == (0, 1)
    # Not yet due: no attempt. Event N+1 is never tried before N.
    assert webhooks.deliver(sessions, now=now + timedelta(seconds=10)).failed == 0
    assert webhooks.deliver(sessions, now=now + timedelta(seconds=31)).failed == 1
    with unit_of_work(sessions) as s:
        attempts = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        assert [(a.outbox_event_id, a.status_code) for a in attempts] == [(first, None), (first, None)]
        assert all(a.error for a in attempts)
        ev = s.get(OutboxEvent, first)
        assert ev.attempts == 2 and ev.next_attempt_at == now + timedelta(seconds=31) + timedelta(seconds=60)
    back = Receiver(port)
    back.status = 503  # up, but failing: still retried later
    try:
        assert webhooks.deliver(sessions, now=now + timedelta(minutes=3)).failed == 1
        back.status = 200
        report = webhooks.deliver(sessions, now=now + timedelta(minutes=10))
        assert (report.delivered, report.failed) == (2, 0)
        assert back.event_ids() == [first, first, second]
    finally:
        back.stop()
    with unit_of_work(sessions) as s:
        rows = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        codes = [(a.outbox_event_id, a.status_code) for a in rows]
        assert codes[2:] == [(first, 503), (first, 200), (second, 200)]


def test_retry_delays_grow_and_stop_growing():
    delays = [webhooks.retry_delay(n).total_seconds() for n in range(1, 10)]
    assert delays[:4] == [30, 60, 120, 240] and max(delays) == 3600 and delays == sorted(delays)
    assert webhooks.retry_delay(10_000).total_seconds() == 3600  # a receiver down for weeks


@pytest.mark.slow
def test_killing_the_deliverer_mid_batch_loses_nothing(sessions, departments, receiver, database_url, config_dir):
    a, _ = _client(sessions, "oono", receiver.url)
    b, _ = _client(sessions, "saeki", receiver.url)
    _refer(sessions, a, 5, "A")
    _refer(sessions, b, 3, "B")
    receiver.hold_at = 4
    env = {**os.environ, "DATABASE_URL": database_url, "TSUNAGU_CONFIG_DIR": str(config_dir), "SECRET_KEY": "test"}
    proc = subprocess.Popen([sys.executable, "-c", "from web.cli import main; main()", "webhooks", "deliver"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert receiver.arrived.wait(60), f"deliverer exited {proc.poll()}, {len(receiver.received)} received"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.release.set()
    assert proc.returncode == -signal.SIGKILL
    held = receiver.received[3]["doc"]["id"]
    with unit_of_work(sessions) as s:
        assert s.get(OutboxEvent, held).delivered_at is None  # no 2xx was seen: not marked
    # Another run after the dead deliverer's claim has lapsed sends the rest.
    report = webhooks.deliver(sessions, now=utcnow() + webhooks.LEASE + timedelta(seconds=1))
    assert report.failed == 0
    got = receiver.event_ids()
    assert set(got) == set(_outbox(sessions))
    assert got.count(held) == 2 and len(got) == len(set(got)) + 1  # at least once: only the one in flight twice
    for client_id in (a, b):
        mine = [i for i in dict.fromkeys(got) if i in set(_outbox(sessions, client_id))]
        assert mine == _outbox(sessions, client_id)  # in order per client
    with unit_of_work(sessions) as s:
        assert webhooks.pending(s) == 0


def test_a_slow_round_keeps_its_claims_and_no_event_goes_out_twice(sessions, receiver, actors):
    """A round claims one event per client and sends them one after another: by the time it reaches the
    last, the first claims may be old. Each claim is renewed just before its send; one that lapsed and
    was taken by another deliverer is left to that deliverer."""
    clients = [_client(sessions, f"c{i}", receiver.url)[0] for i in range(3)]
    for i, client_id in enumerate(clients):
        _refer(sessions, client_id, 1, f"S{i}")
    start = NOW + timedelta(minutes=1)
    with unit_of_work(sessions) as s:
        first = webhooks.claim_due(s, start)
    assert len(first) == 3, _outbox(sessions)
    # The first deliverer sends its first event a while later: its claim, renewed, still holds …
    later = start + webhooks.LEASE - timedelta(seconds=1)
    with unit_of_work(sessions) as s:
        assert webhooks.renew(s, first[0], later)
    # … while the other two lapse and a second deliverer takes them.
    with unit_of_work(sessions) as s:
        second = webhooks.claim_due(s, start + webhooks.LEASE + timedelta(seconds=1))
    assert sorted(c.event_id for c in second) == sorted(c.event_id for c in first[1:])
    with unit_of_work(sessions) as s:
        assert not webhooks.renew(s, first[1], start + webhooks.LEASE + timedelta(seconds=2))
    # deliver() sends only what it still holds: every event once.
    report = webhooks.deliver(sessions, now=start + 2 * webhooks.LEASE + timedelta(seconds=5))
    assert report.delivered == 3 and report.lapsed == 0
    assert sorted(r["doc"]["id"] for r in receiver.received) == sorted(c.event_id for c in first)


def test_a_delivery_run_far_ahead_of_the_clock_does_not_hold_the_queue_until_then(sessions, departments):
    down = Receiver()
    url = down.url
    down.stop()
    client_id, _ = _client(sessions, "oono", url)
    _refer(sessions, client_id, 1, "A")
    assert webhooks.deliver(sessions, now=utcnow() + timedelta(days=5 * 365)).failed == 1
    with unit_of_work(sessions) as s:
        ev = s.scalars(select(OutboxEvent)).one()
        assert ev.next_attempt_at <= utcnow() + timedelta(minutes=1)  # from the clock, not from five years on


def test_deliver_command_exits_1_when_a_delivery_failed(app, sessions, actors):
    """cron mail and systemd see a failed run by its exit status alone; a run where all went out exits 0."""
    down = Receiver()
    url, port = down.url, down.port
    down.stop()
    _refer(sessions, _client(sessions, "oono", url)[0], 1, "B")  # one event, for a URL nobody listens on
    now = NOW + timedelta(minutes=1)
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["webhooks", "deliver", "--now", now.isoformat()])
    assert result.exit_code == 1, result.output
    assert "送信 0 件、失敗 1 件、未送信 1 件" in result.stdout
    assert "エラー: 1 件を送信できませんでした" in result.stderr
    back = Receiver(port)
    try:
        result = runner.invoke(main, ["webhooks", "deliver", "--now", (now + timedelta(minutes=5)).isoformat()])
        assert result.exit_code == 0, result.output
        assert "送信 1 件、失敗 0 件、未送信 0 件" in result.stdout and "エラー" not in result.stderr
    finally:
        back.stop()
    # Nothing due: nothing failed, exit 0.
    assert runner.invoke(main, ["webhooks", "deliver", "--now", (now + timedelta(hours=1)).isoformat()]).exit_code == 0
