"""The migrations build exactly the schema the models describe, from an empty database."""
from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url

from engine import demo, migrate
from engine.alerts import scan
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.models import Alert, Base, Plan


def _diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return compare_metadata(ctx, Base.metadata)


def test_empty_database_migrates_to_head_matching_the_models(database_url, tmp_path):
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
        migrate.upgrade(fresh)
        engine = make_engine(fresh)
        try:
            assert migrate.is_at_head(engine)
            assert _diff(engine) == []
        finally:
            engine.dispose()
        return
    # PostgreSQL: a schema of its own, so the suite's database is left alone.
    schema = f"migr_{uuid.uuid4().hex[:8]}"
    admin = make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    try:
        migrate.upgrade(scoped)
        engine = make_engine(scoped)
        try:
            assert migrate.is_at_head(engine)
            assert _diff(engine) == []
        finally:
            engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_suite_database_is_at_head(db_engine):
    assert migrate.is_at_head(db_engine)
    assert _diff(db_engine) == []


@pytest.mark.slow
def test_down_and_up_again_keeps_every_row(tmp_path, database_url, db_engine):
    """On SQLite a batch operation rebuilds its table; with foreign keys enforced, dropping `plans` would take
    its roles, evaluations and alerts with it. Down to before this session's revisions and back up keeps
    every row of a database with the demo in it."""
    from alembic import command
    from sqlalchemy import inspect

    from tests.conftest import CONFIG_DIR

    if make_url(database_url).get_backend_name() != "sqlite":
        url = database_url  # PostgreSQL: the suite's own database, emptied after the test (db_engine)
    else:
        url = f"sqlite:///{tmp_path / 'round.db'}"
        migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as s:
            demo.load(s, CONFIG_DIR)

        # Alerts of kinds a later revision brought (a share waiting for a basis …) go with its downgrade.
        later_kinds = "('basis_needed', 'handed_back', 'notice_unseen')"

        def counts():
            with engine.connect() as conn:
                return {t: conn.execute(text(f"SELECT count(*) FROM {t}" + (
                            f" WHERE kind NOT IN {later_kinds}" if t == "alerts" else ""))).scalar()
                        for t in sorted(inspect(conn).get_table_names()) if t != "alembic_version"}

        before = counts()
        assert before["plan_roles"] and before["evaluations"] and before["alerts"] and before["provisions"]
        config = migrate.alembic_config(url)
        command.downgrade(config, "0011")
        command.upgrade(config, "head")
        # A table a later revision made goes with its downgrade; every other row stays.
        made_since = {"provisions", "households", "person_candidates", "person_merges", "meeting_attendees"}
        assert {t: n for t, n in counts().items() if t not in made_since} == {
            t: n for t, n in before.items() if t not in made_since}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_alerts_held_before_0012_keep_or_lose_their_subject_by_the_old_rule(tmp_path):
    """An alert resolved by hand whose plan was evaluated afterwards (by the times, the rule before 0012)
    is given no subject, and the next scan lets its key go; one whose plan is unchanged keeps it held."""
    from datetime import datetime, timedelta, timezone

    from alembic import command
    from sqlalchemy import select, update

    from tests.conftest import CONFIG_DIR

    url = f"sqlite:///{tmp_path / 'held.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    later = datetime(2027, 6, 1, 1, 0, tzinfo=timezone.utc)
    try:
        with unit_of_work(sessions) as s:
            demo.load(s, CONFIG_DIR)
        scan.scan(sessions, later, kinds=("evaluation_overdue",))
        with unit_of_work(sessions) as s:
            moved, kept = s.scalars(select(Alert).where(Alert.kind == "evaluation_overdue").order_by(Alert.id)).all()
            s.execute(update(Alert).where(Alert.kind == "evaluation_overdue").values(status="resolved"))
            s.execute(update(Plan).where(Plan.case_id == moved.case_id, Plan.status == "active")
                      .values(evaluated_at=later + timedelta(hours=1)))
            moved_id, kept_id = moved.id, kept.id
        config = migrate.alembic_config(url)
        command.downgrade(config, "0011")
        command.upgrade(config, "head")
        with sessions() as s:
            assert s.get(Alert, moved_id).plan_id is None and s.get(Alert, kept_id).plan_id is not None
        scan.scan(sessions, later + timedelta(days=1), kinds=("evaluation_overdue",))
        with sessions() as s:
            assert s.get(Alert, moved_id).open_key is None
            assert s.get(Alert, kept_id).open_key is not None and s.get(Alert, kept_id).status == "resolved"
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.slow
def test_0022_adds_the_agencies_of_a_layered_meeting_and_takes_them_back_keeping_the_meetings(tmp_path):
    """0022 adds meeting_attendees; its downgrade drops that table alone, the meetings and their plans stay."""
    from alembic import command
    from sqlalchemy import inspect

    from tests.conftest import CONFIG_DIR

    url = f"sqlite:///{tmp_path / 'attendees.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as s:
            demo.load(s, CONFIG_DIR)

        def count(table: str) -> int:
            with engine.connect() as conn:
                return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()

        meetings, plans = count("meetings"), count("plans")
        assert count("meeting_attendees") > 0  # the demo's plans were decided at meetings with their agencies
        config = migrate.alembic_config(url)
        command.downgrade(config, "0021")
        with engine.connect() as conn:
            assert "meeting_attendees" not in inspect(conn).get_table_names()
        assert (count("meetings"), count("plans")) == (meetings, plans)
        command.upgrade(config, "head")
        assert count("meeting_attendees") == 0 and (count("meetings"), count("plans")) == (meetings, plans)
        assert _diff(engine) == []
    finally:
        engine.dispose()


