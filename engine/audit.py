"""The audit trail (監査ログ): append-only rows, each carrying the hash of the one before.

Appends are ordered by locking the single `audit_head` row for the rest of the transaction
(`UPDATE … RETURNING`): on PostgreSQL that is a row lock, on SQLite the write lock. So two
transactions can never chain onto the same predecessor, and a rolled-back action leaves no row.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64


def _digest(seq: int, at: datetime, actor_id, actor_label, client_id, action, object_type, object_id,
            case_id, remote_addr, outcome, detail, prev_hash) -> str:
    payload = json.dumps(
        [seq, at.isoformat(timespec="microseconds"), actor_id, actor_label, client_id, action, object_type,
         object_id, case_id, remote_addr, outcome, detail or {}, prev_hash],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def row_digest(row: AuditEvent) -> str:
    return _digest(row.seq, row.at, row.actor_id, row.actor_label, row.client_id, row.action,
                   row.object_type, row.object_id, row.case_id, row.remote_addr, row.outcome,
                   row.detail, row.prev_hash)


def _head(session: Session) -> list:
    """The chain head for this transaction, locked on first use."""
    tx = session.get_transaction()
    cached = session.info.get("audit_head")
    if cached is not None and cached[0] is tx:
        return cached
    seq, last = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one()
    head = [session.get_transaction(), seq, last]
    session.info["audit_head"] = head
    return head


def bind(session: Session, *, remote_addr: str | None = None, client=None) -> None:
    """Say where this session's work comes from (the request's address, the API client); every audit row
    the session appends without naming them itself carries them."""
    session.info["audit_context"] = {"remote_addr": remote_addr, "client": client}


def record(session: Session, *, actor=None, action: str, object_type: str, object_id=None,
           case_id: int | None = None, detail: dict | None = None, client=None,
           remote_addr: str | None = None, outcome: str = "ok", at: datetime | None = None,
           actor_label: str | None = None) -> AuditEvent:
    """Append one audit row in the current transaction (who, what, which case, when, from where).

    `detail` holds codes and ids only, never a person's name or a record's text: the trail is kept for
    good, after retention has cleared the records themselves.
    """
    context = session.info.get("audit_context") or {}
    remote_addr = remote_addr or context.get("remote_addr")
    client = client or context.get("client")
    if actor is not None and getattr(actor, "role", None) in ("system", "client"):
        client = client or getattr(actor, "client", None)
        actor_label = actor_label or actor.login
        actor = None
    head = _head(session)
    at = at or utcnow()
    seq = head[1] + 1
    label = actor_label or (f"{actor.login}" if actor is not None else (f"client:{client.name}" if client else "system"))
    object_id = None if object_id is None else str(object_id)
    detail = detail or {}
    digest = _digest(seq, at, getattr(actor, "id", None), label, getattr(client, "id", None), action,
                     object_type, object_id, case_id, remote_addr, outcome, detail, head[2])
    row = AuditEvent(
        seq=seq, at=at, actor_id=getattr(actor, "id", None), actor_label=label,
        client_id=getattr(client, "id", None), action=action, object_type=object_type,
        object_id=object_id, case_id=case_id, remote_addr=remote_addr, outcome=outcome,
        detail=detail, prev_hash=head[2], hash=digest,
    )
    session.add(row)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=digest))
    head[1], head[2] = seq, digest
    return row


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    broken_seq: int | None = None
    reason: str | None = None


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    """Walk the chain in order; report the first row whose hash or link does not hold."""
    prev = GENESIS
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            if row.seq != expected_seq:
                return VerifyResult(False, checked, row.id, row.seq, f"連番が飛んでいます（{expected_seq} の行がありません）")
            if row.prev_hash != prev:
                return VerifyResult(False, checked, row.id, row.seq, "前の行のハッシュと一致しません")
            if row_digest(row) != row.hash:
                return VerifyResult(False, checked, row.id, row.seq, "行の内容がハッシュと一致しません（改ざんの可能性）")
            prev = row.hash
            expected_seq += 1
            checked += 1
            last_seq = row.seq
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != checked or head.hash != prev):
        return VerifyResult(False, checked, None, head.seq, "末尾の行が失われています（先頭情報と一致しません）")
    return VerifyResult(True, checked)
