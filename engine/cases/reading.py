"""Reads of a case's content that leave an audit row: the case file, a つなぐシート, a meeting's records.

Each returns the read models of engine.cases.views (already cut to what the reader may see) and records the
read when content was shown. Nothing else is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access
from engine.audit import trail
from engine.cases import joins, kernel, meeting_requests, meetings, offers, participation, redirect, views
from engine.cases.events import firing
from engine.errors import NotFound
from engine.models import Case, Department, Handoff, Meeting, Plan, User
from engine.sharing import bases


@dataclass
class CaseActions:
    """What the reader may do on the case's page now, besides its events (each checked again when done)."""

    amend: bool = False  # correct the summary and the person's details
    request_join: bool = False  # ask another department to join
    redirect_handoff: bool = False  # send the waiting つなぐシート elsewhere (送付先の変更)
    offer_join: bool = False  # offer to join (a department told of the case)
    answer_offers: bool = False  # answer the offers to join
    record_match: bool = False  # 参加支援
    # The join requests the reader may take back: {handoff id: its version}.
    withdrawable_joins: dict[int, int] = field(default_factory=dict)
    # Where a contact note the reader writes goes: None for the ordinary track, else that 支援会議's id.
    note_meeting: int | None = None
    # Whether the reader may choose a statute or an emergency as the basis for a body outside the city, and
    # (an FM) the city department an outside owner hands the case back to when the consent is withdrawn.
    choose_basis: bool = False
    choose_return_to: bool = False
    # For one who works on the case but may not convene a 支援会議 (only an FM may) while one could be held:
    # the FMs to ask, the case's own FM first (else every active FM); empty otherwise.
    ask_fm_to_convene: list[str] = field(default_factory=list)
    # The request for a 支援会議 that waits for an FM (engine.cases.meeting_requests), if any.
    meeting_request: Any = None
    # The meetings on the case waiting for the reader's 守秘義務 acknowledgement (engine.cases.meetings).
    invitations: list = field(default_factory=list)


@dataclass
class CaseFile:
    """A case as one reader may see it: the staff view (engine.cases.views.case_view), the events they may
    fire now and what else they may do on its page."""

    case: Case
    view: dict[str, Any]
    allowed_events: list[str]
    content: bool
    rel: frozenset[str] = frozenset()  # the reader's relations to the case (engine.access.relations)
    # For a reader of the content who may not read the plan: whether one is in force ("active") or ended
    # ("ended"), never what it says; None otherwise.
    hidden_plan: str | None = None
    actions: CaseActions = field(default_factory=CaseActions)


def read_case(session: Session, actor, case_id: int, *, remote_addr: str | None = None,
              support_meeting_records: bool = True, may_act: bool = True) -> CaseFile:
    """The case as `actor` may see it, with the events they may fire now: the one way a case is read, by the
    pages, the API and the tests alike. A read that shows content is audited (by case_view, which names
    the parts it showed).

    Without `support_meeting_records` (the API) a 支援会議's records stay on its own page, read there under
    the 守秘義務 the member acknowledged. Without `may_act` (a token that may not write) no event or action
    is offered.
    """
    case, rel = kernel.load_case_with_relations(session, actor, case_id)
    allowed = firing.allowed_events(session, actor, case) if may_act else []
    view = views.case_view(session, actor, case, allowed, support_meeting_records=support_meeting_records)
    content = view["access"] == "content"
    hidden_plan = None
    if content and not access.may(session, actor, case, access.PLAN, access.READ, rel=rel):
        found = set(session.scalars(select(Plan.status).where(Plan.case_id == case.id,
                                                              Plan.status.in_(("active", "ended")))))
        hidden_plan = "active" if "active" in found else ("ended" if found else None)
    file = CaseFile(case=case, view=view, allowed_events=allowed, content=content, rel=rel,
                    hidden_plan=hidden_plan)
    if may_act:
        file.actions = _actions(session, actor, file)
    return file


