"""Who may see and do what: the one access policy every service, page and API answer uses.

Levels of sight on a case:
- NONE: the person may not know the case exists (its URL answers 404, it is in no list or count);
- METADATA: handoff metadata only (dates, departments, state) — an FM's view of every case;
- CONTENT: the person, household, summary, handoffs, plan and notes of the consented track.
支援会議 records are a separate matter: only that meeting's members (who acknowledged 守秘義務) read them.
"""
from __future__ import annotations

from enum import IntEnum

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

DESK_CODE = "desk"


class _SystemActor:
    """The engine itself acting (automatic routing); never a person, never signs in."""

    id = None
    login = "system"
    display_name = "自動振り分け"
    role = "system"
    department_id = None
    active = True
    is_fm = False
    is_admin = False


SYSTEM_ACTOR = _SystemActor()


class Sight(IntEnum):
    NONE = 0
    METADATA = 1
    CONTENT = 2


def _desk_id(session: Session) -> int | None:
    from engine.models import Department

    cache = session.info.setdefault("tsunagu_cache", {})
    if "desk_id" not in cache:
        cache["desk_id"] = session.scalar(select(Department.id).where(Department.code == DESK_CODE))
    return cache["desk_id"]


def is_meeting_member(session: Session, user, case_id: int, kind: str | None = None,
                      acknowledged: bool = False) -> bool:
    """Whether `user` is a member of a meeting about the case (of `kind`, if given)."""
    from engine.models import Meeting, MeetingMember

    q = (
        select(MeetingMember.id)
        .join(Meeting, Meeting.id == MeetingMember.meeting_id)
        .where(MeetingMember.user_id == user.id, Meeting.case_id == case_id)
    )
    if kind:
        q = q.where(Meeting.kind == kind)
    if acknowledged:
        q = q.where(MeetingMember.acknowledged_at.is_not(None))
    return bool(session.scalar(select(exists(q))))


def is_support_meeting_member(session: Session, user, case_id: int) -> bool:
    return is_meeting_member(session, user, case_id, kind="support_meeting")


def current_consent(session: Session, case_id: int):
    """The newest consent record of the case (given, refused or withdrawn), or None."""
    from engine.models import Consent

    return session.scalars(
        select(Consent).where(Consent.case_id == case_id).order_by(Consent.id.desc()).limit(1)
    ).first()


def consented_department_ids(session: Session, case_id: int) -> set[int]:
    """The agencies the case's consent covers now; empty before consent and after withdrawal."""
    consent = current_consent(session, case_id)
    if consent is None or consent.status != "given":
        return set()
    return {a.department_id for a in consent.agencies}


def may_work_on_case(session: Session, user, case) -> bool:
    """Whether `user` may advance the case: its owning department, an FM, or a member of its meetings."""
    if user.role == "system":
        return True
    if not user.active or user.role == "admin":
        return False
    if user.role == "fm":
        return True
    if case.owning_department_id is not None:
        if user.department_id == case.owning_department_id:
            return True
    elif user.department_id in {case.created_department_id, _desk_id(session)}:
        return True
    return is_meeting_member(session, user, case.id, acknowledged=True)


def case_sight(session: Session, user, case) -> Sight:
    """How much of the case `user` may see."""
    from engine.models import Handoff

    if user.role == "system":
        return Sight.CONTENT
    if not user.active:
        return Sight.NONE
    if may_work_on_case(session, user, case) and user.role != "fm":
        return Sight.CONTENT
    if user.role == "fm":
        if case.fm_id == user.id or is_meeting_member(session, user, case.id, acknowledged=True):
            return Sight.CONTENT
        if case.owning_department_id == user.department_id:
            return Sight.CONTENT
        return Sight.METADATA
    if user.role == "admin":
        return Sight.METADATA
    dept = user.department_id
    if dept in {case.created_department_id, case.owning_department_id}:
        return Sight.CONTENT
    involved = session.scalar(
        select(
            exists().where(
                Handoff.case_id == case.id,
                Handoff.to_department_id == dept,
                Handoff.state.in_(("sent", "accepted")),
            )
        )
    )
    if involved:
        return Sight.CONTENT
    if dept in consented_department_ids(session, case.id):
        return Sight.CONTENT
    return Sight.NONE


def visible_cases_filter(session: Session, user):
    """A WHERE clause for the cases `user` may know exist (lists, counts and search use it)."""
    from sqlalchemy import false, or_, true
    from sqlalchemy.orm import aliased

    from engine.models import Case, Consent, ConsentAgency, Handoff

    if user.role == "system":
        return true()
    if not user.active:
        return false()
    if user.role in ("fm", "admin"):
        return true()
    dept = user.department_id
    newer = aliased(Consent)
    # Correlated to the consent row of its own subquery (not to `cases`, which would be a cross join).
    later = select(newer.id).where(newer.case_id == Consent.case_id, newer.id > Consent.id)
    # Each way in is an index lookup or an uncorrelated IN (subquery), computed once per query: the
    # database unions the matching rows (a multi-index OR) instead of testing every case row.
    ways_in = [
        Case.owning_department_id == dept,
        Case.created_department_id == dept,
        Case.id.in_(select(Handoff.case_id).where(Handoff.to_department_id == dept,
                                                  Handoff.state.in_(("sent", "accepted")))),
        Case.id.in_(_acknowledged_meeting_cases(user)),
        Case.id.in_(select(Consent.case_id).join(ConsentAgency, ConsentAgency.consent_id == Consent.id)
                    .where(ConsentAgency.department_id == dept, Consent.status == "given", ~exists(later))),
    ]
    if dept == _desk_id(session):
        ways_in.append(Case.owning_department_id.is_(None))
    return or_(*ways_in)


def _acknowledged_meeting_cases(user):
    from engine.models import Meeting, MeetingMember

    return (select(Meeting.case_id).join(MeetingMember, MeetingMember.meeting_id == Meeting.id)
            .where(MeetingMember.user_id == user.id, MeetingMember.acknowledged_at.is_not(None)))


def content_cases_filter(session: Session, user):
    """A WHERE clause for the cases whose content (person, summary, notes) `user` may read.

    The SQL form of `case_sight(...) >= Sight.CONTENT`: a search by name, area or category must never
    reveal that a case exists to someone who sees only its handoff metadata (an FM outside it, an admin).
    """
    from sqlalchemy import false, or_, true

    from engine.models import Case

    if user.role == "system":
        return true()
    if not user.active or user.role == "admin":
        return false()
    if user.role == "fm":
        return or_(
            Case.fm_id == user.id,
            Case.owning_department_id == user.department_id,
            Case.id.in_(_acknowledged_meeting_cases(user)),
        )
    return visible_cases_filter(session, user)


def content_is_visibility(user) -> bool:
    """Whether `user` reads the content of every case they may know of (department staff do; an FM or
    an admin knows of every case but reads few), so that a list needs no second filter."""
    return user.role not in ("fm", "admin")
