"""Staff users: creation, password checks with throttling, disabling."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine import access, audit
from engine.errors import Conflict, PermissionDenied, ValidationFailed
from engine.models import ROLES, ApiClient, ApiToken, AuditEvent, Department, User, utcnow

_hasher = PasswordHasher()


@cache
def _unknown_login_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))


def _spend_a_verification(password: str) -> None:
    """An unknown login takes as long as a wrong password: the time taken must not tell which logins exist."""
    try:
        _hasher.verify(_unknown_login_hash(), password)
    except (VerificationError, InvalidHashError):
        pass
FREE_ATTEMPTS = 5
# One answer for an unknown login, a wrong password and a locked account alike, so that the answer does
# not tell which logins exist; it names the lock, since a person who typed the right password needs to know.
SIGN_IN_REFUSED = ("ログインIDまたはパスワードが違うか、ログインの失敗が続いたためしばらくログインできない状態です。"
                   "確かめて、時間をおいてやり直してください。")
MAX_LOCK = timedelta(minutes=15)
MIN_PASSWORD = 10
# Per address: a city office may sit behind one proxy address, so the limit is well above one person's
# mistakes, and it lifts as the window slides.
ADDRESS_ATTEMPTS = 30
ADDRESS_WINDOW = timedelta(minutes=15)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _encodable(text: str) -> bool:
    """Whether `text` is real Unicode (stdin read as text turns undecodable bytes into lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def create_user(session: Session, *, login: str, role: str, department_code: str, password: str,
                display_name: str | None = None, actor=None) -> User:
    """Add a staff user (職員). Refuses an unknown role or department, a taken login, a short password."""
    errors: dict[str, list[str]] = {}
    if not login or not login.isascii() or len(login) > 64 or not login.replace("-", "").replace("_", "").replace(".", "").isalnum():
        errors["login"] = ["ログインIDは半角英数字と - _ . で64文字以内にしてください。"]
    if role not in ROLES:
        errors["role"] = [f"役割は {' / '.join(ROLES)} のいずれかです。"]
    dept = session.scalar(select(Department).where(Department.code == department_code))
    if dept is None:
        errors["department"] = [f"「{department_code}」という部署はありません。"]
    if len(password or "") < MIN_PASSWORD:
        errors["password"] = [f"パスワードは{MIN_PASSWORD}文字以上にしてください。"]
    elif not _encodable(password):
        errors["password"] = ["パスワードに使えない文字（UTF-8 で表せないバイト）が含まれています。"]
    if display_name is not None and (len(display_name) > 100 or not display_name.strip()
                                     or not _encodable(display_name) or any(ord(c) < 32 for c in display_name)):
        errors["name"] = ["氏名は1文字以上100文字以内で、改行や制御文字を含めずに指定してください。"]
    if errors:
        raise ValidationFailed(errors)
    if session.scalar(select(User.id).where(User.login == login)) is not None:
        raise Conflict(f"ログインID「{login}」は既に使われています。")
    user = User(login=login, display_name=display_name or login, role=role, department_id=dept.id,
                password_hash=hash_password(password))
    session.add(user)
    session.flush()
    audit.record(session, actor=actor, action="user.add", object_type="user", object_id=user.id,
                 detail={"login": login, "role": role, "department": department_code})
    return user


def authenticate(session: Session, login: str, password: str, *, remote_addr: str | None = None,
                 now: datetime | None = None) -> User | None:
    """Check a sign-in; repeated failures lock the account for a growing time, and are audited.

    Failures are also counted per address (the audit trail's `login.failed` rows from `remote_addr` in the
    last ADDRESS_WINDOW): past ADDRESS_ATTEMPTS, every sign-in from there is refused with PermissionDenied,
    whatever the account, until the window has slid past them.
    """
    now = now or utcnow()
    if remote_addr and failures_from(session, remote_addr, now) >= ADDRESS_ATTEMPTS:
        audit.record(session, actor=None, actor_label=f"login:{login[:60]}", action="login.throttled",
                     object_type="user", remote_addr=remote_addr, outcome="refused", at=now)
        raise PermissionDenied("この接続元からのログインの失敗が続いたため、しばらくログインできません。"
                               "時間をおいてやり直してください。")
    # of=User: the eager join to the department is an outer join, which PostgreSQL will not lock.
    user = session.scalar(select(User).where(User.login == login).with_for_update(of=User))
    if user is None:
        _spend_a_verification(password)
        audit.record(session, actor=None, actor_label=f"login:{login[:60]}", action="login.failed",
                     object_type="user", remote_addr=remote_addr, outcome="refused", at=now,
                     detail={"reason": "unknown_login"})
        return None
    if user.locked_until is not None and user.locked_until > now:
        audit.record(session, actor=user, action="login.locked", object_type="user", object_id=user.id,
                     remote_addr=remote_addr, outcome="refused", at=now)
        _spend_a_verification(password)  # as long as any other refusal
        raise PermissionDenied(SIGN_IN_REFUSED)
    try:
        ok = bool(user.password_hash) and _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or not user.active:
        user.failed_logins += 1
        if user.failed_logins >= FREE_ATTEMPTS:
            user.locked_until = now + min(MAX_LOCK, timedelta(seconds=30 * 2 ** (user.failed_logins - FREE_ATTEMPTS)))
        audit.record(session, actor=user, action="login.failed", object_type="user", object_id=user.id,
                     remote_addr=remote_addr, outcome="refused", at=now,
                     detail={"reason": "inactive" if ok else "bad_password", "failures": user.failed_logins})
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record(session, actor=user, action="login", object_type="user", object_id=user.id,
                 remote_addr=remote_addr, at=now)
    return user


def failures_from(session: Session, remote_addr: str, now: datetime) -> int:
    """Failed sign-ins from an address in the last ADDRESS_WINDOW (any account, known or not)."""
    return session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.remote_addr == remote_addr, AuditEvent.at > now - ADDRESS_WINDOW,
        AuditEvent.action == "login.failed"))


