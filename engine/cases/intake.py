"""相談受付: opening a case from a consultation at any window or a referral, and routing it.

A consultation is checked against the code lists, numbered, recorded with its person, household and
categories, and routed by the rules in force (engine.routing): the つなぐシート goes to the proposed
department, or the case waits at the desk with an `unrouted` alert saying why. A 多機関協働 combination
flags the case and alerts the FM.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from engine import calendar, routing, vocab
from engine.access.actors import SYSTEM_ACTOR
from engine.alerts import alerts
from engine.audit import trail
from engine.cases.checks import (
    RECORDED_LATE_DAYS,
    REQUIRED,
    UNKNOWN_SEX,
    as_date,
    birth_date_problem,
    blank,
    choice,
    known_departments,
)
from engine.cases.events.firing import fire_event
from engine.cases.kernel import next_case_number, record_history
from engine.departments import desk_id
from engine.errors import PermissionDenied, ValidationFailed
from engine.models import Case, CaseCategory, Consent, ConsentAgency, User, utcnow
from engine.people import households, records
from engine.sharing import bases


def require_staff(actor) -> None:
    """Refuse (PermissionDenied) anyone but active staff and FMs: the administrator takes no consultations."""
    if actor is None or not actor.active or actor.role == "admin":
        raise PermissionDenied("相談を受け付けられるのは職員だけです。")


def validate_intake(fields: dict, today: date) -> dict[str, list[str]]:
    """Check an intake's plain values against the code lists; return errors by field name."""
    errors: dict[str, list[str]] = {}
    person = fields.get("person") or {}
    if not (person.get("name") or "").strip():
        errors["person.name"] = [REQUIRED]
    if person.get("area") not in (None, "") and person["area"] not in vocab.codes("areas"):
        errors["person.area"] = [f"「{person['area']}」という圏域はありません。"]
    if person.get("sex") not in (None, "") and person["sex"] not in vocab.codes("sexes"):
        errors["person.sex"] = [UNKNOWN_SEX.format(value=person["sex"])]
    bd = person.get("birth_date")
    if bd not in (None, ""):
        if not isinstance(bd, date):
            try:
                bd = date.fromisoformat(str(bd))
                person["birth_date"] = bd
            except ValueError:
                errors["person.birth_date"] = ["生年月日は YYYY-MM-DD の形で入力してください。"]
                bd = None
        problem = birth_date_problem(bd, today) if bd is not None else None
        if problem:
            errors["person.birth_date"] = [problem]
    cats = fields.get("categories") or []
    if not cats:
        errors["categories"] = ["課題の分類を1つ以上選んでください。"]
    unknown = [c for c in cats if c not in vocab.codes("issue_categories")]
    if unknown:
        errors["categories"] = [f"「{c}」という分類はありません。" for c in unknown]
    primary = fields.get("primary_category")
    if primary and primary not in cats:
        errors["primary_category"] = ["主な分類は選んだ分類の中から選んでください。"]
    if not (fields.get("summary") or "").strip():
        errors["summary"] = [REQUIRED]
    choice(errors, fields, "source", "sources")
    choice(errors, fields, "urgency", "urgencies")
    for i, m in enumerate(fields.get("household") or []):
        # A member with a 宛名番号 has a record of their own, which needs a name.
        if (m.get("resident_id") or "").strip() and not (m.get("name") or "").strip():
            errors[f"household.{i}.name"] = ["宛名番号のある世帯員は、氏名も入力してください。"]
    return errors


