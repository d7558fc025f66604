"""支援会議 records: membership, the 守秘義務, minutes, and the audited carry-over into the consented track.

A 支援会議 (社会福祉法106条の6) shares information about a person without their consent, among members
bound by a secrecy duty that outlives their role. Its records — minutes, decisions, and the contact notes
marked with its id — are read only by its members who acknowledged the 守秘義務 (its secretariat is a
member), before and after consent; every read is in the audit trail, which is kept for good.

Nothing flows from a 支援会議 into the consented track (the plan, the 重層的支援会議, contact notes, API
answers) by itself. Once the person's consent is recorded, a member may carry one specific fact over:
`carry_fact`, an explicit and audited act. The fact then reaches the agencies the current consent covers,
and no one else; a withdrawal of consent narrows that again at once.

Records are only ever added to, never rewritten (追記): each addition is stamped with the time and the
member's name, and appended in one UPDATE, so two members writing at once both keep their text.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from engine import calendar
from engine.access import policy
from engine.access.relations import current_given_consent, invitation_reaches, meeting_consented_department_ids
from engine.audit import trail
from engine.cases import discussed, submissions
from engine.cases.kernel import load_case
from engine.errors import Conflict, GuardRefused, MissingField, NotFound, PermissionDenied, ValidationFailed
from engine.models import Case, Department, Meeting, MeetingCase, MeetingMember, SharedFact, User, utcnow
from engine.sharing import bases, provisions

MAX_ADDITION = 20000
MEETING_NOT_FOUND = "指定された会議は見つかりません。"


def _meeting_kind(meeting: Meeting) -> str:
    return policy.SUPPORT_MEETING if meeting.kind == "support_meeting" else policy.LAYERED_MEETING


def load_meeting(session: Session, actor, meeting_id: int) -> tuple[Meeting, object]:
    """The meeting and its case, if `actor` may know the case exists; NotFound otherwise."""
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("指定された会議は見つかりません。")
    case = load_case(session, actor, meeting.case_id, not_found="指定された会議は見つかりません。")
    return meeting, case


def acknowledge_secrecy(session: Session, actor: User, meeting_id: int, *, now: datetime | None = None) -> MeetingMember:
    """A member acknowledges the 守秘義務 of a meeting (before reading its records)."""
    now = now or utcnow()
    member = session.scalar(select(MeetingMember).where(MeetingMember.meeting_id == meeting_id,
                                                        MeetingMember.user_id == actor.id))
    if member is None:
        raise NotFound("指定された会議は見つかりません。")
    meeting = session.get(Meeting, meeting_id)
    if member.acknowledged_at is None and not invitation_reaches(session, actor, meeting):
        # A 重層的支援会議's invitation to an agency the consent no longer covers has lapsed.
        load_case(session, actor, meeting.case_id, not_found="指定された会議は見つかりません。")
    if member.acknowledged_at is None:
        # Compare-and-set: of requests racing each other (a double click, two tabs), one acknowledges and
        # writes the audit row; the others find it done.
        done = session.execute(
            update(MeetingMember).where(MeetingMember.id == member.id, MeetingMember.acknowledged_at.is_(None))
            .values(acknowledged_at=now).execution_options(synchronize_session=False)).rowcount
        session.refresh(member)
        if done == 1:
            trail.record(session, actor=actor, action="meeting.acknowledge_secrecy", object_type="meeting",
                         object_id=meeting_id, case_id=meeting.case_id, at=now)
            session.flush()
    return member


def add_meeting_member(session: Session, actor, meeting_id: int, login: str, *,
                       now: datetime | None = None) -> MeetingMember:
    """The secretariat adds a member to a meeting; the new member reads nothing before acknowledging
    the 守秘義務 (engine.cases.meetings.acknowledge_secrecy)."""
    meeting, case = load_meeting(session, actor, meeting_id)
    policy.require(session, actor, case, _meeting_kind(meeting), policy.WRITE, meeting=meeting)
    user = session.scalar(select(User).where(User.login == login, User.active.is_(True)))
    if user is None or user.role not in ("staff", "fm"):
        raise ValidationFailed({"user": [f"「{login}」という職員はいません。"]})
    if any(m.user_id == user.id for m in meeting.members):
        raise Conflict(f"{user.display_name}は既にこの会議の構成員です。")
    if meeting.kind == "layered_meeting":
        # A 重層的支援会議 meets under the person's consent: its members read the case's content, so
        # only an agency the consent covers may join it (others are consulted in a 支援会議); when it
        # discussed several cases, the consent of each of them (consent stays per person).
        if user.department_id not in meeting_consented_department_ids(session, meeting):
            dept = session.get(Department, user.department_id)
            raise GuardRefused(f"{dept.name if dept else user.display_name}は本人の同意の範囲に含まれていないため、"
                               "重層的支援会議の構成員に加えることはできません。", guard="member_within_consent")
    member = MeetingMember(meeting_id=meeting.id, user_id=user.id, department_id=user.department_id,
                           secretariat=False, acknowledged_at=None)
    meeting.members.append(member)
    session.flush()
    trail.record(session, actor=actor, action="meeting.add_member", object_type="meeting",
                 object_id=meeting.id, case_id=case.id, at=now, detail={"user_id": user.id})
    for case_id in discussed.discussed_case_ids(session, meeting.id):
        # The new member's body receives every case the meeting discussed, each recorded on its own case.
        provisions.provide_to_members(session, actor, session.get(Case, case_id), meeting, [user.department_id],
                                      now=now or utcnow())
    return member


def append_record(session: Session, actor, meeting_id: int, *, minutes: str | None, decisions: str | None,
                  submission_token: str | None, now: datetime | None = None,
                  remote_addr: str | None = None) -> Meeting:
    """Add to a meeting's minutes and/or decisions; only members who acknowledged the 守秘義務 may."""
    now = now or utcnow()
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("指定された会議は見つかりません。")
    load_case(session, actor, meeting.case_id, not_found="指定された会議は見つかりません。")
    member = session.scalar(select(MeetingMember).where(MeetingMember.meeting_id == meeting_id,
                                                        MeetingMember.user_id == actor.id))
    if member is None or member.acknowledged_at is None:
        raise PermissionDenied("会議の記録を追記できるのは、守秘義務を確認した構成員だけです。")
    minutes, decisions = (minutes or "").strip(), (decisions or "").strip()
    errors: dict[str, list[str]] = {}
    if not minutes and not decisions:
        errors["minutes"] = ["記録か決定事項のどちらかを入力してください。"]
    for name, text in (("minutes", minutes), ("decisions", decisions)):
        if len(text) > MAX_ADDITION:
            errors[name] = [f"{MAX_ADDITION}文字以内で入力してください。"]
    if errors:
        raise ValidationFailed(errors)
    claim = submissions.claim(session, actor, submission_token, "meeting_record", now=now)
    stamp = f"【{calendar.wareki_datetime(now)} {actor.display_name}】"
    values = {}
    for column, text in ((Meeting.minutes, minutes), (Meeting.decisions, decisions)):
        if text:
            # Existing text, a blank line, then the stamped addition — all in SQL.
            values[column.key] = func.coalesce(column + "\n\n", "") + (stamp + "\n" + text)
    session.execute(update(Meeting).where(Meeting.id == meeting_id).values(**values),
                    execution_options={"synchronize_session": False})
    trail.record(session, actor=actor, action="meeting.append_record", object_type="meeting", object_id=meeting_id,
                 case_id=meeting.case_id, remote_addr=remote_addr, at=now)
    submissions.settle(session, claim, meeting.case_id)
    session.flush()
    session.refresh(meeting)
    return meeting


