"""Alerts as plain data for the API: one alert, and a page of those an actor may see."""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from engine.alerts.alerts import ALERT_LABELS, AlertNotes, readable_texts, visible_alerts_query
from engine.calendar import iso
from engine.models import Alert, Case, Department, Handoff


def alert_view(alert: Alert, message: str, notes: AlertNotes | None, department: str | None) -> dict[str, Any]:
    """One alert for the API; `message` and `notes` as readable_texts() gave them, `department` as
    _departments() did."""
    notes = notes or AlertNotes()
    return {
        "id": alert.id,
        "kind": alert.kind,
        "kind_label": ALERT_LABELS.get(alert.kind, alert.kind),
        "status": alert.status,
        "case_id": alert.case_id,
        "handoff_id": alert.handoff_id,
        "department": department,
        "recipient": "department" if alert.department_id is not None else "fm",
        "message": message,
        "raised_at": iso(alert.raised_at),
        "due_at": iso(alert.due_at),
        "acknowledged_at": iso(alert.acknowledged_at),
        "resolved_at": iso(alert.resolved_at),
        "note": notes.latest,
        "acknowledgement_note": notes.acknowledgement,
        "resolution_note": notes.resolution,
    }


def _departments(session: Session, shown: list[Alert]) -> dict[int, str | None]:
    """The department code each alert is about, by alert id.

    An alert to a department names it. An alert to the FM (an escalated sheet, a 多機関協働 candidate)
    names the department it concerns: the sheet's receiver; for a case, its owner, else the receiver of
    its latest つなぐシート, else the department that opened it (`recipient` says who must act).
    """
    codes = dict(session.execute(select(Department.id, Department.code)).all())
    out = {a.id: codes.get(a.department_id) for a in shown}
    for_fm = [a for a in shown if a.department_id is None]
    if not for_fm:
        return out
    handoffs = dict(session.execute(select(Handoff.id, Handoff.to_department_id)
                                    .where(Handoff.id.in_({a.handoff_id for a in for_fm if a.handoff_id}))).all())
    case_ids = {a.case_id for a in for_fm}
    latest = {}
    for case_id, dept in session.execute(select(Handoff.case_id, Handoff.to_department_id)
                                         .where(Handoff.case_id.in_(case_ids), Handoff.primary.is_(True))
                                         .order_by(Handoff.id)):
        latest[case_id] = dept
    cases = {row.id: row for row in session.execute(
        select(Case.id, Case.owning_department_id, Case.created_department_id).where(Case.id.in_(case_ids)))}
    for a in for_fm:
        case = cases.get(a.case_id)
        dept = (handoffs.get(a.handoff_id) if a.handoff_id is not None else None) or (
            case and (case.owning_department_id or latest.get(a.case_id) or case.created_department_id))
        out[a.id] = codes.get(dept)
    return out


def page(session: Session, actor, *, status: str | None = None, kind: str | None = None,
         before_id: int | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
    """The alerts `actor` may see (engine.alerts.visible_alerts_query), newest raised first, one page.

    Newest by `raised_at`, not by id: a scan back-filled with an earlier --now writes alerts later that
    were due earlier. The page continues after the alert `before_id` (the cursor stays an alert's id; its
    time is looked up), in the same order.
    """
    q = visible_alerts_query(session, actor)
    if status:
        q = q.where(Alert.status == status)
    if kind:
        q = q.where(Alert.kind == kind)
    if before_id is not None:
        anchor = session.execute(select(Alert.raised_at).where(Alert.id == before_id)).scalar()
        if anchor is None:  # no longer an alert (removed with its case): by id, as close as can be
            q = q.where(Alert.id < before_id)
        else:
            q = q.where(or_(Alert.raised_at < anchor, and_(Alert.raised_at == anchor, Alert.id < before_id)))
    rows = session.scalars(q.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    (messages, notes), departments = readable_texts(session, actor, rows), _departments(session, rows)
    return ([alert_view(a, messages[a.id], notes.get(a.id), departments[a.id]) for a in rows],
            (rows[-1].id if more else None))


def answer(session: Session, actor, alert: Alert) -> dict[str, Any]:
    """The alert an action (acknowledge, resolve) answers with."""
    messages, notes = readable_texts(session, actor, [alert])
    return alert_view(alert, messages[alert.id], notes.get(alert.id), _departments(session, [alert])[alert.id])
