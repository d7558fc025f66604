"""支援会議 records: membership, the 守秘義務, minutes, and the audited carry-over into the consented track.

A 支援会議 (社会福祉法106条の6) shares information about a person without their consent, among members
bound by a secrecy duty that outlives their role. Its records — minutes, decisions, and the contact notes
marked with its id — are read only by its members who acknowledged the 守秘義務 (its secretariat is a
member), before and after consent; every read is in the audit trail, which is kept for good.

Nothing flows from a 支援会議 into the consented track (the plan, the 重層的支援会議, contact notes, API
answers) by itself. Once the person's consent is recorded, a member may carry one specific fact over:
`carry_fact`, an explicit and audited act. The fact then reaches the agencies the current consent covers,
and no one else; a withdrawal of consent narrows that again at once.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, audit, services, views
from engine.errors import Conflict, GuardRefused, MissingField, NotFound, ValidationFailed
from engine.models import Department, Meeting, MeetingMember, SharedFact, User, utcnow


def _meeting_kind(meeting: Meeting) -> str:
    return access.SUPPORT_MEETING if meeting.kind == "support_meeting" else access.LAYERED_MEETING


def load_meeting(session: Session, actor, meeting_id: int) -> tuple[Meeting, object]:
    """The meeting and its case, if `actor` may know the case exists; NotFound otherwise."""
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("指定された会議は見つかりません。")
    case = services.load_case(session, actor, meeting.case_id, not_found="指定された会議は見つかりません。")
    return meeting, case


def read_meeting(session: Session, actor, meeting_id: int) -> dict:
    """Read a meeting's records (minutes, decisions, members, its contact notes); the read is audited.

    A 支援会議: its acknowledged members only (SecrecyNotAcknowledged for a member who has not
    acknowledged yet, PermissionDenied for anyone else who sees the case).
    """
    meeting, case = load_meeting(session, actor, meeting_id)
    access.require(session, actor, case, _meeting_kind(meeting), access.READ, meeting=meeting)
    view = views.meeting_summary(session, actor, meeting)
    audit.record(session, actor=actor, action="meeting.read", object_type="meeting", object_id=meeting.id,
                 case_id=case.id, detail={"kind": meeting.kind})
    return view


def record_minutes(session: Session, actor, meeting_id: int, *, minutes: str | None = None,
                   decisions: str | None = None, now: datetime | None = None) -> Meeting:
    """The meeting's secretariat records (replaces) its minutes and decisions."""
    meeting, case = load_meeting(session, actor, meeting_id)
    access.require(session, actor, case, _meeting_kind(meeting), access.WRITE, meeting=meeting)
    changed = []
    if minutes is not None:
        meeting.minutes = minutes.strip() or None
        changed.append("minutes")
    if decisions is not None:
        meeting.decisions = decisions.strip() or None
        changed.append("decisions")
    if not changed:
        raise MissingField({"minutes": ["記録する内容を入力してください。"]})
    audit.record(session, actor=actor, action="meeting.record_minutes", object_type="meeting",
                 object_id=meeting.id, case_id=case.id, at=now, detail={"fields": changed})
    session.flush()
    return meeting


def add_meeting_member(session: Session, actor, meeting_id: int, login: str, *,
                       now: datetime | None = None) -> MeetingMember:
    """The secretariat adds a member to a meeting; the new member reads nothing before acknowledging
    the 守秘義務 (engine.services.acknowledge_secrecy)."""
    meeting, case = load_meeting(session, actor, meeting_id)
    access.require(session, actor, case, _meeting_kind(meeting), access.WRITE, meeting=meeting)
    user = session.scalar(select(User).where(User.login == login, User.active.is_(True)))
    if user is None or user.role not in ("staff", "fm"):
        raise ValidationFailed({"user": [f"「{login}」という職員はいません。"]})
    if any(m.user_id == user.id for m in meeting.members):
        raise Conflict(f"{user.display_name}は既にこの会議の構成員です。")
    if meeting.kind == "layered_meeting":
        # A 重層的支援会議 meets under the person's consent: its members read the case's content, so
        # only an agency the consent covers may join it (others are consulted in a 支援会議).
        if user.department_id not in access.consented_department_ids(session, case.id):
            dept = session.get(Department, user.department_id)
            raise GuardRefused(f"{dept.name if dept else user.display_name}は本人の同意の範囲に含まれていないため、"
                               "重層的支援会議の構成員に加えることはできません。", guard="member_within_consent")
    member = MeetingMember(meeting_id=meeting.id, user_id=user.id, department_id=user.department_id,
                           secretariat=False, acknowledged_at=None)
    meeting.members.append(member)
    session.flush()
    audit.record(session, actor=actor, action="meeting.add_member", object_type="meeting",
                 object_id=meeting.id, case_id=case.id, at=now, detail={"user_id": user.id})
    return member


def carry_fact(session: Session, actor, case_id: int, meeting_id: int, text: str, *,
               now: datetime | None = None) -> SharedFact:
    """A member of a 支援会議 carries one specific fact over into the consented track (explicit, audited).

    Needs: the actor is a member of that 支援会議 who acknowledged the 守秘義務, and the case's current
    consent is a given one. The fact then reaches the agencies the consent covers (and the meeting's
    members, who know it already); withdrawing the consent hides it from those agencies again at once.
    The audit row names the meeting and the consent, never the text.
    """
    now = now or utcnow()
    case = services.load_case(session, actor, case_id)
    meeting = session.get(Meeting, meeting_id)
    if meeting is None or meeting.case_id != case.id or meeting.kind != "support_meeting":
        raise NotFound("指定された支援会議は見つかりません。")
    access.require(session, actor, case, access.SHARED_FACTS, access.WRITE, meeting=meeting)
    consent = access.current_given_consent(session, case.id)
    if consent is None:
        raise GuardRefused("本人の同意が記録されていないため、支援会議の情報を共有することはできません。",
                           guard="consent_given")
    text = (text or "").strip()
    if not text:
        raise MissingField({"text": ["共有する情報を入力してください。"]})
    fact = SharedFact(case_id=case.id, meeting_id=meeting.id, consent_id=consent.id, text=text,
                      carried_by_id=actor.id, carried_at=now)
    session.add(fact)
    session.flush()
    audit.record(session, actor=actor, action="shared_fact.carry", object_type="shared_fact",
                 object_id=fact.id, case_id=case.id, at=now,
                 detail={"meeting_id": meeting.id, "consent_id": consent.id})
    session.flush()
    return fact