def sign_out(session: Session, user: User, *, remote_addr: str | None = None) -> None:
    """End every open session of the user (their session epoch moves on); audited."""
    user = session.get(User, user.id, with_for_update=True)
    user.session_epoch += 1
    audit.record(session, actor=user, action="logout", object_type="user", object_id=user.id,
                 remote_addr=remote_addr)
    session.flush()


def disable_user(session: Session, actor: User, login: str) -> User:
    """Disable a user at once: their open sessions end and their tokens stop working.

    `active` turns false (every access rule then refuses the user, and a token acting for them reaches
    nothing); `session_epoch` moves on, so the session cookies carrying the old one no longer load a user;
    the tokens of the API clients that act as this user are revoked.
    """
    if actor is not None and actor.role != "admin":
        raise PermissionDenied("利用者を停止できるのは管理者だけです。")
    user = session.scalar(select(User).where(User.login == login))
    if user is None:
        raise ValidationFailed({"login": [f"「{login}」という利用者はいません。"]})
    if actor is not None and actor.id == user.id:
        raise ValidationFailed({"login": ["自分自身は停止できません（ほかの管理者に依頼してください）。"]})
    now = utcnow()
    user.active = False
    user.session_epoch += 1
    revoked = session.execute(
        update(ApiToken).where(
            ApiToken.revoked_at.is_(None),
            ApiToken.client_id.in_(select(ApiClient.id).where(ApiClient.user_id == user.id)))
        .values(revoked_at=now), execution_options={"synchronize_session": False}).rowcount
    audit.record(session, actor=actor, action="user.disable", object_type="user", object_id=user.id,
                 detail={"tokens_revoked": revoked})
    session.flush()
    return user


def list_users(session: Session, actor) -> list[User]:
    """Every staff user, for the admin page (PermissionDenied for anyone but an admin)."""
    access.require_admin(actor, "利用者の一覧は管理者だけが見られます。")
    return list(session.scalars(select(User).order_by(User.active.desc(), User.department_id, User.login)))
