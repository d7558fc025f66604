"""API clients (other systems) and their bearer tokens: created once, stored only as a hash.

A token is shown once, when it is made. A client with a `user` acts as that staff user under the same
access policy as the pages; one without may only post and read its own referrals.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine import access, vocab
from engine.audit import trail
from engine.errors import Conflict, ValidationFailed
from engine.models import ApiClient, ApiToken, User, utcnow

SCOPES = ("referrals:write", "referrals:read", "cases:read", "cases:write", "alerts:read", "alerts:write",
          "watch:write", "watch:read")
# A 見守り協定 partner's scopes: it sends the narrow 見守り通報 and reads back that it was received, nothing else.
WATCH_SCOPES = frozenset({"watch:write", "watch:read"})
# Scopes that reach into staff data: only through a staff user's access policy.
USER_SCOPES = frozenset({"cases:read", "cases:write", "alerts:read", "alerts:write"})
TOKEN_PREFIX = "tsu_"
# last_used_at is written at most this often per token: an API read stays a read.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Caller:
    """Who is calling the API: the client, the token used and the staff user it acts for (or None)."""

    client: ApiClient
    token: ApiToken
    user: User | None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.client.scopes or ())


def _check_name(name: str) -> None:
    if not name or len(name) > 100 or not name.isprintable() or name != name.strip():
        raise ValidationFailed({"client": ["クライアント名は100文字以内の印字可能な文字で指定してください。"]})


def create_token(session: Session, *, client_name: str, scopes: list[str], user_login: str | None = None,
                 source: str | None = None, now: datetime | None = None) -> tuple[ApiClient, str]:
    """Make a token for the client (created if new); return the client and the token, shown only now.

    `source` (a code of categories.yaml `sources`) becomes the source of every referral the client sends
    from now on, so that routing rules on sources apply to them; without it the client keeps the one it has
    (none: `api`).

    Scopes and user belong to the client, for all its tokens. A token once handed out never gains or loses
    what it may do: while the client has valid tokens, a new one must ask for the same scopes and user
    (Conflict otherwise: use another client name, or revoke the client's tokens first). A client whose
    tokens are all revoked takes the scopes and user given here.
    """
    now = now or utcnow()
    _check_name(client_name)
    scopes = list(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    errors: dict[str, list[str]] = {}
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes:
        errors["scopes"] = ["スコープを1つ以上指定してください: " + ", ".join(SCOPES)]
    elif unknown:
        errors["scopes"] = [f"「{s}」というスコープはありません（{', '.join(SCOPES)}）。" for s in unknown]
    elif WATCH_SCOPES & set(scopes) and set(scopes) - WATCH_SCOPES:
        errors["scopes"] = ["見守り通報のスコープ（watch:write、watch:read）は、ほかのスコープと併せて持てません"
                            "（見守り協定の相手は通報だけを送ります）。"]
    user = None
    if user_login:
        user = session.scalar(select(User).where(User.login == user_login))
        if user is None or not user.active:
            errors["user"] = [f"「{user_login}」という有効な職員はいません。"]
        elif WATCH_SCOPES & set(scopes):
            errors["user"] = ["見守り通報のクライアントは職員として動きません（--user は付けずに作ってください）。"]
    elif USER_SCOPES & set(scopes):
        errors["user"] = ["cases:* と alerts:* のスコープには --user（代わりに操作する職員）が必要です。"]
    if source is not None and source not in vocab.codes("sources"):
        errors["source"] = [f"「{source}」という受付経路はありません（{', '.join(vocab.codes('sources'))}）。"]
    if errors:
        raise ValidationFailed(errors)
    client = session.scalar(select(ApiClient).where(ApiClient.name == client_name))
    if client is None:
        client = ApiClient(name=client_name, scopes=scopes, user_id=getattr(user, "id", None), created_at=now)
        session.add(client)
    elif (set(client.scopes or ()), client.user_id) != (set(scopes), getattr(user, "id", None)):
        valid = session.scalar(select(func.count()).select_from(ApiToken).where(
            ApiToken.client_id == client.id, ApiToken.revoked_at.is_(None)))
        if valid:
            was_user = session.get(User, client.user_id) if client.user_id is not None else None
            was = f"スコープ {', '.join(client.scopes or ())}、" + (
                f"職員 {was_user.login} として" if was_user is not None else "外部システムとして")
            raise Conflict(
                f"クライアント {client_name} には有効なトークンが {valid} 件あり、{was}動いています。"
                "渡したトークンの権限は変えられません。別のクライアント名で作るか、"
                f"tsunagu token revoke {client_name} で失効させてから作り直してください。")
        client.scopes = scopes
        client.user_id = getattr(user, "id", None)
    if source is not None:
        client.source = source
    session.flush()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(client_id=client.id, token_hash=hash_token(token), prefix=token[:12], created_at=now))
    trail.record(session, actor=None, actor_label="cli", action="api_token.create", object_type="api_client",
                 object_id=client.id, at=now,
                 detail={"client": client_name, "scopes": scopes, "user": user_login, "source": client.source})
    session.flush()
    return client, token


def revoke_tokens(session: Session, client_name: str, *, now: datetime | None = None, actor=None) -> int:
    """Revoke every token of the client at once; return how many were still valid.

    From a page, `actor` is the signed-in user: only an admin may (PermissionDenied otherwise).
    """
    if actor is not None:
        access.require_admin(actor, "トークンを無効にできるのは管理者だけです。")
    now = now or utcnow()
    client = session.scalar(select(ApiClient).where(ApiClient.name == client_name))
    if client is None:
        raise ValidationFailed({"client": [f"「{client_name}」というクライアントはありません。"]})
    count = session.execute(
        update(ApiToken).where(ApiToken.client_id == client.id, ApiToken.revoked_at.is_(None)).values(revoked_at=now)
    ).rowcount
    trail.record(session, actor=actor, actor_label=None if actor is not None else "cli", action="api_token.revoke", object_type="api_client",
                 object_id=client.id, at=now, detail={"client": client_name, "revoked": count})
    session.flush()
    return count


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> Caller | None:
    """The caller a bearer token stands for, or None: unknown, revoked, or acting for a disabled user."""
    now = now or utcnow()
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    client = row.client
    user = None
    if client.user_id is not None:
        user = session.get(User, client.user_id)
        if user is None or not user.active:
            return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Caller(client=client, token=row, user=user)


def register_webhook(session: Session, client_name: str, url: str, *, now: datetime | None = None) -> str:
    """Set the client's callback URL and a new signing secret; return the secret (shown only now)."""
    try:
        parts = urlsplit(url or "")
        hostname = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts, hostname = None, None
    # No spaces or control characters: such a URL could never be requested, and every delivery to it
    # would be retried for good, holding back the client's later events.
    if (parts is None or parts.scheme not in ("http", "https") or not hostname or len(url) > 500
            or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url)):
        raise ValidationFailed({"url": ["http:// または https:// で始まる500文字以内の URL を指定してください。"]})
    client = session.scalar(select(ApiClient).where(ApiClient.name == client_name))
    if client is None:
        raise ValidationFailed({"client": [f"「{client_name}」というクライアントはありません。"]})
    secret = "whsec_" + secrets.token_urlsafe(32)
    client.webhook_url = url
    client.webhook_secret = secret
    trail.record(session, actor=None, actor_label="cli", action="webhook.register", object_type="api_client",
                 object_id=client.id, at=now, detail={"client": client_name, "url": url})
    session.flush()
    return secret


