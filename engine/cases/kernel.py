"""The case kernel: what every use case on a case leans on.

Loading a case as far as the reader may see it, appending history, moving the version (and refusing a
stale one), numbering new cases. It leans on the ground floor only (models, the calendar, the access
policy); no feature module is imported here.

A use case takes a session, the acting user and plain values; checks who is asking and the state of things;
changes rows; appends history and audit; flushes. None commits: the request or the command that called it
does, once, and rolls back on any exception.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from engine import calendar
from engine.access.relations import Sight, relations, sight_of
from engine.errors import NotFound, StaleVersion
from engine.models import Case, CaseHistory, CaseNumberCounter, Handoff

_COUNTERS = CaseNumberCounter.__table__
_BUMP_CASE_NUMBER = (update(_COUNTERS).where(_COUNTERS.c.fiscal_year == bindparam("fy"))
                     .values(last_number=_COUNTERS.c.last_number + 1).returning(_COUNTERS.c.last_number))


def next_case_number(session: Session, now: datetime) -> str:
    """Give the next case number of the fiscal year, like R8-000123 (令和8年度の123件目)."""
    fy = calendar.fiscal_year(now.astimezone(calendar.JST).date())
    conn = session.connection()  # the counters are never loaded as objects: Core statements will do
    number = conn.execute(_BUMP_CASE_NUMBER, {"fy": fy}).scalar()
    if number is None:
        # The year's first case: make its counter (a concurrent first case may make it too), then count.
        ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(_COUNTERS)
        conn.execute(ins.values(fiscal_year=fy, last_number=0).on_conflict_do_nothing(index_elements=["fiscal_year"]))
        number = conn.execute(_BUMP_CASE_NUMBER, {"fy": fy}).scalar_one()
    return f"R{calendar.reiwa_year(fy)}-{number:06d}"


def record_history(session: Session, case: Case, actor, event: str, now: datetime, detail=None, *,
                   from_state: str | None = None, to_state: str, handoff_id: int | None = None) -> None:
    """Append a history row (append-only): a step of the case, or of one of its records (a sheet, a notice),
    whose own states `from_state` and `to_state` then are."""
    session.add(CaseHistory(case_id=case.id, event=event, from_state=from_state, to_state=to_state,
                            actor_id=getattr(actor, "id", None), at=now, detail=detail or {},
                            handoff_id=handoff_id))


def touch(case: Case, now: datetime) -> None:
    """Move the case's version (and updated_at) with a step that changes none of its own columns.

    Marked as changed even when `now` equals the stored time, so that the UPDATE, and with it the version
    check and the new version, always happens.
    """
    case.updated_at = now
    flag_modified(case, "updated_at")


def flush_or_stale(session: Session, case: Case | None = None) -> None:
    """Flush; a row that changed under us becomes StaleVersion (nothing of this action is kept)."""
    try:
        session.flush()
    except StaleDataError:
        current = None
        if case is not None:
            session.rollback()
            current = session.scalar(select(Case.version).where(Case.id == case.id))
        raise StaleVersion(current) from None


def add_business_category(case: Case, code: str) -> None:
    """Count the case under a 事業区分 from now on (kept once; the yearly report reads them)."""
    if code not in (case.business_categories or []):
        case.business_categories = [*(case.business_categories or []), code]


CASE_NOT_FOUND = "指定されたケースは見つかりません。"


def load_case(session: Session, actor, case_id: int, *, for_update: bool = False,
              min_sight: Sight = Sight.METADATA, not_found: str = CASE_NOT_FOUND) -> Case:
    """Load a case the actor may see; NotFound otherwise (the actor may not learn that it exists).

    Reached through one of its records (a sheet, a meeting), the refusal names that record (`not_found`),
    as it would if the record did not exist: the answer must not tell an existing record from a missing one.
    """
    return load_case_with_relations(session, actor, case_id, for_update=for_update, min_sight=min_sight,
                                    not_found=not_found)[0]


def load_case_with_relations(session: Session, actor, case_id: int, *, for_update: bool = False,
                             min_sight: Sight = Sight.METADATA,
                             not_found: str = CASE_NOT_FOUND) -> tuple[Case, frozenset[str]]:
    """load_case, and the actor's relations to the case that decided it (for the checks that follow)."""
    case = session.get(Case, case_id, with_for_update=for_update) if for_update else session.get(Case, case_id)
    rel = relations(session, actor, case) if case is not None else frozenset()
    if case is None or sight_of(rel) < min_sight:
        raise NotFound(not_found)
    return case, rel


def flush_handoff_or_stale(session: Session, handoff_id: int) -> None:
    """Flush; a sheet that changed under us becomes StaleVersion with its current version (nothing kept)."""
    try:
        session.flush()
    except StaleDataError:
        session.rollback()
        raise StaleVersion(session.scalar(select(Handoff.version).where(Handoff.id == handoff_id))) from None
