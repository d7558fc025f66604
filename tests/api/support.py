"""Helpers of the API tests: the contract's example referral, requests with a token, checks of answers."""
from __future__ import annotations

import copy
import http.client
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import func, select

from engine.db import unit_of_work
from schemas.referrals import EXAMPLE

REFERRAL = EXAMPLE  # the contract's example referral
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def referral(**over) -> dict:
    """The contract's example referral, with top-level fields replaced."""
    body = copy.deepcopy(REFERRAL)
    body.update(over)
    return body


def auth(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def post_referral(client, token: str, body=None, key: str | None = "key-1", **headers):
    h = auth(token, **headers)
    if key is not None:
        h["Idempotency-Key"] = key
    return client.post("/api/v1/referrals", json=referral() if body is None else body, headers=h)


def count(sessions, model, *where) -> int:
    with unit_of_work(sessions) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def assert_problem(resp, status: int, name: str) -> dict:
    """The answer is application/problem+json of the given status and type; returns its body."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["type"] == f"/api/v1/problems/{name}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert "Traceback" not in resp.get_data(as_text=True)
    return body


@contextmanager
def served(database_url: str, instance_dir: Path, workers: int = 1) -> Iterator[int]:
    """`tsunagu serve` (gunicorn) on a free local port, on the test database; yields the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test", "TSUNAGU_INSTANCE_DIR": str(instance_dir),
           "TSUNAGU_CONFIG_DIR": str(PROJECT_ROOT / "config")}
    log_path = instance_dir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", "from web.cli import main; main()", "serve", "--host",
                                 "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                                env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("the server did not start: " + log_path.read_text(errors="replace")[-2000:])
                time.sleep(0.1)
            yield port
        finally:
            proc.terminate()
            proc.wait(20)
