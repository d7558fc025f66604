"""Sign-in throttling per account and per address; disabling a user ends their sessions and tokens."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import access
from engine.cases import reading
from engine.db import unit_of_work
from engine.errors import NotFound, PermissionDenied
from engine.models import ApiClient, ApiToken, AuditEvent, User
from engine.users import accounts as users
from tests.conftest import NOW, PASSWORD


def test_failures_from_one_address_throttle_every_account_from_it(sessions, make_user):
    make_user("staff", "livelihood", login="kana")
    with unit_of_work(sessions) as s:
        for i in range(users.ADDRESS_ATTEMPTS):
            assert users.authenticate(s, f"guess-{i}", "x", remote_addr="203.0.113.9", now=NOW) is None
    with unit_of_work(sessions) as s:
        with pytest.raises(PermissionDenied):
            users.authenticate(s, "kana", PASSWORD, remote_addr="203.0.113.9", now=NOW + timedelta(minutes=1))
        # The same account from another address signs in; the first address is free again later.
        assert users.authenticate(s, "kana", PASSWORD, remote_addr="198.51.100.4", now=NOW).login == "kana"
        later = NOW + users.ADDRESS_WINDOW + timedelta(seconds=1)
        assert users.authenticate(s, "kana", PASSWORD, remote_addr="203.0.113.9", now=later).login == "kana"
    with sessions() as s:
        throttled = s.scalars(select(AuditEvent).where(AuditEvent.action == "login.throttled")).all()
        assert [(r.remote_addr, r.outcome) for r in throttled] == [("203.0.113.9", "refused")]


def test_one_below_the_address_limit_still_signs_in(sessions, make_user):
    make_user("staff", "livelihood", login="kana")
    with unit_of_work(sessions) as s:
        for i in range(users.ADDRESS_ATTEMPTS - 1):
            users.authenticate(s, f"guess-{i}", "x", remote_addr="203.0.113.9", now=NOW)
        assert users.authenticate(s, "kana", PASSWORD, remote_addr="203.0.113.9", now=NOW).login == "kana"


def test_failures_on_one_account_lock_it_from_every_address(sessions, make_user):
    make_user("staff", "livelihood", login="kana")
    with unit_of_work(sessions) as s:
        for i in range(users.FREE_ATTEMPTS):
            assert users.authenticate(s, "kana", "wrong", remote_addr=f"192.0.2.{i}", now=NOW) is None
    with unit_of_work(sessions) as s:
        with pytest.raises(PermissionDenied):
            users.authenticate(s, "kana", PASSWORD, remote_addr="192.0.2.200", now=NOW)


def test_disabling_a_user_ends_open_sessions_and_stops_their_tokens(app, sessions, make_user, open_case):  # noqa: F811
    user = make_user("staff", "desk", login="kana")
    case_id = open_case(actor=user, categories=["other"])
    with unit_of_work(sessions) as s:
        client = ApiClient(name="desk-tool", scopes=["cases:read"], user_id=user.id)
        s.add(client)
        s.flush()
        s.add(ApiToken(client_id=client.id, token_hash="0" * 64, prefix="tsu_0000"))
        client_id = client.id
    web = app.test_client()
    assert web.post("/login", data={"login": "kana", "password": PASSWORD}).status_code == 302
    assert web.get("/").status_code == 200
    with unit_of_work(sessions) as s:
        users.disable_user(s, None, "kana")
    answer = web.get("/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    with sessions() as s:
        assert s.scalar(select(User.active).where(User.login == "kana")) is False
        assert s.scalar(select(ApiToken.revoked_at).where(ApiToken.client_id == client_id)) is not None
        actor = access.actor_for_client(s.get(ApiClient, client_id))
        with pytest.raises(NotFound):
            reading.read_case(s, actor, case_id)
        row = s.scalar(select(AuditEvent).where(AuditEvent.action == "user.disable"))
        assert row.detail == {"tokens_revoked": 1}
    # Signing in again is refused too.
    assert web.post("/login", data={"login": "kana", "password": PASSWORD}).status_code == 401
