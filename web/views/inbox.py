"""部署の受信箱: sheets waiting for the signed-in person's department, accepted or sent back from the list."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import login_required
from markupsafe import Markup

from engine.alerts import notices
from engine.cases import meetings, submissions
from engine.cases import offers as join_offers
from engine.errors import EngineError, StaleVersion
from engine.worklists import inbox
from web import db, forms
from web.views.common import PASS_THROUGH, Refusal, actor, refusal, remote_addr

bp = Blueprint("inbox", __name__)

ANSWER_KEY = "inbox_answer"  # the kind of the one-time keys of the 受理・返送 forms


def _render(refused: Refusal | None = None, handoff_id: int | None = None, values=None,
            alert_id: int | None = None):
    if refused is not None:
        # The refused action is already rolled back (web.views.common.refusal); the page shown again reads
        # sheets and alerts, and the audit rows of those reads must be kept.
        g.commit_on_error = True
    box = inbox.department_inbox(db.session(), actor())
    return render_template("inbox.html", box=box, notices=notices.waiting(db.session(), actor()),
                           offers=join_offers.waiting_for(db.session(), actor()),
                           invitations=meetings.waiting_invitations(db.session(), actor()),
                           refused=refused, failed_handoff=handoff_id, failed_alert=alert_id,
                           new_token=submissions.new_token,
                           used_keys=submissions.used_tokens(db.session(), actor(), kind=ANSWER_KEY),
                           values=values or {}, errors=refused.errors if refused else {}), \
        (refused.status if refused else 200)


@bp.get("/inbox")
@login_required
def show():
    """The department's inbox."""
    return _render()


@bp.post("/inbox/<id:handoff_id>")
@login_required
def answer(handoff_id: int):
    """受理 or 返送 of one sheet."""
    parsed = forms.parse(forms.InboxAnswerSchema, request.form)
    if not parsed.ok:
        return _render(Refusal(422, "入力内容を確認してください。", parsed.errors), handoff_id, request.form)
    f = parsed.data
    s = db.session()
    token = request.form.get(submissions.TOKEN_FIELD)
    try:
        # A form sent twice (its key used) is told from one shown before the sheet changed (another tab).
        claim = submissions.claim(s, actor(), token, ANSWER_KEY) if token else None
        handoff = inbox.answer(s, actor(), handoff_id, f["decision"], version=f["version"],
                               reason=f.get("reason"), remote_addr=remote_addr())
        if claim is not None:
            submissions.settle(s, claim, handoff.case_id)
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        r = refusal(exc)
        if isinstance(exc, submissions.AlreadySubmitted):
            r.double, r.message = True, "この回答は既に記録されています（同じ内容が2回送信されました）。"
        elif isinstance(exc, StaleVersion):
            r.message = "画面が古くなっています。この画面を表示した後で、つなぐシートが更新されました。"
        return _render(r, handoff_id, request.form if r.keep_values or not r.stale else None)
    if f["decision"] == "accept":
        # The case is now the department's to work on: the message leads to it (format escapes each value).
        flash(Markup('つなぐシートを受理しました。<a href="{}">ケース {} を開く</a>').format(
            url_for("cases.detail", case_id=handoff.case_id), handoff.case.case_number), "success")
    else:
        flash("つなぐシートを返送しました。", "success")
    return redirect(url_for("inbox.show"), 303)


@bp.post("/inbox/alerts/<id:alert_id>/<any(acknowledge, resolve):action>")
@login_required
def act_on_alert(alert_id: int, action: str):
    """確認済み, or 解決 with a note, of an alert to the department."""
    parsed = forms.parse(forms.AlertNoteSchema, request.form)
    if not parsed.ok:
        return _render(Refusal(422, "入力内容を確認してください。", parsed.errors), values=request.form,
                       alert_id=alert_id)
    try:
        if action == "acknowledge":
            inbox.acknowledge_alert(db.session(), actor(), alert_id)
        else:
            inbox.resolve_alert(db.session(), actor(), alert_id, parsed.data.get("note"))
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        r = refusal(exc)
        return _render(r, values=None if r.stale else request.form, alert_id=alert_id)
    flash("お知らせを確認しました。" if action == "acknowledge" else "お知らせを解決しました。", "success")
    return redirect(url_for("inbox.show"), 303)


@bp.post("/inbox/notices/<id:notice_id>")
@login_required
def acknowledge_notice(notice_id: int):
    """確認済み of a notice (another department owns the case; this one was told of it)."""
    try:
        notices.acknowledge(db.session(), actor(), notice_id, remote_addr=remote_addr())
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        return _render(refusal(exc))
    flash("通知を確認しました。", "success")
    return redirect(url_for("inbox.show"), 303)
