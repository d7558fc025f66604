"""A person's relations to a case, from which everything they may see and do follows (engine.access.policy).

Relations of a person to a case:
- owner: staff of the owning department; while no department owns it, of the department that recorded
  it, of the department whose staff reopened it and of the desk (相談まるごとサポートデスク);
- invited / joined: the person's department has an unanswered / an accepted つなぐシート of the case
  (the primary one or a join request);
- recorder: the department recorded the case or sent one of its つなぐシート (metadata only);
- former: the department took part until the consent it rested on was narrowed or withdrawn (its join
  lapsed): metadata, and the contact notes it wrote itself;
- notified: the department was told of the case (engine.alerts.notices: a routing rule's notify)
  (metadata only; named only when no other relation holds, since it opens nothing more);
- covered: the department is covered by the case's current consent (its newest consent record, if that
  one is given; a withdrawal or refusal narrows access at once);
- case_fm: the case's FM (担当FM, who convened its first 支援会議);
- case_member: a member who acknowledged the 守秘義務 of a 支援会議 that discussed the case (the case it was
  convened on, or another it took up: engine.cases.discussed) (a 重層的支援会議 meets under the consent: its
  members see each case it discussed as that case's own consent lets them);
- pending_member: a member who has not acknowledged it yet: knows the case exists, reads nothing;
- fm: any FM — handoff metadata (dates, departments, state) of every case;
- admin: the administrator — metadata of every case, never content.
Relations to one meeting: member (acknowledged member of that meeting), secretariat (its acknowledged
secretariat member, who keeps its records), pending (a member who has not acknowledged).

Levels of sight on a case (`case_sight`):
- NONE: the person may not know the case exists (404, in no list, count or search);
- METADATA: state, dates, departments, handoff metadata, history;
- CONTENT: the person, household, summary, categories, handoff texts, consents, and the further records
  that the policy opens to the person's relations.
"""
from __future__ import annotations

from enum import IntEnum
from functools import cache

from sqlalchemy import bindparam, exists, or_, select
from sqlalchemy.orm import Session

from engine.access.actors import is_person
from engine.departments import desk_id
from engine.models import CaseNotice, Consent, ConsentAgency, Handoff, Meeting, MeetingCase, MeetingMember


class Sight(IntEnum):
    NONE = 0
    METADATA = 1
    CONTENT = 2
SYSTEM = "system"
OWNER = "owner"
INVITED = "invited"
JOINED = "joined"
RECORDER = "recorder"
FORMER = "former"
COVERED = "covered"
CASE_FM = "case_fm"
CASE_MEMBER = "case_member"
PENDING_MEMBER = "pending_member"
NOTIFIED = "notified"
FM = "fm"
ADMIN = "admin"


# relations to one meeting
# relations to one meeting
# relations to one meeting
MEMBER = "member"
SECRETARIAT = "secretariat"
PENDING = "pending"


CONTENT_RELATIONS = frozenset({SYSTEM, OWNER, INVITED, JOINED, COVERED, CASE_FM, CASE_MEMBER})
METADATA_RELATIONS = CONTENT_RELATIONS | {RECORDER, FORMER, NOTIFIED, PENDING_MEMBER, FM, ADMIN}


def current_consent(session: Session, case_id: int):
    """The newest consent record of the case (given, refused or withdrawn), or None."""
    return session.scalars(
        select(Consent).where(Consent.case_id == case_id).order_by(Consent.id.desc()).limit(1)
    ).first()


def current_given_consent(session: Session, case_id: int):
    """The case's consent in force: the newest consent record if it is a given one, else None."""
    consent = current_consent(session, case_id)
    return consent if consent is not None and consent.status == "given" else None


def consented_department_ids(session: Session, case_id: int) -> set[int]:
    """The agencies the case's consent covers now; empty before consent and after withdrawal."""
    consent = current_given_consent(session, case_id)
    return set() if consent is None else {a.department_id for a in consent.agencies}


@cache
def _relation_statements():
    """The reads of relations(), built once (every event and every case page runs them)."""
    case_id, dept, user_id = bindparam("r_case"), bindparam("r_dept"), bindparam("r_user")
    handoffs = (select(Handoff.state, Handoff.to_department_id, Handoff.from_department_id, Handoff.lapsed_at)
                .where(Handoff.case_id == case_id,
                       or_(Handoff.to_department_id == dept, Handoff.from_department_id == dept)))
    # The newest consent's status, and whether the department is among its agencies.
    covered = (select(Consent.status, exists().where(ConsentAgency.consent_id == Consent.id,
                                                     ConsentAgency.department_id == dept))
               .where(Consent.case_id == case_id).order_by(Consent.id.desc()).limit(1))
    # Membership of a 支援会議 relates a person to every case it discussed (its own and the others it took
    # up); a 重層的支援会議 meets under the consent, and its members see each case it discussed as that case's
    # own consent lets them (covered), no further and no longer.
    meetings = (select(MeetingMember.acknowledged_at)
                .join(MeetingCase, MeetingCase.meeting_id == MeetingMember.meeting_id)
                .join(Meeting, Meeting.id == MeetingMember.meeting_id)
                .where(MeetingCase.case_id == case_id, MeetingMember.user_id == user_id,
                       Meeting.kind == "support_meeting"))
    notified = select(CaseNotice.id).where(CaseNotice.case_id == case_id, CaseNotice.department_id == dept)
    return handoffs, covered, meetings, notified


def _covered(session: Session, case_id: int, department_id: int) -> bool:
    """Whether the case's consent in force covers the department."""
    row = session.execute(_relation_statements()[1], {"r_case": case_id, "r_dept": department_id}).first()
    return row is not None and row[0] == "given" and bool(row[1])


