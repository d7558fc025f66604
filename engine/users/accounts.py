"""Staff users: creation, sign-in with throttling, password changes and resets, stopping and restarting."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine import access, calendar
from engine.audit import trail
from engine.errors import Conflict, PermissionDenied, ValidationFailed
from engine.fields import text_problem
from engine.models import ROLES, ApiClient, ApiToken, AuditEvent, Department, User, utcnow

# argon2id with the library's default cost (3 passes over 64 MiB) unless the operator sets another
# (TSUNAGU_PASSWORD_TIME_COST, TSUNAGU_PASSWORD_MEMORY_KIB; see use_hash_cost).
_hasher = PasswordHasher()


def use_hash_cost(time_cost: int, memory_kib: int) -> None:
    """Hash new passwords at this cost. A stored hash carries its own parameters, so those made at another
    cost still verify; each is made again at this cost the next time its owner signs in."""
    global _hasher
    if (_hasher.time_cost, _hasher.memory_cost) != (time_cost, memory_kib):
        _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        _unknown_login_hash.cache_clear()


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
MAX_PASSWORD = 256
MAX_LOGIN = 64
MAX_DISPLAY_NAME = 100
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


def _check_new_password(errors: dict[str, list[str]], name: str, password: str | None) -> None:
    """The rules every new password meets (set by an operator or by the user)."""
    if len(password or "") < MIN_PASSWORD:
        errors[name] = [f"パスワードは{MIN_PASSWORD}文字以上にしてください。"]
    elif len(password) > MAX_PASSWORD:
        errors[name] = [f"パスワードは{MAX_PASSWORD}文字以内にしてください。"]
    elif not _encodable(password):
        errors[name] = ["パスワードに使えない文字（UTF-8 で表せないバイト）が含まれています。"]


# Initial and reset passwords made for the user: letters and digits that cannot be mistaken for one another
# when read off a screen and typed (no 0/O, 1/l/I), in groups of four.
_ISSUED_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def issued_password() -> str:
    """A random password for an administrator to hand over (about 70 bits), e.g. ``k7Qm-3xTa-W9pe``."""
    return "-".join("".join(secrets.choice(_ISSUED_ALPHABET) for _ in range(4)) for _ in range(3))


def create_user(session: Session, actor, *, login: str, role: str, department_code: str, password: str,
                display_name: str | None = None, must_change: bool = False) -> User:
    """Add a staff user (職員). Refuses an unknown role or department, a taken login, a short password.

    `actor` None is the operator at the command line; a person must be an administrator."""
    if actor is not None:
        access.require_admin(actor, "利用者を追加できるのは管理者だけです。")
    errors: dict[str, list[str]] = {}
    if not login:
        errors["login"] = ["ログインIDを入力してください。"]
    elif (not login.isascii() or len(login) > MAX_LOGIN
          or not login.replace("-", "").replace("_", "").replace(".", "").isalnum()):
        errors["login"] = [f"ログインIDは半角英数字と - _ . で{MAX_LOGIN}文字以内にしてください。"]
    if role not in ROLES:
        errors["role"] = [f"役割は {' / '.join(ROLES)} のいずれかです。"]
    dept = None
    if department_code:
        dept = session.scalar(select(Department).where(Department.code == department_code))
    if not department_code:
        errors["department"] = ["所属の部署を選んでください。"]
    elif dept is None:
        errors["department"] = [f"「{department_code}」という部署はありません。"]
    _check_new_password(errors, "password", password)
    if display_name is not None and (len(display_name) > MAX_DISPLAY_NAME or not display_name.strip()
                                     or text_problem(display_name, person_name=True)):
        errors["name"] = [f"氏名は1文字以上{MAX_DISPLAY_NAME}文字以内で、改行や制御文字（文字の向きを変えるものを含む）を"
                          "含めずに指定してください。"]
    if errors:
        raise ValidationFailed(errors)
    if session.scalar(select(User.id).where(User.login == login)) is not None:
        raise Conflict(f"ログインID「{login}」は既に使われています。")
    user = User(login=login, display_name=display_name or login, role=role, department_id=dept.id,
                password_hash=hash_password(password), must_change_password=must_change)
    session.add(user)
    session.flush()
    trail.record(session, actor=actor, action="user.add", object_type="user", object_id=user.id,
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
        trail.record(session, actor=None, actor_label=f"login:{login[:60]}", action="login.throttled",
                     object_type="user", remote_addr=remote_addr, outcome="refused", at=now)
        raise PermissionDenied("この接続元からのログインの失敗が続いたため、しばらくログインできません。"
                               "時間をおいてやり直してください。")
    # of=User: the eager join to the department is an outer join, which PostgreSQL will not lock.
    user = session.scalar(select(User).where(User.login == login).with_for_update(of=User))
    if user is None:
        _spend_a_verification(password)
        trail.record(session, actor=None, actor_label=f"login:{login[:60]}", action="login.failed",
                     object_type="user", remote_addr=remote_addr, outcome="refused", at=now,
                     detail={"reason": "unknown_login"})
        return None
    if is_locked(user, now):
        trail.record(session, actor=user, action="login.locked", object_type="user", object_id=user.id,
                     remote_addr=remote_addr, outcome="refused", at=now)
        _spend_a_verification(password)  # as long as any other refusal
        raise PermissionDenied(SIGN_IN_REFUSED)
    try:
        ok = bool(user.password_hash) and _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or not user.active:
        _count_failure(user, now)
        trail.record(session, actor=user, action="login.failed", object_type="user", object_id=user.id,
                     remote_addr=remote_addr, outcome="refused", at=now,
                     detail={"reason": "inactive" if ok else "bad_password", "failures": user.failed_logins})
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    trail.record(session, actor=user, action="login", object_type="user", object_id=user.id,
                 remote_addr=remote_addr, at=now)
    return user


def _count_failure(user: User, now: datetime) -> bool:
    """One more wrong password for `user`; past the free attempts the account locks for a growing time (up
    to MAX_LOCK). Returns whether it is locked now."""
    user.failed_logins += 1
    if user.failed_logins < FREE_ATTEMPTS:
        return False
    user.locked_until = now + min(MAX_LOCK, timedelta(seconds=30 * 2 ** (user.failed_logins - FREE_ATTEMPTS)))
    return True


def failures_from(session: Session, remote_addr: str, now: datetime) -> int:
    """Failed sign-ins from an address in the last ADDRESS_WINDOW (any account, known or not)."""
    return session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.remote_addr == remote_addr, AuditEvent.at > now - ADDRESS_WINDOW,
        AuditEvent.action == "login.failed"))


def sign_out(session: Session, user: User, *, remote_addr: str | None = None) -> None:
    """End every open session of the user (their session epoch moves on); audited."""
    user = session.get(User, user.id, with_for_update=True, populate_existing=True)
    user.session_epoch += 1
    trail.record(session, actor=user, action="logout", object_type="user", object_id=user.id,
                 remote_addr=remote_addr)
    session.flush()


def _named_user(session: Session, login: str) -> User:
    """The user an administrator's action names, its row locked (the action changes it); said when unknown."""
    # of=User: the eager join to the department is an outer join, which PostgreSQL will not lock.
    user = session.scalar(select(User).where(User.login == login).with_for_update(of=User))
    if user is None:
        raise ValidationFailed({"login": [f"「{login}」という利用者はいません。"]})
    return user


