"""What every page's view shares: the signed-in actor, and engine refusals turned into page messages."""
from __future__ import annotations

from flask import flash, g, request
from flask_login import current_user
from markupsafe import Markup

from engine.cases.submissions import AlreadySubmitted
from engine.errors import EngineError, GuardRefused, NotFound, PermissionDenied, StaleVersion, ValidationFailed
from web import db

# A guard's refusal is about one input of the form: show it beside that input.
GUARD_FIELDS = {
    "members_acknowledged_secrecy": "members",
    "consent_covers_agencies": "agencies",
    "main_department_has_role": "main_department",
    "plan_agencies_within_consent": "roles",
    "evaluation_date_in_future": "next_evaluation_date",
    "target_is_other_department": "to_department",
    "join_within_consent": "to_department",
    "member_within_consent": "user",
    "basis_needed": "to_department",
    "owner_named_in_consent": "agencies",
    "decision": "decision",
}


def actor():
    """The signed-in user as the engine's actor."""
    return current_user._get_current_object()


# A display name that names a post rather than a person (the demo's 障害福祉課 職員, システム管理者): no さん.
_POSTS = ("職員", "管理者", "担当", "係", "課")


def name_with_san(display_name: str) -> str:
    """A colleague's name as staff say it: 宮島さん, 宮島 FMさん（地域福祉課 係長）; a post as it is."""
    name, paren, rest = display_name.partition("（")
    name = name.rstrip()
    said = name if not name or name.endswith(_POSTS) else f"{name}さん"
    return f"{said}{paren}{rest}"


def remote_addr() -> str | None:
    """The client's address, for the audit trail."""
    return g.get("remote_addr") or request.remote_addr


class Refusal:
    """An engine refusal as a page shows it: a status, a message at the top, messages by input name."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None,
                 stale: bool = False, exc: EngineError | None = None, keep_values: bool = False):
        self.status = status
        self.message = message
        self.errors = errors or {}
        self.stale = stale
        self.exc = exc
        # A form refused as stale comes back with what was typed (and the current version), so that the
        # person can read what changed and send it again on purpose; a form already applied does not.
        self.keep_values = keep_values
        self.double = False  # stale by the person's own change a moment ago: the same form sent twice


def refusal(exc: EngineError) -> Refusal:
    """Roll back what the failed action wrote, and describe the refusal for the page.

    A stale version, or a form already applied, is "stale": the page shows the current state. A form
    already applied does not come back filled in (it would apply a second time); a stale one does, with
    the current version, to be read against what changed and sent again on purpose.
    """
    db.session().rollback()
    if isinstance(exc, ValidationFailed):
        return Refusal(exc.status, "入力内容を確認してください。", dict(exc.errors), exc=exc)
    if isinstance(exc, GuardRefused):
        field = GUARD_FIELDS.get(exc.extra.get("guard"))
        if field:  # the message goes beside its input, and once in the summary, linked to it
            return Refusal(exc.status, "入力内容を確認してください。", {field: [exc.message]}, exc=exc)
        return Refusal(exc.status, exc.message, exc=exc)
    if isinstance(exc, StaleVersion):
        return Refusal(exc.status, exc.message, stale=True, exc=exc, keep_values=True)
    if isinstance(exc, AlreadySubmitted):
        return Refusal(exc.status, exc.message, stale=True, exc=exc)
    return Refusal(exc.status, exc.message, exc=exc)


# Refusals a form does not show: the app's 403 and 404 pages do (and audit them).
PASS_THROUGH = (PermissionDenied, NotFound)


def flash_already_saved(what: str, url: str, link: str) -> None:
    """A form whose one-time key was used before (a double click, or a page sent again from the browser's
    history): nothing is saved a second time; the message links to what the first send saved. The page it
    leads to opens at its top, where the message is."""
    flash(Markup('{}は既に記録されています。同じフォームがもう一度送信されたため、2回目は保存していません。'
                 '<a href="{}">{}</a>').format(what, url, link), "info")
