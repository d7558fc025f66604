"""The test database between tests: emptied after each one, except for what the seeding fixtures committed
(the departments and rules of `departments`, the cast of `actors`), which is kept for the next test that
asks for it as long as no test changed it.

Seeding costs more than most tests, and most tests only read it. After each test every row the test added
is deleted and the kept rows are compared with what the seeding wrote: a test that changed one (a
department's commission, a user's lock, the rules in force) leaves a database that is emptied entirely,
and the next test that needs the seed has it written again. A test that does not ask for the seed finds
none of it.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from engine.models import AuditHead, Base

ZERO_HEAD = {"seq": 0, "hash": "0" * 64}
NOTHING, DEPARTMENTS, CAST = 0, 1, 2


class SeededDatabase:
    """The suite's database and how much of the seed it holds (NOTHING, DEPARTMENTS, or CAST too)."""

    def __init__(self, engine: Engine, seeders: dict[int, Callable[[], None]]):
        """`seeders[level]` commits the rows that level adds to the one below it."""
        self.engine = engine
        self.seeders = seeders
        self.level = NOTHING
        # level → {table name: rows as seeded} and the audit chain's head after seeding that level
        self._rows: dict[int, dict[str, list[tuple]]] = {NOTHING: {}}
        self._head: dict[int, dict] = {NOTHING: ZERO_HEAD}

    def ensure(self, level: int) -> None:
        """Before a test, ahead of its own fixtures: hold the seed up to `level`, writing what is missing."""
        while self.level < level:
            self._seed(self.level + 1)

    def _seed(self, level: int) -> None:
        self.seeders[level]()
        with self.engine.connect() as conn:
            rows = {t.name: _rows(conn, t) for t in Base.metadata.sorted_tables if t.name != AuditHead.__tablename__}
            self._rows[level] = {name: kept for name, kept in rows.items() if kept}
            head = conn.execute(select(AuditHead.seq, AuditHead.hash)).one()
            self._head[level] = {"seq": head.seq, "hash": head.hash}
        self.level = level

    def hold(self, level: int) -> None:
        """Before a test, ahead of its own fixtures: exactly the seed up to `level`, nothing more."""
        if self.level > level:
            self._clean_to(level)
        self.ensure(level)

    def clean(self) -> None:
        """After a test: delete what it added; if it changed the seed, delete that too."""
        self._clean_to(self.level)

    def _clean_to(self, level: int) -> None:
        seeded = self._rows[level]
        with self.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name == AuditHead.__tablename__:
                    continue
                keep = seeded.get(table.name)
                if keep:
                    (pk,) = table.primary_key.columns
                    conn.execute(table.delete().where(pk > max(row[0] for row in keep)))
                else:
                    conn.execute(table.delete())
            intact = all(_rows(conn, table) == seeded.get(table.name, [])
                         for table in Base.metadata.sorted_tables if table.name in seeded)
            if not intact:
                for table in reversed(Base.metadata.sorted_tables):
                    if table.name != AuditHead.__tablename__:
                        conn.execute(table.delete())
                level = NOTHING
            _set_head(conn, self._head[level])
        self.level = level


def _rows(conn: Connection, table) -> list[tuple]:
    return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def _set_head(conn: Connection, head: dict) -> None:
    """The chain's head back to what it was (a test may have deleted the row the migration made)."""
    if conn.execute(update(AuditHead).where(AuditHead.id == 1).values(**head)).rowcount == 0:
        conn.execute(AuditHead.__table__.insert().values(id=1, **head))
