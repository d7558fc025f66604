"""Read models: what a referrer and what a member of staff may see of a case, as plain data.

Both the API and the pages render these, so a field the access policy closes is never in the data a
template or a JSON answer receives.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, states, vocab
from engine.models import Case, ContactNote, Department, Evaluation, Handoff, Meeting, Plan


def iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


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


def case_view(session: Session, actor, case: Case, allowed_events: list[str]) -> dict[str, Any]:
    """The staff view of a case, opened as far as the access policy allows `actor`."""
    sight = access.case_sight(session, actor, case)
    view = referral_view(session, case)
    view.update({
        "version": case.version,
        "allowed_events": allowed_events,
        "access": "content" if sight >= access.Sight.CONTENT else "metadata",
        "urgency": case.urgency,
        "multi_agency_candidate": case.multi_agency_candidate,
        "handoffs": [handoff_metadata(session, h) for h in case.handoffs],
        "history": [
            {"event": r.event, "from_state": r.from_state, "to_state": r.to_state, "at": iso(r.at),
             "actor": r.actor.display_name if r.actor else None}
            for r in case.history
        ],
    })
    if sight < access.Sight.CONTENT:
        return view
    p = case.person
    view.update({
        "person": {"name": p.name, "name_kana": p.name_kana, "sex": p.sex, "birth_date": iso(p.birth_date),
                   "area": p.area, "resident_id": p.resident_id, "phone": p.phone, "address": p.address},
        "household": [{"relationship": m.relationship_label, "name": m.name, "birth_year": m.birth_year,
                       "note": m.note} for m in case.household],
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
    })
    for item, h in zip(view["handoffs"], case.handoffs):
        item.update({"reason": h.reason, "summary": h.summary, "decline_reason": h.decline_reason})
    view["consents"] = [
        {"id": c.id, "status": c.status, "given_by": c.given_by, "method": c.method,
         "obtained_on": iso(c.obtained_on),
         "agencies": [department_ref(_dept(session, a.department_id)) for a in c.agencies]}
        for c in session.scalars(select_consents(case.id))
    ]
    view["plan"] = plan_view(session, actor, case)
    view["contact_notes"] = [
        {"id": n.id, "contact_on": iso(n.contact_on), "method": n.method,
         "method_label": vocab.label("contact_methods", n.method), "staff": n.staff.display_name,
         "department": department_ref(n.department), "business_category": n.business_category, "body": n.body}
        for n in session.scalars(
            select(ContactNote).where(ContactNote.case_id == case.id).order_by(ContactNote.contact_on.desc(),
                                                                               ContactNote.id.desc()))
    ]
    view["meetings"] = [meeting_summary(session, actor, m) for m in session.scalars(
        select(Meeting).where(Meeting.case_id == case.id).order_by(Meeting.held_at))]
    return view


def select_consents(case_id: int):
    from engine.models import Consent

    return select(Consent).where(Consent.case_id == case_id).order_by(Consent.id)


def plan_view(session: Session, actor, case: Case) -> dict[str, Any] | None:
    """The active plan, for those who work on the case or whose agency the consent covers."""
    plan = session.scalars(select(Plan).where(Plan.case_id == case.id, Plan.status == "active")).first()
    if plan is None:
        return None
    return {
        "id": plan.id, "number": plan.number, "goals": plan.goals,
        "main_department": department_ref(plan.main_department),
        "next_evaluation_date": iso(plan.next_evaluation_date),
        "roles": [{"department": department_ref(r.department), "role": r.role} for r in plan.roles],
        "business_categories": plan.business_categories, "created_at": iso(plan.created_at),
        "evaluations": [
            {"evaluated_on": iso(e.evaluated_on), "goals_met": e.goals_met, "changes": e.changes,
             "decision": e.decision}
            for e in session.scalars(select(Evaluation).where(Evaluation.plan_id == plan.id).order_by(Evaluation.id))
        ],
    }


def meeting_summary(session: Session, actor, meeting: Meeting) -> dict[str, Any]:
    """A meeting as `actor` may see it: 支援会議 minutes only for members who acknowledged 守秘義務."""
    member = next((m for m in meeting.members if m.user_id == actor.id), None)
    readable = meeting.kind != "support_meeting" or (member is not None and member.acknowledged_at is not None)
    out = {"id": meeting.id, "kind": meeting.kind, "held_at": iso(meeting.held_at),
           "member_count": len(meeting.members), "readable": readable}
    if readable:
        out.update({
            "minutes": meeting.minutes, "decisions": meeting.decisions,
            "members": [{"name": m.user.display_name, "department": department_ref(_dept(session, m.department_id)),
                         "acknowledged_at": iso(m.acknowledged_at), "secretariat": m.secretariat}
                        for m in meeting.members],
        })
    return out
