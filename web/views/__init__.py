"""Staff pages: sign-in, sessions that end after inactivity, CSRF on every form, the case pages."""
from __future__ import annotations

import re
import time
from datetime import date, datetime

from flask import Flask, flash, g, redirect, render_template, request, session, url_for
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup, escape

from engine import calendar, states, vocab
from engine.alerts import alerts
from engine.models import User
from web import db, folding, limits

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "ログインしてください。"
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"

csrf = CSRFProtect()

LAST_SEEN = "last_seen"
SIGNED_IN_AT = "signed_in_at"


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


def form_list(values, name: str) -> list:
    """The values of a multi-valued input (checkboxes) in a posted form or a dict of defaults."""
    if not values:
        return []
    if hasattr(values, "getlist"):
        return values.getlist(name)
    v = values.get(name)
    return list(v) if isinstance(v, (list, tuple, set)) else ([] if v is None else [v])


# How each history row reads in a case's timeline (past events, so nouns rather than the buttons' verbs).
HISTORY_LABELS = {
    "open": "相談受付",
    "send_handoff": "つなぐシート送付",
    "accept_handoff": "受理（担当決定）",
    "decline_handoff": "返送",
    "convene_support_meeting": "支援会議の開催",
    "seek_consent": "同意確認へ",
    "record_consent": "同意の記録",
    "refuse_consent": "同意が得られなかった",
    "adopt_plan": "支援プランの決定",
    "evaluate": "評価",
    "resume": "支援の再開",
    "withdraw_consent": "同意の撤回",
    "close": "終結",
    "reopen": "再開",
    "handoff.accept": "つなぐシート受理",
    "handoff.decline": "つなぐシート返送",
    "handoff.withdraw": "つなぐシート取下げ",
    "handoff.cancel": "つなぐシート取下げ（終結に伴う）",
    "handoff.lapse": "参加の終了（同意の撤回・変更に伴う）",
    "handoff.redirect": "つなぐシート取下げ（送付先の変更に伴う）",
    "consent.record": "同意の記録（相談の受付時）",
    "handoff.reassign": "つなぐシート振り替え（FM）",
    "routing_override": "つなぐシートの送付先の変更",
    "handoff.request_join": "他部署に参加を依頼",
    "notice.acknowledge": "通知を確認",
    "amend": "内容の修正",
    "join_offer.offer": "参加の申し出",
    "join_offer.accept": "参加の申し出に応じて参加を依頼",
    "join_offer.decline": "参加の申し出を見送り",
    "join_offer.withdraw": "参加の申し出の取下げ",
    "meeting.request": "FMに支援会議の開催を依頼",
}


def _as_time(value):
    if isinstance(value, str):
        return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    return value


def _wareki(value) -> str:
    """A date (or ISO text from a read model) in 和暦: 令和8年11月30日."""
    return calendar.wareki(_as_time(value)) if value else ""


def _wareki_dt(value) -> str:
    """A time in 和暦 and JST: 令和8年11月30日 10:00 (a date alone shows as a date)."""
    if not value:
        return ""
    value = _as_time(value)
    return calendar.wareki_datetime(value) if isinstance(value, datetime) else calendar.wareki(value)


# What a person typed into the staff forms, by input name, as the page that could not take it names them.
_TYPED_LABELS = {
    "summary": "相談内容の要約", "body": "内容", "reason": "理由", "note": "メモ", "minutes": "記録",
    "decisions": "決定事項", "goals": "目標", "changes": "変化", "override_reason": "別の部署へ送る理由",
    "person.name": "氏名", "person.name_kana": "ふりがな", "person.address": "住所", "person.phone": "電話番号",
    "text": "共有する情報",
}
_NOT_TYPED = ("csrf_token", "version", "submission_token", "action", "shown_rule_version", "password", "login")


def _typed(form) -> list[tuple[str, str]]:
    """The free text a refused form carried (at most 20 inputs), labelled where the name is known."""
    out = []
    for name, value in form.items(multi=True):
        value = (value or "").strip()
        # A password is never shown back, whatever the form calls it (sign-in, password change).
        if not value or name in _NOT_TYPED or name.endswith("password") or len(out) >= 20:
            continue
        if name in _TYPED_LABELS or len(value) > 20:
            out.append((_TYPED_LABELS.get(name, "入力した内容"), value))
    return out


def _birth_year(value) -> str:
    """A household member's birth year as staff read it: 昭和50年（1975年）. A year that two eras share is
    named by both, since the day is not known: 大正15年・昭和元年（1926年）."""
    if value in (None, ""):
        return ""
    year = int(value)
    first, last = calendar.wareki_year(date(year, 1, 1)), calendar.wareki_year(date(year, 12, 31))
    named = last if first == last or first == f"{year}年" else f"{first}・{last}"
    return f"{named}（{year}年）"


# An error summary names each input by its label, which the page shows further down: the summary leaves a
# mark where the label goes, the inputs shown with an error note their labels while the page renders, and
# base.html fills the marks once the page's content is rendered.
_LABEL_MARK = re.compile(r"<!--field-label:([\w.-]*?)-->([^<]*)")


def _note_field_label(fid, text) -> str:
    """Remember the label of an input shown with an error (its hint in brackets left out); prints nothing."""
    label = str(text).strip()
    if "（" in label[1:]:
        label = label[:label.index("（", 1)]
    g.setdefault("field_labels", {})[str(fid)] = label
    return ""