def list_clients(session: Session, actor) -> list[dict]:
    """The API clients for the admin page: name, scopes, the staff user they act as, their tokens' state.
    Never a token or its hash."""
    access.require_admin(actor, "APIクライアントの一覧は管理者だけが見られます。")
    out = []
    for client in session.scalars(select(ApiClient).order_by(ApiClient.name)):
        tokens = list(session.scalars(select(ApiToken).where(ApiToken.client_id == client.id)))
        live = [t for t in tokens if t.revoked_at is None]
        used = [t.last_used_at for t in tokens if t.last_used_at is not None]
        out.append({"name": client.name, "scopes": list(client.scopes or []),
                    "user": client.user.login if client.user is not None else None,
                    "valid_tokens": len(live), "prefixes": [t.prefix for t in live],
                    "last_used_at": max(used) if used else None})
    return out


def referral_sender(session: Session, client_name: str) -> ApiClient:
    """The client a file of referrals is imported for: one that could post them itself (the referrals:write
    scope and a token not revoked); ValidationFailed naming what is missing."""
    client = session.scalar(select(ApiClient).where(ApiClient.name == client_name))
    if client is None:
        raise ValidationFailed({"client": [f"「{client_name}」というクライアントはありません。"]})
    if "referrals:write" not in (client.scopes or ()):
        raise ValidationFailed({"client": [f"クライアント {client_name} には referrals:write のスコープがありません。"]})
    live = session.scalar(select(func.count()).select_from(ApiToken)
                          .where(ApiToken.client_id == client.id, ApiToken.revoked_at.is_(None)))
    if not live:
        raise ValidationFailed({"client": [f"クライアント {client_name} のトークンはすべて失効しています。"]})
    return client