def _actions(session: Session, actor, file: CaseFile) -> CaseActions:
    case, rel, may = file.case, file.rel, file.view.get("may") or {}
    open_case = case.state != "closed"
    return CaseActions(
        amend=bool(may.get("case_content.write")) and case.anonymised_at is None,
        request_join=bool(may.get("case_metadata.write")) and open_case,
        redirect_handoff=case.state == "handoff" and redirect.may_override(session, actor, case),
        offer_join=offers.may_offer(rel) and open_case,
        answer_offers=bool(may.get("case_metadata.write")) and open_case,
        record_match=participation.may_record(session, actor, case, rel),
        withdrawable_joins={h.id: h.version for h in case.handoffs
                            if not h.primary and h.state == "sent"
                            and joins.may_withdraw_join(session, actor, case, h, rel)},
        note_meeting=access.note_meeting_id(session, actor, case, rel) if open_case else None,
        choose_basis=bases.may_choose(session, actor),
        choose_return_to=getattr(actor, "role", None) == "fm",
        ask_fm_to_convene=meeting_requests.fms_to_ask(session, actor, case, rel),
        meeting_request=meeting_requests.open_request(session, case.id) if open_case else None,
        invitations=meetings.waiting_invitations(session, actor, case_id=case.id),
    )


def event_answer(session: Session, actor, case: Case, *, support_meeting_records: bool = True,
                 may_read: bool = True) -> dict[str, Any]:
    """What the actor of an event reads of the case afterwards (engine.cases.views.event_receipt): the
    staff view, or a receipt when the event ended their sight or they may not read cases."""
    allowed = firing.allowed_events(session, actor, case)
    return views.event_receipt(session, actor, case, allowed, support_meeting_records=support_meeting_records,
                               may_read=may_read)


@dataclass
class Sheet:
    """A つなぐシート with the case view it prints from."""

    handoff: Handoff
    view: dict[str, Any]
    from_department: Department | None
    to_department: Department
    sender: User | None


def read_sheet(session: Session, actor, handoff_id: int, *, remote_addr: str | None = None) -> Sheet:
    """A つなぐシート to print for a partner on paper; only for those who may read the case's content."""
    missing = "指定されたつなぐシートは見つかりません。"
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise NotFound(missing)
    case = kernel.load_case(session, actor, handoff.case_id, min_sight=access.Sight.CONTENT, not_found=missing)
    view = views.case_view(session, actor, case, [])
    trail.record(session, actor=actor, action="handoff_sheet.read", object_type="case", object_id=case.id,
                 case_id=case.id, remote_addr=remote_addr)
    return Sheet(handoff=handoff, view=view, from_department=session.get(Department, handoff.from_department_id)
                 if handoff.from_department_id else None,
                 to_department=session.get(Department, handoff.to_department_id),
                 sender=session.get(User, handoff.sender_id) if handoff.sender_id else None)


@dataclass
class MeetingRecord:
    """A meeting as the reader may see it, and what they may do there."""

    meeting: Meeting
    case: Case
    summary: dict[str, Any]
    must_acknowledge: bool
    may_append: bool
    plan: dict[str, Any] | None = None
    member_names: list[str] = field(default_factory=list)
    may_carry: bool = False  # a member may carry a fact over into the consented track (consent given)
    # The secretariat of a 支援会議 may add members (each reads nothing before acknowledging the 守秘義務):
    # the staff it may choose from, by department, without the present members.
    may_add_member: bool = False
    candidates: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    carried: list[dict[str, Any]] = field(default_factory=list)  # facts already carried from this meeting


