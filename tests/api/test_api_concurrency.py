"""Concurrent posts of one referral through a real HTTP server: exactly one case, whatever the timing."""
from __future__ import annotations

import http.client
import json
import threading

import pytest
from werkzeug.serving import make_server

from engine.models import Case, IdempotencyKey
from tests.api.support import count, referral

pytestmark = pytest.mark.slow
THREADS = 20


@pytest.fixture
def server(app):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_port
    srv.shutdown()
    thread.join(10)


def _post_all(port: int, token: str, bodies_and_keys: list[tuple[dict, str]]) -> list[tuple[int, dict, dict]]:
    barrier = threading.Barrier(len(bodies_and_keys))
    results: list = [None] * len(bodies_and_keys)

    def one(i: int, body: dict, key: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        data = json.dumps(body).encode()
        barrier.wait()
        conn.request("POST", "/api/v1/referrals", body=data, headers={
            "Authorization": f"Bearer {token}", "Idempotency-Key": key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        results[i] = (resp.status, dict(resp.getheaders()), json.loads(resp.read()))
        conn.close()

    threads = [threading.Thread(target=one, args=(i, b, k)) for i, (b, k) in enumerate(bodies_and_keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_twenty_posts_with_one_key_create_one_case(server, partner, sessions):
    results = _post_all(server, partner, [(referral(), "same-key")] * THREADS)
    assert all(r is not None for r in results)
    # Retries wait for the first and get its answer: never a second case, and never a refusal either.
    assert [status for status, _, _ in results] == [201] * THREADS, results
    created = [body for status, _, body in results]
    assert all(body == created[0] for body in created)
    originals = [h for status, h, _ in results if status == 201 and "Idempotent-Replayed" not in h]
    assert len(originals) == 1
    assert count(sessions, Case) == 1 and count(sessions, IdempotencyKey) == 1


def test_twenty_keys_for_one_referral_create_one_case(server, partner, sessions):
    results = _post_all(server, partner, [(referral(), f"key-{i}") for i in range(THREADS)])
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * (THREADS - 1), results
    winner = next(body for status, _, body in results if status == 201)
    for status, _, body in results:
        if status == 409:
            assert body["type"] == "/api/v1/problems/duplicate-referral"
            assert body["existing_referral"]["id"] == winner["id"]
    assert count(sessions, Case) == 1 and count(sessions, IdempotencyKey) == 1
