"""Test fixtures: a real database (an SQLite file, or PostgreSQL when TSUNAGU_TEST_DATABASE_URL is set),
migrated to head once per run and emptied after each test that used it; factories for users and cases.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from engine import demo, migrate
from engine.cases import intake
from engine.cases.events import firing
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.models import Base, Case, Department, User
from engine.rules import store as rules
from engine.settings import PROJECT_ROOT
from engine.users.accounts import hash_password

CONFIG_DIR = PROJECT_ROOT / "config"
PASSWORD = "correct horse battery"
# 2026-11-30 (Mon) 10:00 JST: a business day, far from holidays.
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)


def _pg_url() -> str | None:
    return os.environ.get("TSUNAGU_TEST_DATABASE_URL") or None


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = _pg_url()
    if url is None:
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'tsunagu-test.db'}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    except Exception as exc:
        # In CI an unreachable PostgreSQL is a failure, never a silent skip.
        pytest.exit(f"PostgreSQL at {url} is not usable: {exc}", returncode=3)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def db_engine(database_url):
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _empty_database_after_test(request):
    yield
    if "db_engine" not in request.fixturenames:
        return
    engine = request.getfixturevalue("db_engine")
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name == "audit_head":  # back to the one row the migration made (a test may delete it)
                conn.execute(text("DELETE FROM audit_head"))
                conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
            else:
                conn.execute(table.delete())


@pytest.fixture
def sessions(db_engine):
    return make_session_factory(db_engine)


@pytest.fixture
def session(sessions):
    s = sessions()
    yield s
    s.rollback()
    s.close()


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def departments(sessions):
    """The Hatsukaichi departments and the demo rules, committed; returns {code: id}."""
    with unit_of_work(sessions) as s:
        demo.load_departments(s, CONFIG_DIR)
        rules.install_rules(s, CONFIG_DIR / "routing.yaml", loaded_by="tests")
        return {d.code: d.id for d in s.query(Department)}


@pytest.fixture
def make_user(sessions, departments, password_hash):
    """Factory: make_user("fm", "community_welfare") → a committed User (password PASSWORD)."""
    counter = {"n": 0}

    def make(role: str = "staff", department: str = "desk", login: str | None = None, **kw) -> User:
        counter["n"] += 1
        login = login or f"{role}-{department}-{counter['n']}".replace("_", "-")
        with unit_of_work(sessions) as s:
            u = User(login=login, display_name=kw.pop("display_name", login), role=role,
                     department_id=departments[department], password_hash=password_hash, **kw)
            s.add(u)
            s.flush()
            s.expunge(u)
        return u

    return make


@pytest.fixture
def actors(make_user):
    """A cast: window staff (desk), receiving staff of several departments, an FM, an admin."""
    class Cast:
        window = make_user("staff", "desk", login="window")
        elderly = make_user("staff", "elderly", login="elderly")
        livelihood = make_user("staff", "livelihood", login="livelihood")
        hikikomori = make_user("staff", "hikikomori_station", login="hikikomori")
        shakyo = make_user("staff", "shakyo", login="shakyo")
        health = make_user("staff", "health", login="health-staff")
        children = make_user("staff", "children", login="children")
        fm = make_user("fm", "community_welfare", login="fm")
        fm2 = make_user("fm", "community_welfare", login="fm2")
        admin = make_user("admin", "community_welfare", login="admin")

    return Cast


def intake_fields(**over) -> dict:
    """A valid consultation; `categories=["poverty"]` routes to 生活福祉課 under the demo rules."""
    fields = {
        "person": {"name": "廿日 太郎", "name_kana": "ハツカ タロウ", "birth_date": "1960-05-01", "area": "廿日市"},
        "categories": ["poverty"],
        "summary": "失職して家賃を滞納している。",
        "source": "window",
        "urgency": "normal",
    }
    fields.update(over)
    return fields


@pytest.fixture
def open_case(sessions, actors):
    """Factory: open_case(**intake overrides) → the committed case id (routed by the demo rules)."""
    def make(actor=None, now=NOW, **over) -> int:
        with unit_of_work(sessions) as s:
            case = intake.open_case(s, actor or actors.window, intake_fields(**over), now=now)
            return case.id

    return make


@pytest.fixture
def fire(sessions):
    """Fire an event in its own committed transaction: fire(actor, case_id, event, **fields) → state."""
    def do(actor, case_id: int, event: str, now=NOW, **fields) -> str:
        with unit_of_work(sessions) as s:
            version = s.get(Case, case_id).version
            case = firing.fire_event(s, actor, case_id, event, version=version, fields=fields, now=now)
            return case.state

    return do


@pytest.fixture
def config_dir() -> Path:
    return CONFIG_DIR


@pytest.fixture
def app(database_url, db_engine, tmp_path):
    """The Flask app on the test database."""
    from web import create_app

    application = create_app({"DATABASE_URL": database_url, "TESTING": True, "SECRET_KEY": "test-secret",
                              "WTF_CSRF_ENABLED": False})
    application.instance_path = str(tmp_path)
    yield application
    application.extensions["tsunagu.engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def login(client):
    """login(user) signs the test client in through the real sign-in form."""
    def do(user, password: str = PASSWORD):
        response = client.post("/login", data={"login": user.login, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return do


@pytest.fixture
def cli(app):
    """cli("demo") runs a `tsunagu` command against the test app; returns click's Result."""
    from web.cli import main

    runner = app.test_cli_runner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), input=input)

    return invoke
