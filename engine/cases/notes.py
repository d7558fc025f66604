"""支援経過記録: the contacts with the person (date, method, staff, agency, what happened).

A note goes into the ordinary (consented) track, or — written by a 支援会議 member outside it, or while the
case is in the 支援会議 track — is a record of their 支援会議, read only by its members.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine import calendar
from engine.access import policy
from engine.access.relations import member_meeting_ids, note_meeting_id
from engine.alerts import alerts
from engine.audit import trail
from engine.cases import submissions
from engine.cases.checks import RECORDED_LATE_DAYS, REQUIRED, as_date, choice, not_before_opening
from engine.cases.kernel import load_case
from engine.errors import GuardRefused, ValidationFailed
from engine.models import ContactNote, Plan, User, utcnow


def require_may_add(session: Session, actor, case_id: int) -> None:
    """Refuse before the form is looked at: a case out of sight answers NotFound, a case the actor may not
    add notes to answers Forbidden (both audited), whatever the form holds."""
    case = load_case(session, actor, case_id)
    policy.require(session, actor, case, policy.CONTACT_NOTES, policy.WRITE)


def add_contact_note(session: Session, actor: User, case_id: int, fields: dict[str, Any], *,
                     submission_token: str | None = None, now: datetime | None = None,
                     remote_addr: str | None = None) -> ContactNote:
    """Add a contact to the 支援経過記録: date, method, what happened.

    Where the note goes follows engine.access.note_meeting_id: the owner, a joined department and a covered
    agency write into the ordinary (consented) track; a 支援会議 member who is none of these writes a record
    of their 支援会議, read only by its members. `fields["meeting_id"]` lets a member mark a note as a record
    of one of their 支援会議 explicitly. A page's form carries `submission_token`: the same form sent twice
    records the note once (AlreadySubmitted the second time, engine.cases.submissions).
    """
    now = now or utcnow()
    case = load_case(session, actor, case_id)
    rel = policy.require(session, actor, case, policy.CONTACT_NOTES, policy.WRITE)
    if case.state == "closed":
        # The page offers no form on a closed case; one opened before the closure is refused here.
        raise GuardRefused("終結したケースには支援経過を記録できません。記録が必要なときは、ケースを再開してください。",
                           guard="case_open", allowed_events=[])
    # A page's form is applied once: its key is claimed before anything is looked at (a form whose first
    # copy was saved is refused as such, whatever it holds now); an empty key asks for a reload.
    claim = submissions.claim(session, actor, submission_token, "contact_note", now=now) \
        if submission_token is not None else None
    errors: dict[str, list[str]] = {}
    fields = dict(fields)
    if not (fields.get("body") or "").strip():
        errors["body"] = [REQUIRED]
    choice(errors, fields, "method", "contact_methods")
    choice(errors, fields, "business_category", "business_categories", required=False)
    as_date(errors, fields, "contact_on", not_after=now.astimezone(calendar.JST).date())
    not_before_opening(errors, fields, "contact_on", case, "接触日", grace_days=RECORDED_LATE_DAYS)
    meeting_id = note_meeting_id(session, actor, case, rel)
    if fields.get("meeting_id") not in (None, ""):
        if fields["meeting_id"] not in member_meeting_ids(session, actor, case.id):
            errors["meeting_id"] = ["構成員として参加している支援会議を指定してください。"]
        meeting_id = fields["meeting_id"]
    if errors:
        raise ValidationFailed(errors)
    note = ContactNote(case_id=case.id, contact_on=fields.get("contact_on") or now.astimezone(calendar.JST).date(),
                       method=fields["method"], staff_id=actor.id, department_id=actor.department_id,
                       business_category=fields.get("business_category"), body=fields["body"].strip(),
                       meeting_id=meeting_id, created_at=now)
    session.add(note)
    session.flush()
    # Restart the no-contact clock before resolving: a scan holding the plan row waits for us, or we for it.
    session.execute(
        update(Plan).where(Plan.case_id == case.id, Plan.status == "active",
                           (Plan.no_contact_since.is_(None)) | (Plan.no_contact_since < note.contact_on))
        .values(no_contact_since=note.contact_on)
    )
    alerts.resolve_open(session, case_id=case.id, kinds=("no_contact",), actor=actor, note="接触記録により解決",
                        now=now)
    trail.record(session, actor=actor, action="contact_note.add", object_type="contact_note",
                 object_id=note.id, case_id=case.id, remote_addr=remote_addr, at=now,
                 detail={"meeting_id": meeting_id} if meeting_id is not None else None)
    if claim is not None:
        submissions.settle(session, claim, case.id)
    session.flush()
    return note


def note_of_form(session: Session, actor: User, case_id: int, submission_token: str | None) -> ContactNote | None:
    """The note a page's form saved under `submission_token` (its claim and the note share their time), for
    a second send of that form to point at; None if it saved none."""
    claim = submissions.sent(session, actor, submission_token)
    if claim is None or claim.case_id != case_id:
        return None
    return session.scalar(select(ContactNote).where(
        ContactNote.case_id == case_id, ContactNote.staff_id == actor.id, ContactNote.created_at == claim.created_at)
        .order_by(ContactNote.id.desc()).limit(1))
