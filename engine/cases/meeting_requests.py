"""支援会議の開催の依頼: a department working on a case asks the FM to convene a 支援会議.

Only an FM convenes a 支援会議 (states: the event is an FM's). The owning department, or one that joined,
may ask for one while the case is where one can be held: the request is an alert on the FM dashboard, with the
reason the department gave, until an FM convenes the meeting (which resolves it) or resolves it with a note.
One request at a time per case.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, states
from engine.access.relations import Sight, sight_of
from engine.alerts import alerts
from engine.audit import trail
from engine.cases import kernel
from engine.errors import Conflict, PermissionDenied, StaleVersion, ValidationFailed
from engine.models import Alert, Case, User, utcnow

KIND = "meeting_requested"
REASON_MAX = 2000


def may_ask(actor, case: Case, rel: frozenset[str]) -> bool:
    """Whether the actor may ask an FM for a 支援会議 on the case: staff of the owning or a joined department,
    who read its content, while one could be held. An FM convenes one instead."""
    return (getattr(actor, "role", None) == "staff" and bool(rel & {access.OWNER, access.JOINED})
            and sight_of(rel) >= Sight.CONTENT and "convene_support_meeting" in states.events_from(case.state))


def fms_to_ask(session: Session, actor, case: Case, rel: frozenset[str]) -> list[str]:
    """Whom the actor asks, by name: the case's own FM, else every active FM; empty when they may not ask."""
    if not may_ask(actor, case, rel):
        return []
    own = session.get(User, case.fm_id) if case.fm_id is not None else None
    if own is not None and own.active:
        return [own.display_name]
    return list(session.scalars(select(User.display_name).where(User.role == "fm", User.active.is_(True))
                                .order_by(User.id)))


def open_request(session: Session, case_id: int) -> Alert | None:
    """The request on the case an FM has not acted on yet, if any."""
    return session.scalar(select(Alert).where(Alert.case_id == case_id, Alert.kind == KIND,
                                              Alert.status.in_(("open", "acknowledged"))))


def ask(session: Session, actor: User, case_id: int, *, reason: str | None, version: int | None = None,
        now: datetime | None = None, remote_addr: str | None = None) -> Alert:
    """Ask the FM for a 支援会議 on the case, saying why; returns the request (an alert for the FM)."""
    now = now or utcnow()
    case, rel = kernel.load_case_with_relations(session, actor, case_id, for_update=True)
    if not may_ask(actor, case, rel):
        raise PermissionDenied("支援会議の開催をFMに依頼できるのは、このケースの担当部署・参加部署の職員だけです"
                               "（支援会議を開ける段階のケースに限ります）。")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed({"reason": ["支援会議で話し合いたいこと（開催が必要な理由）を入力してください。"]})
    if len(reason) > REASON_MAX:
        raise ValidationFailed({"reason": [f"{REASON_MAX}文字以内で入力してください。"]})
    if open_request(session, case.id) is not None:
        raise Conflict("このケースでは、既にFMに支援会議の開催を依頼しています。FMの対応を待ってください。")
    if version is not None and case.version != version:
        raise StaleVersion(case.version, version)
    kernel.touch(case, now)
    kernel.flush_or_stale(session, case)
    department = actor.department.name if actor.department is not None else ""
    alert_id = alerts.raise_alert(session, kind=KIND, case_id=case.id, now=now,
                                  message=f"{department}の{actor.display_name}さんから支援会議の開催の依頼"
                                          f"{alerts.REQUEST_REASON}{reason}")
    if alert_id is None:  # another request was recorded meanwhile
        raise Conflict("このケースでは、既にFMに支援会議の開催を依頼しています。FMの対応を待ってください。")
    kernel.record_history(session, case, actor, "meeting.request", now, {"department": department},
                          from_state=case.state, to_state=case.state)
    trail.record(session, actor=actor, action="meeting.request", object_type="case", object_id=case.id,
                 case_id=case.id, remote_addr=remote_addr, at=now)
    session.flush()
    return session.get(Alert, alert_id)
