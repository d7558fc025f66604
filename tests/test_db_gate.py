"""The SQLite write gate (engine.db): writers of one file wait in line, across threads and processes."""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading

import pytest
from sqlalchemy import text

from engine import db


def _engine(path):
    return db.make_engine(f"sqlite:///{path}")


def _bump(path, rounds: int, threads: int) -> None:
    engine = _engine(path)
    barrier = threading.Barrier(threads)
    errors = []

    def work():
        barrier.wait()  # every thread's first write at once: the gate opens its file once
        try:
            for _ in range(rounds):
                with engine.begin() as conn:
                    conn.execute(text("UPDATE counter SET n = n + 1"))
                    conn.execute(text("INSERT INTO log (n) SELECT n FROM counter"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: first uses race if they can
    try:
        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    engine.dispose()
    if errors:
        raise errors[0]
    writer = os.path.realpath(f"{path}-writer")
    opened = [fd for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == writer]
    assert len(opened) <= 1


def test_writers_of_threads_and_processes_take_turns(tmp_path):
    path = tmp_path / "gate.db"
    engine = _engine(path)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        conn.execute(text("CREATE TABLE log (n INTEGER NOT NULL UNIQUE)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    # The parent has used the gate before forking: the children must not share its lock or its file.
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_bump, args=(path, 20, 8)) for _ in range(2)]
    for p in children:
        p.start()
    _bump(path, 20, 8)
    for p in children:
        p.join(60)
        assert p.exitcode == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 3 * 8 * 20
        assert conn.execute(text("SELECT count(*) FROM log")).scalar_one() == 3 * 8 * 20
    engine.dispose()


def _held(gate) -> bool:
    """True if a writer of this process is in the gate (seen from another thread)."""
    free = []
    t = threading.Thread(target=lambda: free.append(gate._lock.acquire(timeout=0.01) and not gate._lock.release()))
    t.start()
    t.join()
    return not free[0]


def test_the_gate_is_left_on_commit_rollback_and_errors(tmp_path):
    engine = _engine(tmp_path / "gate.db")
    gate = db._gate_for(str(tmp_path / "gate.db"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _held(gate)
    assert not _held(gate)
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError
    assert not _held(gate)
    with pytest.raises(Exception):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))  # unique: refused
    assert not _held(gate)
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (3)"))
        assert _held(gate)
    # Closed without commit: the pool's reset rolls back and leaves the gate.
    assert not _held(gate)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    engine.dispose()


def test_a_writer_waits_no_longer_than_the_busy_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "BUSY_TIMEOUT_SECONDS", 0.2)
    engine = _engine(tmp_path / "gate.db")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = engine.connect()
    holder.execute(text("INSERT INTO t VALUES (1)"))
    failure = []

    def other():
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (2)"))
        except Exception as exc:
            failure.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert failure and "database is locked" in str(failure[0])
    holder.rollback()
    holder.close()
    engine.dispose()


def test_a_turn_keeps_other_threads_out_until_it_ends(tmp_path):
    engine = _engine(tmp_path / "gate.db")
    gate = db._gate_for(str(tmp_path / "gate.db"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with db.write_turn(engine):
        assert _held(gate)
        with engine.begin() as conn:  # the turn's own thread writes as usual
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _held(gate)  # the transaction ended; the turn goes on
    assert not _held(gate)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    engine.dispose()
    with db.write_turn(db.make_engine("sqlite://")):
        pass  # nothing to wait for in memory (nor on PostgreSQL)


def test_another_thread_may_end_a_writers_hold(tmp_path):
    # E.g. the pool's finalizer rolls back a connection its thread abandoned mid-transaction.
    engine = _engine(tmp_path / "gate.db")
    gate = db._gate_for(str(tmp_path / "gate.db"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    raw = engine.raw_connection()
    raw.driver_connection.execute("INSERT INTO t VALUES (1)")
    assert _held(gate)
    t = threading.Thread(target=raw.driver_connection.rollback)
    t.start()
    t.join()
    assert not _held(gate)
    raw.close()
    engine.dispose()
