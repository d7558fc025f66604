"""TSUNAGU_PROXY_HOPS: behind a reverse proxy, the client's address (audit trail, per-address sign-in limit)
and scheme come from the proxy's X-Forwarded-For / X-Forwarded-Proto; without the setting those headers,
which anyone can write, are ignored."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import AuditEvent
from engine.settings import Settings
from engine.users import accounts as users
from tests.conftest import PASSWORD

# What a client sends through one proxy: its own (forged) X-Forwarded-For, to which the proxy appends the
# address it saw.
FORGED_THEN_SEEN = "198.51.100.66, 203.0.113.9"


@pytest.fixture
def proxied(database_url, db_engine, tmp_path):
    from web import create_app

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True,
                      "WTF_CSRF_ENABLED": False, "TSUNAGU_PROXY_HOPS": 1})
    app.instance_path = str(tmp_path)
    yield app.test_client()
    app.extensions["tsunagu.engine"].dispose()


def _sign_in(client, login: str, password: str, forwarded_for: str | None = None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post("/login", data={"login": login, "password": password}, headers=headers)


def _addresses(sessions, action: str) -> list[str | None]:
    with sessions() as s:
        return list(s.scalars(select(AuditEvent.remote_addr).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)))


def test_behind_the_proxy_the_audit_names_the_address_the_proxy_saw(proxied, sessions, make_user):
    make_user("staff", "livelihood", login="kana")
    assert _sign_in(proxied, "kana", "wrong", FORGED_THEN_SEEN).status_code == 401
    assert _sign_in(proxied, "kana", PASSWORD, "203.0.113.10").status_code == 302
    # The entry the client wrote itself is not believed: one proxy, one hop.
    assert _addresses(sessions, "login.failed") == ["203.0.113.9"]
    assert _addresses(sessions, "login") == ["203.0.113.10"]


def test_staff_behind_one_proxy_are_not_throttled_as_one_address(proxied, sessions, make_user):
    make_user("staff", "livelihood", login="kana")
    for i in range(users.ADDRESS_ATTEMPTS):
        assert _sign_in(proxied, f"guess-{i}", "x", "203.0.113.9").status_code == 401
    refused = _sign_in(proxied, "kana", PASSWORD, "203.0.113.9")
    assert refused.status_code == 401
    assert "この接続元からのログインの失敗が続いた" in refused.get_data(as_text=True)
    # Another desk behind the same proxy signs in.
    assert _sign_in(proxied, "kana", PASSWORD, "203.0.113.10").status_code == 302


def test_the_scheme_the_proxy_received_is_the_one_links_carry(proxied, client):
    headers = {"X-Forwarded-Proto": "https"}
    assert proxied.get("/admin", headers=headers).headers["Location"] == "https://localhost/admin/"
    assert client.get("/admin", headers=headers).headers["Location"] == "http://localhost/admin/"


def test_without_the_setting_forwarded_headers_are_ignored(client, sessions, make_user):
    make_user("staff", "livelihood", login="kana")
    assert _sign_in(client, "kana", "wrong", "203.0.113.9").status_code == 401
    assert _addresses(sessions, "login.failed") == ["127.0.0.1"]


def test_the_setting_is_a_small_whole_number():
    assert Settings.from_env({}).proxy_hops == 0
    assert Settings.from_env({"TSUNAGU_PROXY_HOPS": "2"}).proxy_hops == 2
