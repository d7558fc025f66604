"""Webhook delivery: send what the outbox holds to each client's callback URL, signed, in order.

Guarantees:
- at least once: an event is marked delivered only after its URL answered 2xx; a deliverer that dies
  between claiming and marking leaves the claim to lapse (LEASE), and the event is sent again;
- in order per client: only the oldest undelivered event of a client is ever claimed, so event N+1
  waits until N was delivered (a failing URL holds back only its own client);
- never twice at once: a claim is a compare-and-set of `next_attempt_at` (and FOR UPDATE SKIP LOCKED on
  PostgreSQL), renewed the same way just before its event is sent, so several deliverers may run side by
  side and a slow round never has its later events sent again by another;
- retries back off exponentially (30 s, 1 min, 2 min … at most 1 h); every completed attempt is a
  WebhookDelivery row (a deliverer killed while sending leaves none: its claim lapses and the event is sent
  again).

Signature: `X-Tsunagu-Signature: sha256=<hex>` is HMAC-SHA256 with the client's secret over
`<X-Tsunagu-Timestamp>.<body bytes>` (the Unix time in seconds, a dot, the raw body).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.cases import outbox
from engine.db import unit_of_work
from engine.models import ApiClient, OutboxEvent, WebhookDelivery, utcnow

SIGNATURE_HEADER = "X-Tsunagu-Signature"
TIMESTAMP_HEADER = "X-Tsunagu-Timestamp"
EVENT_HEADER = "X-Tsunagu-Event"
DELIVERY_HEADER = "X-Tsunagu-Delivery"
# A claimed event is left alone this long; it must exceed TIMEOUT so that a slow send is never doubled.
LEASE = timedelta(seconds=60)
TIMEOUT = 10.0
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: datetime | None = None,
           tolerance: timedelta = timedelta(minutes=5)) -> bool:
    """Check a received webhook: the signature matches and the timestamp is recent (what a receiver does)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now or utcnow()).timestamp() - ts) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature or "")


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    # The exponent is capped: past the longest delay it changes nothing, and unbounded it would overflow
    # timedelta after some forty failures (a receiver down for days).
    return min(FIRST_RETRY * (2 ** min(max(attempts - 1, 0), 20)), MAX_RETRY)


@dataclass
class Claim:
    """An event claimed for sending, with what sending needs."""

    event_id: int
    event_type: str
    url: str
    secret: str
    body: bytes
    attempts: int
    lease_until: datetime | None = None  # the claim holds until then (renewed just before sending)


@dataclass
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    lapsed: int = 0  # claims another deliverer took over before this one came to send them
    failures: list[str] = field(default_factory=list)


