"""Which departments stand in a relation to each case: the table behind every list and count.

A department may know of a case for several reasons at once (it owns it, recorded or reopened it, sent or
received one of its つなぐシート, was told of it, is covered by its consent), and the desk knows of every unowned
case. Testing all of
those on each case row made a busy department's counts cost a pass over the whole of `cases`. The engine
keeps their union in `case_departments` instead, one row per (case, department), with whether the
relation opens the content and the case's state, so that a department's counts by state read one index
range and its lists one list of ids.

The rows are kept here, and only here, in the transaction that changed the records: after every flush a
listener notes each case whose relations may have changed (a new case, a new owner, a つなぐシート sent or
answered, a consent recorded) or whose state changed; before the commit, or before a list reads the
table, :func:`settle` rebuilds the noted cases' rows (a state change alone updates the repeated state).
Writes that bypass the ORM (bulk loads) call :func:`rebuild` themselves. :func:`drift` compares the table
with a rebuild from the records, and tests use it after every kind of event.

What belongs to one person rather than a department (the case FM, meeting membership) is not kept here:
engine.access adds it to the department's rows.
"""
from __future__ import annotations

from typing import Collection, Iterable

from sqlalchemy import (
    Integer,
    bindparam,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session, aliased

from engine.departments import DESK_CODE
from engine.models import Case, CaseDepartment, CaseNotice, Consent, ConsentAgency, Department, Handoff

_CASE_RELATION_COLUMNS = ("owning_department_id", "created_department_id", "reopened_department_id")
_HANDOFF_RELATION_COLUMNS = ("state", "to_department_id", "from_department_id", "lapsed_at")


def _relation_rows(case_ids=None, *, single: bool = False):
    """SELECT (case_id, department_id, content, state) for the given cases (a list, or with `single` one
    id), or for all."""
    def only(column):
        if case_ids is None:
            return literal(True)
        return column == case_ids if single else column.in_(case_ids)

    desk = select(Department.id).where(Department.code == DESK_CODE).scalar_subquery()
    newer = aliased(Consent)
    one, zero = literal(1, Integer), literal(0, Integer)
    owned = Case.owning_department_id.is_not(None)
    parts = [
        select(Case.id.label("case_id"), Case.owning_department_id.label("department_id"), one.label("content"))
        .where(only(Case.id), owned),
        select(Case.id, Case.created_department_id, sql_case((owned, 0), else_=1))
        .where(only(Case.id), Case.created_department_id.is_not(None)),
        select(Case.id, desk, one).where(only(Case.id), ~owned, desk.is_not(None)),
        select(Case.id, Case.reopened_department_id, one)
        .where(only(Case.id), ~owned, Case.reopened_department_id.is_not(None)),
        select(Handoff.case_id, Handoff.to_department_id, one)
        .where(only(Handoff.case_id), Handoff.state.in_(("sent", "accepted"))),
        select(Handoff.case_id, Handoff.from_department_id, zero)
        .where(only(Handoff.case_id), Handoff.from_department_id.is_not(None)),
        select(Handoff.case_id, Handoff.to_department_id, zero)
        .where(only(Handoff.case_id), Handoff.lapsed_at.is_not(None)),
        select(CaseNotice.case_id, CaseNotice.department_id, zero).where(only(CaseNotice.case_id)),
        select(Consent.case_id, ConsentAgency.department_id, one)
        .join(ConsentAgency, ConsentAgency.consent_id == Consent.id)
        .where(only(Consent.case_id), Consent.status == "given",
               ~exists().where(newer.case_id == Consent.case_id, newer.id > Consent.id)),
    ]
    rel = union_all(*parts).subquery("rel")
    return (select(rel.c.case_id, rel.c.department_id, func.max(rel.c.content) == 1, Case.state)
            .join(Case, Case.id == rel.c.case_id)
            .group_by(rel.c.case_id, rel.c.department_id, Case.state))


_COLUMNS = ["case_id", "department_id", "content", "state"]
_ONE = bindparam("b_one")
_IDS = bindparam("b_ids", expanding=True)
# Built once: a commit runs these with the ids it touched (building and compiling the statements each
# time would cost more than running them). One case, the usual, needs no expanding IN list.
_DELETE_ONE = delete(CaseDepartment).where(CaseDepartment.case_id == _ONE)
_INSERT_ONE = insert(CaseDepartment).from_select(_COLUMNS, _relation_rows(_ONE, single=True))
_DELETE_SOME = delete(CaseDepartment).where(CaseDepartment.case_id.in_(_IDS))
_INSERT_SOME = insert(CaseDepartment).from_select(_COLUMNS, _relation_rows(_IDS))
_SET_STATE = (update(CaseDepartment).where(CaseDepartment.case_id == bindparam("b_case_id"))
              .values(state=bindparam("b_state")))


def rebuild(session: Session, case_ids: Iterable[int] | None = None, *, new: Collection[int] = ()) -> None:
    """Rebuild the rows of `case_ids` (every case when None) from the records, in the session's transaction.

    `new`: cases inserted in this transaction, which have no rows to remove yet.
    """
    conn = session.connection()
    if case_ids is None:
        conn.execute(delete(CaseDepartment))
        conn.execute(insert(CaseDepartment).from_select(_COLUMNS, _relation_rows()))
        return
    ids = sorted(set(case_ids))
    if len(ids) == 1:
        if ids[0] not in new:
            conn.execute(_DELETE_ONE, {"b_one": ids[0]})
        conn.execute(_INSERT_ONE, {"b_one": ids[0]})
        return
    for start in range(0, len(ids), 500):
        chunk = {"b_ids": ids[start:start + 500]}
        conn.execute(_DELETE_SOME, chunk)
        conn.execute(_INSERT_SOME, chunk)


def drift(session: Session) -> list[tuple]:
    """Rows that differ between the table and a rebuild from the records (empty when they agree)."""
    kept = {(r[0], r[1]): (bool(r[2]), r[3]) for r in session.execute(
        select(CaseDepartment.case_id, CaseDepartment.department_id, CaseDepartment.content, CaseDepartment.state))}
    built = {(r[0], r[1]): (bool(r[2]), r[3]) for r in session.execute(_relation_rows())}
    return sorted((key, kept.get(key), built.get(key)) for key in kept.keys() | built.keys()
                  if kept.get(key) != built.get(key))


def _changed(obj, names: Iterable[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


_DUE = "case_departments_due"


@event.listens_for(Session, "after_flush")
def _note(session: Session, flush_context) -> None:
    """Note which cases this flush touched and how; :func:`settle` brings their rows up to date."""
    due = session.info.setdefault(_DUE, {"rebuild": set(), "state": {}, "consents": set(), "new": set()})
    rebuild_ids, state_only, consent_ids = due["rebuild"], due["state"], due["consents"]
    for obj in session.new:
        if isinstance(obj, Case):
            rebuild_ids.add(obj.id)
            due["new"].add(obj.id)
        elif isinstance(obj, (Handoff, Consent, CaseNotice)):
            rebuild_ids.add(obj.case_id)
        elif isinstance(obj, ConsentAgency):
            consent_ids.add(obj.consent_id)
    for obj in session.dirty:
        if isinstance(obj, Case):
            if _changed(obj, _CASE_RELATION_COLUMNS):
                rebuild_ids.add(obj.id)
            elif _changed(obj, ("state",)):
                state_only[obj.id] = obj.state
        elif isinstance(obj, Handoff) and _changed(obj, _HANDOFF_RELATION_COLUMNS):
            rebuild_ids.add(obj.case_id)
        elif isinstance(obj, Consent) and _changed(obj, ("status",)):
            rebuild_ids.add(obj.case_id)
        elif isinstance(obj, ConsentAgency):
            consent_ids.add(obj.consent_id)
    for obj in session.deleted:
        if isinstance(obj, (Handoff, Consent, CaseNotice)):
            rebuild_ids.add(obj.case_id)
        elif isinstance(obj, ConsentAgency):
            consent_ids.add(obj.consent_id)


def settle(session: Session) -> None:
    """Write what the session's flushes noted: rebuilt rows for changed relations, the new state elsewhere.

    Runs before every commit, and before a list or count reads the table in a transaction that wrote
    (engine.access), so that a transaction always sees its own changes. Several flushes of one case in a
    transaction (opening it routes it and sends its sheet) cost one rebuild.
    """
    if not session.info.get(_DUE):
        return
    session.flush()
    due = session.info.pop(_DUE, None)
    if not due:
        return
    rebuild_ids = due["rebuild"]
    if due["consents"]:
        rebuild_ids.update(session.connection().scalars(
            select(Consent.case_id).where(Consent.id.in_(sorted(due["consents"])))))
    rebuild_ids.discard(None)
    _serialize(session, rebuild_ids | set(due["state"]))
    if rebuild_ids:
        rebuild(session, rebuild_ids, new=due["new"])
    states = [{"b_case_id": case_id, "b_state": state} for case_id, state in due["state"].items()
              if case_id not in rebuild_ids]
    if states:
        session.connection().execute(_SET_STATE, states)


# The namespace of the advisory locks below (pg_advisory_xact_lock(namespace, case id)).
_LOCK_NAMESPACE = 8050
_LOCK = text("SELECT pg_advisory_xact_lock(:ns, :case_id)")


def _serialize(session: Session, case_ids: set[int]) -> None:
    """On PostgreSQL, one transaction at a time writes a case's rows, until it commits.

    Two transactions may change one case's relations at once (a department answers its join request
    while the owner fires an event). Under READ COMMITTED the second one's DELETE would not see the rows
    the first inserted, and its INSERT would collide with them or leave them with a stale state. Waiting
    here, per case and in id order, makes the second one's statements start after the first commits, so
    they see its rows. (SQLite lets one write transaction run at a time already.)
    """
    if not case_ids or session.get_bind().dialect.name != "postgresql":
        return
    conn = session.connection()
    for case_id in sorted(case_ids):
        conn.execute(_LOCK, {"ns": _LOCK_NAMESPACE, "case_id": case_id})


@event.listens_for(Session, "before_commit")
def _settle_before_commit(session: Session) -> None:
    settle(session)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    """What a rolled-back transaction noted never happened."""
    session.info.pop(_DUE, None)
