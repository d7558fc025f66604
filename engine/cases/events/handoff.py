"""The つなぐシート stage: send_handoff, accept_handoff, decline_handoff.

A sheet is sent to the department the rules propose, or to another one with a reason for departing from
the proposal (振り分けの変更: kept beside the proposal and audited, so that the yearly review sees where and
why people overrode the rules). The receiving department accepts it (and owns the case) or sends it back
(返送) with a reason, which alerts the sender.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine import fields as declare
from engine import states
from engine.access.relations import Sight, sight_of
from engine.alerts import alerts, notices
from engine.audit import trail
from engine.cases.checks import blank, require
from engine.cases.events.context import Event, EventContext
from engine.cases.kernel import flush_or_stale
from engine.departments import DESK_CODE, department_by_code, departments_by_codes
from engine.errors import MissingField, ValidationFailed
from engine.models import Case, Department, Handoff, User
from engine.rules.store import handoff_deadlines
from engine.sharing import bases, provisions


def _prepare_send_handoff(ctx: EventContext) -> None:
    if blank(ctx.fields.get("summary")) and sight_of(ctx.rel or frozenset()) < Sight.CONTENT:
        # A sender who may not read the case (an FM sending on a case that came back) cannot write its
        # summary: the case's own summary travels on the sheet, as with an FM's 振り替え.
        ctx.fields["summary"] = ctx.case.summary
    require(ctx.fields, "to_department", "reason", "summary")
    ctx.target_department = department_by_code(ctx.session, ctx.fields["to_department"])
    if ctx.target_department is None:
        raise ValidationFailed({"to_department": [f"「{ctx.fields['to_department']}」という部署はありません。"]})
    if any(not h.primary and h.state == "sent" and h.to_department_id == ctx.target_department.id
           for h in ctx.case.handoffs):
        # One department, one sheet to answer at a time: the join request waits for it already.
        raise ValidationFailed({"to_department": [
            f"{ctx.target_department.name}には参加依頼を送付中です。参加依頼を取り下げてから、つなぐシートを送ってください。"]})
    ctx.history_detail = {"to_department": ctx.target_department.code}
    if ctx.fields.get("notify"):
        codes = list(dict.fromkeys(ctx.fields["notify"]))
        found = departments_by_codes(ctx.session, codes)
        unknown = [c for c in codes if found.get(c) is None or not found[c].active]
        if unknown:
            raise ValidationFailed({"notify": [f"「{c}」という部署はありません。" for c in unknown]})
        ctx.notify = [found[c] for c in codes if found[c].id != ctx.target_department.id]
        ctx.history_detail["notify"] = [d.code for d in ctx.notify]
    # A statute or an emergency chosen for a body outside the city: checked now (who may choose it, its
    # code and note); whether the body needs it at all is the guard target_has_basis's question.
    ctx.chosen_basis = bases.chosen_basis(ctx.session, ctx.actor, ctx.fields.get("basis"))
    check_send(ctx)


def _apply_send_handoff(ctx: EventContext) -> None:
    ctx.handoff = send_handoff_record(ctx.session, ctx.actor, ctx.case, ctx.target_department,
                                      reason=ctx.fields["reason"], summary=ctx.fields["summary"],
                                      now=ctx.now, primary=True)
    ctx.session.flush()
    provisions.provide(ctx.session, ctx.actor, ctx.case, ctx.target_department, "sheet", ctx.basis, now=ctx.now,
                       handoff_id=ctx.handoff.id, client=ctx.client, remote_addr=ctx.remote_addr)
    # The case is on its way: what said it waited for a sheet (未振り分け, a 返送, a basis needed) is done; if the
    # new sheet waits in turn, the scan says so.
    alerts.resolve_open(ctx.session, case_id=ctx.case.id, kinds=("unrouted", "handoff_declined", "basis_needed", "watch_report"),
                        actor=ctx.actor, note=f"{ctx.target_department.name}につなぐシートを送付", now=ctx.now)
    if ctx.notify:
        # A rule's reason is the rule's own text; a person's つなぐ理由 may describe the person, and a
        # notified department reads nothing of the case: it is told only where the sheet went.
        reason = ctx.fields.get("notify_reason") or (
            f"{ctx.target_department.name}につなぐシートが送られ、あなたの部署が通知先に指定されました。")
        notices.notify(ctx.session, ctx.actor, ctx.case, ctx.notify, reason=reason, now=ctx.now, client=ctx.client)
    record_send(ctx)


def send_handoff_record(session: Session, actor, case: Case, target: Department, *, reason: str,
                        summary: str, now: datetime, primary: bool) -> Handoff:
    """Write the つなぐシート row with its due and escalation times from the stall policy."""
    due_at, escalate_at = handoff_deadlines(session, now, case.urgency)
    handoff = Handoff(
        case=case, primary=primary, state="sent", from_department_id=getattr(actor, "department_id", None),
        to_department_id=target.id, sender_id=getattr(actor, "id", None), reason=reason, summary=summary,
        urgency=case.urgency, sent_at=now, due_at=due_at, escalate_at=escalate_at,
    )
    session.add(handoff)
    return handoff


def send_sheet(session: Session, actor, case: Case, target: Department, *, reason: str, summary: str,
               now: datetime, primary: bool, chosen: bases.Basis | None = None, client=None,
               remote_addr: str | None = None) -> Handoff:
    """A つなぐシート outside the case machine (a join request, an FM's 振り替え, 送付先の変更): to a body outside the
    city only on a basis (GuardRefused `basis_needed` otherwise), which is recorded as a provision."""
    what = "sheet" if primary else "join"
    basis = bases.require_basis(session, case, target, what, chosen=chosen)
    handoff = send_handoff_record(session, actor, case, target, reason=reason, summary=summary, now=now,
                                  primary=primary)
    session.flush()
    provisions.provide(session, actor, case, target, what, basis, now=now, handoff_id=handoff.id, client=client,
                       remote_addr=remote_addr)
    return handoff


def _prepare_handoff_answer(ctx: EventContext) -> None:
    ctx.handoff = ctx.case.open_primary_handoff
    if ctx.event == "decline_handoff":
        require(ctx.fields, "reason")


def _apply_accept_handoff(ctx: EventContext) -> None:
    h = ctx.handoff
    states.fire_handoff_event(h, "accept", ctx)
    h.accepted_at = ctx.now
    h.accepted_by_id = ctx.actor.id
    ctx.case.owning_department_id = h.to_department_id
    if ctx.case.accepted_at is None:
        ctx.case.accepted_at = ctx.now
    # Written (and the sheet's row held) before its alerts are resolved: a stall scan running now either
    # finds the sheet accepted, or raised its alert first and this resolves it; none stays open.
    flush_or_stale(ctx.session, ctx.case)
    alerts.resolve_open(ctx.session, case_id=ctx.case.id, handoff_id=h.id,
                        kinds=("handoff_stalled", "handoff_escalated", "unrouted", "handoff_declined"),
                        actor=ctx.actor, note="受理により解決", now=ctx.now)


def returned_to(session: Session, case: Case, h: Handoff) -> int | None:
    """The department a returned sheet's alert goes to: the one that sent it, unless an FM sent it (from the
    dashboard or the case page) or the rules did (a referral routed on arrival: no sending department) —
    then the department that holds the case back in 受付, which must send it on (the desk, for a referral);
    the FM sees every alert on the dashboard in any case."""
    sender = session.get(User, h.sender_id) if h.sender_id is not None else None
    if h.from_department_id is not None and (sender is None or sender.role != "fm"):
        return h.from_department_id
    desk = department_by_code(session, DESK_CODE)
    return case.reopened_department_id or case.created_department_id or (desk.id if desk else None)


def _apply_decline_handoff(ctx: EventContext) -> None:
    h = ctx.handoff
    states.fire_handoff_event(h, "decline", ctx)
    h.declined_at = ctx.now
    h.declined_by_id = ctx.actor.id
    h.decline_reason = ctx.fields["reason"]
    alerts.resolve_open(ctx.session, handoff_id=h.id, kinds=("handoff_stalled", "handoff_escalated"),
                        actor=ctx.actor, note="返送により解決", now=ctx.now)
    to_name = ctx.session.get(Department, h.to_department_id).name
    alerts.raise_alert(
        ctx.session, kind="handoff_declined", case_id=ctx.case.id, handoff_id=h.id,
        department_id=returned_to(ctx.session, ctx.case, h),
        message=f"{to_name}がつなぐシートを返送しました: {h.decline_reason}", now=ctx.now,
    )


def is_override(case: Case, target: Department) -> bool:
    """Whether sending the case to `target` departs from the rules' proposal."""
    return case.proposed_department_id is not None and target.id != case.proposed_department_id


