"""The webhook outbox: status changes of a client's referrals, written in the change's transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.cases.views import referral_view
from engine.models import ApiClient, ApiToken, Case, OutboxEvent


def queue_status_change(session: Session, case: Case, event: str, before: str, now: datetime) -> None:
    """Queue a `referral.status_changed` event for the referring client, if it has a callback URL."""
    if case.referral_client_id is None or before == case.state:
        return
    client = session.get(ApiClient, case.referral_client_id)
    if client is None or not client.webhook_url:
        return
    if "referrals:read" not in (client.scopes or ()):
        return  # a 見守り協定 partner (watch:*) learns that its report was received, never what followed
    if not has_live_token(session, client.id):
        return  # cut off (its tokens revoked): nothing of the case goes to it any more
    session.add(OutboxEvent(
        client_id=client.id, case_id=case.id, event_type="referral.status_changed",
        payload={"event": event, "previous_status": before, "referral": referral_view(session, case)},
        created_at=now, next_attempt_at=now,
    ))


def has_live_token(session: Session, client_id: int) -> bool:
    """Whether the client may still be spoken to: revoking its tokens cuts it off, webhooks included."""
    return session.scalar(select(ApiToken.id).where(ApiToken.client_id == client_id,
                                                    ApiToken.revoked_at.is_(None)).limit(1)) is not None
