"""`tsunagu db backup FILE`: a consistent, checked, owner-only copy of the SQLite database, taken while
something else writes to it, that never replaces a file already there. Runs the installed command against
SQLite files of its own, whichever database the rest of the suite uses."""
from __future__ import annotations

import shutil
import sqlite3
import stat
import threading
import time

import pytest

from tests.test_cli import _tsunagu

pytestmark = pytest.mark.slow  # each test runs the command in a process of its own


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    path = folder / "demo.db"
    for args in (("db", "upgrade"), ("demo",)):
        result = _tsunagu(folder, *args, DATABASE_URL=f"sqlite:///{path}")
        assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def live(demo_file, tmp_path):
    """An SQLite database migrated and loaded with the demo (each test its own); returns its path."""
    path = tmp_path / "live.db"
    shutil.copyfile(demo_file, path)  # closed cleanly: nothing left in a WAL file
    return path


def _count(path, sql: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchone()[0]


def test_a_copy_taken_while_another_process_writes_is_whole_and_checks_out(live, tmp_path):
    (tmp_path / "copies").mkdir()
    target = tmp_path / "copies" / "tsunagu-2026-12-02.db"
    with sqlite3.connect(live) as conn:
        conn.execute("CREATE TABLE scratch (n INTEGER)")
    stop = threading.Event()
    written = []

    def write():
        conn = sqlite3.connect(live, timeout=30)
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # what it commits stays in the WAL file
        while not stop.is_set():
            with conn:
                conn.execute("INSERT INTO scratch VALUES (1)")
            written.append(1)
            time.sleep(0.001)
        conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 20:
            time.sleep(0.01)
        before = len(written)
        result = _tsunagu(tmp_path, "db", "backup", str(target), DATABASE_URL=f"sqlite:///{live}")
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 0, result.stderr
    assert "バックアップを作成しました" in result.stdout and str(target) in result.stdout
    assert written  # the writer did write while the copy was taken
    assert [p.name for p in (tmp_path / "copies").iterdir()] == [target.name]  # no partial file left
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # What was committed before the copy began is in it, though it sat only in the WAL file (a copy of
        # the database file alone would miss it).
        assert copy.execute("SELECT count(*) FROM scratch").fetchone()[0] >= before
    assert _count(target, "SELECT count(*) FROM cases") == _count(live, "SELECT count(*) FROM cases") > 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # The copy is a database the app opens as it is: its audit chain verifies.
    verified = _tsunagu(tmp_path, "audit", "verify", DATABASE_URL=f"sqlite:///{target}")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The live database records that a copy left it, and where to.
    with sqlite3.connect(live) as conn:
        rows = conn.execute("SELECT actor_label, detail FROM audit_events WHERE action = 'database.backup'").fetchall()
    assert len(rows) == 1 and rows[0][0] == "cli" and str(target) in rows[0][1]


def test_a_file_already_there_is_never_replaced(live, tmp_path):
    target = tmp_path / "yesterday.db"
    target.write_bytes(b"yesterday's copy")
    result = _tsunagu(tmp_path, "db", "backup", str(target), DATABASE_URL=f"sqlite:///{live}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "既にあります" in result.stderr and "上書きしません" in result.stderr
    assert target.read_bytes() == b"yesterday's copy"
    assert _count(live, "SELECT count(*) FROM audit_events WHERE action = 'database.backup'") == 0


@pytest.mark.parametrize("where,says", [("no-such-folder/copy.db", "保存先のフォルダ"), ("live.db", "既にあります")])
def test_a_target_that_cannot_be_used_is_a_message(live, tmp_path, where, says):
    result = _tsunagu(tmp_path, "db", "backup", str(tmp_path / where), DATABASE_URL=f"sqlite:///{live}")
    assert result.returncode == 1 and says in result.stderr and "Traceback" not in result.stderr


def test_a_database_file_that_is_not_there_is_said_and_not_created(tmp_path):
    missing = tmp_path / "missing.db"
    result = _tsunagu(tmp_path, "db", "backup", str(tmp_path / "copy.db"), DATABASE_URL=f"sqlite:///{missing}")
    assert result.returncode == 1 and "がありません" in result.stderr and "Traceback" not in result.stderr
    assert not missing.exists() and not (tmp_path / "copy.db").exists()


def test_postgresql_is_pointed_to_pg_dump(tmp_path):
    result = _tsunagu(tmp_path, "db", "backup", str(tmp_path / "copy.db"),
                      DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert result.returncode == 1 and "pg_dump" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "copy.db").exists()
