"""Firing an event of the case machine: the one way a case changes state.

Every event is declared once in its stage's module (engine.cases.events.handoff, meeting, consent, plan,
closing): its fields, a prepare step and an apply step. fire_event runs them around the machine's state
change (engine.states) in the caller's transaction, with the history row, the audit row and the webhook
outbox row of the change.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import states
from engine.access.relations import relations
from engine.audit import trail
from engine.cases import outbox
from engine.cases.events import closing, consent, handoff, meeting, plan
from engine.cases.events.context import Event, EventContext
from engine.cases.kernel import flush_or_stale, load_case_with_relations
from engine.errors import GuardRefused, MissingField, PermissionDenied, StaleVersion
from engine.models import Case, User, utcnow

# Every event of the machine, in the order engine.states lists them.
_DECLARED = {e.name: e for stage in (handoff, meeting, consent, plan, closing) for e in stage.EVENTS}
EVENTS: dict[str, Event] = {name: _DECLARED[name] for name in states.CASE_EVENT_LABELS}
assert set(_DECLARED) == set(EVENTS), "every event of the machine is declared once, in its stage's module"


def fire_event(session: Session, actor: User, case_id: int, event: str, *, version: int | None,
               fields: dict[str, Any] | None = None, now: datetime | None = None,
               remote_addr: str | None = None, client=None, case_values: dict[str, Any] | None = None) -> Case:
    """Fire one event of the case machine: the state change, its records, history and audit, flushed.

    Order of refusals: unknown event, stale version, event not allowed now, missing or wrong fields,
    guards (who may act, then the event's conditions). `case_values` are set on the case row with the
    state change (the engine's own use: routing records its decision that way; never caller input).
    """
    now = now or utcnow()
    case, rel = load_case_with_relations(session, actor, case_id)
    if event not in states.CASE_EVENT_LABELS:
        states.check_event(case, event)
    if version is None:
        raise MissingField({"version": ["読み込んだときのバージョンを指定してください。"]})
    if case.version != version:
        raise StaleVersion(case.version, version)
    states.check_event(case, event)
    declared = EVENTS[event]
    ctx = EventContext(session=session, actor=actor, case=case, event=event, now=now,
                       fields=dict(fields or {}), remote_addr=remote_addr, client=client, rel=rel)
    before = case.state
    try:
        declared.prepare(ctx)
        with session.no_autoflush:  # the state and the fields it requires reach the row in one UPDATE
            case.updated_at = now
            for key, value in (case_values or {}).items():
                setattr(case, key, value)
            states.fire_case_event(case, event, ctx)
    except (PermissionDenied, GuardRefused, states.EventNotAllowed):
        # Refused on what was read after the case row (its sheets, its meetings): if someone changed the
        # case meanwhile, that is what the caller must hear (409 stale), not a refusal of a case now gone.
        raise_if_changed(session, case.id, version)
        raise
    with session.no_autoflush:
        declared.apply(ctx)
    flush_or_stale(session, case)
    trail.record(session, actor=actor, client=client, action=f"case.{event}", object_type="case",
                 object_id=case.id, case_id=case.id, remote_addr=remote_addr, at=now,
                 detail={"from": before, "to": case.state})
    outbox.queue_status_change(session, case, event, before, now)
    session.flush()
    return case


def raise_if_changed(session: Session, case_id: int, version: int) -> None:
    """StaleVersion if the case's committed version is no longer `version` (read afresh, not from the
    session's copy)."""
    with session.no_autoflush:  # the refused event's changes are not to be written, even to be read back
        current = session.execute(select(Case.version).where(Case.id == case_id)).scalar()
    if current is not None and current != version:
        raise StaleVersion(current, version)


def allowed_events(session: Session, actor: User, case: Case) -> list[str]:
    """The events the state allows now that `actor` may fire (guards about the actor applied)."""
    rel = relations(session, actor, case)
    now = utcnow()

    def ctx_for(event: str) -> EventContext:
        ctx = EventContext(session=session, actor=actor, case=case, event=event, now=now, fields={}, rel=rel)
        if event in ("accept_handoff", "decline_handoff"):
            ctx.handoff = case.open_primary_handoff
        return ctx

    return states.allowed_events_for(case, ctx_for)