def _field_labels(content) -> Markup:
    """The page's content with each summary mark replaced by its input's label ("再開の理由: …").

    A message that already names the input is left as it is; an input without a label is not named.
    """
    labels = g.get("field_labels") or {}

    def fill(m: re.Match) -> str:
        label, message = labels.get(m.group(1)), m.group(2)
        if not label or str(escape(label)) in message:
            return message
        return f"{escape(label)}: {message}"

    return Markup(_LABEL_MARK.sub(fill, str(content)))


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


def init_app(app: Flask) -> None:
    """Sign-in, CSRF, session timeout, error pages, template helpers and the page blueprints."""
    login_manager.init_app(app)
    # Forms are checked below, for every path but the API's (bearer tokens, no cookies).
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # A token lives as long as the sign-in (which ends after SESSION_MINUTES of inactivity): a long
    # form typed slowly must not fail on a timer of its own.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)

    from web.views import admin, auth, cases, dashboard, inbox, intake, meetings, people, reports, rules

    for module in (auth, cases, intake, inbox, meetings, people, dashboard, reports, rules, admin):
        app.register_blueprint(module.bp)

    app.jinja_env.filters["wareki"] = _wareki
    app.jinja_env.filters["wareki_dt"] = _wareki_dt
    app.jinja_env.filters["birth_year"] = _birth_year
    app.jinja_env.filters["field_labels"] = _field_labels
    app.jinja_env.globals.update(
        STATE_LABELS=states.CASE_STATE_LABELS, EVENT_LABELS=states.CASE_EVENT_LABELS,
        HANDOFF_STATE_LABELS=states.HANDOFF_STATE_LABELS, ALERT_LABELS=alerts.ALERT_LABELS,
        ALERT_STATUS_LABELS=alerts.STATUS_LABELS, HISTORY_LABELS=HISTORY_LABELS, vocab_label=vocab.label,
        vocab_codes=vocab.codes, form_list=form_list, note_field_label=_note_field_label, typed_text=_typed,
        field_limit=limits.field_limit, with_limit=limits.with_limit, text_head=folding.text_head,
    )

    @app.before_request
    def _session_timeout():
        # A signed-in session ends after SESSION_MINUTES without a request; each request renews it.
        g.remote_addr = request.remote_addr
        if _is_api(request.path) or request.blueprint == "health":
            return None  # the API and the health checks are stateless: no cookie
        session.permanent = True
        if request.endpoint == "static" or "_user_id" not in session:
            return None
        # However busy, a sign-in also ends SESSION_MAX_HOURS after it began (a workday): a shared PC
        # left signed in does not stay open for good, and no page's form outlives a day.
        now = int(time.time())
        last, began = session.get(LAST_SEEN), session.get(SIGNED_IN_AT)
        if not isinstance(last, int) or now - last > int(app.config["SESSION_MINUTES"]) * 60:
            message = "一定時間操作がなかったため、ログアウトしました。もう一度ログインしてください。"
        elif not isinstance(began, int) or now - began > int(app.config["SESSION_MAX_HOURS"]) * 3600:
            message = (f"ログインから{int(app.config['SESSION_MAX_HOURS'])}時間が経ったため、ログアウトしました。"
                       "もう一度ログインしてください。")
        else:
            session[LAST_SEEN] = now
            return None
        logout_user()
        session.clear()
        if request.method != "GET":
            # A form sent after the sign-in ended: nothing is saved, but what was typed is shown to copy.
            return render_template("errors/csrf.html", signed_out=message, typed=_typed(request.form)), 401
        flash(message, "info")
        return redirect(url_for("auth.login", next=request.full_path))

    @app.before_request
    def _password_first():
        # A password someone else chose or saw (issued on the 管理 page, set by an operator) is changed
        # before anything else: every page leads to the change until it is done.
        if _is_api(request.path) or request.blueprint == "health" or request.endpoint == "static":
            return None
        user = current_user
        if not getattr(user, "is_authenticated", False) or not getattr(user, "must_change_password", False):
            return None
        if request.endpoint in ("auth.password", "auth.logout"):
            return None
        flash("管理者が発行したパスワードでログインしています。続ける前に、パスワードを変更してください。", "info")
        return redirect(url_for("auth.password"))

    @app.before_request
    def _csrf():
        if app.config.get("WTF_CSRF_ENABLED", True) and not _is_api(request.path):
            csrf.protect(apply_exemptions=True)

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
        # A health check never loads the user: that would touch the session (and its cookie).
        if request.blueprint != "health" and current_user and getattr(current_user, "is_authenticated", False):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(exc):
        if request.endpoint == "auth.login":
            # A sign-in page left open past its token (another tab signed in and out): the form again.
            flash("画面の有効期限が切れていたため、もう一度ログインしてください。", "info")
            return redirect(url_for("auth.login", next=request.args.get("next") or None), 303)
        # Mostly a form sent after its sign-in ended (the cookie, and its token, gone with it).
        signed_out = None if getattr(current_user, "is_authenticated", False) \
            else "ログインの有効期限が切れているため、送信できませんでした。"
        return render_template("errors/csrf.html", signed_out=signed_out, typed=_typed(request.form)), 400
