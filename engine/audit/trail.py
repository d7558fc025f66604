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

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import Session

from engine.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64
# Built once: the values go in as parameters (no statement to build and compile per row).
_INSERT_EVENT = insert(AuditEvent.__table__)
_HEAD = AuditHead.__table__
_READ_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)
_LOCK_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(seq=_HEAD.c.seq).returning(_HEAD.c.seq, _HEAD.c.hash)
_STORE_HEAD = update(_HEAD).where(_HEAD.c.id == 1)


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
    """The chain head for this transaction, locked on first use (Core statements: no ORM flush).

    PostgreSQL: SELECT … FOR UPDATE locks the head row until commit. SQLite: a transaction that has
    already written holds the database's write lock, so a plain read is safe; otherwise a no-op UPDATE
    takes the lock first.
    """
    conn = session.connection()  # begins the session's transaction if none is open
    tx = session.get_transaction()
    cached = session.info.get("audit_head")
    if cached is not None and cached[0] is tx:
        return cached
    if conn.dialect.name == "sqlite" and not conn.connection.driver_connection.in_transaction:
        row = conn.execute(_LOCK_HEAD).one()
    else:
        row = conn.execute(_READ_HEAD.with_for_update() if conn.dialect.name != "sqlite" else _READ_HEAD).one()
    head = [tx, row[0], row[1], False]
    session.info["audit_head"] = head
    return head


@event.listens_for(Session, "before_commit")
def _store_head(session: Session) -> None:
    """Write the chain head once per transaction, just before it commits."""
    head = session.info.get("audit_head")
    if head is not None and head[3] and head[0] is session.get_transaction():
        session.connection().execute(_STORE_HEAD, {"seq": head[1], "hash": head[2]})
        head[3] = False


def bind(session: Session, *, remote_addr: str | None = None, client=None) -> None:
    """Say where this session's work comes from (the request's address, the API client); every audit row
    the session appends without naming them itself carries them."""
    session.info["audit_context"] = {"remote_addr": remote_addr, "client": client}


def _next_row(session: Session, head: list, *, actor, action: str, object_type: str, object_id, case_id,
              detail: dict | None, client, remote_addr: str | None, outcome: str, at: datetime | None,
              actor_label: str | None) -> dict:
    """The values of the next row of the chain after `head` (which moves on to it)."""
    context = session.info.get("audit_context") or {}
    remote_addr = remote_addr or context.get("remote_addr")
    client = client or context.get("client")
    if actor is not None and getattr(actor, "role", None) in ("system", "client"):
        client = client or getattr(actor, "client", None)
        actor_label = actor_label or actor.login
        actor = None
    at = at or utcnow()
    seq = head[1] + 1
    label = actor_label or (f"{actor.login}" if actor is not None else (f"client:{client.name}" if client else "system"))
    object_id = None if object_id is None else str(object_id)
    detail = detail or {}
    actor_id, client_id = getattr(actor, "id", None), getattr(client, "id", None)
    digest = _digest(seq, at, actor_id, label, client_id, action, object_type, object_id, case_id, remote_addr,
                     outcome, detail, head[2])
    row = dict(seq=seq, at=at, actor_id=actor_id, actor_label=label, client_id=client_id, action=action,
               object_type=object_type, object_id=object_id, case_id=case_id, remote_addr=remote_addr,
               outcome=outcome, detail=detail, prev_hash=head[2], hash=digest)
    head[1], head[2], head[3] = seq, digest, True
    return row


def record(session: Session, *, actor=None, action: str, object_type: str, object_id=None,
           case_id: int | None = None, detail: dict | None = None, client=None,
           remote_addr: str | None = None, outcome: str = "ok", at: datetime | None = None,
           actor_label: str | None = None) -> int:
    """Append one audit row in the current transaction (who, what, which case, when, from where).

    Returns the row's sequence number. The row is written at once with a Core insert; the chain head is
    written when the transaction commits, so a rolled-back action leaves neither. `detail` holds codes and
    ids only, never a person's name or a record's text: the trail is kept for good, after retention has
    cleared the records themselves.
    """
    row = _next_row(session, _head(session), actor=actor, action=action, object_type=object_type,
                    object_id=object_id, case_id=case_id, detail=detail, client=client, remote_addr=remote_addr,
                    outcome=outcome, at=at, actor_label=actor_label)
    session.connection().execute(_INSERT_EVENT, row)
    return row["seq"]


