"""Staff pages: sign-in and the case pages."""
from __future__ import annotations

from flask import Flask, g, redirect, request, session, url_for
from flask_login import LoginManager, current_user

from engine import calendar, states, vocab
from engine.models import User
from web import db

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "ログインしてください。"
login_manager.session_protection = "strong"


@login_manager.user_loader
def _load_user(user_id: str):
    """The signed-in user, if still active and the session's epoch is current (disable ends sessions)."""
    login_id, _, epoch = user_id.partition(":")
    if not login_id.isdigit():
        return None
    user = db.session().get(User, int(login_id))
    if user is None or not user.active or str(user.session_epoch) != epoch:
        return None
    return user


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    from web.views import auth, cases

    app.register_blueprint(auth.bp)
    app.register_blueprint(cases.bp)

    app.jinja_env.filters["wareki"] = lambda d: calendar.wareki(d) if d else ""
    app.jinja_env.filters["wareki_dt"] = lambda d: calendar.wareki_datetime(d) if d else ""
    app.jinja_env.globals.update(
        STATE_LABELS=states.CASE_STATE_LABELS, EVENT_LABELS=states.CASE_EVENT_LABELS,
        HANDOFF_STATE_LABELS=states.HANDOFF_STATE_LABELS, vocab_label=vocab.label,
    )

    @app.before_request
    def _session_timeout():
        # Sessions end after inactivity (SESSION_MINUTES); each request renews the lifetime.
        session.permanent = True
        g.remote_addr = request.remote_addr

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
        )
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if current_user and getattr(current_user, "is_authenticated", False):
            response.headers.setdefault("Cache-Control", "no-store")
        return response