@pytest.mark.slow
def test_0018_makes_one_person_per_resident_id_and_households_of_the_lists(tmp_path):
    """Before 0018 each case had its own person row and a household list. The revision makes the rows with
    one 宛名番号 one person (the others kept, merged into the oldest, with what moved), and each person's
    lists one household with the person and the listed members (relative to the person, no record of
    their own)."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'people.db'}"
    config = migrate.alembic_config(url)
    command.upgrade(config, "0017")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for pid, name, rid, born in ((1, "廿日 花子", "0501", None), (2, "廿日 はなこ", "0501", None),
                                         (3, "宮島 次郎", None, "1950-01-01"), (4, "宮嶋 次郎", None, "1950-01-01"),
                                         (5, "宮島 次郎", "0777", "1950-01-02")):
                conn.execute(text("INSERT INTO people (id, name, search_key, resident_id, birth_date) "
                                  "VALUES (:i, :n, '', :r, :b)"), {"i": pid, "n": name, "r": rid, "b": born})
            for cid, pid in ((1, 1), (2, 2), (3, 3)):
                conn.execute(text(
                    "INSERT INTO cases (id, case_number, person_id, summary, source, urgency, state, "
                    "consent_to_share, opened_at, updated_at, version, business_categories, "
                    "multi_agency_candidate) VALUES (:c, :n, :p, 's', 'window', 'normal', 'intake', false, "
                    ":at, :at, 1, '[]', false)"),
                    {"c": cid, "n": f"R8-{cid:06d}", "p": pid, "at": f"2026-0{cid}-01 00:00:00.000000"})
            for cid, label, name in ((1, "長男", "廿日 一郎"), (2, "長男", "廿日 一郎"), (3, "妻", None)):
                conn.execute(text("INSERT INTO household_members (case_id, relationship_label, name) "
                                  "VALUES (:c, :l, :n)"), {"c": cid, "l": label, "n": name})
        command.upgrade(config, "0018")
        with engine.connect() as conn:
            rows = lambda sql: [tuple(r) for r in conn.execute(text(sql))]  # noqa: E731
            assert rows("SELECT id, person_id FROM cases ORDER BY id") == [(1, 1), (2, 1), (3, 3)]
            assert rows("SELECT id, merged_into_id, name_key FROM people ORDER BY id") == [
                (1, None, "廿日花子"), (2, 1, "廿日はなこ"), (3, None, "宮島次郎"), (4, None, "宮島次郎"),
                (5, None, "宮島次郎")]
            # The same birth date and name (嶋 folded to 島): a candidate for staff, not a merge.
            assert rows("SELECT person_id, candidate_id, reason, status FROM person_candidates") == [
                (4, 3, "name", "open")]
            assert rows("SELECT survivor_id, merged_id, case_ids FROM person_merges") == [(1, 2, "[2]")]
            # One household per person: the person, and the members their cases listed (each case's row kept).
            assert rows("SELECT household_id, person_id, relationship_label, relative_to_id, name, "
                        "recorded_with_case_id FROM household_members ORDER BY id") == [
                (1, 1, "本人", None, None, None), (1, None, "長男", 1, "廿日 一郎", 1),
                (1, None, "長男", 1, "廿日 一郎", 2),
                (2, 3, "本人", None, None, None), (2, None, "妻", 3, None, 3)]
        command.downgrade(config, "0017")
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text("SELECT id, person_id FROM cases ORDER BY id"))] == [
                (1, 1), (2, 2), (3, 3)]
            assert conn.execute(text("SELECT count(*) FROM household_members")).scalar() == 3
    finally:
        engine.dispose()


# --- the revision files and the `alembic` command --------------------------------------------------------

# The revision ids deployed databases hold in alembic_version, in the order they apply: never renamed.
DEPLOYED_CHAIN = ["0001", "0006", "0005", "0003", "0007", "0008", "0009", "0010", "0011", "0012", "0013", "0014",
                  "0015", "0016"]


def _scripts():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))


def test_file_names_sort_in_the_order_the_revisions_apply():
    from pathlib import Path

    scripts = _scripts()
    assert len(scripts.get_heads()) == 1
    chain = list(reversed(list(scripts.walk_revisions("base", "heads"))))  # base first
    assert chain[0].down_revision is None
    assert [s.revision for s in chain][:len(DEPLOYED_CHAIN)] == DEPLOYED_CHAIN
    files = sorted(p.name for p in (migrate.MIGRATIONS_DIR / "versions").glob("*.py") if p.name != "__init__.py")
    assert [Path(s.path).name for s in chain] == files


def test_every_file_name_carries_its_revision_after_the_date_and_time():
    import re
    from pathlib import Path

    for script in _scripts().walk_revisions():
        name = Path(script.path).name
        assert re.fullmatch(rf"\d{{8}}_\d{{4}}_{re.escape(script.revision)}_\w+\.py", name), name


def test_alembic_ini_names_new_files_and_finds_the_scripts_as_the_code_does():
    from pathlib import Path

    from alembic.config import Config

    from engine.settings import PROJECT_ROOT

    ini = Config(str(PROJECT_ROOT / "alembic.ini"))
    assert ini.get_main_option("file_template") == migrate.FILE_TEMPLATE
    assert migrate.alembic_config("sqlite://").get_main_option("file_template") == migrate.FILE_TEMPLATE
    assert Path(ini.get_main_option("script_location")).resolve() == migrate.MIGRATIONS_DIR
    assert not ini.get_main_option("sqlalchemy.url")  # DATABASE_URL, or the app's own SQLite file


def _alembic(cwd, *args, **env):
    """The installed `alembic` command in a process of its own, with `env` added to a clean setting."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TSUNAGU_", "DATABASE_URL"))}
    clean.update(env)
    command = Path(sys.executable).parent / "alembic"
    return subprocess.run([str(command), *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_the_alembic_command_works_from_the_checkout_on_the_apps_database(tmp_path):
    from engine.settings import PROJECT_ROOT

    head = migrate.head_revision()
    url = f"sqlite:///{tmp_path / 'alembic.db'}"
    env = {"DATABASE_URL": url, "TSUNAGU_INSTANCE_DIR": str(tmp_path / "unused")}

    def run(*args, cwd=PROJECT_ROOT):
        result = _alembic(cwd, *args, **env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert run("heads").split() == [head, "(head)"]
    assert run("current").strip() == ""
    run("upgrade", "0009")
    assert run("current").split() == ["0009"]
    run("upgrade", "head")
    assert run("current").split() == [head, "(head)"]
    history = run("history")
    assert all(f"{rev}" in history for rev in DEPLOYED_CHAIN)
    # From elsewhere, naming the file, as `alembic -c` is used.
    assert run("-c", str(PROJECT_ROOT / "alembic.ini"), "current", cwd=tmp_path).split() == [head, "(head)"]
    engine = make_engine(url)
    try:
        assert migrate.is_at_head(engine) and _diff(engine) == []
    finally:
        engine.dispose()
    assert not (tmp_path / "unused").exists()


@pytest.mark.slow
def test_the_alembic_command_without_database_url_uses_the_apps_sqlite_file(tmp_path):
    from engine.settings import PROJECT_ROOT

    instance = tmp_path / "instance"  # not there yet, as in a new checkout
    result = _alembic(PROJECT_ROOT, "upgrade", "head", TSUNAGU_INSTANCE_DIR=str(instance))
    assert result.returncode == 0, result.stderr
    engine = make_engine(f"sqlite:///{instance / 'tsunagu.db'}")
    try:
        assert migrate.is_at_head(engine)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_url_in_the_alembic_config_is_used_before_database_url(tmp_path):
    from engine.settings import PROJECT_ROOT

    named = tmp_path / "named.db"
    ini = tmp_path / "alembic.ini"
    ini.write_text((PROJECT_ROOT / "alembic.ini").read_text(encoding="utf-8")
                   .replace("%(here)s", str(PROJECT_ROOT))
                   .replace("[alembic]\n", f"[alembic]\nsqlalchemy.url = sqlite:///{named}\n"), encoding="utf-8")
    result = _alembic(tmp_path, "-c", str(ini), "upgrade", "head", DATABASE_URL=f"sqlite:///{tmp_path / 'other.db'}",
                      TSUNAGU_INSTANCE_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert named.exists() and not (tmp_path / "other.db").exists()