def carry_fact(session: Session, actor, meeting_id: int, fact: str, *, submission_token: str | None = None,
               now: datetime | None = None) -> SharedFact:
    """A member of a 支援会議 carries one specific fact over into the consented track (explicit, audited).

    Needs: the actor is a member of that 支援会議 who acknowledged the 守秘義務, and the case's current
    consent is a given one. The fact then reaches the agencies the consent covers (and the meeting's
    members, who know it already); withdrawing the consent hides it from those agencies again at once.
    The audit row names the meeting and the consent, never the text. A page's form carries
    `submission_token`: the same form sent twice carries the fact once.
    """
    now = now or utcnow()
    meeting, case = load_meeting(session, actor, meeting_id)
    if meeting.kind != "support_meeting":
        raise NotFound("指定された支援会議は見つかりません。")
    policy.require(session, actor, case, policy.SHARED_FACTS, policy.WRITE, meeting=meeting)
    consent = current_given_consent(session, case.id)
    if consent is None:
        raise GuardRefused("本人の同意が記録されていないため、支援会議の情報を共有することはできません。",
                           guard="consent_given")
    fact = (fact or "").strip()
    if not fact:
        raise MissingField({"fact": ["共有する情報を入力してください。"]})
    if len(fact) > MAX_ADDITION:
        raise ValidationFailed({"fact": [f"{MAX_ADDITION}文字以内で入力してください。"]})
    # The rules first (a refusal must not depend on the token), then the token, then the fact.
    claim = submissions.claim(session, actor, submission_token, "shared_fact", now=now) \
        if submission_token is not None else None
    row = SharedFact(case_id=case.id, meeting_id=meeting.id, consent_id=consent.id, text=fact,
                     carried_by_id=actor.id, carried_at=now)
    session.add(row)
    session.flush()
    trail.record(session, actor=actor, action="shared_fact.carry", object_type="shared_fact",
                 object_id=row.id, case_id=case.id, at=now,
                 detail={"meeting_id": meeting.id, "consent_id": consent.id})
    # The fact reaches the agencies the consent names: for each outside the city, a provision on that consent.
    for agency in consent.agencies:
        body = session.get(Department, agency.department_id)
        provisions.provide(session, actor, case, body, "fact", bases.Basis("consent", consent_id=consent.id), now=now)
    if claim is not None:
        submissions.settle(session, claim, case.id)
    session.flush()
    return row


