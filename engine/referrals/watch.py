"""見守り通報: what a 見守り協定 company (delivery, utilities, newspapers, banks) saw of someone who seems to be in
trouble, sent over REST by a client with the `watch:*` scopes.

Such a partner knows whom and where, what it saw and when, and no more: it names no issue category and no
department. The report opens a case at the desk, unrouted, with a `watch_report` alert for the desk, whose staff
go and see, then record or send it on as any consultation. The partner reads back only that its report was
received, never what became of the person.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import calendar
from engine.alerts import alerts
from engine.audit import trail
from engine.cases import intake
from engine.departments import desk_id
from engine.errors import NotFound
from engine.models import ApiClient, Case, utcnow
from engine.referrals.intake import ReferralAnswer, receive_once

# The category of every report: the partner cannot know the person's issues (the desk adds them).
CATEGORY = "other"
SOURCE = "partner"


def received_body(case: Case) -> dict[str, Any]:
    """All the partner reads of its report: that it was received, and when."""
    return {"id": case.id, "external_ref": case.external_ref, "received": True,
            "received_at": calendar.iso(case.opened_at)}


def receive(session: Session, client: ApiClient, *, key: str, payload: dict[str, Any],
            location=lambda case_id: f"/api/v1/watch-reports/{case_id}", now: datetime | None = None,
            remote_addr: str | None = None) -> ReferralAnswer:
    """Open a case at the desk from a 見守り通報, once per (client, key) and per (client, external_ref)."""
    now = now or utcnow()
    seen_at = payload["seen_at"]
    reporter = payload["reporter"]

    def open_report() -> tuple[Case, dict[str, Any]]:
        fields = {
            "person": {"name": payload["who"], "address": payload.get("where"), "area": payload.get("area")},
            "categories": [CATEGORY],
            "summary": f"【見守り通報】{calendar.wareki_datetime(seen_at)}ごろ、{reporter['organization']}が見たこと: "
                       f"{payload['seen']}",
            "source": client.source or SOURCE,
            "referrer": {"organization": reporter["organization"], "contact_name": reporter.get("contact_name"),
                         "contact_phone": reporter.get("contact_phone"), "seen_at": calendar.iso(seen_at)},
            "external_ref": payload["external_ref"],
        }
        case = intake.open_case(session, None, fields, now=now, client=client, remote_addr=remote_addr,
                                route=False)
        alerts.raise_alert(session, kind="watch_report", case_id=case.id, department_id=desk_id(session), now=now,
                           message=f"{reporter['organization']}からの見守り通報です。様子を確かめ、相談として記録するか"
                                   "担当につないでください。")
        return case, received_body(case)

    return receive_once(session, client, key=key, payload=payload, location=location, now=now,
                        open_and_answer=open_report)


def get(session: Session, client: ApiClient, case_id: int) -> dict[str, Any]:
    """That one of the client's own reports was received; another's answers NotFound."""
    case = session.get(Case, case_id)
    if case is None or case.referral_client_id != client.id:
        raise NotFound("指定された見守り通報は見つかりません。")
    trail.record(session, client=client, action="watch_report.read", object_type="case", object_id=case.id,
                 case_id=case.id)
    return received_body(case)
