"""Sign-in and sign-out."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user

from engine import users
from engine.errors import PermissionDenied
from web import db

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
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
            login_user(user)
            nxt = request.args.get("next") or ""
            return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else url_for("cases.index"))
        db.commit()  # keep the failure count and the audit row
        error = error or "ログインIDまたはパスワードが違います。"
    return render_template("login.html", error=error, login_id=login_id), (401 if error else 200)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash("ログアウトしました。")
    return redirect(url_for("auth.login"))
