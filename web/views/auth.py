"""Sign-in and sign-out."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from engine.errors import PermissionDenied, ValidationFailed
from engine.users import accounts as users
from web import db

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this site only, else the start page.

    Browsers drop tabs and line breaks from a URL and read a backslash as a slash, so "/\t/evil.example"
    would leave the site: any such character refuses the target, as does anything with a scheme or a host.
    """
    target = target or ""
    parts = urlsplit(target)
    if (not target.startswith("/") or target.startswith("//") or "\\" in target or parts.scheme or parts.netloc
            or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)):
        return url_for("cases.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; failures are counted, slowed down and audited by engine.users.accounts."""
    if request.method == "GET" and getattr(current_user, "is_authenticated", False):
        return redirect(url_for("cases.index"))
    error = None
    login_id = ""
    if request.method == "POST":
        login_id = (request.form.get("login") or "").strip()
        try:
            user = users.authenticate(db.session(), login_id, request.form.get("password") or "",
                                      remote_addr=request.remote_addr)
        except PermissionDenied as exc:
            user, error = None, exc.message
        if user is not None:
            db.commit()
            session.clear()
            session.permanent = True  # clear() dropped it: the cookie lasts the day's limit from the start
            login_user(user)
            from web.views import LAST_SEEN, SIGNED_IN_AT

            session[LAST_SEEN] = session[SIGNED_IN_AT] = int(time.time())
            return redirect(_safe_next(request.args.get("next")))
        db.commit()  # keep the failure count and the audit row
        error = error or users.SIGN_IN_REFUSED
    return render_template("login.html", error=error, login_id=login_id), (401 if error else 200)


@bp.post("/logout")
@login_required
def logout():
    """Sign out (a POST with the CSRF token): every session of the user ends, not only this cookie.

    The session lives in a signed cookie; clearing it here would leave a copy taken earlier valid until it
    expires. Moving the user's session epoch on refuses every cookie issued before.
    """
    users.sign_out(db.session(), current_user, remote_addr=request.remote_addr)
    db.commit()
    logout_user()
    session.clear()
    flash("ログアウトしました。", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    """The signed-in user changes their own password: the current one, then the new one twice.

    Every other session of the user ends; this one carries on under the new session epoch.
    """
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        s = db.session()
        try:
            form = request.form
            user = users.change_password(
                s, current_user, current=form.get("current_password") or "",
                new=form.get("new_password") or "", confirm=form.get("confirm_password") or "",
                remote_addr=request.remote_addr)
        except ValidationFailed as exc:
            db.commit()  # the failure count and its audit row, nothing else
            errors = exc.errors
        except users.SessionEnded as exc:
            db.commit()
            logout_user()
            session.clear()
            flash(exc.message, "error")
            return redirect(url_for("auth.login"))
        except PermissionDenied as exc:  # locked by earlier failures: nothing was written
            return render_template("password.html", errors={}, message=exc.message), 403
        else:
            db.commit()
            login_user(user)  # the new epoch: this session stays, the others end
            flash("パスワードを変更しました。ほかの端末やブラウザーでのログインは終了しました。", "info")
            return redirect(url_for("cases.index"))
    return render_template("password.html", errors=errors, message=None), (422 if errors else 200)

