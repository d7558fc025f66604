"""Closing and reopening: close (終結, with a reason from a fixed list) and reopen (back to 受付).

Closing withdraws the sheets still waiting, ends the plan, resolves the case's alerts, lets open offers to
join lapse and ends 参加支援 matches. A reopened case waits in 受付 with the department that reopened it
(or the desk), alerted until someone takes it.
"""
from __future__ import annotations

from sqlalchemy import select

from engine import fields as declare
from engine import states
from engine.alerts import alerts
from engine.cases import offers, participation
from engine.cases.checks import choice, require
from engine.cases.events.context import Event, EventContext
from engine.departments import DESK_CODE, department_by_code
from engine.errors import ValidationFailed
from engine.models import Plan


def _prepare_close(ctx: EventContext) -> None:
    require(ctx.fields, "close_reason")
    errors: dict[str, list[str]] = {}
    choice(errors, ctx.fields, "close_reason", "close_reasons")
    if errors:
        raise ValidationFailed(errors)
    ctx.history_detail["close_reason"] = ctx.fields["close_reason"]
    if ctx.fields.get("note"):  # kept with the closure: a reopen clears the case's own close_note
        ctx.history_detail["note"] = ctx.fields["note"]


def close_fields(ctx: EventContext, reason: str, note: str | None) -> None:
    case = ctx.case
    case.closed_at = ctx.now
    case.close_reason = reason
    case.close_note = note
    for h in case.handoffs:
        if h.state == "sent":
            states.fire_handoff_event(h, "cancel", ctx)
            h.withdrawn_at = ctx.now
    for plan in ctx.session.scalars(select(Plan).where(Plan.case_id == case.id, Plan.status == "active")):
        plan.status = "ended"
    alerts.resolve_open(ctx.session, case_id=case.id, actor=ctx.actor, note="終結により解決", now=ctx.now)
    offers.lapse_open(ctx.session, case.id, ctx.now)
    participation.end_open_matches(ctx.session, case, ctx.today)


def _apply_close(ctx: EventContext) -> None:
    close_fields(ctx, ctx.fields["close_reason"], ctx.fields.get("note"))


def _prepare_reopen(ctx: EventContext) -> None:
    require(ctx.fields, "reason")
    ctx.history_detail["reason"] = ctx.fields["reason"]


def _apply_reopen(ctx: EventContext) -> None:
    # A new round of support gets its own 支援決定 (each plan keeps the day it was decided).
    ctx.case.support_decision_date = None
    ctx.case.closed_at = None
    ctx.case.close_reason = None
    ctx.case.close_note = None
    ctx.case.owning_department_id = None
    # Staff who reopen a case hold it in 受付 for their department (with the recording window and the desk),
    # so that they can send it on or close it again. An FM routes any case already.
    actor = ctx.actor
    ctx.case.reopened_department_id = (actor.department_id if getattr(actor, "role", None) == "staff"
                                       else None)
    # The referrer reads when its referral was accepted: this round has no acceptance yet (history keeps
    # the earlier one).
    ctx.case.accepted_at = None
    # Back in 受付 with no owner, the case must not wait unseen: the department holding it (or the desk) is
    # told until a department accepts it or it is closed again. No typed reason: the alert is metadata.
    desk = department_by_code(ctx.session, DESK_CODE)
    holder = ctx.case.reopened_department_id or (desk.id if desk else None)
    alerts.raise_alert(ctx.session, kind="unrouted", case_id=ctx.case.id, department_id=holder, now=ctx.now,
                       message="終結したケースが再開されました。送付先を決めてつなぐシートを送るか、再び終結してください。")


EVENTS = (
    Event("close", _prepare_close, _apply_close, fields=(
        declare.code("close_reason", required=True, limit=32, listed="close_reasons", description="終結理由コード（必須）"),
        declare.text("note", limit=20000, description="メモ"),
    ), done="ケースを終結しました。"),
    Event("reopen", _prepare_reopen, _apply_reopen, fields=(
        declare.text("reason", required=True, limit=20000, description="再開の理由（必須）"),
    ), done="ケースを再開し、受付に戻しました。"),
)
