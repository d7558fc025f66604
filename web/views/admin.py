"""管理: who looked at a person's record (開示請求, page and CSV), staff users and API clients.

Every view here is for admins; the engine functions it calls refuse anyone else (403, audited).
"""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import login_required

from engine import access
from engine.cases import lists as caselist
from engine.errors import EngineError, NotFound, ValidationFailed
from engine.privacy import disclosure
from engine.referrals import clients as api_clients
from engine.users import accounts as users
from web import db
from web.views.common import PASS_THROUGH, actor, refusal

bp = Blueprint("admin", __name__, url_prefix="/admin")

ROLES = {"staff": "職員", "fm": "FM", "admin": "管理者"}


def _message(exc: EngineError) -> str:
    r = refusal(exc)
    return next((m for msgs in r.errors.values() for m in msgs), r.message)


def _require_admin() -> None:
    access.require_admin(actor(), "このページは管理者だけが使えます。")


@bp.get("/")
@login_required
def index():
    """管理: the disclosure form, staff users and API clients."""
    _require_admin()
    return _index()


def _index(values=None, errors=None, status: int = 200):
    s = db.session()
    return render_template("admin.html", users=users.list_users(s, actor()),
                           clients=api_clients.list_clients(s, actor()), roles=ROLES,
                           departments=caselist.department_choices(s), values=values or {},
                           errors=errors or {}, account_notes=users.account_notes), status


def _issued(user, password: str, what: str):
    """The page that shows an issued password, once: it is in this answer only (never in the session cookie,
    where a flashed message would sit, nor in any log)."""
    return render_template("admin_password.html", user=user, password=password, what=what)


@bp.post("/users")
@login_required
def add_user():
    """Add a staff user with an issued password, shown once on the answer."""
    _require_admin()
    form = request.form
    password = users.issued_password()
    try:
        user = users.create_user(db.session(), actor(), login=(form.get("login") or "").strip(),
                                 role=form.get("role") or "", department_code=form.get("department") or "",
                                 display_name=(form.get("name") or "").strip() or None, password=password,
                                 must_change=True)
    except ValidationFailed as exc:
        db.session().rollback()
        return _index(form, exc.errors, 422)
    except PASS_THROUGH:
        raise
    except EngineError as exc:  # a login already taken: said beside the login
        db.session().rollback()
        return _index(form, {"login": [exc.message]}, 409)
    return _issued(user, password, "を追加しました")


# What each action that cannot be taken back does to the user, said on the page that asks to confirm it.
CONFIRMATIONS = {
    "disable": ("停止する", "を停止しますか", "停止すると、この利用者の開いている画面はすぐに使えなくなり、"
                "この利用者として動くAPIトークンも無効になります。再開しても、無効にしたトークンは戻りません。"),
    "password": ("パスワードを再設定する", "のパスワードを再設定しますか",
                 "いまのパスワードは使えなくなり、この利用者の開いている画面も使えなくなります。新しいパスワードを"
                 "一度だけ表示しますので、本人に渡してください。"),
}


def _unconfirmed(login: str, action: str):
    """The page that asks to confirm `action` on the user `login`, or None when it is confirmed (or there is
    nothing to confirm: no such user, or the admin themselves, whom the action refuses with its reason)."""
    if request.form.get("confirmed") == "yes":
        return None
    user = next((u for u in users.list_users(db.session(), actor()) if u.login == login), None)
    if user is None or user.id == actor().id or (action == "disable" and not user.active):
        return None
    button, question, consequence = CONFIRMATIONS[action]
    return render_template("admin_confirm.html", user=user, button=button, question=question,
                           consequence=consequence, action=request.path)


@bp.post("/users/<login>/password")
@login_required
def reset_password(login: str):
    """Issue a new password for a user (forgotten, or locked out): the lock lifts, their sessions end.
    Asked to confirm first."""
    _require_admin()
    page = _unconfirmed(login, "password")
    if page is not None:
        return page
    password = users.issued_password()
    try:
        user = users.reset_password(db.session(), actor(), login, password)
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        flash(_message(exc), "error")
        return redirect(url_for("admin.index", _anchor="users"), 303)
    return _issued(user, password, "のパスワードを再設定しました")


@bp.get("/disclosure")
@login_required
def disclosure_page():
    """閲覧記録（開示請求）: every audit row about the person of a case, on the page."""
    _require_admin()
    ref = (request.args.get("case") or "").strip()
    if not ref:
        return render_template("disclosure.html", ref="", cases=None, rows=None, provided=None, error=None)
    try:
        cases, rows = disclosure.person_trail(db.session(), ref, actor=actor())
        provided = disclosure.provided_to(db.session(), cases)
    except NotFound as exc:  # a mistyped number: said beside the field
        db.session().rollback()
        return render_template("disclosure.html", ref=ref, cases=None, rows=None, provided=None,
                               error=exc.message), 404
    return render_template("disclosure.html", ref=ref, cases=cases, rows=rows, provided=provided, error=None)


@bp.get("/disclosure.csv")
@login_required
def disclosure_csv():
    """The same answer as CSV (UTF-8 with BOM, so that a spreadsheet opens the Japanese as it is)."""
    _require_admin()
    ref = (request.args.get("case") or "").strip()
    cases, rows = disclosure.person_trail(db.session(), ref, actor=actor())
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(disclosure.CSV_HEADER)
    w.writerows(disclosure.csv_row(r) for r in rows)
    name = f"disclosure-{cases[0].case_number}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _act(do, done, anchor: str):
    """One administrator's action from the lists: say what was done (or why not) and go back to its list."""
    _require_admin()
    try:
        result = do()
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        flash(_message(exc), "error")
    else:
        flash(done(result), "success")
    return redirect(url_for("admin.index", _anchor=anchor), 303)


@bp.post("/users/<login>/disable")
@login_required
def disable_user(login: str):
    """Stop a user at once, once confirmed: their sessions end and their tokens stop working."""
    _require_admin()
    page = _unconfirmed(login, "disable")
    if page is not None:
        return page
    return _act(lambda: users.disable_user(db.session(), actor(), login),
                lambda u: f"{u.display_name}（{u.login}）を停止しました。開いていた画面とトークンは使えなくなりました。",
                "users")


@bp.post("/users/<login>/enable")
@login_required
def enable_user(login: str):
    """Let a stopped user sign in again (their revoked tokens stay revoked)."""
    return _act(lambda: users.enable_user(db.session(), actor(), login),
                lambda u: f"{u.display_name}（{u.login}）を再開しました。ログインできます（停止のときに無効にしたトークンは無効のままです）。",
                "users")


@bp.post("/clients/<name>/revoke")
@login_required
def revoke_client(name: str):
    """Revoke every token of an API client at once."""
    return _act(lambda: api_clients.revoke_tokens(db.session(), name, actor=actor()),
                lambda count: f"{name} のトークン {count} 件を無効にしました。", "clients")
