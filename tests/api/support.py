"""Helpers of the API tests: the contract's example referral, requests with a token, checks of answers."""
from __future__ import annotations

import copy

from sqlalchemy import func, select

from engine.db import unit_of_work
from schemas.referrals import EXAMPLE

REFERRAL = EXAMPLE  # the contract's example referral


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
