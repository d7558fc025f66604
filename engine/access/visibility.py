"""The access policy stated in SQL, for lists, counts and search: which cases a person may know of or read.

It states the rules of engine.access.relations.relations() in SQL; a test checks the two agree on every
pair of a varied set. A department's standing relations are read from the table engine.case_departments
keeps; the person's own (case FM, meeting member) are added here.
"""
from __future__ import annotations

from sqlalchemy import exists, false, func, or_, select, true, union
from sqlalchemy.orm import Session

from engine import case_departments
from engine.access.actors import is_person
from engine.access.relations import Sight
from engine.models import Case, CaseDepartment, Meeting, MeetingCase, MeetingMember


def visible_cases_filter(session: Session | None, user, min_sight: Sight = Sight.METADATA, *, walk: bool = False):
    """A WHERE clause for the cases `user` sees at `min_sight` or more (lists, counts and search use it).

    It states the rules of `relations()` in SQL; a test checks the two agree on every pair of a varied set.
    (`session` is not needed; it is kept for the callers that pass it.) The clause is true() or false()
    itself when the answer does not depend on the case.

    With `walk`, the clause is stated so that the database cannot answer it through the case id's index:
    for a list that walks another index (newest first) and tests each row, which beats gathering and
    sorting every visible case when the person may know of thousands.
    """
    role = getattr(user, "role", None)
    if role == "system":
        return true()
    if not is_person(user):
        return false()
    if role == "admin":
        return true() if min_sight <= Sight.METADATA else false()
    if role == "fm" and min_sight <= Sight.METADATA:
        return true()
    if session is not None:  # the transaction's own writes first

        case_departments.settle(session)
    # The department's relations are kept in case_departments (engine.case_departments, checked against
    # the records by the tests); the person's own (case FM, meeting member) are added here. Each way in
    # is an index lookup, so the database unions ids instead of testing every case row.
    # Every way in is stated on the case id alone, so that a list walking an index of `cases` in some order
    # can test it without reading the rows it skips.
    known = select(CaseDepartment.case_id).where(CaseDepartment.department_id == user.department_id)
    fm_cases = select(Case.id).where(Case.fm_id == user.id)
    case_id = Case.id + 0 if walk else Case.id
    if min_sight >= Sight.CONTENT:
        return or_(case_id.in_(known.where(CaseDepartment.content.is_(True))), case_id.in_(fm_cases),
                   case_id.in_(_meeting_cases(user, acknowledged=True)))
    return or_(case_id.in_(known), case_id.in_(fm_cases), case_id.in_(_meeting_cases(user, acknowledged=False)))


def visible_state_counts(session: Session, user) -> dict[str, int]:
    """How many cases `user` may know of are in each state (the same cases as visible_cases_filter)."""
    visible = visible_cases_filter(session, user)
    if visible is false():
        return {}
    if visible is true():
        return dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    counts = dict(session.execute(
        select(CaseDepartment.state, func.count()).where(CaseDepartment.department_id == user.department_id)
        .group_by(CaseDepartment.state)).all())
    # The person's own cases that the department does not already know of (their ids first: an OR of the
    # two ways in would test every case row).
    own_ids = union(select(Case.id).where(Case.fm_id == user.id), _meeting_cases(user, acknowledged=False))
    own = select(Case.state, func.count()).where(
        Case.id.in_(own_ids),
        ~exists().where(CaseDepartment.case_id == Case.id, CaseDepartment.department_id == user.department_id),
    ).group_by(Case.state)
    for state, n in session.execute(own):
        counts[state] = counts.get(state, 0) + n
    return counts


def _meeting_cases(user, *, acknowledged: bool):
    """The cases discussed by the 支援会議 `user` is a member of (acknowledged, or any)."""
    q = (select(MeetingCase.case_id).join(MeetingMember, MeetingMember.meeting_id == MeetingCase.meeting_id)
         .join(Meeting, Meeting.id == MeetingCase.meeting_id)
         .where(MeetingMember.user_id == user.id, Meeting.kind == "support_meeting"))
    return q.where(MeetingMember.acknowledged_at.is_not(None)) if acknowledged else q


def content_cases_filter(session: Session | None, user):
    """A WHERE clause for the cases whose content (person, summary, notes) `user` may read: a search by
    name, area or category must never reveal a case to someone who sees only its metadata."""
    return visible_cases_filter(session, user, Sight.CONTENT)


def content_is_visibility(user) -> bool:
    """Whether every case `user` may know of is also one whose content they read (never assumed: the
    department that recorded a case keeps only metadata once another owns it)."""
    return getattr(user, "role", None) == "system"
