"""Alerts as plain data for the API: one alert, and a page of those an actor may see."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.alerts import ALERT_LABELS, visible_alerts_query
from engine.models import Alert
from engine.views import iso


def alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind,
        "kind_label": ALERT_LABELS.get(alert.kind, alert.kind),
        "status": alert.status,
        "case_id": alert.case_id,
        "handoff_id": alert.handoff_id,
        "department": alert.department.code if alert.department is not None else None,
        "message": alert.message or "",
        "raised_at": iso(alert.raised_at),
        "due_at": iso(alert.due_at),
        "acknowledged_at": iso(alert.acknowledged_at),
        "resolved_at": iso(alert.resolved_at),
        "note": alert.note,
    }


def page(session: Session, actor, *, status: str | None = None, kind: str | None = None,
         before_id: int | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
    """The alerts `actor` may see (engine.alerts.visible_alerts_query), newest first, one page."""
    q = visible_alerts_query(actor)
    if status:
        q = q.where(Alert.status == status)
    if kind:
        q = q.where(Alert.kind == kind)
    if before_id is not None:
        q = q.where(Alert.id < before_id)
    rows = session.scalars(q.order_by(Alert.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [alert_view(a) for a in rows], (rows[-1].id if more else None)
