"""TSUNAGU_TRUSTED_HOSTS: a request to a host the operator did not name is refused before the app reads the
host to write a link (a Location, a list's `next`), on the pages and the API alike."""
from __future__ import annotations

import pytest

from engine.settings import Settings

HOSTS = ["tsunagu.city.example", ".lan.city.example"]


@pytest.fixture
def guarded(database_url, db_engine):
    from web import create_app

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True,
                      "TSUNAGU_TRUSTED_HOSTS": HOSTS})
    yield app.test_client()
    app.extensions["tsunagu.engine"].dispose()


@pytest.mark.parametrize("host", ["tsunagu.city.example", "tsunagu.city.example:8443", "app.lan.city.example"])
def test_a_named_host_is_answered(guarded, host):
    assert guarded.get("/healthz", headers={"Host": host}).status_code == 200
    login = guarded.get("/login", headers={"Host": host})
    assert login.status_code == 200 and "ログイン" in login.get_data(as_text=True)
    api = guarded.get("/api/v1/referrals", headers={"Host": host})
    assert api.status_code == 401  # the API's own answer: past the host check


@pytest.mark.parametrize("host", ["evil.example", "tsunagu.city.example.evil.example", "city.example"])
def test_any_other_host_is_refused_with_a_reason(guarded, host):
    page = guarded.get("/login", headers={"Host": host})
    assert page.status_code == 400 and page.mimetype == "text/plain"
    assert f"ホスト名「{host}」宛てのリクエストは受け付けません" in page.get_data(as_text=True)
    api = guarded.post("/api/v1/referrals", headers={"Host": host}, json={})
    assert api.status_code == 400 and api.mimetype == "application/problem+json"
    body = api.get_json()
    assert body["type"] == "/api/v1/problems/bad-request" and "TSUNAGU_TRUSTED_HOSTS" in body["detail"]


def test_without_the_setting_any_host_is_answered(app):
    assert app.test_client().get("/healthz", headers={"Host": "anything.example"}).status_code == 200


def test_the_setting_is_read_as_a_list():
    assert Settings.from_env({"TSUNAGU_TRUSTED_HOSTS": " a.example , b.example:8000"}).trusted_hosts == [
        "a.example", "b.example:8000"]
    assert Settings.from_env({}).trusted_hosts is None
