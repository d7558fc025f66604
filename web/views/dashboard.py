"""FM dashboard: stalled sheets, 多機関協働 candidates, overdue evaluations, unrouted cases; acted on in place."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import login_required

from engine.cases import lists as caselist
from engine.cases import submissions
from engine.errors import EngineError, EventNotAllowed, GuardRefused
from engine.worklists import dashboard
from web import db, forms
from web.views.common import PASS_THROUGH, Refusal, actor, refusal, remote_addr

bp = Blueprint("dashboard", __name__)

REASSIGN_KEY = "dashboard_reassign"  # the kind of the one-time keys of the 振り替える forms


def _render(refused: Refusal | None = None, alert_id: int | None = None, values=None):
    if refused is not None:
        g.commit_on_error = True  # the refused action is rolled back; the reads the page shows are audited
    s = db.session()
    sections = dashboard.fm_dashboard(s, actor())
    waiting, waiting_total = dashboard.waiting_without_owner(s, actor())
    # The message of an action done on a row is shown on that row, where the page opens (a row gone, as
    # after 振り替え, leaves it at the top).
    done = request.args.get("done", type=int) if refused is None else None
    message_row = next((it.alert_id for sec in sections for it in sec.items if done in it.alert_ids), None)
    return render_template("dashboard.html", sections=sections, refused=refused, failed_alert=alert_id,
                           waiting=waiting, waiting_total=waiting_total, message_row=message_row,
                           values=values or {}, errors=refused.errors if refused else {},
                           reassignable={it.alert_id for sec in sections for it in sec.items if it.reassignable},
                           new_token=submissions.new_token,
                           used_keys=submissions.used_tokens(s, actor(), kind=REASSIGN_KEY),
                           departments=caselist.department_choices(s)), (refused.status if refused else 200)


@bp.get("/dashboard")
@login_required
def show():
    """The FM dashboard."""
    return _render()


@bp.post("/dashboard/alerts/<id:alert_id>/<action>")
@login_required
def act(alert_id: int, action: str):
    """確認, 解決 or 振り替え of one alert."""
    s = db.session()
    schema = {"acknowledge": forms.AlertNoteSchema, "resolve": forms.AlertNoteSchema,
              "reassign": forms.ReassignSchema}.get(action)
    if schema is None:
        abort(404)
    parsed = forms.parse(schema, request.form)
    if not parsed.ok:
        return _render(Refusal(422, "入力内容を確認してください。", parsed.errors), alert_id, request.form)
    f = parsed.data
    try:
        if action == "acknowledge":
            dashboard.acknowledge(s, actor(), alert_id)
            message = "アラートを確認しました。"
        elif action == "resolve":
            dashboard.resolve(s, actor(), alert_id, f.get("note"))
            message = "アラートを解決しました。"
        else:
            # A form sent twice (its key used) is told from one shown before the alert changed (another tab).
            token = request.form.get(submissions.TOKEN_FIELD)
            claim = submissions.claim(s, actor(), token, REASSIGN_KEY) if token else None
            case = dashboard.reassign(s, actor(), alert_id, to_department=f["to_department"], reason=f["reason"],
                                      remote_addr=remote_addr())
            if claim is not None:
                submissions.settle(s, claim, case.id)
            message = f"ケース {case.case_number} を振り替えました。"
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        r = refusal(exc)
        if isinstance(exc, submissions.AlreadySubmitted):
            r.double, r.message = True, "この振り替えは既に記録されています（同じ内容が2回送信されました）。"
        elif action == "reassign" and (isinstance(exc, EventNotAllowed)
                                       or (isinstance(exc, GuardRefused) and exc.extra.get("guard") == "reassignable")):
            # The alert was dealt with, or its sheet answered, since the page was shown: what was typed is
            # kept for the person to read against the list as it is now.
            r.stale = r.keep_values = True
        return _render(r, alert_id, request.form if r.keep_values or not r.stale else None)
    flash(message, "success")
    return redirect(url_for("dashboard.show", done=alert_id, _anchor=f"alert-{alert_id}"), 303)
