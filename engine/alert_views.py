"""Alerts as plain data for the API: one alert, and a page of those an actor may see."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.alerts import ALERT_LABELS, readable_messages, visible_alerts_query
from engine.models import Alert
from engine.views import iso


def alert_view(alert: Alert, message: str) -> dict[str, Any]:
    """One alert for the API; `message` as readable_messages() gave it for the caller."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "kind_label": ALERT_LABELS.get(alert.kind, alert.kind),
        "status": alert.status,
        "case_id": alert.case_id,
        "handoff_id": alert.handoff_id,
        "department": alert.department.code if alert.department is not None else None,
        "message": message,
        "raised_at": iso(alert.raised_at),
        "due_at": iso(alert.due_at),
        "acknowledged_at": iso(alert.acknowledged_at),
        "resolved_at": iso(alert.resolved_at),
        "note": alert.note,
    }


def page(session: Session, actor, *, status: str | None = None, kind: str | None = None,
         before_id: int | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
    """The alerts `actor` may see (engine.alerts.visible_alerts_query), newest first, one page."""
    q = visible_alerts_query(session, actor)
    if status:
        q = q.where(Alert.status == status)
    if kind:
        q = q.where(Alert.kind == kind)
    if before_id is not None:
        q = q.where(Alert.id < before_id)
    rows = session.scalars(q.order_by(Alert.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    messages = readable_messages(session, actor, rows)
    return [alert_view(a, messages[a.id]) for a in rows], (rows[-1].id if more else None)


def answer(session: Session, actor, alert: Alert) -> dict[str, Any]:
    """The alert an action (acknowledge, resolve) answers with."""
    return alert_view(alert, readable_messages(session, actor, [alert])[alert.id])
