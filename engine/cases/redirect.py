"""Staff override of the routing proposal (振り分けの変更).

The rules propose an owner (Case.proposed_department_id, with the rules version and the rule's reason);
staff who know better may send the つなぐシート elsewhere, but only with a reason. The reason is kept
beside the proposal (Case.override_reason), in the history row and as an audited act, so that the yearly
review can see where and why people overrode the rules.

Two ways in:
- firing `send_handoff` from `intake` to a department other than the proposal requires a reason:
  `override_reason`, or else the sheet's つなぐ理由 (checked by :func:`check_send`, recorded by
  :func:`record_send`);
- :func:`override_routing` redirects a case that is already waiting in `handoff` (the rules sent the
  つなぐシート on their own): the open sheet is withdrawn and a new one is sent, the case stays in `handoff`.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine import access, states
from engine.alerts import alerts
from engine.cases import kernel
from engine.cases.events import firing
from engine.cases.events.context import HandoffContext
from engine.cases.events.handoff import audit_override, proposed_code, send_sheet
from engine.departments import department_by_code
from engine.errors import GuardRefused, MissingField, PermissionDenied, StaleVersion, ValidationFailed
from engine.models import Case, CaseHistory, Department, User, utcnow

OVERRIDE_STATES = ("intake", "handoff")


def may_override(session: Session, actor: User, case: Case) -> bool:
    """An FM, or staff of the department that took the consultation or of the desk; while a sheet waits
    that a department sent, that department's staff (or an FM)."""
    if actor is None or not actor.active or actor.role not in ("staff", "fm"):
        return False
    if actor.role == "fm":
        return True
    sheet = case.open_primary_handoff
    if sheet is not None and sheet.from_department_id is not None:
        # A waiting sheet is withdrawn by the department that sent it (or an FM); one the rules sent (a
        # referral on arrival) by whoever holds the case.
        return actor.department_id == sheet.from_department_id
    desk = department_by_code(session, access.DESK_CODE)
    held_by = {case.created_department_id, desk.id if desk else None}
    if case.owning_department_id is None:
        held_by.add(case.reopened_department_id)
    return actor.department_id in held_by - {None}


def override_routing(session: Session, actor: User, case_id: int, *, to_department: str, reason: str,
                     version: int | None, now: datetime | None = None,
                     remote_addr: str | None = None) -> Case:
    """Send the case's つなぐシート to `to_department` instead of the rules' proposal, with a reason.

    In `intake` this fires `send_handoff` with the reason as `override_reason`. In `handoff` the open
    つなぐシート is withdrawn (whoever sent it: the rules, for a referral) and a new one goes to
    `to_department`; the case stays in `handoff` and its stall timers start again.
    """
    now = now or utcnow()
    case = kernel.load_case(session, actor, case_id)
    if not may_override(session, actor, case):
        raise PermissionDenied("振り分けを変更できるのは、相談を受け付けた部署・相談まるごとサポートデスクの職員かFMです"
                               "（部署が送ったつなぐシートの送付先は、その部署の職員かFMが変更します）。")
    if version is None:
        raise MissingField({"version": ["読み込んだときのバージョンを指定してください。"]})
    if case.version != version:
        raise StaleVersion(case.version, version)
    if case.state not in OVERRIDE_STATES:
        raise GuardRefused("担当部署が決まった後は振り分けを変更できません（つなぐシートの送付前か受理前のみ）。",
                           guard="case_not_yet_assigned")
    reason = (reason or "").strip()
    if not reason:
        raise MissingField({"reason": ["振り分けを変更する理由を入力してください。"]})
    target = department_by_code(session, to_department)
    if target is None:
        raise ValidationFailed({"to_department": [f"「{to_department}」という部署はありません。"]})
    if case.state == "intake":
        if case.proposed_department_id == target.id:
            raise ValidationFailed({"to_department": [
                "振り分けルールの提案と同じ部署です。提案どおりに送る場合は通常のつなぐシート送付を使ってください。"]})
        return firing.fire_event(session, actor, case.id, "send_handoff", version=version, now=now,
                                   remote_addr=remote_addr,
                                   fields={"to_department": target.code, "reason": reason,
                                           "summary": case.summary, "override_reason": reason})

    current = case.open_primary_handoff
    if current is not None and current.to_department_id == target.id:
        raise ValidationFailed({"to_department": [f"{target.name}には既につなぐシートを送付中です。"]})
    if not target.active:
        raise GuardRefused(f"{target.name}は現在つなぐシートを受け付けていません。",
                           guard="target_is_other_department")
    withdrawn_from = None
    if current is not None:
        ctx = HandoffContext(session, actor, case, current, now, {"reason": reason})
        states.fire_handoff_event(current, "redirect", ctx)  # may_override said who may
        current.withdrawn_at = now
        withdrawn_from = session.get(Department, current.to_department_id).code
        alerts.resolve_open(session, handoff_id=current.id, kinds=("handoff_stalled", "handoff_escalated"),
                            actor=actor, note="送付先の変更により解決", now=now)
    handoff = send_sheet(session, actor, case, target, reason=reason, summary=case.summary, now=now, primary=True,
                         remote_addr=remote_addr)
    # Back to the rules' proposal, the case no longer departs from it.
    case.override_reason = None if case.proposed_department_id == target.id else reason
    case.updated_at = now
    session.add(CaseHistory(case_id=case.id, event="routing_override", from_state=case.state,
                            to_state=case.state, actor_id=actor.id, handoff_id=handoff.id, at=now,
                            detail={"to_department": target.code, "withdrawn_from": withdrawn_from,
                                    "proposed_department": proposed_code(session, case),
                                    "override_reason": reason}))
    audit_override(session, actor, case, target, now, remote_addr, withdrawn_from=withdrawn_from)
    kernel.flush_or_stale(session, case)
    return case