def proposed_code(session: Session, case: Case) -> str | None:
    """The code of the department the rules proposed for the case (None when they proposed none)."""
    if case.proposed_department_id is None:
        return None
    return session.get(Department, case.proposed_department_id).code


def check_send(ctx) -> None:
    """`send_handoff` prepare step: a target other than the proposal needs a reason for departing from it.

    That is `override_reason` when given; otherwise the sheet's own つなぐ理由 (`reason`, which says why this
    department) serves, so that a caller who knows only the sheet's fields (API.md: to_department, reason,
    summary) can send it. Either way the reason is kept beside the proposal and the override is audited.
    """
    if not is_override(ctx.case, ctx.target_department):
        return
    reason = (ctx.fields.get("override_reason") or ctx.fields.get("reason") or "").strip()
    if not reason:
        proposed = ctx.session.get(Department, ctx.case.proposed_department_id)
        raise MissingField({"override_reason": [
            f"振り分けルールの提案（{proposed.name}）と異なる部署へ送る理由を入力してください。"]})
    ctx.fields["override_reason"] = reason
    ctx.history_detail["override_reason"] = reason
    ctx.history_detail["proposed_department"] = proposed_code(ctx.session, ctx.case)


def record_send(ctx) -> None:
    """`send_handoff` apply step: keep the override reason beside the proposal and audit the override."""
    if not is_override(ctx.case, ctx.target_department):
        return
    ctx.case.override_reason = ctx.fields["override_reason"]
    audit_override(ctx.session, ctx.actor, ctx.case, ctx.target_department, ctx.now, ctx.remote_addr, client=ctx.client)