def read_meeting(session: Session, actor, meeting_id: int, *, remote_addr: str | None = None) -> MeetingRecord:
    """A 支援会議 or 重層的支援会議 as `actor` may see it.

    支援会議 records open only to members who acknowledged the 守秘義務; a member who has not yet is
    asked to first. A 重層的支援会議 (with consent) opens to those who may read the case's content.
    Every read of the records is audited.
    """
    missing = "指定された会議は見つかりません。"
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound(missing)
    member = next((m for m in meeting.members if m.user_id == actor.id), None)
    if member is not None and member.acknowledged_at is None and access.invitation_reaches(session, actor, meeting):
        # Invited but not yet bound by the 守秘義務: the case is not in their sight until they
        # acknowledge, yet they must reach the page that asks them to.
        case = session.get(Case, meeting.case_id)
    else:
        case = kernel.load_case(session, actor, meeting.case_id, not_found=missing)
    summary = views.meeting_summary(session, actor, meeting)
    content = access.case_sight(session, actor, case) >= access.Sight.CONTENT
    if meeting.kind == "layered_meeting" and not content:
        summary = {k: summary[k] for k in ("id", "kind", "held_at", "member_count")} | {"readable": False}
    if meeting.kind == "support_meeting" and member is None and not summary["readable"]:
        # Someone outside the 支援会議 opened its page: it shows that it was held, never its records; the
        # attempt is kept, as every read of those records is.
        trail.record(session, actor=actor, action="meeting.read", object_type="meeting", object_id=meeting.id,
                     case_id=case.id, remote_addr=remote_addr, outcome="refused", detail={"code": "not_a_member"})
    record = MeetingRecord(meeting=meeting, case=case, summary=summary,
                           must_acknowledge=member is not None and member.acknowledged_at is None,
                           may_append=member is not None and member.acknowledged_at is not None)
    if record.must_acknowledge:
        record.member_names = [f"{m.user.display_name}" for m in meeting.members]
    if summary["readable"]:
        plan = session.scalars(select(Plan).where(Plan.meeting_id == meeting.id)).first()
        if plan is not None:
            record.plan = {"number": plan.number, "goals": plan.goals, "status": plan.status,
                           "main_department": views.department_ref(plan.main_department),
                           "next_evaluation_date": plan.next_evaluation_date,
                           "roles": [{"department": views.department_ref(r.department), "role": r.role}
                                     for r in plan.roles]}
        covered = access.meeting_consented_department_ids(session, meeting)
        record.may_add_member = access.SECRETARIAT in access.meeting_relations(actor, meeting) and (
            meeting.kind == "support_meeting" or bool(covered))
        if record.may_add_member:
            # A 重層的支援会議 meets under the consent: only the staff of the agencies it covers are offered
            # (engine.cases.meetings.add_meeting_member refuses the others).
            if meeting.kind == "support_meeting":
                covered = None
            present = {m.user.login for m in meeting.members}
            record.candidates = [(dept, [(login, name) for login, name in people if login not in present])
                                 for dept, dept_id, people in staff_directory(session, with_ids=True)
                                 if covered is None or dept_id in covered]
            record.candidates = [(dept, people) for dept, people in record.candidates if people]
        if meeting.kind == "support_meeting":
            record.may_carry = record.may_append and access.current_given_consent(session, case.id) is not None
            # The reader is an acknowledged member: every fact carried from this meeting reaches them.
            record.carried = [f for f in views.shared_facts_view(session, case, rel=frozenset(),
                                                                 member_meetings={meeting.id})
                              if f["meeting_id"] == meeting.id]
        # Which meeting's records were read, for the 開示請求 trail (the case is on the row too).
        trail.record(session, actor=actor, action="meeting.read", object_type="meeting", object_id=meeting.id,
                     case_id=case.id, remote_addr=remote_addr, detail={"kind": meeting.kind})
    return record


def staff_directory(session: Session, *, with_ids: bool = False) -> list[tuple]:
    """Active staff and FMs by department, for choosing meeting members: [(department, [(login, name)])],
    or with `with_ids` [(department, department id, [(login, name)])]."""
    rows = session.execute(
        select(Department.name, Department.id, User.login, User.display_name)
        .join(User, User.department_id == Department.id)
        .where(User.active.is_(True), User.role.in_(("staff", "fm")))
        .order_by(Department.id, User.display_name)
    ).all()
    out: list[tuple] = []
    for dept, dept_id, login, name in rows:
        if not out or out[-1][1] != dept_id:
            out.append((dept, dept_id, []))
        out[-1][2].append((login, name))
    return out if with_ids else [(dept, people) for dept, _, people in out]
