"""API test fixtures: the app on the test database, API clients with tokens."""
from __future__ import annotations

import pytest

from engine.db import unit_of_work
from engine.referrals import clients as api_clients


@pytest.fixture(scope="session")
def app(database_url, db_engine):
    from web import create_app

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True})
    yield app
    app.extensions["tsunagu.engine"].dispose()


@pytest.fixture
def client(app, departments):
    return app.test_client()


@pytest.fixture
def make_token(sessions, departments):
    """Factory: make_token("referrals:write,referrals:read", user=None, name=None) → the bearer token."""
    counter = {"n": 0}

    def make(scopes: str = "referrals:write,referrals:read", user=None, name: str | None = None) -> str:
        counter["n"] += 1
        with unit_of_work(sessions) as s:
            _, token = api_clients.create_token(s, client_name=name or f"client-{counter['n']}",
                                                scopes=scopes.split(","),
                                                user_login=getattr(user, "login", user))
        return token

    return make


@pytest.fixture
def partner(make_token):
    """A partner system's token: referrals:write and referrals:read, no staff user."""
    return make_token("referrals:write,referrals:read", name="oono-houkatsu")