@dataclass
class Invitation:
    """A meeting waiting for the reader's 守秘義務 acknowledgement, as far as they may know of it before then:
    what its page shows them (the kind, when it was held, the case number, its secretariat and convenor),
    never the person, the minutes or the decisions."""

    meeting_id: int
    kind: str
    held_at: datetime
    case_id: int
    case_number: str
    secretariat: str | None
    convenor: str | None


def waiting_invitations(session: Session, actor, *, case_id: int | None = None, limit: int = 100) -> list[Invitation]:
    """The meetings `actor` was made a member of and has not acknowledged yet (those the invitation still
    reaches: engine.access.relations.invitation_reaches), newest first; with `case_id`, those that discussed
    that case. The member's inbox lists them, and the case's page, so that the meeting is found."""
    if actor is None or getattr(actor, "role", None) not in ("staff", "fm") or not actor.active:
        return []
    q = (select(Meeting).join(MeetingMember, MeetingMember.meeting_id == Meeting.id)
         .where(MeetingMember.user_id == actor.id, MeetingMember.acknowledged_at.is_(None)))
    if case_id is not None:
        discussed_here = select(MeetingCase.meeting_id).where(MeetingCase.case_id == case_id)
        q = q.where(or_(Meeting.case_id == case_id, Meeting.id.in_(discussed_here)))
    out = []
    for meeting in session.scalars(q.order_by(Meeting.held_at.desc(), Meeting.id.desc()).limit(limit)):
        if not invitation_reaches(session, actor, meeting):
            continue
        case = session.get(Case, meeting.case_id)
        secretariat = session.get(Department, meeting.secretariat_department_id) \
            if meeting.secretariat_department_id else None
        convenor = session.get(User, meeting.convenor_id)
        out.append(Invitation(meeting_id=meeting.id, kind=meeting.kind, held_at=meeting.held_at, case_id=case.id,
                              case_number=case.case_number, secretariat=secretariat.name if secretariat else None,
                              convenor=convenor.display_name if convenor else None))
    return out