def open_case(session: Session, actor: User, fields: dict[str, Any], *, now: datetime | None = None,
              client=None, remote_addr: str | None = None, route: bool = True) -> Case:
    """Record a consultation (相談受付) at any window; route it by the rules in force.

    `fields`: person {name, name_kana, sex, birth_date, area, resident_id, phone, address}, household
    [{relationship, name, birth_year, note, resident_id}] (joined to the person's household,
    engine.people.households), categories [codes], primary_category, summary, source,
    urgency, consent {given_by, method, obtained_on, agencies: [codes]} (the person's consent to share with
    those agencies, recorded as record_consent records one, before the case is routed), the deprecated
    consent_to_share (it names no agency and opens nothing outside the city), and for referrals
    referrer {…} and external_ref.
    """
    now = now or utcnow()
    fields = dict(fields)
    fields.setdefault("urgency", "normal")
    fields.setdefault("source", "window")
    if client is None:
        require_staff(actor)
    errors = validate_intake(fields, now.astimezone(calendar.JST).date())
    consent = _checked_consent(session, errors, fields.get("consent"), now)
    if errors:
        raise ValidationFailed(errors)
    # One record per person (名寄せ): the same 宛名番号 files the consultation under the known person; a
    # possible match is left as a candidate for staff.
    person, person_match = records.person_for_intake(session, fields["person"], now=now)
    cats = list(dict.fromkeys(fields["categories"]))
    primary = fields.get("primary_category") or cats[0]
    case = Case(
        case_number=next_case_number(session, now), person=person, summary=fields["summary"].strip(),
        source=fields["source"], urgency=fields["urgency"], state="intake",
        consent_to_share=bool(fields.get("consent_to_share")) or consent is not None, opened_at=now, updated_at=now,
        created_by_id=getattr(actor, "id", None),
        created_department_id=getattr(actor, "department_id", None),
        referral_client_id=getattr(client, "id", None), external_ref=fields.get("external_ref"),
        referrer=fields.get("referrer"), business_categories=["comprehensive"],
        categories=[CaseCategory(code=c, primary=(c == primary), position=i) for i, c in enumerate(cats)],
        person_match=person_match,
        # A new case has no sheet yet: known here, so that routing it does not ask the database.
        handoffs=[],
    )
    session.add(case)
    session.flush()
    households.record_listed(session, person, list(fields.get("household") or []), case=case, now=now,
                             today=now.astimezone(calendar.JST).date())
    record_history(session, case, actor, "open", now, {"source": case.source, "person_match": person_match},
                   to_state="intake")
    trail.record(session, actor=actor, client=client, action="case.open", object_type="case",
                 object_id=case.id, case_id=case.id, remote_addr=remote_addr, at=now)
    if consent is not None:
        _record_consent(session, actor, case, consent, now=now, client=client, remote_addr=remote_addr)
    if route:
        route_new_case(session, case, actor, now=now, client=client)
    session.flush()
    return case


CONSENT_METHODS_MESSAGE = "同意の方法は written（書面）か oral（口頭）で指定してください。"


def _checked_consent(session: Session, errors: dict, given, now: datetime) -> dict | None:
    """A consent given with a consultation, checked (errors by field under `consent.`); None when none is."""
    if given in (None, {}):
        return None
    if not isinstance(given, dict):
        errors["consent"] = ["同意は {given_by, method, obtained_on, agencies} で指定してください。"]
        return None
    consent = dict(given)
    found: dict[str, list[str]] = {}
    if blank(consent.get("given_by")):
        found["given_by"] = [REQUIRED]
    choice(found, consent, "method", "consent_methods")
    today = now.astimezone(calendar.JST).date()
    as_date(found, consent, "obtained_on", not_after=today)
    if "obtained_on" not in found and isinstance(consent.get("obtained_on"), date) \
            and consent["obtained_on"] < today - timedelta(days=RECORDED_LATE_DAYS):
        found["obtained_on"] = [f"同意日は受付日の{RECORDED_LATE_DAYS}日前以降の日付にしてください。"]
    agencies = consent.get("agencies")
    if not agencies:
        found["agencies"] = ["情報を共有してよい機関を1つ以上指定してください。"]
    else:
        consent["agencies"] = known_departments(session, found, "agencies", agencies)
    for name, messages in found.items():
        errors[f"consent.{name}"] = messages
    return None if found else consent


