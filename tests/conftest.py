"""Test fixtures: a real database (an SQLite file, or PostgreSQL when TSUNAGU_TEST_DATABASE_URL is set),
migrated to head once per run and emptied after each test that used it (tests/database_state.py keeps the
seeded departments, rules and cast while no test changes them); factories for users and cases.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text

from engine import demo, migrate
from engine.cases import intake
from engine.cases.events import firing
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.models import Case, Department, User
from engine.rules import store as rules
from engine.settings import PROJECT_ROOT
from engine.users import accounts
from engine.users.accounts import hash_password
from tests.database_state import CAST, DEPARTMENTS, NOTHING, SeededDatabase

# The cheapest password hashing argon2 allows here (the app, and the commands the tests start, read these);
# the cost itself is tested in test_password.py.
os.environ.setdefault("TSUNAGU_PASSWORD_TIME_COST", "1")
os.environ.setdefault("TSUNAGU_PASSWORD_MEMORY_KIB", "1024")
accounts.use_hash_cost(int(os.environ["TSUNAGU_PASSWORD_TIME_COST"]), int(os.environ["TSUNAGU_PASSWORD_MEMORY_KIB"]))
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


@pytest.fixture(scope="session")
def seeded(db_engine, password_hash) -> SeededDatabase:
    sessions = make_session_factory(db_engine)

    def departments_and_rules():
        with unit_of_work(sessions) as s:
            demo.load_departments(s, CONFIG_DIR)
            rules.install_rules(s, CONFIG_DIR / "routing.yaml", loaded_by="tests")

    def cast():
        with unit_of_work(sessions) as s:
            ids = dict(s.execute(select(Department.code, Department.id)).all())
            for role, department, login in CAST_MEMBERS.values():
                s.add(User(login=login, display_name=login, role=role, department_id=ids[department],
                           password_hash=password_hash))

    return SeededDatabase(db_engine, {DEPARTMENTS: departments_and_rules, CAST: cast})


@pytest.fixture(autouse=True)
def _database_between_tests(request):
    """Each test finds no more of the seed than it asks for, and leaves nothing behind."""
    if "db_engine" not in request.fixturenames:
        yield
        return
    state = request.getfixturevalue("seeded")
    asked = request.fixturenames
    state.hold(CAST if "actors" in asked else DEPARTMENTS if "departments" in asked else NOTHING)
    yield
    state.clean()


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
def departments(sessions, seeded):
    """The Hatsukaichi departments and the demo rules, committed; returns {code: id}."""
    seeded.ensure(DEPARTMENTS)  # already there, unless the test asked for this fixture on the way
    with sessions() as s:
        return {code: id_ for code, id_ in s.execute(select(Department.code, Department.id))}


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


# The cast: window staff (desk), receiving staff of several departments, two FMs, an admin.
# name → (role, department, login)
CAST_MEMBERS = {
    "window": ("staff", "desk", "window"),
    "elderly": ("staff", "elderly", "elderly"),
    "livelihood": ("staff", "livelihood", "livelihood"),
    "hikikomori": ("staff", "hikikomori_station", "hikikomori"),
    "shakyo": ("staff", "shakyo", "shakyo"),
    "health": ("staff", "health", "health-staff"),
    "children": ("staff", "children", "children"),
    "fm": ("fm", "community_welfare", "fm"),
    "fm2": ("fm", "community_welfare", "fm2"),
    "admin": ("admin", "community_welfare", "admin"),
}


@pytest.fixture
def actors(sessions, seeded, departments):
    """The cast, committed: `actors.window`, `actors.fm` … (detached User rows, read afresh for each test)."""
    seeded.ensure(CAST)
    with sessions() as s:
        by_login = {u.login: u for u in s.scalars(select(User).where(
            User.login.in_([login for _, _, login in CAST_MEMBERS.values()])))}
        s.expunge_all()
    return type("Cast", (), {name: by_login[login] for name, (_, _, login) in CAST_MEMBERS.items()})


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


@pytest.fixture(scope="session")
def app(database_url, db_engine, tmp_path_factory):
    """The Flask app on the test database, one for the run (a test that changes the app makes its own)."""
    from web import create_app

    application = create_app({"DATABASE_URL": database_url, "TESTING": True, "SECRET_KEY": "test-secret",
                              "WTF_CSRF_ENABLED": False})
    application.instance_path = str(tmp_path_factory.mktemp("instance"))
    yield application
    application.extensions["tsunagu.engine"].dispose()


@pytest.fixture(scope="session")
def pages_app(database_url, db_engine):
    """The app as the pages' tests use it (tests/pages_support.py): the forms' CSRF check on."""
    from web import create_app

    application = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "pages-test-secret", "TESTING": True})
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