def is_locked(user: User, now: datetime | None = None) -> bool:
    """Whether failed sign-ins keep the user out at `now`."""
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def account_notes(user: User, now: datetime | None = None) -> list[str]:
    """What keeps the user from working as usual, in Japanese (the 管理 page, `tsunagu user list`)."""
    notes = [] if user.active else ["停止中"]
    if is_locked(user, now):
        notes.append(f"ロック中（{calendar.wareki_datetime(user.locked_until)}まで）")
    if user.must_change_password:
        notes.append("発行したパスワードの変更待ち")
    return notes


def disable_user(session: Session, actor: User, login: str) -> User:
    """Disable a user at once: their open sessions end and their tokens stop working.

    `active` turns false (every access rule then refuses the user, and a token acting for them reaches
    nothing); `session_epoch` moves on, so the session cookies carrying the old one no longer load a user;
    the tokens of the API clients that act as this user are revoked.
    """
    if actor is not None and actor.role != "admin":
        raise PermissionDenied("利用者を停止できるのは管理者だけです。")
    user = _named_user(session, login)
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
    trail.record(session, actor=actor, action="user.disable", object_type="user", object_id=user.id,
                 detail={"tokens_revoked": revoked})
    session.flush()
    return user


def display_names(session: Session, user_ids: set[int]) -> dict[int, str]:
    """The names staff are shown by (who acknowledged an alert, who recorded a step), by user id."""
    if not user_ids:
        return {}
    return dict(session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids))).all())