def _record_consent(session: Session, actor, case: Case, consent: dict, *, now: datetime, client=None,
                    remote_addr: str | None = None) -> Consent:
    """Record the consent given with the consultation, as record_consent records one (the case stays in 受付)."""
    row = Consent(case_id=case.id, status="given", given_by=consent["given_by"].strip(), method=consent["method"],
                  obtained_on=consent.get("obtained_on") or now.astimezone(calendar.JST).date(),
                  note=consent.get("note"), recorded_by_id=getattr(actor, "id", None),
                  recorded_by_client_id=getattr(client, "id", None), recorded_at=now,
                  agencies=[ConsentAgency(department_id=d.id) for d in consent["agencies"]])
    session.add(row)
    session.flush()
    record_history(session, case, actor, "consent.record", now, {"agencies": [d.code for d in consent["agencies"]]},
                   from_state="intake", to_state="intake")
    trail.record(session, actor=actor, client=client, action="consent.record", object_type="consent",
                 object_id=row.id, case_id=case.id, remote_addr=remote_addr, at=now,
                 detail={"agencies": [d.code for d in consent["agencies"]]})
    return row


def alert_multi_agency(session: Session, case: Case, proposal: routing.Proposal, now: datetime) -> None:
    """A 多機関協働 combination (8050, ダブルケア …) alerts the FM (the case row keeps the flag)."""
    if proposal.decision.multi_agency_candidate:
        # The case row exists; its pending changes go with the next flush.
        with session.no_autoflush:
            alerts.raise_alert(session, kind="multi_agency_candidate", case_id=case.id, now=now,
                                message="多機関協働の候補です（" + "・".join(proposal.decision.multi_agency_sets) + "）")


def record_proposal(session: Session, case: Case, proposal: routing.Proposal, now: datetime, *,
                    alert: bool = True) -> None:
    """Keep what the rules proposed on the case (a case sent elsewhere, or resolved at the window, keeps it
    beside what was done)."""
    for key, value in proposal.case_values().items():
        setattr(case, key, value)
    if proposal.decision.multi_agency_candidate:
        case.multi_agency_candidate = True
        if alert:
            alert_multi_agency(session, case, proposal, now)


def route_new_case(session: Session, case: Case, actor, *, now: datetime, client=None) -> routing.Proposal:
    """Run the rules in force on a newly opened case.

    A match sends the つなぐシート to the owning department (state `handoff`), telling the departments the rule
    names; no match — or a match whose department takes no つなぐシート — leaves the case in `intake` with an
    `unrouted` alert to the desk: recording the consultation never fails because of the rules. The decision
    records the rules version and the rule.
    """
    proposal = routing.propose(session, routing.facts_of(case, now.astimezone(calendar.JST).date()))
    values = proposal.case_values()
    if proposal.decision.multi_agency_candidate:
        values["multi_agency_candidate"] = True
        alert_multi_agency(session, case, proposal, now)
    if not proposal.sends:
        for key, value in values.items():
            setattr(case, key, value)
        alerts.raise_alert(session, kind="unrouted", case_id=case.id, department_id=desk_id(session),
                            message=proposal.reason, now=now)
        return proposal
    if bases.standing_basis(session, case, proposal.owner) is None:
        # A body outside the city with no basis for receiving the person's data: nothing is sent; the desk
        # holds the case in 受付 until a consent is recorded or an FM or the desk chooses a basis.
        values["routing_reason"] = (f"{proposal.reason}（ただし{proposal.owner.name}は市の外の機関で、情報提供の根拠が"
                                    "ないため、送付していません。）")
        for key, value in values.items():
            setattr(case, key, value)
        alerts.raise_alert(session, kind="basis_needed", case_id=case.id, department_id=desk_id(session), now=now,
                            message=f"ルールは{proposal.owner.name}を提案していますが、市の外の機関に送る情報提供の根拠が"
                                    f"ありません（{bases.missing(session, case, proposal.owner)}）。本人の同意を"
                                    "記録するか、FM・サポートデスクが法令・緊急の根拠を選んで送ってください。")
        return proposal
    sender = actor if actor is not None and actor.role != "admin" else SYSTEM_ACTOR
    # The decision reaches the case row in the same UPDATE as the state change.
    fire_event(session, sender, case.id, "send_handoff", version=case.version, now=now, client=client,
               fields={"to_department": proposal.owner.code, "reason": proposal.reason, "summary": case.summary,
                       "notify": [d.code for d in proposal.notify], "notify_reason": proposal.reason},
               case_values=values)
    return proposal
