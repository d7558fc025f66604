"""Database engines and sessions: SQLite (embedded default) and PostgreSQL (production)."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from engine import case_departments  # noqa: F401  (its import registers the flush listener)

BUSY_TIMEOUT_SECONDS = 15
_DML = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class _WriteGate:
    """One SQLite file's writers, in line: threads of a process on a lock, processes on an flock.

    SQLite lets one transaction write at a time; the others poll its busy handler, sleeping up to 100 ms
    between tries, so the lock often sits free while a waiter sleeps and a late waiter can lose again and
    again. Here a process's threads queue on a lock (the next is woken as soon as the one before it ends)
    and only one thread per process tries the file's flock, every 2 ms at most. Past the busy timeout a
    waiter fails as SQLite would ("database is locked"). The busy handler still guards against writers
    that do not pass the gate (another program, schema changes outside a transaction).

    Work known to write (a referral) may take its process's place in line before it starts (`turn`, like
    BEGIN IMMEDIATE for the process): its reads then run while the other process writes, and the writer
    does not wait for the interpreter behind threads of its own process that are still reading.
    """

    def __init__(self, path: str):
        self.path = path + "-writer"
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread holding the lock, which may take it again
        self._depth = 0
        self._fd: int | None = None  # opened by the first writer, under the lock
        self._writers = 0  # this process's connections in a write transaction (all on the owner thread)

    def _enter(self, timeout: float) -> None:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return
        if not self._lock.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked")
        self._owner, self._depth = me, 1

    def _exit(self) -> None:
        # Any thread may end a hold (a connection closed by the pool's finalizer, say).
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()

    def acquire(self, timeout: float) -> None:
        """A connection's turn to write: the process's lock, then the file's flock."""
        deadline = time.monotonic() + timeout
        self._enter(timeout)
        try:
            if self._writers == 0:
                self._flock(deadline)
            self._writers += 1
        except BaseException:
            self._exit()
            raise

    def release(self) -> None:
        self._writers -= 1
        if self._writers == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._exit()

    def _flock(self, deadline: float) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        delay = 0.0002
        # Another process holds the file for one write transaction (a few ms): it is asked again at most
        # every half millisecond, so that the turn passes soon after it is free (at 2 ms, up to a quarter of
        # a referral's time went to noticing). The waiting costs a few thousand wake-ups a second.
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.0005)

    @contextmanager
    def turn(self, timeout: float) -> Iterator[None]:
        """Hold the process's place in line for a whole piece of work that will write: the thread's
        reads before its first write then do not compete for the interpreter with the writer."""
        self._enter(timeout)
        try:
            yield
        finally:
            self._exit()

    def _after_fork(self) -> None:
        # A forked process (a gunicorn worker) must share neither its parent's lock nor its open file.
        self._lock = threading.Lock()
        self._owner, self._depth, self._writers = None, 0, 0
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_GATES: dict[str, _WriteGate] = {}
_GATES_LOCK = threading.Lock()


def _gates_after_fork() -> None:
    global _GATES_LOCK
    _GATES_LOCK = threading.Lock()
    for gate in _GATES.values():
        gate._after_fork()


os.register_at_fork(after_in_child=_gates_after_fork)


def _gate_for(path: str) -> _WriteGate:
    key = os.path.realpath(path)
    with _GATES_LOCK:
        if key not in _GATES:
            _GATES[key] = _WriteGate(key)
        return _GATES[key]


class _GatedCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=()):
        self.connection._enter_gate(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection._leave_gate_if_done()

    def executemany(self, sql, seq_of_parameters):
        self.connection._enter_gate(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection._leave_gate_if_done()


class GatedConnection(sqlite3.Connection):
    """A connection that passes its file's write gate before a write transaction begins.

    With the driver's implicit transactions, a transaction begins at the first INSERT, UPDATE, DELETE or
    REPLACE; the gate is taken just before it and left when the transaction commits or rolls back.
    """

    gate: _WriteGate | None = None
    _holds_gate = False

    def cursor(self, factory=_GatedCursor):
        return super().cursor(factory)

    def execute(self, sql, parameters=()):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        return self.cursor().executemany(sql, seq_of_parameters)

    def _enter_gate(self, sql: str) -> None:
        if self.gate is None or self._holds_gate or self.in_transaction:
            return
        if sql.lstrip()[:7].upper().startswith(_DML):
            self.gate.acquire(BUSY_TIMEOUT_SECONDS)
            self._holds_gate = True

    def _leave_gate_if_done(self) -> None:
        if self._holds_gate and not self.in_transaction:
            self._holds_gate = False
            self.gate.release()

    def commit(self):
        try:
            super().commit()
        finally:
            self._leave_gate_if_done()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._leave_gate_if_done()

    def close(self):
        try:
            super().close()
        finally:
            if self._holds_gate:
                self._holds_gate = False
                self.gate.release()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed action survives a power cut.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    # What is deleted or overwritten is zeroed in the file, not left in its free space (retention removes
    # personal data; it must not stay readable in the file's bytes). Debian's SQLite is built with this on;
    # other builds are not, so it is asked for.
    cur.execute("PRAGMA secure_delete=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
    cur.close()


def _gate_of(url) -> _WriteGate | None:
    """The write gate of an SQLite file's URL (None for other databases and in-memory ones)."""
    path = sqlite_file(url)
    return None if path is None else _gate_for(str(path))


def sqlite_file(url) -> Path | None:
    """The file an SQLite URL names (None for other databases, in-memory ones and `file:` URIs)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:" or u.database.startswith("file:"):
        return None
    return Path(u.database)


def _gated_factory(gate: _WriteGate):
    return type("GatedConnection", (GatedConnection,), {"gate": gate})


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine; SQLite files get WAL, synchronous=FULL, foreign keys, a busy timeout and the write
    gate (writers of the file wait in line instead of polling SQLite's busy handler)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("timeout", BUSY_TIMEOUT_SECONDS)
        if u.database and u.database != ":memory:":
            gate = _gate_of(u)
            if gate is not None:
                connect_args.setdefault("factory", _gated_factory(gate))
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@contextmanager
def write_turn(engine: Engine) -> Iterator[None]:
    """Wait for this process's turn to write before starting work that will write (SQLite files; a
    no-op elsewhere). The turn lasts until the block ends; the database's write lock is still taken
    by the first write and left at commit."""
    gate = _gate_of(engine.url)
    if gate is None:
        yield
        return
    with gate.turn(BUSY_TIMEOUT_SECONDS):
        yield


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on `engine`; every flush through them keeps `case_departments` (engine.case_departments)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit when the block ends normally, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# SQLSTATEs of a transaction that lost to a concurrent one: deadlock, serialization failure, and a unique
# key taken by a transaction that committed first.
_LOST_RACE_SQLSTATES = {"40P01", "40001", "23505"}


def lost_race(exc: BaseException) -> bool:
    """Whether `exc` means the action collided with a concurrent one and was rolled back whole.

    Each action is one transaction, so nothing of it was kept: the person is told that someone acted at
    the same moment (409), not that the system failed. The engine refuses the races it foresees itself
    (stale versions, compare-and-set); this catches the ones the database settles: a version check seen
    by the ORM (StaleDataError), a PostgreSQL deadlock or serialization failure, a unique key taken by a
    transaction that committed first (also on SQLite).
    """
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm.exc import StaleDataError

    if isinstance(exc, StaleDataError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _LOST_RACE_SQLSTATES:
        return True
    return isinstance(orig, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(orig)
