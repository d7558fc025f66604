"""支援会議 / 重層的支援会議: members, 守秘義務 acknowledgement, minutes and decisions, the plan's roles."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import login_required

from engine.cases import meetings, reading, submissions
from engine.errors import EngineError
from web import db, forms
from web.views.common import PASS_THROUGH, Refusal, actor, flash_already_saved, name_with_san, refusal, remote_addr

bp = Blueprint("meetings", __name__)


def _render(meeting_id: int, refused: Refusal | None = None, values=None, form: str = "rec"):
    record = reading.read_meeting(db.session(), actor(), meeting_id, remote_addr=remote_addr())
    used = submissions.used_tokens(db.session(), actor(), case_id=record.meeting.case_id)
    if refused is not None:
        g.commit_on_error = True  # keep the audit row of the read this page shows
    return render_template("meeting.html", record=record, m=record.summary, refused=refused, form=form,
                           errors=refused.errors if refused else {}, values=values or {},
                           token=(values or {}).get("submission_token"), new_token=submissions.new_token,
                           used_keys=used), \
        (refused.status if refused else 200)


@bp.get("/meetings/<id:meeting_id>")
@login_required
def show(meeting_id: int):
    """A meeting's page."""
    return _render(meeting_id)


@bp.post("/meetings/<id:meeting_id>/acknowledge")
@login_required
def acknowledge(meeting_id: int):
    """A member acknowledges the 守秘義務."""
    meetings.acknowledge_secrecy(db.session(), actor(), meeting_id)
    flash("守秘義務を確認しました。会議の記録を表示します。", "success")
    return redirect(url_for("meetings.show", meeting_id=meeting_id), 303)


@bp.post("/meetings/<id:meeting_id>/record")
@login_required
def append(meeting_id: int):
    """A member adds to the minutes or decisions."""
    parsed = forms.parse(forms.MeetingRecordSchema, request.form)
    if not parsed.ok:
        return _render(meeting_id, Refusal(422, "入力内容を確認してください。", parsed.errors), request.form)
    f = parsed.data
    try:
        meetings.append_record(db.session(), actor(), meeting_id, minutes=f.get("minutes"),
                               decisions=f.get("decisions"), submission_token=f.get("submission_token"),
                               remote_addr=remote_addr())
    except PASS_THROUGH:
        raise
    except submissions.AlreadySubmitted as exc:
        refusal(exc)
        where = url_for("meetings.show", meeting_id=meeting_id, _anchor="minutes")
        flash_already_saved("この追記", where, "追記した記録を見る")
        return redirect(url_for("meetings.show", meeting_id=meeting_id), 303)  # the message in view
    except EngineError as exc:
        return _render(meeting_id, refusal(exc), request.form)
    flash("会議の記録を追記しました。", "success")
    return redirect(url_for("meetings.show", meeting_id=meeting_id), 303)


@bp.post("/meetings/<id:meeting_id>/members")
@login_required
def add_member(meeting_id: int):
    """The secretariat adds a member; they read nothing before acknowledging the 守秘義務."""
    parsed = forms.parse(forms.AddMemberSchema, request.form)
    if not parsed.ok:
        return _render(meeting_id, Refusal(422, "入力内容を確認してください。", parsed.errors), request.form, "member")
    try:
        member = meetings.add_meeting_member(db.session(), actor(), meeting_id, parsed.data["user"])
    except PASS_THROUGH:
        raise
    except EngineError as exc:
        return _render(meeting_id, refusal(exc), request.form, "member")
    flash(f"{name_with_san(member.user.display_name)}を構成員に加えました。本人が守秘義務を確認するまで、記録は表示されません。",
          "success")
    return redirect(url_for("meetings.show", meeting_id=meeting_id), 303)


@bp.post("/meetings/<id:meeting_id>/facts")
@login_required
def carry(meeting_id: int):
    """A member carries one fact of a 支援会議 over into the consented track (after consent)."""
    parsed = forms.parse(forms.CarryFactSchema, request.form)
    if not parsed.ok:
        return _render(meeting_id, Refusal(422, "入力内容を確認してください。", parsed.errors), request.form, "fact")
    f = parsed.data
    try:
        meetings.carry_fact(db.session(), actor(), meeting_id, f["fact"],
                            submission_token=f.get("submission_token") or "")
    except PASS_THROUGH:
        raise
    except submissions.AlreadySubmitted as exc:
        refusal(exc)
        where = url_for("meetings.show", meeting_id=meeting_id, _anchor="carried")
        flash_already_saved("この共有", where, "共有した情報を見る")
        return redirect(url_for("meetings.show", meeting_id=meeting_id), 303)  # the message in view
    except EngineError as exc:
        return _render(meeting_id, refusal(exc), request.form, "fact")
    flash("同意の範囲の機関に共有しました。ケースの「支援会議から共有された情報」に表示されます。", "success")
    return redirect(url_for("meetings.show", meeting_id=meeting_id), 303)
