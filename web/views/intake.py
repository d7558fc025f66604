"""相談受付: the consultation form, the routing preview, and the confirmation that opens the case."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from engine.cases import lists as caselist
from engine.cases import submissions, window
from engine.cases.intake import require_staff
from engine.errors import EngineError, ValidationFailed
from web import db, forms
from web.views.common import PASS_THROUGH, actor, flash_already_saved, refusal, remote_addr

bp = Blueprint("intake", __name__)

KEY_KIND = "intake"  # the kind of the consultation form's one-time keys (engine.cases.window claims them)
CONFIRM_FIELDS = ("action", "mode", "to_department", "override_reason", "note", "rule_version",
                  "submission_token", "csrf_token")


def _intake_values(form: MultiDict) -> MultiDict:
    """The consultation's own inputs, without the preview page's buttons and choices."""
    return MultiDict([(k, v) for k, v in form.items(multi=True) if k not in CONFIRM_FIELDS])


def _token() -> str:
    """The consultation's one-time key: the one the form was sent with (kept from the form through the preview
    and back), or a fresh one for a new form."""
    return request.form.get(submissions.TOKEN_FIELD) or submissions.new_token()


def _form(values: MultiDict, errors: dict | None = None, message: str | None = None, status: int = 200):
    return render_template("intake_form.html", values=values, errors=errors or {}, message=message,
                           token=_token(), used_keys=submissions.used_tokens(db.session(), actor(), kind=KEY_KIND),
                           household_rows=forms.HOUSEHOLD_ROWS,
                           departments=caselist.department_choices(db.session())), status


def _preview(values: MultiDict, proposal, *, choice: MultiDict | None = None, errors: dict | None = None,
             message: str | None = None, status: int = 200):
    parsed = forms.parse(forms.IntakeSchema, values)
    earlier = window.earlier_cases(db.session(), actor(), parsed.data.get("person") or {}) if parsed.ok else []
    if earlier:
        # Shown names are read records: their audit rows stay, whatever the page's status (a refused
        # confirmation was rolled back before this page was drawn).
        g.commit_on_error = True
    token, sent_case = _token(), None
    if choice is None:
        # A form already sent (shown again from history, and perhaps changed for another consultation): the
        # preview says where the first went, and only a deliberate send under a new key opens another case.
        first = submissions.sent(db.session(), actor(), token)
        if first is not None:
            token, sent_case = submissions.new_token(), first.case_id
    return render_template(
        "intake_preview.html", values=values, data=parsed.data, proposal=proposal, earlier=earlier,
        unshared=window.unshared(db.session(), parsed.data, proposal) if parsed.ok else None,
        choice=choice or MultiDict(), errors=errors or {}, message=message, sent_case=sent_case,
        token=token,
        departments=caselist.department_choices(db.session()),
    ), status


@bp.get("/intake")
@login_required
def new():
    """A blank consultation form (not offered to whoever could not send it)."""
    require_staff(actor())
    return _form(MultiDict({"source": "window", "urgency": "normal"}))


@bp.post("/intake")
@login_required
def submit():
    """Preview the routing, go back to edit, or confirm (open the case once)."""
    action = request.form.get("action")
    values = _intake_values(request.form)
    if action == "edit":
        return _form(values)
    parsed = forms.parse(forms.IntakeSchema, values)
    if not parsed.ok:
        return _form(values, parsed.errors, "入力内容を確認してください。", 422)
    s = db.session()
    if action != "confirm":
        try:
            proposal = window.preview(s, actor(), parsed.data)
        except PASS_THROUGH:
            raise
        except EngineError as exc:
            r = refusal(exc)
            return _form(values, parsed.page_errors(r.errors), r.message, r.status)
        return _preview(values, proposal)

    choice = forms.parse(forms.IntakeConfirmSchema, request.form)
    c = choice.data
    try:
        if not choice.ok:
            raise ValidationFailed(choice.errors)
        case = window.confirm(s, actor(), parsed.data, mode=c.get("mode"), rule_version=c.get("rule_version"),
                              submission_token=c.get("submission_token"), to_department=c.get("to_department"),
                              override_reason=c.get("override_reason"), note=c.get("note"), remote_addr=remote_addr())
    except PASS_THROUGH:
        raise
    except submissions.AlreadySubmitted as exc:
        refusal(exc)
        if exc.case_id:
            where = url_for("cases.detail", case_id=exc.case_id)
            flash_already_saved("この相談", where, "受け付けたケースを開く")
            return redirect(where, 303)
        flash("この相談は既に記録されています。同じフォームがもう一度送信されたため、2回目は保存していません。", "info")
        return redirect(url_for("cases.index"), 303)
    except EngineError as exc:
        r = refusal(exc)
        intake_errors = {k: v for k, v in r.errors.items() if k not in CONFIRM_FIELDS}
        if intake_errors:
            return _form(values, parsed.page_errors(intake_errors), r.message, r.status)
        proposal = window.preview(s, actor(), parsed.data)
        return _preview(values, proposal, choice=request.form, errors=r.errors, message=r.message, status=r.status)
    messages = {"route": "相談を受け付けました", "override": "相談を受け付け、選んだ部署につなぐシートを送りました",
                "resolve": "相談を受け付け、窓口での相談終了として記録しました"}
    flash(f"{messages[c['mode']]}（ケース番号 {case.case_number}）。", "success")
    return redirect(url_for("cases.detail", case_id=case.id), 303)