def record_case_reads(session: Session, *, actor, action: str, case_ids, detail: dict | None = None,
                      at: datetime | None = None, client=None) -> None:
    """One row per case of a page that showed something of each (a list of names, an inbox of sheets),
    chained as record() chains them and written with a single statement."""
    case_ids = list(dict.fromkeys(case_ids))
    if not case_ids:
        return
    head, at = _head(session), at or utcnow()
    rows = [_next_row(session, head, actor=actor, action=action, object_type="case", object_id=case_id,
                      case_id=case_id, detail=detail, client=client, remote_addr=None, outcome="ok", at=at,
                      actor_label=None) for case_id in case_ids]
    session.connection().execute(_INSERT_EVENT, rows)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    broken_seq: int | None = None
    reason: str | None = None
    # The head the chain was checked up to (rows written since are left for the next run).
    head_seq: int = 0
    head_hash: str = GENESIS


def verify(session: Session, batch: int = 5000, known: dict[int, str] | None = None) -> VerifyResult:
    """Walk the chain in order; report the first row whose hash or link does not hold.

    The chain alone cannot tell a tail rewritten with freshly computed hashes from the real one. `known`
    gives heads printed by earlier runs and kept elsewhere ({seq: hash}): the row at each seq must still
    carry that hash, so a rewrite at or before a kept head is found.

    The head is read first and the chain checked up to it: the app goes on writing while this runs, and
    a row committed meanwhile (with the head moved past it) is the next run's to check, not a lost tail.
    """
    known = dict(known or {})
    head = session.get(AuditHead, 1)
    if head is None:
        # The migration creates it and every audited write moves it: without it nothing can be recorded.
        return VerifyResult(False, 0, None, None, "末尾の情報（audit_head の行）がありません（削除された可能性）")
    head_seq, head_hash = head.seq, head.hash
    session.expunge(head)
    prev = GENESIS
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        try:
            rows = session.scalars(
                select(AuditEvent).where(AuditEvent.seq > last_seq, AuditEvent.seq <= head_seq)
                .order_by(AuditEvent.seq).limit(batch)
            ).all()
        except (ValueError, TypeError, OverflowError):
            # A value no longer reads as its type (a detail that is not JSON, a time that is not one):
            # written by hand, not by the app. Name the first such row.
            row_id, seq = _first_unreadable(session, last_seq, batch)
            return VerifyResult(False, checked, row_id, seq, "行の値が読めません（改ざんの可能性）")
        if not rows:
            break
        for row in rows:
            if row.seq != expected_seq:
                return VerifyResult(False, checked, row.id, row.seq, f"連番が飛んでいます（{expected_seq} の行がありません）")
            if row.prev_hash != prev:
                return VerifyResult(False, checked, row.id, row.seq, "前の行のハッシュと一致しません")
            try:
                digest = row_digest(row)
            except (ValueError, TypeError, OverflowError, AttributeError):
                return VerifyResult(False, checked, row.id, row.seq, "行の値が読めません（改ざんの可能性）")
            if digest != row.hash:
                return VerifyResult(False, checked, row.id, row.seq, "行の内容がハッシュと一致しません（改ざんの可能性）")
            if known.get(row.seq, row.hash) != row.hash:
                return VerifyResult(False, checked, row.id, row.seq,
                                    "以前に控えた末尾のハッシュと一致しません（この行までが書き換えられた可能性）")
            prev = row.hash
            expected_seq += 1
            checked += 1
            last_seq = row.seq
        session.expunge_all()
    beyond = [seq for seq in known if seq > checked]
    if beyond:
        return VerifyResult(False, checked, None, min(beyond),
                            f"以前に控えた末尾（seq={min(beyond)}）の行がありません（行が失われた可能性）")
    if head_seq != checked or head_hash != prev:
        return VerifyResult(False, checked, None, head_seq, "末尾の行が失われています（先頭情報と一致しません）")
    # Rows past the head read at the start: written since (the head has moved past them by now), or put
    # there by hand without moving the head.
    beyond_head = session.scalar(select(func.max(AuditEvent.seq)).where(AuditEvent.seq > head_seq))
    if beyond_head is not None and (session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)) or 0) < beyond_head:
        row_id = session.scalar(select(AuditEvent.id).where(AuditEvent.seq == head_seq + 1))
        return VerifyResult(False, checked, row_id, head_seq + 1,
                            "末尾の情報より後に行があります（記録の手順を経ずに書き込まれた可能性）")
    return VerifyResult(True, checked, head_seq=head_seq, head_hash=head_hash)


def _first_unreadable(session: Session, after_seq: int, batch: int) -> tuple[int | None, int | None]:
    """(id, seq) of the first row after `after_seq` whose values do not load as their types."""
    session.expunge_all()
    ids = session.execute(select(AuditEvent.id, AuditEvent.seq).where(AuditEvent.seq > after_seq)
                          .order_by(AuditEvent.seq).limit(batch)).all()
    for row_id, seq in ids:
        try:
            session.scalars(select(AuditEvent).where(AuditEvent.id == row_id)).one()
        except (ValueError, TypeError, OverflowError):
            return row_id, seq
        finally:
            session.expunge_all()
    return None, None