def audit_override(session: Session, actor, case: Case, target: Department, now: datetime, remote_addr: str | None,
           *, client=None, withdrawn_from: str | None = None) -> None:
    # Codes only: the reason itself is case content and stays with the case (history, override_reason).
    detail = {"proposed": proposed_code(session, case), "to": target.code}
    if withdrawn_from is not None:
        detail["withdrawn_from"] = withdrawn_from
    trail.record(session, actor=actor, client=client, action="case.routing_override", object_type="case",
                 object_id=case.id, case_id=case.id, remote_addr=remote_addr, at=now, detail=detail)


EVENTS = (
    Event("send_handoff", _prepare_send_handoff, _apply_send_handoff, fields=(
        declare.code("to_department", required=True, listed="departments", description="送付先の部署コード（必須）"),
        declare.text("reason", required=True, limit=20000, description="つなぐ理由（必須）"),
        declare.text("summary", limit=20000, nullable=False,
               description="相談内容の要約（ケースの内容を閲覧できる職員が送る時必須。閲覧できない送り手が省略したときは、"
                           "ケースに記録された要約が載る）"),
        declare.codes("notify", nullable=False, listed="departments", description="通知先の部署コードの一覧"),
        declare.text("override_reason", limit=20000,
               description="振り分けルールの提案と異なる部署へ送る理由（省略したときは、つなぐ理由をその理由として記録）"),
        declare.basis(),
    ), done="つなぐシートを送りました。"),
    Event("accept_handoff", _prepare_handoff_answer, _apply_accept_handoff, done="つなぐシートを受理しました。"),
    Event("decline_handoff", _prepare_handoff_answer, _apply_decline_handoff, fields=(
        declare.text("reason", required=True, limit=20000, description="返送の理由（必須）"),
    ), done="つなぐシートを返送しました。"),
)
