"""相談受付 at a window: check a consultation, show the routing proposal, then open the case.

Staff see what the rules in force propose — the department and the reason — before anything is sent.
They then either follow it, send the case to another department with a reason (an override, kept on
the case beside what the rules proposed), or resolve the consultation at the window (相談終了).
"""
from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import calendar, routing
from engine.access.relations import Sight
from engine.access.visibility import visible_cases_filter
from engine.audit import trail
from engine.cases import submissions
from engine.cases.checks import REQUIRED
from engine.cases.events.firing import fire_event
from engine.cases.intake import open_case, record_proposal, require_staff, validate_intake
from engine.departments import department_by_code
from engine.errors import Conflict, ValidationFailed
from engine.models import Case, Person, utcnow
from engine.people import matching
from engine.rules.ruleset import RoutingFacts
from engine.sharing import bases
from engine.states import CASE_STATE_LABELS

MODES = ("route", "override", "resolve")


class RulesChanged(Conflict):
    """The rules in force changed between the preview and the confirmation."""

    code = "rules_changed"
    title = "振り分けルールが更新されました"

    def __init__(self, shown: int | None, current: int | None):
        super().__init__("確認画面を表示した後に振り分けルールが更新されました。新しい提案を確認してください。",
                         shown_rule_version=shown, current_rule_version=current)


def _checked_facts(fields: dict[str, Any], today: date) -> RoutingFacts:
    checked = copy.deepcopy(fields)
    checked.setdefault("urgency", "normal")
    checked.setdefault("source", "window")
    errors = validate_intake(checked, today)
    if errors:
        raise ValidationFailed(errors)
    person = checked.get("person") or {}
    cats = list(dict.fromkeys(checked["categories"]))
    return RoutingFacts(
        categories=tuple(cats), primary_category=checked.get("primary_category") or cats[0],
        area=person.get("area") or None, birth_date=person.get("birth_date") or None,
        source=checked["source"], urgency=checked["urgency"], on=today,
    )


def preview(session: Session, actor, fields: dict[str, Any], *, now: datetime | None = None) -> routing.Proposal:
    """Check a consultation's fields and return what the rules in force propose; writes nothing."""
    now = now or utcnow()
    require_staff(actor)
    return routing.propose(session, _checked_facts(fields, now.astimezone(calendar.JST).date()))


def unshared(session: Session, fields: dict[str, Any], proposal: routing.Proposal) -> str | None:
    """What following the proposal would not send, and why, in Japanese (None when everything goes): a body
    outside the city that neither its commission nor the consent taken with the consultation covers gets no
    sheet (the desk holds the case), and a notified one is told without the reason."""
    person = fields.get("person") or {}
    categories, area = fields.get("categories") or [], person.get("area") or None
    named = set((fields.get("consent") or {}).get("agencies") or [])

    def covered(dept) -> bool:
        return (not dept.outside_city or dept.code in named
                or bases.commission_covers_facts(dept, categories, area))

    said = []
    if proposal.sends and not covered(proposal.owner):
        said.append(f"提案の送付先の{proposal.owner.name}は市の外の機関で、この相談は委託の範囲外か、本人の同意が"
                    "ありません。このまま受け付けると、つなぐシートは送らず、サポートデスクがケースを預かります"
                    "（同意を記録するか、FM・サポートデスクが法令・緊急の根拠を選んで送ります）。")
    told = [d.name for d in proposal.notify if not covered(d)]
    if told:
        said.append("通知先の" + "、".join(told) + "には、情報提供の根拠がないため、相談の内容を伏せて通知します。")
    return "".join(said) or None