def list_users(session: Session, actor) -> list[User]:
    """Every staff user, for the admin page (PermissionDenied for anyone but an admin); `actor` None is the
    operator at the command line."""
    if actor is not None:
        access.require_admin(actor, "利用者の一覧は管理者だけが見られます。")
    return list(session.scalars(select(User).order_by(User.active.desc(), User.department_id, User.login)))


class SessionEnded(PermissionDenied):
    """Refused, and the user's sessions were ended by it (the account is locked for a while)."""


def change_password(session: Session, user: User, *, current: str, new: str, confirm: str,
                    remote_addr: str | None = None, now: datetime | None = None) -> User:
    """A signed-in user sets a new password; every other session of theirs ends (the epoch moves on).

    The current password is asked first: a session left open on a shared terminal must not be enough to
    take the account over. A wrong one counts as a failed sign-in, with the same lock, and once locked the
    session itself ends. On ValidationFailed the caller still commits: the failure count and its audit row
    are what was written, nothing else.
    """
    now = now or utcnow()
    # Locked and read again: the row as it is now (a change or a failure committed meanwhile), not as it was
    # when the request loaded the signed-in user.
    user = session.get(User, user.id, with_for_update=True, populate_existing=True)
    if is_locked(user, now):
        raise PermissionDenied("失敗が続いたため、しばらくパスワードを変更できません。時間をおいてやり直してください。")
    errors: dict[str, list[str]] = {}
    try:
        ok = bool(user.password_hash) and _hasher.verify(user.password_hash, current or "")
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        locked = _count_failure(user, now)
        if locked:
            user.session_epoch += 1
        trail.record(session, actor=user, action="password.change", object_type="user", object_id=user.id,
                     remote_addr=remote_addr, outcome="refused", at=now,
                     detail={"reason": "bad_password", "failures": user.failed_logins})
        session.flush()
        if locked:
            raise SessionEnded("いまのパスワードの入力の失敗が続いたため、ログアウトしました。"
                               "時間をおいて、ログインからやり直してください。")
        errors["current_password"] = ["いまのパスワードが違います。"]
    _check_new_password(errors, "new_password", new)
    if "new_password" not in errors:
        if new == current and ok:
            errors["new_password"] = ["いまと同じパスワードには変更できません。"]
        elif new.casefold() == user.login.casefold():
            errors["new_password"] = ["ログインIDと同じパスワードは使えません。"]
        elif confirm != new:
            errors["confirm_password"] = ["確認のために入力したパスワードが一致しません。"]
    if errors:
        raise ValidationFailed(errors)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.failed_logins = 0
    user.session_epoch += 1
    trail.record(session, actor=user, action="password.change", object_type="user", object_id=user.id,
                 remote_addr=remote_addr, at=now)
    session.flush()
    return user


def reset_password(session: Session, actor, login: str, password: str) -> User:
    """An operator sets a user's password (forgotten, or first handed over): the lock is lifted and every
    open session of the user ends. The user should change it on the page once signed in.

    `actor` None is the operator at the command line; a person must be an administrator."""
    if actor is not None:
        access.require_admin(actor, "パスワードを設定できるのは管理者だけです。")
    user = _named_user(session, login)
    if actor is not None and actor.id == user.id:
        raise ValidationFailed({"login": ["自分のパスワードは、画面上部の「パスワード変更」で変更してください。"]})
    errors: dict[str, list[str]] = {}
    _check_new_password(errors, "password", password)
    if errors:
        raise ValidationFailed(errors)
    user.password_hash = hash_password(password)
    user.must_change_password = True  # someone else chose or saw it
    user.failed_logins = 0
    user.locked_until = None
    user.session_epoch += 1
    trail.record(session, actor=actor, action="password.reset", object_type="user", object_id=user.id,
                 detail={"login": login})
    session.flush()
    return user


def enable_user(session: Session, actor, login: str) -> User:
    """Let a disabled user sign in again (the tokens revoked when they were disabled stay revoked).

    `actor` None is the operator at the command line; a person must be an administrator."""
    if actor is not None:
        access.require_admin(actor, "利用者を再開できるのは管理者だけです。")
    user = _named_user(session, login)
    if user.active:
        raise Conflict(f"利用者 {login} は停止されていません。")
    user.active = True
    user.failed_logins = 0
    user.locked_until = None
    trail.record(session, actor=actor, action="user.enable", object_type="user", object_id=user.id,
                 detail={"login": login})
    session.flush()
    return user
