"""Asking another department to join a case (参加依頼): a つなぐシート of its own that does not move the case.

The joined department works on the case beside its owner (the same stall timers run on the request). With
the person's consent in force, only an agency the consent covers is asked; the 支援会議 is where others are
consulted without it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import states
from engine.access import policy
from engine.access.relations import consented_department_ids
from engine.alerts import alerts
from engine.audit import trail
from engine.cases.checks import require
from engine.cases.events.context import HandoffContext
from engine.cases.events.handoff import send_sheet
from engine.cases.kernel import flush_handoff_or_stale, flush_or_stale, load_case, record_history, touch
from engine.departments import department_by_code
from engine.errors import GuardRefused, MissingField, NotFound, PermissionDenied, StaleVersion, ValidationFailed
from engine.models import Case, Department, Handoff, User, utcnow
from engine.sharing import bases


def involved_department_ids(case: Case) -> set[int]:
    """The departments already in the case: its owner, and those with a sheet waiting or accepted."""
    ids = {h.to_department_id for h in case.handoffs if h.state in ("sent", "accepted")}
    if case.owning_department_id is not None:
        ids.add(case.owning_department_id)
    return ids


def involved_department_codes(session: Session, case: Case) -> set[str]:
    """involved_department_ids, as department codes (a form's choices)."""
    ids = involved_department_ids(case)
    return set(session.scalars(select(Department.code).where(Department.id.in_(ids)))) if ids else set()


def require_join_target(session: Session, case: Case, target: Department) -> None:
    """The checks on a department asked to join (request_join, and an FM's 振り替え of a join request): not
    one already in the case (involved_department_ids), and within the consent."""
    if target.id in involved_department_ids(case):
        raise ValidationFailed({"to_department": [f"{target.name}は既にこのケースに関わっています。"]})
    require_join_within_consent(session, case, target)


def require_join_within_consent(session: Session, case: Case, target: Department) -> None:
    """With the person's consent in force, the case's content reaches only the agencies it covers: a
    department outside it is not asked to join (by its owner, or by an FM's 振り替え of a join request).
    The 支援会議 is where others are consulted without it."""
    covered = consented_department_ids(session, case.id)
    if covered and target.id not in covered:
        raise GuardRefused(f"{target.name}は本人の同意の範囲に含まれていないため、参加を依頼できません。"
                           "同意の範囲を記録し直すか、支援会議で協議してください。", guard="join_within_consent")


def request_join(session: Session, actor: User, case_id: int, *, to_department: str, reason: str,
                 summary: str, version: int | None = None, basis: dict | None = None, now: datetime | None = None,
                 remote_addr: str | None = None) -> Handoff:
    """Ask another department to join the case with a つなぐシート of its own (same stall timers).

    The case does not move, but its version does: a form shown before someone else changed the case
    (`version`) is refused as stale, and two requests racing each other are one after the other. A body
    outside the city is asked only on a basis (engine.sharing.bases): a commission or a consent naming it,
    or a statute or an emergency an FM or the desk chooses (`basis`: {code, note}).
    """
    now = now or utcnow()
    case = load_case(session, actor, case_id)
    policy.require(session, actor, case, policy.CASE_METADATA, policy.WRITE)
    if version is not None and case.version != version:
        raise StaleVersion(case.version, version)
    if case.state == "closed":
        raise states.EventNotAllowed("request_join", case.state, states.CASE_STATE_LABELS[case.state],
                                     [], [], event_label="他部署に参加を依頼する")
    fields = {"to_department": to_department, "reason": reason, "summary": summary}
    require(fields, "to_department", "reason", "summary")
    chosen = bases.chosen_basis(session, actor, basis)
    target = department_by_code(session, to_department)
    if target is None:
        raise ValidationFailed({"to_department": [f"「{to_department}」という部署はありません。"]})
    require_join_target(session, case, target)
    touch(case, now)  # the case's version moves with the request
    flush_or_stale(session, case)
    handoff = send_sheet(session, actor, case, target, reason=reason, summary=summary, now=now, primary=False,
                         chosen=chosen, remote_addr=remote_addr)
    record_history(session, case, actor, "handoff.request_join", now, {"to_department": target.code},
                   to_state="sent", handoff_id=handoff.id)
    trail.record(session, actor=actor, action="handoff.request_join", object_type="handoff",
                 object_id=handoff.id, case_id=case.id, remote_addr=remote_addr, at=now)
    session.flush()
    return handoff


def may_withdraw_join(session: Session, actor: User, case: Case, handoff: Handoff,
                      rel: frozenset[str] | None = None) -> bool:
    """Whether `actor` may take back a join request: its sender's staff, or an FM who drives the case.

    (An FM reassigning a stalled sheet from the dashboard withdraws it too; that is the dashboard's own act.)
    """
    if actor.department_id == handoff.from_department_id and actor.role != "admin":
        return True
    return actor.role == "fm" and policy.may(session, actor, case, policy.CASE_METADATA, policy.WRITE, rel=rel)


def answer_join(session: Session, actor: User, handoff_id: int, event: str, *, version: int | None = None,
                reason: str | None = None, now: datetime | None = None,
                remote_addr: str | None = None) -> Handoff:
    """Accept, decline or withdraw a join request (a handoff that does not move the case)."""
    now = now or utcnow()
    handoff = session.get(Handoff, handoff_id)
    if handoff is None or handoff.primary:
        raise NotFound("指定されたつなぐシートは見つかりません。")
    try:
        _refuse_if_answered_meanwhile(handoff, actor, event, version)
        case = load_case(session, actor, handoff.case_id, not_found="指定されたつなぐシートは見つかりません。")
    except NotFound:
        # A colleague's answer may have ended this department's sight of the case a moment ago: the sheet
        # was addressed to it, so say it was answered (409), not that it does not exist.
        session.refresh(handoff)
        _refuse_if_answered_meanwhile(handoff, actor, event, version)
        raise
    if version is not None and handoff.version != version:
        raise StaleVersion(handoff.version, version)
    if event == "decline" and not (reason or "").strip():
        raise MissingField({"reason": ["返送の理由を入力してください。"]})
    if event == "withdraw" and not may_withdraw_join(session, actor, case, handoff):
        raise PermissionDenied("参加依頼を取り下げられるのは、依頼した部署の職員と、このケースを担当するFMだけです。",
                               guard="actor_may_withdraw_handoff")
    ctx = HandoffContext(session, actor, case, handoff, now, {"reason": reason} if reason else {})
    states.fire_handoff_event(handoff, event, ctx)
    if event == "accept":
        handoff.accepted_at, handoff.accepted_by_id = now, actor.id
    elif event == "decline":
        handoff.declined_at, handoff.declined_by_id, handoff.decline_reason = now, actor.id, reason
    else:
        handoff.withdrawn_at = now
    # The sheet's new state first: a concurrent answer is refused here (stale), before anything else is
    # written, and the sheet's row is held while its alerts are resolved.
    flush_handoff_or_stale(session, handoff.id)
    alerts.resolve_open(session, handoff_id=handoff.id, kinds=("handoff_stalled", "handoff_escalated"),
                        actor=actor, note="回答により解決", now=now)
    if event == "decline":
        alerts.raise_alert(session, kind="handoff_declined", case_id=case.id, handoff_id=handoff.id,
                           department_id=handoff.from_department_id,
                           message=f"参加依頼が返送されました: {reason}", now=now)
    trail.record(session, actor=actor, action=f"handoff.{event}", object_type="handoff", object_id=handoff.id,
                 case_id=case.id, remote_addr=remote_addr, at=now)
    flush_handoff_or_stale(session, handoff.id)
    return handoff


def _refuse_if_answered_meanwhile(handoff: Handoff, actor: User, event: str, version: int | None) -> None:
    """A join sheet addressed to the actor's department and answered already: StaleVersion (409)."""
    if (event in ("accept", "decline") and handoff.state != "sent"
            and handoff.to_department_id == getattr(actor, "department_id", None)):
        raise StaleVersion(handoff.version, version)
