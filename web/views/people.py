"""The person page: who the person is, their cases and households, 名寄せ candidates, merges and their undoing,
household members added and leaving."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from engine import calendar
from engine.cases import submissions
from engine.errors import EngineError
from engine.models import utcnow
from engine.people import households, reading, records
from web import db, forms
from web import forms_people as people_forms
from web.views.common import PASS_THROUGH, Refusal, actor, flash_already_saved, refusal, remote_addr

bp = Blueprint("people", __name__)

CHECK = "入力内容を確認してください。"
HOUSEHOLD_KEY = "household_member"  # the kind of the one-time keys of the forms that add a member
MERGED_MEANWHILE = ("画面が古くなっています。この記録は、画面を開いた後で別の記録に統合されました。"
                    "操作は行われていません。統合先の記録を表示しています。")


def _today():
    return utcnow().astimezone(calendar.JST).date()


def _render(person_id: int, *, form: str | None = None, values: MultiDict | None = None,
            refused: Refusal | None = None):
    if refused is not None:
        g.commit_on_error = True  # the refused action is rolled back; the read this page shows is audited
    file = reading.read_person(db.session(), actor(), person_id, today=_today(), remote_addr=remote_addr())
    return render_template("person.html", file=file, p=file.identity, form=form, values=values or MultiDict(),
                           errors=refused.errors if refused else {}, refused=refused,
                           token=(values or {}).get("submission_token") or submissions.new_token(),
                           new_token=submissions.new_token,
                           used_keys=submissions.used_tokens(db.session(), actor(), kind=HOUSEHOLD_KEY)), \
        (refused.status if refused else 200)


@bp.get("/people/<id:person_id>")
@login_required
def show(person_id: int):
    """The person page (an audited read); a record merged into another shows the one it became."""
    person = records.require_sight(db.session(), actor(), person_id)
    if person.id != person_id:
        flash(f"記録番号 {person_id} は、記録番号 {person.id} の記録に統合されています。", "info")
        return redirect(url_for("people.show", person_id=person.id), 303)
    return _render(person_id)


def _act(person_id: int, form: str, schema, apply, done: str, anchor: str):
    """Parse the form with `schema`, run `apply(data)`, then back to the person page (of the record that
    lives on); a refused form comes back with what was typed and each message beside its input."""
    person = records.require_sight(db.session(), actor(), person_id)
    if person.id != person_id:
        return _render(person.id, refused=Refusal(409, MERGED_MEANWHILE, stale=True))
    parsed = forms.parse(schema, request.form)
    if not parsed.ok:
        return _render(person_id, form=form, values=request.form, refused=Refusal(422, CHECK, parsed.errors))
    try:
        apply(dict(parsed.data))
    except PASS_THROUGH:
        raise
    except submissions.AlreadySubmitted as exc:
        refusal(exc)
        where = url_for("people.show", person_id=person_id, _anchor=anchor)
        flash_already_saved("この世帯員", where, "追加した世帯員を見る")
        return redirect(url_for("people.show", person_id=person_id), 303)  # the message in view
    except EngineError as exc:
        r = refusal(exc)
        if r.status == 409:  # done already, by this form sent twice or by someone else: the page as it is now
            r.stale = True
            return _render(records.live(db.session(), person_id).id, refused=r)
        return _render(person_id, form=form, values=request.form, refused=r)
    flash(done, "success")
    return redirect(url_for("people.show", person_id=records.live(db.session(), person_id).id, _anchor=anchor), 303)


@bp.post("/people/<id:person_id>/candidates/<id:candidate_id>")
@login_required
def decide(person_id: int, candidate_id: int):
    """名寄せ: the candidate is the same person (the records are merged) or another person."""
    decision = request.form.get("decision")
    done = ("同一人物と確認し、2つの記録を1つにしました。" if decision == "confirm"
            else "別人と判断しました。この2つの記録が候補として挙がることはありません。")
    return _act(person_id, f"cand{candidate_id}", people_forms.CandidateDecisionSchema,
                lambda f: records.decide_candidate(db.session(), actor(), candidate_id, f["decision"],
                                                   note=f.get("note"), remote_addr=remote_addr()),
                done, "candidates")


@bp.post("/people/<id:person_id>/merge")
@login_required
def merge(person_id: int):
    """An FM or the administrator merges another record into this one, with the reason."""
    return _act(person_id, "merge", people_forms.MergeSchema,
                lambda f: records.merge(db.session(), actor(), person_id, f["merged_id"], reason=f["reason"],
                                        remote_addr=remote_addr()),
                "記録を統合しました。統合したケースと世帯の記録は、この人の記録に移りました。", "merges")


@bp.post("/people/<id:person_id>/merges/<id:merge_id>/undo")
@login_required
def unmerge(person_id: int, merge_id: int):
    """An FM or the administrator undoes a merge, with the reason."""
    return _act(person_id, f"undo{merge_id}", people_forms.UnmergeSchema,
                lambda f: records.unmerge(db.session(), actor(), merge_id, reason=f["reason"],
                                          remote_addr=remote_addr()),
                "統合を取り消しました。統合された記録と、そのケース・世帯の記録を元に戻しました。", "merges")


def _once(add):
    """A form that adds a member carries a one-time key: sent twice (a double click, a reload), it adds once."""
    def apply(f):
        submissions.claim(db.session(), actor(), f.pop("submission_token", None), HOUSEHOLD_KEY)
        add(f)

    return apply


@bp.post("/people/<id:person_id>/households/<id:household_id>/members")
@login_required
def add_member(person_id: int, household_id: int):
    """Add a member to one of the person's households."""
    return _act(person_id, f"hh{household_id}", people_forms.MemberAddSchema, _once(
        lambda f: households.add_member(db.session(), actor(), household_id, f, remote_addr=remote_addr())),
        "世帯員を追加しました。", f"household-{household_id}")


@bp.post("/people/<id:person_id>/household/members")
@login_required
def add_first_member(person_id: int):
    """Add the first member to the household of a person who has none on record (the household is made)."""
    return _act(person_id, "hhnew", people_forms.MemberAddSchema, _once(
        lambda f: households.add_first_member(db.session(), actor(), person_id, f, remote_addr=remote_addr())),
        "世帯員を追加しました。", "households")


@bp.post("/people/<id:person_id>/members/<id:member_id>/end")
@login_required
def end_member(person_id: int, member_id: int):
    """Record the day a member left the household (転出・死亡など)."""
    return _act(person_id, f"end{member_id}", people_forms.MemberEndSchema,
                lambda f: households.end_membership(db.session(), actor(), member_id, f["until"],
                                                    remote_addr=remote_addr()),
                "世帯を離れた日を記録しました。", "households")
