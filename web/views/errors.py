"""The staff pages' answers to errors: Japanese error pages, and each refusal audited (web.errors registers them)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, g, redirect, render_template, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from engine.audit import refusals
from engine.db import lost_race
from engine.errors import EngineError, LostRace
from web import db


def page_above(path: str) -> str:
    """The nearest page above `path` that answers GET (/cases/13/events/close → /cases/13), else the start."""
    adapter = current_app.url_map.bind("localhost")
    parts = path.rstrip("/").split("/")
    while len(parts) > 2:
        parts.pop()
        candidate = "/".join(parts)
        try:
            adapter.match(candidate, method="GET")
        except RequestRedirect as moved:  # /admin → /admin/
            return urlsplit(moved.new_url).path
        except HTTPException:
            continue
        return candidate
    return "/"


def audit_refusal(exc: EngineError) -> None:
    # The refused request leaves one row: the refusal (what it tried to do is rolled back).
    if not getattr(current_user, "is_authenticated", False):
        return
    s = db.session()
    s.rollback()
    case_id, kind, object_id = refusals.refused_target(s, request.view_args or {})
    refusals.record_refusal(s, current_user._get_current_object(), exc, action=f"page.{request.endpoint}",
                            case_id=case_id, object_type=kind, object_id=object_id,
                            remote_addr=request.remote_addr)
    g.commit_on_error = True

def not_found(exc):
    """An engine NotFound on a page: audited as a refusal, and the 404 page."""
    audit_refusal(exc)
    return render_template("errors/404.html", message=exc.message), 404

def forbidden(exc):
    """An engine PermissionDenied on a page: audited as a refusal, and the 403 page."""
    audit_refusal(exc)
    return render_template("errors/403.html", message=exc.message), 403

def unexpected(exc):
    """Any other exception on a page: a lost race is said as such (409); anything else is Flask's 500."""
    if isinstance(exc, HTTPException):
        return http_error(exc)
    if not lost_race(exc):
        raise exc  # Flask's own handling: logged, and the 500 page below
    # Met a concurrent action in the database: nothing of it was kept; the person is told so.
    current_app.logger.info("%s %s lost a race: %s", request.method, request.path, type(exc).__name__)
    if g.get("db_session") is not None:
        g.db_session.rollback()
    refused = LostRace()
    return render_template("errors/error.html", title=refused.title, message=refused.message), refused.status

def engine_error(exc):
    """Any other refusal of the engine on a page: its title and message."""
    return render_template("errors/error.html", title=exc.title, message=exc.message), exc.status

def http_error(exc):
    """An HTTP error on a page: the error page in Japanese (a form's address opened as a page: the page)."""
    if exc.code is None or exc.code < 400:
        return exc
    if exc.code >= 500 and g.get("db_session") is not None:
        # What failed may have left the transaction unusable, and the page's header reads the user.
        g.db_session.rollback()
    if exc.code == 405 and request.method in ("GET", "HEAD"):
        # A form's address opened as a page (reloaded from the address bar after a refused form, or
        # bookmarked): the page the form belongs to is what the person was looking for.
        return redirect(page_above(request.path), 303)
    template = {404: "errors/404.html", 403: "errors/403.html"}.get(exc.code, "errors/error.html")
    titles = {400: "リクエストが正しくありません", 405: "この操作はできません", 413: "送信された内容が大きすぎます"}
    return render_template(template, title=titles.get(exc.code, "エラー"), message=None), exc.code