def event_body(ev: OutboxEvent) -> bytes:
    """The JSON sent for an event: its id (for de-duplication), type, time and data."""
    doc = {"id": ev.id, "type": ev.event_type, "created_at": ev.created_at.isoformat(), "data": ev.payload}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def claim_due(session: Session, now: datetime, limit: int = 50, *, skip: frozenset[int] = frozenset()) -> list[Claim]:
    """Claim the oldest undelivered event of each client whose time has come (the caller commits); events in
    `skip` (failed already in this run) are left, and their clients' later events wait behind them."""
    heads = (select(func.min(OutboxEvent.id)).where(OutboxEvent.delivered_at.is_(None))
             .group_by(OutboxEvent.client_id))
    q = (select(OutboxEvent).where(OutboxEvent.id.in_(heads), OutboxEvent.next_attempt_at <= now)
         .order_by(OutboxEvent.id).limit(limit))
    if skip:
        q = q.where(OutboxEvent.id.not_in(skip))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    claims = []
    for ev in session.scalars(q).all():
        taken = session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == ev.id, OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at <= now)
            .values(next_attempt_at=now + LEASE, attempts=OutboxEvent.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            continue
        client = session.get(ApiClient, ev.client_id)
        if client is None or not client.webhook_url or not client.webhook_secret:
            continue  # no callback any more: stays queued until one is registered
        if not outbox.has_live_token(session, client.id):
            continue  # cut off: what was queued before waits, unsent, until the client has a token again
        claims.append(Claim(ev.id, ev.event_type, client.webhook_url, client.webhook_secret, event_body(ev),
                            ev.attempts + 1, now + LEASE))
    return claims


def renew(session: Session, claim: Claim, now: datetime) -> bool:
    """Hold the claim for another LEASE just before sending; False when it lapsed and another deliverer
    took the event (then it is theirs to send, and this one must not).

    A round claims one event per client and sends them one after another; without this, a round of slow
    URLs outlives the first claims, and a second deliverer would send those events again.
    """
    taken = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == claim.event_id, OutboxEvent.delivered_at.is_(None),
               OutboxEvent.next_attempt_at == claim.lease_until)
        .values(next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken == 1:
        claim.lease_until = now + LEASE
    return taken == 1


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(claim: Claim, now: datetime) -> Outcome:
    """POST one event to its URL; any answer other than 2xx (a redirect too) is a failure."""
    ts = int(now.timestamp())
    req = urllib.request.Request(claim.url, data=claim.body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Tsunagu-Webhook/1",
        EVENT_HEADER: claim.event_type,
        DELIVERY_HEADER: str(claim.event_id),
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(claim.secret, ts, claim.body),
    })
    try:
        with _opener.open(req, timeout=TIMEOUT) as resp:
            resp.read(65536)
            return Outcome(resp.status, None)
    except urllib.error.HTTPError as exc:
        return Outcome(exc.code, f"HTTP {exc.code}")
    except Exception as exc:  # connection refused, timeout, TLS …: recorded, retried later
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500])


def record(session: Session, claim: Claim, outcome: Outcome, now: datetime) -> None:
    """Write the attempt; mark the event delivered on 2xx, else schedule the next try."""
    session.add(WebhookDelivery(outbox_event_id=claim.event_id, attempted_at=now, status_code=outcome.status_code,
                                error=outcome.error))
    # The next try counts from `now`, unless that is more than a day ahead of the clock (a --now given for a
    # test run, years ahead): then from the clock, so that the client's queue, delivered in order, is not
    # held until that date.
    clock = utcnow()
    base = now if now <= clock + timedelta(days=1) else clock
    values = ({"delivered_at": now, "last_error": None} if outcome.ok else
              {"next_attempt_at": base + retry_delay(claim.attempts), "last_error": outcome.error})
    session.execute(update(OutboxEvent).where(OutboxEvent.id == claim.event_id, OutboxEvent.delivered_at.is_(None))
                    .values(**values).execution_options(synchronize_session=False))


def deliver(sessions: sessionmaker, *, now: datetime | None = None, send: Callable[[Claim, datetime], Outcome] = post,
            batch: int = 50, max_rounds: int = 10_000) -> DeliveryReport:
    """Send every due event, round after round, until none is due; commit around each step.

    `now` fixes the clock (tests, back-fills); by default each step reads the real time.
    """
    report = DeliveryReport()
    failed: set[int] = set()  # tried once in this run: the next try is for a later run
    for _ in range(max_rounds):
        with unit_of_work(sessions) as session:
            claims = claim_due(session, now or utcnow(), batch, skip=frozenset(failed))
        if not claims:
            break
        for claim in claims:
            at = now or utcnow()
            with unit_of_work(sessions) as session:
                if not renew(session, claim, at):
                    report.lapsed += 1
                    continue
            outcome = send(claim, at)
            with unit_of_work(sessions) as session:
                record(session, claim, outcome, now or utcnow())
            if outcome.ok:
                report.delivered += 1
            else:
                failed.add(claim.event_id)
                report.failed += 1
                report.failures.append(f"event {claim.event_id}: {outcome.error}")
    return report


def pending(session: Session) -> int:
    """How many events still wait to be delivered."""
    return session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.delivered_at.is_(None)))
