"""The start page, ケース一覧, ケース詳細 with a form per allowed event, contact notes, the つなぐシート print view."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from engine import calendar, states
from engine.access.relations import Sight, case_sight
from engine.alerts import notices
from engine.cases import joins, meeting_requests, notes, participation, reading, submissions
from engine.cases import lists as caselist
from engine.cases import offers as join_offers
from engine.cases.amend import PERSON_FIELDS, amend_case
from engine.cases.events import firing
from engine.cases.redirect import override_routing
from engine.departments import department_by_code
from engine.errors import EngineError, NotFound, StaleVersion, ValidationFailed
from engine.models import Handoff, utcnow
from engine.people import records
from web import db, diagram, form_dates, forms
from web.views.common import PASS_THROUGH, Refusal, actor, flash_already_saved, refusal, remote_addr

bp = Blueprint("cases", __name__)

# The prefix of the input ids of each form of the case page that is not an event's ("ev-<event>"): the
# error summary links to the inputs of the form that failed.
FORM_PREFIXES = {"amend": "amend", "request_join": "join", "offer_join": "offer", "contact_note": "note",
                 "redirect_handoff": "redirect", "participation": "match", "ask_meeting": "ask"}


def _form_prefix(event: str | None) -> str:
    """The input-id prefix of the form `event` names (a match's end form is "end-<id>", its inputs end<id>-*)."""
    if event and event.startswith("end-"):
        return "end" + event.removeprefix("end-")
    return FORM_PREFIXES.get(event, f"ev-{event}")


@bp.get("/")
@login_required
def index():
    """The start page: counts by state and the latest cases."""
    s = db.session()
    counts = caselist.state_counts(s, actor())
    recent = caselist.search_cases(s, actor(), caselist.CaseFilters(), per_page=20, total=sum(counts.values()))
    return render_template("index.html", counts=counts, recent=recent, states=list(states.CASE_STATE_LABELS))


@bp.get("/cases")
@login_required
def list_cases():
    """ケース一覧: filters, search by name or kana, pages."""
    s = db.session()
    parsed = forms.parse(forms.CaseFilterSchema, request.args)
    f = parsed.data
    filters = caselist.CaseFilters(state=f.get("state"), department=f.get("department"), area=f.get("area"),
                                   category=f.get("category"), overdue=bool(f.get("overdue")), q=f.get("q"))
    errors = dict(parsed.errors)
    page = None
    if not errors:
        try:
            page = caselist.search_cases(s, actor(), filters, page=f.get("page") or 1)
        except ValidationFailed as exc:
            errors = refusal(exc).errors
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("case_list.html", page=page, values=request.args, errors=errors, args=args,
                           departments=caselist.department_choices(s)), (422 if errors else 200)


def _today():
    return utcnow().astimezone(calendar.JST).date()


def _render_case(case_id: int, *, event: str | None = None, values: MultiDict | None = None,
                 refused: Refusal | None = None, note_values: MultiDict | None = None):
    s = db.session()
    if refused is not None:
        # The refused action is already rolled back (web.views.common.refusal); what this request still
        # writes is the audit row of the case read it shows, which must be kept.
        g.commit_on_error = True
    file = reading.read_case(s, actor(), case_id, remote_addr=remote_addr())
    view, can = file.view, file.actions
    consented = []
    for c in reversed(view.get("consents") or []):
        if c["status"] == "given":
            consented = [a["code"] for a in c["agencies"]]
        break
    visited = {h["to_state"] for h in view["history"]}
    # The page's forms, each with its template in web/templates/events: (key, input prefix, title, action).
    case_forms = [(ev, f"ev-{ev}", states.CASE_EVENT_LABELS[ev], url_for("cases.fire", case_id=case_id, event=ev))
                  for ev in file.allowed_events]
    if can.amend:
        case_forms.append(("amend", FORM_PREFIXES["amend"], "相談内容・本人の情報を修正する",
                           url_for("cases.amend", case_id=case_id)))
    if can.request_join:
        case_forms.append(("request_join", FORM_PREFIXES["request_join"], "他部署に参加を依頼する",
                           url_for("cases.request_join", case_id=case_id)))
    if can.redirect_handoff:
        case_forms.append(("redirect_handoff", FORM_PREFIXES["redirect_handoff"], "つなぐシートの送付先を変更する",
                           url_for("cases.redirect_handoff", case_id=case_id)))
    if can.offer_join:
        case_forms.append(("offer_join", FORM_PREFIXES["offer_join"], "このケースへの参加を申し出る",
                           url_for("cases.offer_join", case_id=case_id)))
    if can.ask_fm_to_convene and can.meeting_request is None:
        case_forms.append(("ask_meeting", FORM_PREFIXES["ask_meeting"], "FMに支援会議の開催を依頼する",
                           url_for("cases.ask_meeting", case_id=case_id)))
    status = refused.status if refused else 200
    return render_template(
        "case_detail.html", file=file, case=file.case, view=view, hidden_plan=file.hidden_plan,
        machine=diagram.render(file.case.state, file.allowed_events, visited),
        form_event=event, form_prefix=_form_prefix(event), values=values or MultiDict(),
        errors=(refused.errors if refused else {}),
        refused=refused, departments=caselist.department_choices(s), staff=reading.staff_directory(s), can=can,
        city_sections=caselist.department_choices(s, city_only=True),
        city_codes={code for code, _ in caselist.department_choices(s, city_only=True)},
        consented=consented, involved=joins.involved_department_codes(s, file.case), today=_today().isoformat(),
        member_rows=forms.MEMBER_ROWS, role_rows=forms.ROLE_ROWS,
        withdrawable=can.withdrawable_joins, case_notices=notices.of_case(s, file.case.id), case_forms=case_forms,
        offers=join_offers.of_case(s, actor(), file.case, file.rel), may_answer_offers=can.answer_offers,
        note_values=note_values or MultiDict(), note_token=(note_values or {}).get("submission_token")
        or submissions.new_token(), may_match=can.record_match,
        match_token=(values or {}).get("submission_token") if event == "participation" else None,
        now_local=form_dates.datetime_input(utcnow()),
        note_meeting=can.note_meeting, new_token=submissions.new_token,
        used_keys=submissions.used_tokens(s, actor(), case_id=file.case.id),
        person_candidates=len(records.open_candidates(s, file.case.person_id)) if file.content else 0,
    ), status


@bp.get("/cases/<id:case_id>")
@login_required
def detail(case_id: int):
    """ケース詳細 (an audited read of its content)."""
    return _render_case(case_id)


RELOAD = "画面が古くなっています。読み込み直してからやり直してください。"

# Events of one click that are not undone by another: their form on the page also asks for a ticked 確認
# box (input "confirm"), with this message beside it when it is not ticked. A page's concern: a client of
# the API confirms in its own way.
CONFIRMED_EVENTS = {"close": "終結してよいか確かめて、確認の欄にチェックを入れてください。"}


STALE = "画面が古くなっています。この画面を表示した後で、ケースが更新されました。"
TWICE = "この操作は既に記録されています（同じ内容が2回送信されました）。"


def _apply_form(case_id: int, form_event: str, schema, apply):
    """Parse a case-page form with `schema` and run `apply(data)` on it: (its result, None), or (None, the
    case page again) when the form or the engine refuses. A refused form comes back open with what was
    typed and each message beside its input.

    The form's one-time key tells a form sent twice (a double click, or sent again from the browser's
    history) from a form shown before the case changed: the first applies once and does not come back
    filled; the second says the page is out of date, shows the case as it is now and comes back with what
    was typed, to be sent again on purpose."""
    parsed = forms.parse(schema, request.form)
    if form_event in CONFIRMED_EVENTS and request.form.get("confirm") not in ("1", "on"):
        parsed.errors.setdefault("confirm", []).append(CONFIRMED_EVENTS[form_event])
    if not parsed.ok:
        bad = Refusal(422, "入力内容を確認してください。", parsed.errors)
        if "version" in parsed.errors:
            bad.message = RELOAD
        return None, _render_case(case_id, event=form_event, values=request.form, refused=bad)
    s = db.session()
    token = request.form.get(submissions.TOKEN_FIELD)
    try:
        # The key is claimed first: a second copy of the form waits for the first and then finds its key.
        claim = submissions.claim(s, actor(), token, "case_form") if token else None
        result = apply(dict(parsed.data))
        if claim is not None:
            submissions.settle(s, claim, case_id)
        return result, None
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        r = refusal(exc)
        r.errors = parsed.page_errors(r.errors)
        if isinstance(exc, submissions.AlreadySubmitted):
            r.double, r.message = True, TWICE
        elif isinstance(exc, StaleVersion):
            r.message = STALE
        return None, _render_case(case_id, event=form_event, values=request.form if r.keep_values or not r.stale
                                 else None, refused=r)


@bp.post("/cases/<id:case_id>/events/<event>")
@login_required
def fire(case_id: int, event: str):
    """Fire one event from its form on the case page."""
    schema = forms.EVENT_SCHEMAS.get(event)
    if schema is None:
        abort(404)

    def apply(fields):
        version = fields.pop("version")
        return firing.fire_event(db.session(), actor(), case_id, event, version=version, fields=fields,
                                   remote_addr=remote_addr())

    case, page = _apply_form(case_id, event, schema, apply)
    if page is not None:
        return page
    flash(firing.EVENTS[event].said(case), "success")
    if case_sight(db.session(), actor(), case) < Sight.METADATA:
        # The event ended the reader's sight of the case (a つなぐシート sent back by the department it was
        # sent to): the case page would answer 404, so back to the inbox the sheet came from.
        return redirect(url_for("inbox.show"), 303)
    return redirect(url_for("cases.detail", case_id=case_id), 303)


@bp.post("/cases/<id:case_id>/join")
@login_required
def request_join(case_id: int):
    """参加依頼: the owning department or the case FM asks another department to join."""
    handoff, page = _apply_form(case_id, "request_join", forms.JoinRequestSchema, lambda f: joins.request_join(
        db.session(), actor(), case_id, to_department=f["to_department"], reason=f["reason"], summary=f["summary"],
        version=f["version"], basis=f.get("basis"), remote_addr=remote_addr()))
    if page is not None:
        return page
    flash(f"{handoff.to_department.name}に参加を依頼しました。", "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="handoffs"), 303)


@bp.post("/cases/<id:case_id>/redirect")
@login_required
def redirect_handoff(case_id: int):
    """送付先の変更: the sheet waiting in another department's inbox is withdrawn and a new one goes elsewhere."""
    def apply(f):
        override_routing(db.session(), actor(), case_id, to_department=f["to_department"],
                                          reason=f["reason"], version=f["version"], remote_addr=remote_addr())
        return f["to_department"]  # the code as the form's schema read it (trimmed)

    code, page = _apply_form(case_id, "redirect_handoff", forms.RedirectHandoffSchema, apply)
    if page is not None:
        return page
    target = department_by_code(db.session(), code)
    flash(f"つなぐシートの送付先を{target.name}に変更しました。", "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="handoffs"), 303)


@bp.post("/cases/<id:case_id>/offer-join")
@login_required
def offer_join(case_id: int):
    """参加の申し出: a department told of the case offers to work on it."""
    _, page = _apply_form(case_id, "offer_join", forms.JoinOfferSchema, lambda f: join_offers.offer(
        db.session(), actor(), case_id, message=f["message"], version=f["version"], remote_addr=remote_addr()))
    if page is not None:
        return page
    flash("参加を申し出ました。担当部署の回答を待っています。", "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="offers"), 303)


@bp.post("/cases/<id:case_id>/ask-meeting")
@login_required
def ask_meeting(case_id: int):
    """支援会議の開催の依頼: the owning or a joined department asks an FM, who sees it on the dashboard."""
    _, page = _apply_form(case_id, "ask_meeting", forms.MeetingAskSchema, lambda f: meeting_requests.ask(
        db.session(), actor(), case_id, reason=f["reason"], version=f["version"], remote_addr=remote_addr()))
    if page is not None:
        return page
    flash("FMに支援会議の開催を依頼しました。FMダッシュボードに届いています。", "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="convene-ask"), 303)


@bp.post("/cases/<id:case_id>/offers/<id:offer_id>")
@login_required
def answer_offer(case_id: int, offer_id: int):
    """The owner's answer to an offer: ask the department to join, or let the offer go."""
    offer, page = _apply_form(case_id, f"offer_answer_{offer_id}", forms.JoinOfferAnswerSchema,
                              lambda f: join_offers.answer(db.session(), actor(), case_id, offer_id, f["decision"],
                                                           note=f.get("note"), version=f["version"],
                                                           remote_addr=remote_addr()))
    if page is not None:
        return page
    if offer.status == "accepted":
        flash(f"{offer.department.name}に参加を依頼しました。", "success")
    else:
        flash(f"{offer.department.name}の参加の申し出を見送りました。", "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="offers"), 303)


@bp.post("/cases/<id:case_id>/offers/<id:offer_id>/withdraw")
@login_required
def withdraw_offer(case_id: int, offer_id: int):
    """The offering department takes its offer back."""
    return _withdraw(case_id, lambda version: join_offers.withdraw(
        db.session(), actor(), case_id, offer_id, version=version, remote_addr=remote_addr()),
        "参加の申し出を取り下げました。", "offers")


@bp.post("/cases/<id:case_id>/amend")
@login_required
def amend(case_id: int):
    """内容の修正: correct the summary and the person's details (the owner or the case FM)."""
    def apply(f):
        # Every detail shown on the form is sent; one left blank is cleared (the schema drops blanks).
        given = f.get("person") or {}
        person = {name: given.get(name) for name in PERSON_FIELDS if f"person.{name}" in request.form}
        case = amend_case(db.session(), actor(), case_id, version=f["version"], summary=f["summary"],
                                   person=person)
        return case.version != f["version"]  # nothing is written when nothing differs

    changed, page = _apply_form(case_id, "amend", forms.AmendSchema, apply)
    if page is not None:
        return page
    flash("内容を修正しました。" if changed else "変更された項目はありませんでした。", "success" if changed else "info")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="person"), 303)


def _withdraw(case_id: int, apply, done: str, anchor: str):
    """A 取り下げる button: it sends only the version it was shown with; `apply(version)`, then the case page."""
    parsed = forms.parse(forms.WithdrawSchema, request.form)
    if not parsed.ok:
        return _render_case(case_id, refused=Refusal(409, RELOAD, {}, stale=True))
    try:
        apply(parsed.data["version"])
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        return _render_case(case_id, refused=refusal(exc))
    flash(done, "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor=anchor), 303)


@bp.post("/cases/<id:case_id>/join/<id:handoff_id>/withdraw")
@login_required
def withdraw_join(case_id: int, handoff_id: int):
    """取下げ of a join request that the other department has not answered yet."""
    def apply(version: int):
        s = db.session()
        handoff = s.get(Handoff, handoff_id)
        if handoff is None or handoff.case_id != case_id:
            raise NotFound("指定されたつなぐシートは見つかりません。")
        joins.answer_join(s, actor(), handoff_id, "withdraw", version=version, remote_addr=remote_addr())

    return _withdraw(case_id, apply, "参加依頼を取り下げました。", "handoffs")


@bp.post("/cases/<id:case_id>/notes")
@login_required
def add_note(case_id: int):
    """Add a contact note from the case page."""
    notes.require_may_add(db.session(), actor(), case_id)
    parsed = forms.parse(forms.ContactNoteSchema, request.form)
    if not parsed.ok:
        return _render_case(case_id, event="contact_note", note_values=request.form,
                            refused=Refusal(422, "入力内容を確認してください。", parsed.errors))
    fields = dict(parsed.data)
    token = fields.pop("submission_token", None)
    try:
        note = notes.add_contact_note(db.session(), actor(), case_id, fields, submission_token=token or "",
                                      remote_addr=remote_addr())
    except PASS_THROUGH:
        raise
    except submissions.AlreadySubmitted as exc:
        refusal(exc)
        saved = notes.note_of_form(db.session(), actor(), case_id, token)
        if saved is not None and saved.meeting_id is not None:  # a record of a 支援会議, on that meeting's page
            where = url_for("meetings.show", meeting_id=saved.meeting_id, _anchor=f"note-{saved.id}")
        else:
            where = url_for("cases.detail", case_id=case_id, _anchor=f"note-{saved.id}" if saved else "notes")
        flash_already_saved("この支援経過", where, "記録した支援経過を見る")
        return redirect(url_for("cases.detail", case_id=case_id), 303)  # the message in view
    except EngineError as exc:
        r = refusal(exc)
        return _render_case(case_id, event="contact_note", note_values=request.form, refused=r)
    if note.meeting_id is not None:
        # Written by a member of a 支援会議 outside the consented track: a record of that meeting.
        flash("支援経過を支援会議の記録として保存しました。支援会議のページで構成員だけが読めます。", "success")
        return redirect(url_for("meetings.show", meeting_id=note.meeting_id), 303)
    flash("支援経過を記録しました。", "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="notes"), 303)


@bp.post("/cases/<id:case_id>/participation")
@login_required
def add_match(case_id: int):
    """参加支援: record a match to a 協力事業者 (the owner or the case FM, in 伴走支援)."""
    participation.require_may_record(db.session(), actor(), case_id)
    parsed = forms.parse(forms.ParticipationSchema, request.form)
    if not parsed.ok:
        return _render_case(case_id, event="participation", values=request.form,
                            refused=Refusal(422, "入力内容を確認してください。", parsed.errors))
    fields = dict(parsed.data)
    token = fields.pop("submission_token", None)
    try:
        participation.add_match_once(db.session(), actor(), case_id, fields, submission_token=token,
                                     remote_addr=remote_addr())
    except PASS_THROUGH:
        raise
    except submissions.AlreadySubmitted as exc:
        refusal(exc)
        where = url_for("cases.detail", case_id=case_id, _anchor="participation")
        flash_already_saved("この参加支援", where, "記録した参加支援を見る")
        return redirect(url_for("cases.detail", case_id=case_id), 303)  # the message in view
    except EngineError as exc:
        return _render_case(case_id, event="participation", values=request.form, refused=refusal(exc))
    flash("参加支援を記録しました。", "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="participation"), 303)


@bp.post("/cases/<id:case_id>/participation/<id:match_id>/end")
@login_required
def end_match(case_id: int, match_id: int):
    """Record the day a match ended."""
    participation.require_may_record(db.session(), actor(), case_id)
    parsed = forms.parse(forms.ParticipationEndSchema, request.form)
    if not parsed.ok:
        return _render_case(case_id, event=f"end-{match_id}", values=request.form,
                            refused=Refusal(422, "入力内容を確認してください。", parsed.errors))
    try:
        participation.end_match(db.session(), actor(), case_id, match_id, parsed.data.get("ended_on"),
                                remote_addr=remote_addr())
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        return _render_case(case_id, event=f"end-{match_id}", values=request.form, refused=refusal(exc))
    flash("参加支援の終了を記録しました。", "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="participation"), 303)


@bp.get("/handoffs/<id:handoff_id>/sheet")
@login_required
def sheet(handoff_id: int):
    """The つなぐシート print view."""
    s = db.session()
    sheet = reading.read_sheet(s, actor(), handoff_id, remote_addr=remote_addr())
    return render_template("sheet.html", sheet=sheet, h=sheet.handoff, view=sheet.view,
                           printed_at=utcnow())