def relations(session: Session, user, case) -> frozenset[str]:
    """The relations of `user` to `case` (see the module docstring)."""
    if getattr(user, "role", None) == "system":
        return frozenset({SYSTEM})
    if not is_person(user):
        return frozenset()
    if user.role == "admin":
        return frozenset({ADMIN})
    rel: set[str] = {FM} if user.role == "fm" else set()
    dept = user.department_id
    if case.owning_department_id is not None:
        if dept == case.owning_department_id:
            rel.add(OWNER)
    elif dept in (case.created_department_id, case.reopened_department_id) or dept == desk_id(session):
        rel.add(OWNER)
    if dept == case.created_department_id:
        rel.add(RECORDER)
    handoffs, _, meetings, notified = _relation_statements()
    for state, to_dept, from_dept, lapsed_at in session.execute(handoffs, {"r_case": case.id, "r_dept": dept}):
        if to_dept == dept and state == "sent":
            rel.add(INVITED)
        if to_dept == dept and state == "accepted":
            rel.add(JOINED)
        if to_dept == dept and lapsed_at is not None:
            rel.add(FORMER)
        if from_dept == dept:
            rel.add(RECORDER)
    if _covered(session, case.id, dept):
        rel.add(COVERED)
    if case.fm_id is not None and case.fm_id == user.id:
        rel.add(CASE_FM)
    for (acknowledged_at,) in session.execute(meetings, {"r_case": case.id, "r_user": user.id}):
        rel.add(CASE_MEMBER if acknowledged_at is not None else PENDING_MEMBER)
    # Being told of a case opens its metadata only, which every other relation opens too: the notice is
    # looked up only when nothing else relates the person to the case.
    if not rel and session.execute(notified, {"r_case": case.id, "r_dept": dept}).first() is not None:
        rel.add(NOTIFIED)
    return frozenset(rel)


def meeting_relations(user, meeting) -> frozenset[str]:
    """The relations of `user` to one meeting: member, secretariat (acknowledged), or pending.

    An administrator is none of these even if listed (no form makes one a member): reading no case content
    is what the role is."""
    if not is_person(user) or user.role == "admin":
        return frozenset()
    row = next((m for m in meeting.members if m.user_id == user.id), None)
    if row is None:
        return frozenset()
    if row.acknowledged_at is None:
        return frozenset({PENDING})
    return frozenset({MEMBER, SECRETARIAT} if row.secretariat else {MEMBER})


def invitation_reaches(session: Session, user, meeting) -> bool:
    """Whether an invited member who has not acknowledged yet reaches the meeting by the invitation alone
    (its page, to acknowledge the 守秘義務).

    A 支援会議 invites without consent. A 重層的支援会議 meets under the person's consent: its invitation
    reaches only the staff of the agencies that consent covers now, and lapses when it is withdrawn or
    narrowed (anyone else reaches it only as they reach the case)."""
    if meeting.kind != "layered_meeting":
        return True
    return user.department_id in meeting_consented_department_ids(session, meeting)


def meeting_consented_department_ids(session: Session, meeting) -> set[int]:
    """The agencies a 重層的支援会議 may reach: those the consent of every case it discussed covers now
    (consent stays per person: the mother's consent opens nothing of her son's case)."""
    ids = [link.case_id for link in meeting.discussed_cases] or [meeting.case_id]
    covered: set[int] | None = None
    for case_id in dict.fromkeys([meeting.case_id, *ids]):
        these = consented_department_ids(session, case_id)
        covered = these if covered is None else covered & these
    return covered or set()


def sight_of(rel: frozenset[str]) -> Sight:
    if rel & CONTENT_RELATIONS:
        return Sight.CONTENT
    if rel & METADATA_RELATIONS:
        return Sight.METADATA
    return Sight.NONE


def case_sight(session: Session, user, case) -> Sight:
    """How much of the case `user` may see."""
    return sight_of(relations(session, user, case))


def member_meeting_ids(session: Session, user, case_id: int, kind: str = "support_meeting") -> list[int]:
    """The meetings (of `kind`) that discussed the case and whose records `user` reads: acknowledged
    memberships, newest first."""
    if not is_person(user) or user.role == "admin":
        return []
    return list(session.scalars(
        select(Meeting.id).join(MeetingMember, MeetingMember.meeting_id == Meeting.id)
        .join(MeetingCase, MeetingCase.meeting_id == Meeting.id)
        .where(MeetingCase.case_id == case_id, Meeting.kind == kind, MeetingMember.user_id == user.id,
               MeetingMember.acknowledged_at.is_not(None))
        .order_by(Meeting.held_at.desc(), Meeting.id.desc())
    ))


# The states in which a case is worked on without the person's consent, in the 支援会議 track: what a
# 支援会議 member types then may carry what the meeting shared, and stays with the meeting's members.
MEETING_TRACK_STATES = ("support_meeting", "consent")


def note_meeting_id(session: Session, user, case, rel: frozenset[str]) -> int | None:
    """The 支援会議 a new contact note by `user` belongs to, or None for the ordinary (consented) track.

    The owner, a joined department and a covered agency write into the ordinary track, except a 支援会議
    member while the case is in the 支援会議 track (支援会議・同意確認中): what they record then may carry
    what the meeting shared without consent, and it would reach the covered agencies once consent is
    given. Anyone else who may write (a 支援会議 member, the case FM) knows the case through a 支援会議.
    Either way the note is a record of their newest 支援会議 and stays with its members.
    """
    if SYSTEM in rel:
        return None
    meetings = member_meeting_ids(session, user, case.id)
    if rel & {OWNER, JOINED, COVERED} and not (meetings and case.state in MEETING_TRACK_STATES):
        return None
    return meetings[0] if meetings else None
