"""One-time keys of page forms that create records: a form sent twice is applied once.

A form that adds something without a version to check (a new consultation, a contact note, a line of
meeting minutes) carries a random key. The use case claims the key in the same transaction as its
work: a second claim of the same key by the same person — a double click, a reload, a second tab —
finds the first and is refused with a pointer to what the first one made. A refused or failed first
attempt rolls back with its claim, so correcting a form and sending it again works. A person's keys older
than a day are removed when they next claim one.

A page shown again from the browser's history (the back button) is fetched afresh (no page is cached), so
it would carry a fresh key with the text the browser puts back into it. A page therefore also offers the
keys this person has already used on the same case (`used_tokens`): the browser restores the key the form
was sent with, and the second send is refused like a double click.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.errors import Conflict, ValidationFailed
from engine.models import FormSubmission, utcnow

TOKEN_FIELD = "submission_token"
# How long a claimed key is kept: well past the one hour a page's CSRF token lives.
KEY_LIFETIME = timedelta(days=1)


class AlreadySubmitted(Conflict):
    """This form was already applied; `case_id` names what it made."""

    code = "already_submitted"
    title = "既に登録されています"

    def __init__(self, case_id: int | None):
        super().__init__("この内容は既に登録されています（二重送信を防ぎました）。", case_id=case_id)
        self.case_id = case_id


def new_token() -> str:
    """A fresh key for a form about to be shown."""
    return secrets.token_urlsafe(24)


def claim(session: Session, actor, token: str | None, kind: str, *, now: datetime | None = None) -> int:
    """Claim `token` for `actor` in this transaction; AlreadySubmitted if it was applied before.

    INSERT … ON CONFLICT DO NOTHING on (user, token): on PostgreSQL a concurrent second claim waits for
    the first transaction and then finds its row, so two requests can never both proceed.
    """
    token = (token or "").strip()
    if not token or len(token) > 64:
        raise ValidationFailed({TOKEN_FIELD: ["画面を読み込み直してから送信してください。"]})
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(FormSubmission)
    stmt = ins.values(user_id=actor.id, token=token, kind=kind, created_at=now or utcnow())
    claimed = session.execute(
        stmt.on_conflict_do_nothing(index_elements=["user_id", "token"]).returning(FormSubmission.id)
    ).scalar()
    if claimed is None:
        case_id = session.scalar(select(FormSubmission.case_id).where(
            FormSubmission.user_id == actor.id, FormSubmission.token == token))
        raise AlreadySubmitted(case_id)
    # The person's keys past any form's life go with this claim: a form that old fails its CSRF check
    # (one hour) before its key would be looked at.
    session.execute(delete(FormSubmission).where(FormSubmission.user_id == actor.id,
                                                 FormSubmission.created_at < (now or utcnow()) - KEY_LIFETIME))
    return claimed


def used_tokens(session: Session, actor, *, case_id: int | None = None, kind: str | None = None,
                limit: int = 20) -> list[str]:
    """The keys `actor` used lately on forms about the case `case_id`, or on forms of `kind`, newest first:
    a page lists them beside its fresh key, so that a form restored from history keeps its own."""
    query = select(FormSubmission.token).where(FormSubmission.user_id == actor.id)
    if case_id is not None:
        query = query.where(FormSubmission.case_id == case_id)
    if kind is not None:
        query = query.where(FormSubmission.kind == kind)
    return list(session.scalars(query.order_by(FormSubmission.id.desc()).limit(limit)))


def sent(session: Session, actor, token: str | None) -> FormSubmission | None:
    """The claim of `token` by `actor`, if the form that carries it was already applied."""
    token = (token or "").strip()
    if not token:
        return None
    return session.scalar(select(FormSubmission).where(FormSubmission.user_id == actor.id,
                                                       FormSubmission.token == token))


def settle(session: Session, claim_id: int, case_id: int | None) -> None:
    """Remember which case the claimed form made or changed (where a second send is sent back to)."""
    session.execute(update(FormSubmission).where(FormSubmission.id == claim_id).values(case_id=case_id))
