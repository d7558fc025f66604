"""What an event of the case machine sees while it fires, and how an event is declared."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable

from sqlalchemy.orm import Session

from engine import calendar
from engine.cases.kernel import record_history
from engine.fields import Field
from engine.models import Case, Department, Handoff, Plan, User


@dataclass
class EventContext:
    """What the guards and the apply step of one event see."""

    session: Session
    actor: User
    case: Case
    event: str
    now: datetime
    fields: dict[str, Any]
    remote_addr: str | None = None
    client: Any = None
    handoff: Handoff | None = None
    target_department: Department | None = None
    notify: list[Department] | None = None  # send_handoff: departments also told of the case
    members: list[dict] | None = None
    discussed: list[Case] = field(default_factory=list)  # the further cases a meeting takes up (also_cases)
    agencies: list[Department] = field(default_factory=list)
    roles: list[dict] = field(default_factory=list)
    attendees: list[Department] = field(default_factory=list)  # adopt_plan: the agencies at the 重層的支援会議
    main_department: Department | None = None
    plan: Plan | None = None
    # A body outside the city receiving the case's data: the basis chosen with the event (a statute or an
    # emergency), and the basis it goes on (engine.sharing.bases), set by the guard target_has_basis.
    chosen_basis: Any = None
    basis: Any = None
    return_to: Department | None = None  # withdraw_consent: where an outside owner hands the case back
    history_detail: dict[str, Any] = field(default_factory=dict)
    # The actor's relations to the case as the request found it (engine.access.relations), worked out
    # once: every guard about who may act judges the actor by them, before the event changes anything.
    rel: frozenset[str] | None = None

    @property
    def today(self) -> date:
        return self.now.astimezone(calendar.JST).date()

    def on_state_change(self, event: str, source: str, dest: str, row) -> None:
        """Called by the machine's hook after the state changed: append the history row."""
        handoff = row if isinstance(row, Handoff) else self.handoff
        record_history(self.session, self.case, self.actor, event, self.now,
                       self.history_detail if row is self.case else {}, from_state=source, to_state=dest,
                       handoff_id=handoff.id if handoff is not None else None)


def note_only(ctx: EventContext) -> None:
    """The prepare step of an event whose only input is a note: the note goes into the history row."""
    if ctx.fields.get("note"):
        ctx.history_detail["note"] = ctx.fields["note"]


def nothing(ctx: EventContext) -> None:
    """The apply step of an event that changes nothing but the state."""


@dataclass(frozen=True)
class Event:
    """One event of the case machine: its inputs (declared once, engine.fields), and the two steps that
    fire_event runs around the state change: `prepare` checks and reads what the guards need, `apply`
    writes the records beside the new state."""

    name: str
    prepare: Callable[[EventContext], None]
    apply: Callable[[EventContext], None]
    fields: tuple[Field, ...] = ()
    # What staff read once it is done, as they would say it: one sentence in the past tense, or one per state
    # the event may lead to (an event with branches).
    done: str | dict[str, str] = field(kw_only=True, hash=False)

    def said(self, case: Case) -> str:
        """The sentence that tells staff this event was done, for the case as it now is."""
        return self.done if isinstance(self.done, str) else self.done[case.state]


@dataclass
class HandoffContext:
    """The context of an event on a join handoff."""

    session: Session
    actor: User
    case: Case
    handoff: Handoff
    now: datetime
    fields: dict[str, Any]

    def on_state_change(self, event: str, source: str, dest: str, row) -> None:
        record_history(self.session, self.case, self.actor, event, self.now,
                       {k: v for k, v in self.fields.items() if k == "reason"}, from_state=source, to_state=dest,
                       handoff_id=self.handoff.id)
