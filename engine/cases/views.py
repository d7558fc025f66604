"""Read models: what a referrer and what a member of staff may see of a case, as plain data.

Both the API and the pages render these, so a field the access policy closes is never in the data a
template or a JSON answer receives.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine import access, calendar, states, vocab
from engine.audit import trail
from engine.calendar import iso
from engine.errors import NotFound
from engine.models import (
    Case,
    Consent,
    ContactNote,
    Department,
    Evaluation,
    Handoff,
    Meeting,
    MeetingCase,
    ParticipationMatch,
    Plan,
    SharedFact,
    User,
    utcnow,
)
from engine.people import households
from engine.sharing import provisions


def department_ref(dept: Department | None) -> dict | None:
    return None if dept is None else {"code": dept.code, "name": dept.name}


def _dept(session: Session, dept_id: int | None) -> Department | None:
    return None if dept_id is None else session.get(Department, dept_id)


def referral_view(session: Session, case: Case) -> dict[str, Any]:
    """The referrer's view: status and owner, never notes, meeting content or other people's data."""
    return {
        "id": case.id,
        "external_ref": case.external_ref,
        "case_number": case.case_number,
        "status": case.state,
        "status_label": states.CASE_STATE_LABELS[case.state],
        "owning_department": department_ref(_dept(session, case.owning_department_id)),
        "created_at": iso(case.opened_at),
        "accepted_at": iso(case.accepted_at),
        "closed_at": iso(case.closed_at),
        "outcome": case.close_reason,
    }


def handoff_metadata(session: Session, h: Handoff) -> dict[str, Any]:
    return {
        "id": h.id,
        "primary": h.primary,
        "state": h.state,
        "state_label": states.HANDOFF_STATE_LABELS[h.state],
        "from_department": department_ref(_dept(session, h.from_department_id)),
        "to_department": department_ref(_dept(session, h.to_department_id)),
        "urgency": h.urgency,
        "sent_at": iso(h.sent_at),
        "due_at": iso(h.due_at),
        "escalate_at": iso(h.escalate_at),
        "accepted_at": iso(h.accepted_at),
        "declined_at": iso(h.declined_at),
        "withdrawn_at": iso(h.withdrawn_at),
    }


def case_view(session: Session, actor, case: Case, allowed_events: list[str], *,
              support_meeting_records: bool = True) -> dict[str, Any]:
    """The staff view of a case, opened as far as the access policy allows `actor`.

    Metadata (state, dates, departments, handoffs, history) for everyone who may know the case exists;
    the rest only as engine.access.POLICY opens it. 支援会議 minutes and notes appear only in the meetings
    the actor is an acknowledged member of, and never with `support_meeting_records=False` (the API: they
    are read on the meeting's page, under the 守秘義務 the member acknowledged there). A view that shows
    content is itself recorded in the audit trail (action `case.read`, with the kinds of record shown and
    the meetings whose records it held), so callers need not record it again.
    """
    rel = access.relations(session, actor, case)
    sight = access.sight_of(rel)
    if sight == access.Sight.NONE:  # callers load the case through services.load_case; this is a backstop
        raise NotFound("指定されたケースは見つかりません。")
    view = referral_view(session, case)
    view.update({
        "version": case.version,
        "allowed_events": allowed_events,
        "access": "content" if sight >= access.Sight.CONTENT else "metadata",
        "urgency": case.urgency,
        "multi_agency_candidate": case.multi_agency_candidate,
        "categories": None,  # case content: the list below, for those who may read it
        "anonymised_at": iso(case.anonymised_at),
        "handoffs": [handoff_metadata(session, h) for h in case.handoffs],
        "history": [
            {"event": r.event, "from_state": r.from_state, "to_state": r.to_state, "at": iso(r.at),
             "actor": r.actor.display_name if r.actor else None, "detail": None}
            for r in case.history
        ],
    })
    if sight < access.Sight.CONTENT:
        if access.FORMER in rel:
            # Took part until its join lapsed with the consent: the notes it wrote itself stay its own.
            view["own_contact_notes"] = contact_notes_view(session, actor, case, rel=rel, member_meetings=())
            if view["own_contact_notes"]:
                trail.record(session, actor=actor, action="case.read", object_type="case", object_id=case.id,
                             case_id=case.id, detail={"parts": ["own_contact_notes"], "meetings": []})
        return view
    view.update(content_view(session, case))
    # The household and its other cases (each as far as this reader may see it).
    today = utcnow().astimezone(calendar.JST).date()
    view["households"] = [dataclasses.asdict(h) for h in households.households_for(
        session, actor, case.person, today=today, exclude_case_id=case.id)]
    view["household"] = [{"relationship": m["relationship"], "name": m["name"], "birth_year": m["birth_year"],
                          "note": m["note"], "person_id": m["person_id"], "since": iso(m["since"]),
                          "until": iso(m["until"])}
                         for h in view["households"] for m in h["members"] if not m["is_self"]]
    for item, h in zip(view["handoffs"], case.handoffs):
        item.update({"reason": h.reason, "summary": h.summary, "decline_reason": h.decline_reason})
    parts = [access.CASE_CONTENT]
    members = access.member_meeting_ids(session, actor, case.id)
    view["consents"] = consents_view(session, case, meeting_member=bool(members) and support_meeting_records)
    parts.append(access.CONSENT)
    for item, r in zip(view["history"], case.history):
        item["detail"] = history_detail(r.detail, r.from_state,
                                        meeting_member=bool(members) and support_meeting_records)
    closing = next((r for r in reversed(case.history) if r.to_state == "closed" and r.from_state != "closed"), None)
    if (view.get("close_note") and closing is not None and closing.from_state in MEETING_STATES
            and not (members and support_meeting_records)):
        view["close_note"] = HISTORY_NOTE_WITHHELD  # typed while in 支援会議: as its records are
    if access.may(session, actor, case, access.PLAN, access.READ, rel=rel):
        view["plan"] = plan_view(session, actor, case, rel=rel)
        view["participation"] = matches_view(session, case)
        parts.append(access.PLAN)
    if access.may(session, actor, case, access.CONTACT_NOTES, access.READ, rel=rel):
        view["contact_notes"] = contact_notes_view(session, actor, case, rel=rel, member_meetings=members)
        parts.append(access.CONTACT_NOTES)
    facts = shared_facts_view(session, case, rel=rel, member_meetings=members)
    if facts or rel & {access.COVERED, access.SYSTEM}:
        view["shared_facts"] = facts
        parts.append(access.SHARED_FACTS)
    view["meetings"] = meetings_of_case(session, actor, case, rel=rel, records=support_meeting_records)
    read_meetings = [m["id"] for m in view["meetings"] if "minutes" in m]
    # 提供記録: who outside the city received the person's data, what and on which basis.
    view["provisions"] = [dataclasses.asdict(p) | {"given_at": iso(p.given_at)}
                          for p in provisions.of_case(session, [case.id])]
    view["may"] = access.permissions(session, actor, case, rel=rel)
    trail.record(session, actor=actor, action="case.read", object_type="case", object_id=case.id,
                 case_id=case.id, detail={"parts": parts, "meetings": read_meetings})
    return view


# What a history row says beyond its event, for those who read the case's content: the reason typed on
# reopening or changing the routing, the closure's reason code, an evaluation's decision code, a note.
HISTORY_TEXTS = ("reason", "override_reason", "close_reason", "decision", "note")
# A note typed while the case was in 支援会議 or 同意確認中 may carry what its 支援会議 shared without
# consent: like the meeting's records, it is read only by the case's 支援会議 members.
MEETING_STATES = access.MEETING_TRACK_STATES
HISTORY_NOTE_WITHHELD = "（支援会議の構成員だけに表示されるメモがあります）"


def history_detail(detail: dict | None, from_state: str | None, *, meeting_member: bool) -> dict[str, str]:
    """The texts of one history row as a content reader may read them."""
    out = {k: str(v) for k, v in (detail or {}).items() if k in HISTORY_TEXTS and v not in (None, "")}
    if "note" in out and from_state in MEETING_STATES and not meeting_member:
        out["note"] = HISTORY_NOTE_WITHHELD
    return out


def content_view(session: Session, case: Case) -> dict[str, Any]:
    """The case's own content (engine.access.CASE_CONTENT): person, summary, categories, routing (the
    household is the reader's: case_view)."""
    p = case.person
    birth_year = p.birth_year if p.birth_year is not None else (p.birth_date.year if p.birth_date else None)
    return {
        "person": {"id": p.id, "name": p.name, "name_kana": p.name_kana, "sex": p.sex, "birth_date": iso(p.birth_date),
                   "birth_year": birth_year,
                   "area": p.area, "resident_id": p.resident_id, "phone": p.phone, "address": p.address},
        "person_id": p.id,
        "person_match": case.person_match,
        "categories": case.category_codes,
        "primary_category": case.primary_category,
        "summary": case.summary,
        "source": case.source,
        "routing": {"rule_version": case.routing_rule_version, "rule": case.routing_rule_name,
                    "reason": case.routing_reason,
                    "proposed_department": department_ref(_dept(session, case.proposed_department_id)),
                    "override_reason": case.override_reason},
        "close_note": case.close_note,
        "support_decision_date": iso(case.support_decision_date),
        "business_categories": case.business_categories,
    }


def consents_view(session: Session, case: Case, *, meeting_member: bool) -> list[dict[str, Any]]:
    """The case's consent records, oldest first (for those who see the case's content).

    The note of a refusal is typed while the case stays in the 支援会議 track (no consent): like that
    track's records it may carry what the 支援会議 shared, and is read whole only by the case's 支援会議
    members. The note of a consent given belongs to the consented track it opens (the covered agencies
    read the record it sits in)."""

    def note(c) -> str | None:
        if c.note and c.status == "refused" and not meeting_member:
            return HISTORY_NOTE_WITHHELD
        return c.note

    return [
        {"id": c.id, "status": c.status, "given_by": c.given_by, "method": c.method,
         "obtained_on": iso(c.obtained_on), "recorded_at": iso(c.recorded_at), "note": note(c),
         "agencies": [department_ref(_dept(session, a.department_id)) for a in c.agencies]}
        for c in session.scalars(select_consents(case.id))
    ]


def select_consents(case_id: int):
    return select(Consent).where(Consent.case_id == case_id).order_by(Consent.id)


def _note(n: ContactNote) -> dict[str, Any]:
    return {"id": n.id, "contact_on": iso(n.contact_on), "method": n.method,
            "method_label": vocab.label("contact_methods", n.method), "staff": n.staff.display_name,
            "department": department_ref(n.department), "business_category": n.business_category,
            "body": n.body, "meeting_id": n.meeting_id,
            "track": "support_meeting" if n.meeting_id is not None else "consented"}


def contact_notes_view(session: Session, actor, case: Case, *, rel=None, member_meetings=None) -> list[dict]:
    """The ordinary (consented-track) contact notes `actor` may read, newest first.

    Notes recorded in a 支援会議 are never here: they are in that meeting's view, for its members only.
    """
    rel = access.relations(session, actor, case) if rel is None else rel
    member_meetings = () if member_meetings is None else member_meetings
    return [
        _note(n) for n in session.scalars(
            select(ContactNote).where(ContactNote.case_id == case.id, ContactNote.meeting_id.is_(None))
            .order_by(ContactNote.contact_on.desc(), ContactNote.id.desc()))
        if access.contact_note_visible(actor, n, rel, member_meetings)
    ]


def shared_facts_view(session: Session, case: Case, *, rel, member_meetings) -> list[dict[str, Any]]:
    """The facts carried over from a 支援会議 that reach this reader (covered agencies, the meeting's members)."""
    out = []
    for f in session.scalars(select(SharedFact).where(SharedFact.case_id == case.id).order_by(SharedFact.id)):
        if access.shared_fact_visible(f, rel, member_meetings):
            carrier = session.get(User, f.carried_by_id)
            out.append({"id": f.id, "text": f.text, "meeting_id": f.meeting_id, "consent_id": f.consent_id,
                        "carried_by": carrier.display_name if carrier else None,
                        "carried_at": iso(f.carried_at)})
    return out


def plan_view(session: Session, actor, case: Case, rel=None) -> dict[str, Any] | None:
    """The plan in force, or (after closure or withdrawal) the last one that ended; None if there was none.
    For the owner, the case FM and the agencies the current consent covers."""
    if not access.may(session, actor, case, access.PLAN, access.READ, rel=rel):
        return None
    plan = session.scalars(select(Plan).where(Plan.case_id == case.id, Plan.status == "active")).first()
    if plan is None:
        plan = session.scalars(select(Plan).where(Plan.case_id == case.id, Plan.status == "ended")
                               .order_by(Plan.number.desc())).first()
    if plan is None:
        return None
    return {
        "id": plan.id, "number": plan.number, "status": plan.status, "goals": plan.goals,
        "main_department": department_ref(plan.main_department),
        "next_evaluation_date": iso(plan.next_evaluation_date),
        "decided_on": iso(plan.decided_on or plan.created_at.astimezone(calendar.JST).date()),
        "roles": [{"department": department_ref(r.department), "role": r.role} for r in plan.roles],
        "business_categories": plan.business_categories, "created_at": iso(plan.created_at),
        "evaluations": [
            {"evaluated_on": iso(e.evaluated_on), "goals_met": e.goals_met, "changes": e.changes,
             "decision": e.decision}
            for e in session.scalars(select(Evaluation).where(Evaluation.plan_id == plan.id).order_by(Evaluation.id))
        ],
    }


def meetings_of_case(session: Session, actor, case: Case, *, rel, records: bool) -> list[dict[str, Any]]:
    """The meetings that discussed the case, oldest first: those held on it, and those held on another case
    that took it up too (engine.cases.discussed), each shown to a reader who may know of the case it was held
    on (its members may), with its records as meeting_summary opens them. `rel`: the reader's relations to
    `case` (a meeting held on another case is judged by the reader's relations to that one)."""
    discussed_here = select(MeetingCase.meeting_id).where(MeetingCase.case_id == case.id)
    out = []
    held = select(Meeting).where(or_(Meeting.case_id == case.id, Meeting.id.in_(discussed_here)))
    for m in session.scalars(held.order_by(Meeting.held_at, Meeting.id)):
        own = m.case_id == case.id
        if not own and access.case_sight(session, actor, session.get(Case, m.case_id)) < access.Sight.METADATA:
            continue
        out.append(meeting_summary(session, actor, m, rel=rel if own else None,
                                   records=records or m.kind != "support_meeting"))
    return out


def meeting_readable(session: Session, actor, meeting: Meeting, rel=None) -> bool:
    """支援会議: its acknowledged members only. 重層的支援会議: as engine.access.POLICY says. `rel`: the reader's
    relations to the case the meeting was held on, if known."""
    kind = access.SUPPORT_MEETING if meeting.kind == "support_meeting" else access.LAYERED_MEETING
    case = session.get(Case, meeting.case_id)
    return access.may(session, actor, case, kind, access.READ, meeting=meeting, rel=rel)


def discussed_cases(session: Session, actor, meeting: Meeting) -> list[dict[str, Any]]:
    """The other cases the meeting discussed that `actor` may know of: their ids and numbers only."""
    out = []
    others = (select(Case).join(MeetingCase, MeetingCase.case_id == Case.id)
              .where(MeetingCase.meeting_id == meeting.id, Case.id != meeting.case_id).order_by(Case.id))
    for other in session.scalars(others):
        if access.case_sight(session, actor, other) >= access.Sight.METADATA:
            out.append({"id": other.id, "case_number": other.case_number})
    return out


def meeting_summary(session: Session, actor, meeting: Meeting, rel=None, records: bool = True) -> dict[str, Any]:
    """A meeting as `actor` may see it: that it was held, on which case and which others it took up (as far
    as the reader may know of them), and its records only for those who may read them (and only with
    `records`). `rel`: the reader's relations to the case it was held on, if known."""
    readable = meeting_readable(session, actor, meeting, rel=rel)
    mine = access.meeting_relations(actor, meeting)
    held_on = session.get(Case, meeting.case_id)
    out = {"id": meeting.id, "kind": meeting.kind, "held_at": iso(meeting.held_at),
           "member_count": len(meeting.members), "readable": readable,
           "acknowledgement_needed": access.PENDING in mine,
           "case_id": held_on.id, "case_number": held_on.case_number,
           "discussed_cases": discussed_cases(session, actor, meeting)}
    if readable and meeting.kind == "layered_meeting":
        # Its own record: the agencies that attended and the plan it decided (as far as the reader sees it).
        out["attendees"] = [department_ref(a.department) for a in meeting.attendees]
        out["plan_number"] = session.scalar(select(Plan.number).where(Plan.meeting_id == meeting.id))
    if readable and records:
        out.update({
            "minutes": meeting.minutes, "decisions": meeting.decisions,
            "members": [{"name": m.user.display_name, "department": department_ref(_dept(session, m.department_id)),
                         "acknowledged_at": iso(m.acknowledged_at), "secretariat": m.secretariat}
                        for m in meeting.members],
            "contact_notes": [_note(n) for n in session.scalars(
                select(ContactNote).where(ContactNote.meeting_id == meeting.id)
                .order_by(ContactNote.contact_on.desc(), ContactNote.id.desc()))],
        })
    return out


def case_list_item(session: Session, actor, case: Case, sight: access.Sight | None = None) -> dict[str, Any]:
    """One row of a case list: metadata, and the person's name only for those who see the content."""
    sight = access.case_sight(session, actor, case) if sight is None else sight
    item = {"id": case.id, "case_number": case.case_number, "status": case.state,
            "status_label": states.CASE_STATE_LABELS[case.state], "urgency": case.urgency,
            "owning_department": department_ref(_dept(session, case.owning_department_id)),
            "opened_at": iso(case.opened_at), "updated_at": iso(case.updated_at)}
    if sight >= access.Sight.CONTENT:
        item["person_name"] = case.person.name
    return item


def event_receipt(session: Session, actor, case: Case, allowed_events: list[str], *,
                  support_meeting_records: bool = True, may_read: bool = True) -> dict[str, Any]:
    """What the actor of an event sees of the case afterwards.

    Usually the full staff view (`support_meeting_records` as for case_view); but an event can end the actor's sight (a department that declines a
    つなぐシート is no longer involved), and then the answer is a receipt: the new status and version, no
    handoffs, no history, nothing else of the case. The same receipt answers a caller that may fire events
    but not read cases (`may_read=False`: an API token with cases:write and no cases:read).
    """
    if may_read and access.case_sight(session, actor, case) >= access.Sight.METADATA:
        return case_view(session, actor, case, allowed_events, support_meeting_records=support_meeting_records)
    receipt = referral_view(session, case)
    receipt.update({"version": case.version, "allowed_events": [], "access": "none", "urgency": case.urgency,
                    "multi_agency_candidate": case.multi_agency_candidate, "categories": None, "handoffs": [],
                    "history": []})
    return receipt


def matches_view(session: Session, case: Case) -> list[dict[str, Any]]:
    """The case's matches, newest first (for callers that checked PLAN read)."""
    hosts = vocab.codes("participation_hosts")
    rows = session.scalars(select(ParticipationMatch).where(ParticipationMatch.case_id == case.id)
                           .order_by(ParticipationMatch.started_on.desc(), ParticipationMatch.id.desc()))
    return [{"id": m.id, "host": m.host, "host_name": hosts.get(m.host, m.host_name), "activity": m.activity,
             "started_on": m.started_on.isoformat(), "ended_on": m.ended_on.isoformat() if m.ended_on else None}
            for m in rows]