def earlier_cases(session: Session, actor, person: dict[str, Any], *, limit: int = 5) -> list[dict[str, Any]]:
    """Cases of what may be the same person, among those whose content `actor` reads: the person with the
    same 宛名番号, or the candidates (the same birth date with the same name or kana, engine.people.matching).
    Open ones first. Shown at intake so that a window can carry on
    a case in progress instead of opening a second one; each case shown is audited (`case.found`)."""
    require_staff(actor)
    birth = person.get("birth_date")
    found = matching.find(session, name=person.get("name"), kana=person.get("name_kana"),
                          birth_date=birth if isinstance(birth, date) else None,
                          resident_id=(person.get("resident_id") or "").strip() or None)
    people = [found.person.id] if found.person is not None else [p.id for p, _ in found.candidates]
    if not people:
        return []
    rows = session.execute(
        select(Case.id, Case.case_number, Case.state, Case.opened_at, Person.name)
        .join(Person, Person.id == Case.person_id)
        .where(Case.person_id.in_(people), visible_cases_filter(session, actor, Sight.CONTENT))
        .order_by((Case.state == "closed").asc(), Case.updated_at.desc(), Case.id.desc()).limit(limit)).all()
    trail.record_case_reads(session, actor=actor, action="case.found", case_ids=[r.id for r in rows],
                            detail={"where": "intake"})
    return [{"id": r.id, "case_number": r.case_number, "status": r.state,
             "status_label": CASE_STATE_LABELS[r.state], "opened_at": r.opened_at, "person_name": r.name}
            for r in rows]


def confirm(session: Session, actor, fields: dict[str, Any], *, mode: str, rule_version: int | None,
            submission_token: str | None, to_department: str | None = None, override_reason: str | None = None,
            note: str | None = None, now: datetime | None = None, remote_addr: str | None = None) -> Case:
    """Open the consultation as staff chose on the preview, once per form.

    - `route`: follow the rules in force (refused with RulesChanged if they changed since the preview);
    - `override`: send the つなぐシート to `to_department` instead, with `override_reason` (kept on the
      case with what the rules proposed);
    - `resolve`: resolved at the window: the case is opened and closed as 相談終了 with `note` (required: what
      was done).
    """
    now = now or utcnow()
    require_staff(actor)
    errors: dict[str, list[str]] = {}
    if mode not in MODES:
        raise ValidationFailed({"mode": ["送付の方法を選んでください。"]})
    facts = _checked_facts(fields, now.astimezone(calendar.JST).date())
    target = None
    if mode == "override":
        target = department_by_code(session, to_department)
        if not to_department:
            errors["to_department"] = [REQUIRED]
        elif target is None or not target.active:
            errors["to_department"] = [f"「{to_department}」という部署はありません。"]
        if not (override_reason or "").strip():
            errors["override_reason"] = ["提案と違う部署に送る理由を入力してください。"]
    if mode == "resolve" and not (note or "").strip():
        # 相談終了 is the whole record of a consultation answered at the window: what was done is that record.
        errors["note"] = ["窓口で行った対応の内容を入力してください。"]
    if errors:
        raise ValidationFailed(errors)
    proposal = routing.propose(session, facts)
    if mode == "route" and proposal.rule_version != rule_version:
        raise RulesChanged(rule_version, proposal.rule_version)
    if mode == "override" and proposal.owner is not None and target.id == proposal.owner.id:
        raise ValidationFailed({"to_department": [
            f"提案と同じ部署です。「提案どおりにする」の「{target.name}へ送る」を押してください。"]})
    claim = submissions.claim(session, actor, submission_token, "intake", now=now)

    case = open_case(session, actor, copy.deepcopy(fields), now=now, remote_addr=remote_addr,
                              route=(mode == "route"))
    if mode == "override":
        record_proposal(session, case, proposal, now, alert=True)
        session.flush()
        # send_handoff keeps the reason beside the proposal and audits the override (engine.cases.redirect).
        fire_event(session, actor, case.id, "send_handoff", version=case.version, now=now,
                            remote_addr=remote_addr,
                            fields={"to_department": target.code, "reason": override_reason.strip(),
                                    "summary": case.summary, "override_reason": override_reason.strip(),
                                    # The departments the rules would have told are told all the same.
                                    "notify": [d.code for d in proposal.notify],
                                    "notify_reason": proposal.decision.reason})
    elif mode == "resolve":
        record_proposal(session, case, proposal, now, alert=False)
        session.flush()
        fire_event(session, actor, case.id, "close", version=case.version, now=now,
                            remote_addr=remote_addr,
                            fields={"close_reason": "consultation_ended", "note": (note or "").strip() or None})
    submissions.settle(session, claim, case.id)
    session.flush()
    return case
