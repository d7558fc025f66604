"""The baseline of bench/intake.py and bench/import.py: a referral's rows, written with plain Core.

`write_referral_rows` writes the rows `POST /api/v1/referrals` writes for a new referral (the key's answer,
the person and any 名寄せ candidates, the case number, the case, its categories, household, history,
つなぐシート, notice and provision, 多機関協働 alert, the hash-chained audit rows, the departments' relations)
with SQLAlchemy Core: no validation, no state machine, no guards, no ORM, no access checks. What it would
have to decide it takes from a `Plan`, worked out once per routing facts by the engine's own routing
(`plan_for`), so that both sides write the same rows; the benchmarks then compare the row counts.

The route is registered only when TSUNAGU_BENCH_BARE=1 is set; never in production, never in the OpenAPI
document.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from engine import routing
from engine.departments import DESK_CODE, department_by_code
from engine.models import (
    Alert,
    AuditEvent,
    AuditHead,
    Case,
    CaseCategory,
    CaseDepartment,
    CaseHistory,
    CaseNotice,
    CaseNumberCounter,
    Handoff,
    Household,
    HouseholdMember,
    IdempotencyKey,
    Person,
    PersonCandidate,
    Provision,
)
from engine.people.names import fold_for_search, match_key
from engine.rules.ruleset import RoutingFacts

bp = Blueprint("bench_bare", __name__)

JST = timezone(timedelta(hours=9))


@dataclass(frozen=True)
class Plan:
    """What the routing decided for one set of facts, as plain values."""

    desk_id: int
    rule_version: int | None
    rule_name: str | None
    reason: str
    owner_id: int | None
    notify: tuple[tuple[int, str | None], ...]  # (department id, its commission work)
    multi_agency: tuple[str, ...]


_plans: dict[tuple, Plan] = {}


def facts_key(payload: dict) -> tuple:
    person = payload["person"]
    return (tuple(dict.fromkeys(payload["categories"])), person.get("area"), person.get("birth_date"),
            payload.get("urgency") or "normal")


def plan_for(engine: Engine, payload: dict, source: str, now: datetime) -> Plan:
    """The routing of these facts by the rules in force, worked out by the engine once and kept (a session
    is opened only the first time)."""
    key = (*facts_key(payload), source)
    if key not in _plans:
        categories, area, birth_date, urgency = facts_key(payload)
        facts = RoutingFacts(categories=categories, primary_category=categories[0], area=area,
                             birth_date=date.fromisoformat(birth_date) if birth_date else None, source=source,
                             urgency=urgency, on=now.astimezone(JST).date())
        with Session(engine) as session:
            proposal = routing.propose(session, facts)
            _plans[key] = Plan(
                desk_id=department_by_code(session, DESK_CODE).id, rule_version=proposal.rule_version,
                rule_name=proposal.decision.rule_name, reason=proposal.reason,
                owner_id=proposal.owner.id if proposal.sends else None,
                notify=tuple((d.id, d.commission_work) for d in proposal.notify),
                multi_agency=tuple(proposal.decision.multi_agency_sets))
    return _plans[key]


class _Audit:
    """The audit chain as the engine keeps it: read the head once, chain each row, write the head once."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.seq, self.hash = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
        self.rows: list[dict] = []

    def add(self, at: datetime, client_id: int, action: str, object_type: str, object_id, case_id: int,
            detail: dict) -> None:
        self.seq += 1
        row = {"seq": self.seq, "at": at, "actor_label": "system", "client_id": client_id, "action": action,
               "object_type": object_type, "object_id": str(object_id), "case_id": case_id,
               "remote_addr": "127.0.0.1", "outcome": "ok", "detail": detail, "prev_hash": self.hash}
        self.hash = hashlib.sha256(json.dumps(row, default=str, sort_keys=True).encode()).hexdigest()
        self.rows.append({**row, "hash": self.hash})

    def write(self) -> None:
        for row in self.rows:
            self.conn.execute(insert(AuditEvent).values(**row))
        self.conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=self.seq, hash=self.hash))


def write_referral_rows(conn: Connection, *, client_id: int, key: str, payload: dict, plan: Plan, now: datetime,
                        source: str = "api") -> int:
    """Write a new referral's rows in `conn`'s transaction; return the case id."""
    at = now.astimezone(timezone.utc)
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    key_id = conn.execute(insert(IdempotencyKey).values(
        client_id=client_id, key=key, body_hash=hashlib.sha256(body.encode()).hexdigest(), status_code=0,
        response_body={}, created_at=at).returning(IdempotencyKey.id)).scalar_one()
    p = payload["person"]
    birth = date.fromisoformat(p["birth_date"]) if p.get("birth_date") else None
    name_key, kana_key = match_key(p["name"]), match_key(p.get("name_kana"))
    keys = [k for k in (name_key, kana_key) if k]
    earlier = conn.execute(select(Person.id).where(
        Person.birth_date == birth, Person.merged_into_id.is_(None), Person.anonymised_at.is_(None),
        Person.name_key.in_(keys) | Person.kana_key.in_(keys))).scalars().all() if birth and keys else []
    person_id = conn.execute(insert(Person).values(
        name=p["name"], name_kana=p.get("name_kana"), search_key=fold_for_search(p["name"], p.get("name_kana")),
        name_key=name_key, kana_key=kana_key, birth_date=birth, area=p.get("area"), created_at=at,
    ).returning(Person.id)).scalar_one()
    today = now.astimezone(JST).date()
    fiscal_year = today.year if today.month >= 4 else today.year - 1
    bump = (update(CaseNumberCounter).where(CaseNumberCounter.fiscal_year == fiscal_year)
            .values(last_number=CaseNumberCounter.last_number + 1).returning(CaseNumberCounter.last_number))
    number = conn.execute(bump).scalar()
    if number is None:
        conn.execute(insert(CaseNumberCounter).values(fiscal_year=fiscal_year, last_number=0))
        number = conn.execute(bump).scalar_one()
    case_number = f"R{fiscal_year - 2018}-{number:06d}"
    for other in earlier:
        conn.execute(insert(PersonCandidate).values(person_id=person_id, candidate_id=other, reason="name_kana",
                                                    status="open", found_at=at))
    sends = plan.owner_id is not None
    state = "handoff" if sends else "intake"
    case_id = conn.execute(insert(Case).values(
        case_number=case_number, person_id=person_id, person_match="candidate" if earlier else "new",
        summary=payload["summary"], source=source, urgency=payload.get("urgency") or "normal", state=state,
        version=2, consent_to_share=bool(payload.get("consent_to_share")),
        multi_agency_candidate=bool(plan.multi_agency), routing_rule_version=plan.rule_version,
        routing_rule_name=plan.rule_name, routing_reason=plan.reason, proposed_department_id=plan.owner_id,
        referral_client_id=client_id, external_ref=payload["external_ref"], referrer=payload.get("referrer"),
        business_categories=["comprehensive"], opened_at=at, updated_at=at,
    ).returning(Case.id)).scalar_one()
    categories = list(dict.fromkeys(payload["categories"]))
    conn.execute(insert(CaseCategory), [{"case_id": case_id, "code": c, "primary": i == 0, "position": i}
                                        for i, c in enumerate(categories)])
    listed = payload.get("household") or []
    if listed:  # a new person has a household only when the referral lists one
        household_id = conn.execute(insert(Household).values(created_at=at).returning(Household.id)).scalar_one()
        conn.execute(insert(HouseholdMember).values(household_id=household_id, person_id=person_id,
                                                    relationship_label="本人", created_at=at))
    for m in listed:
        conn.execute(insert(HouseholdMember).values(
            household_id=household_id, relationship_label=m.get("relationship"), relative_to_id=person_id,
            name=m.get("name"), birth_year=m.get("birth_year"), note=m.get("note"), recorded_with_case_id=case_id,
            created_at=at))
    audit = _Audit(conn)
    audit.add(at, client_id, "case.open", "case", case_id, case_id, {})
    if plan.multi_agency:
        conn.execute(insert(Alert).values(
            kind="multi_agency_candidate", status="open", open_key=f"multi_agency_candidate:c{case_id}",
            case_id=case_id, message=f"多機関協働の候補です（{'・'.join(plan.multi_agency)}）", raised_at=at))
    history = [{"case_id": case_id, "event": "open", "from_state": None, "to_state": "intake", "at": at,
                "detail": {"source": source}}]
    if sends:
        history.append({"case_id": case_id, "event": "send_handoff", "from_state": "intake", "to_state": state,
                        "at": at, "detail": {}})
    conn.execute(insert(CaseHistory), history)
    relations = [{"case_id": case_id, "department_id": plan.desk_id, "content": True, "state": state}]
    if sends:
        due = now.astimezone(JST).replace(hour=17, minute=15, second=0, microsecond=0) + timedelta(days=2)
        conn.execute(insert(Handoff).values(
            case_id=case_id, primary=True, state="sent", version=1, to_department_id=plan.owner_id,
            reason=plan.reason, summary=payload["summary"], urgency=payload.get("urgency") or "normal", sent_at=at,
            due_at=due.astimezone(timezone.utc),
            escalate_at=(due + timedelta(days=5)).astimezone(timezone.utc)))
        relations.append({"case_id": case_id, "department_id": plan.owner_id, "content": True, "state": state})
        for department_id, work in plan.notify:
            conn.execute(insert(CaseNotice).values(case_id=case_id, department_id=department_id,
                                                   reason=plan.reason, created_at=at, escalate_at=at))
            provision_id = conn.execute(insert(Provision).values(
                case_id=case_id, department_id=department_id, what="notice", basis="commission",
                commission_work=work, given_by_client_id=client_id, given_at=at).returning(Provision.id)).scalar_one()
            audit.add(at, client_id, "provision.notice", "provision", provision_id, case_id,
                      {"to": department_id, "basis": "commission"})
            relations.append({"case_id": case_id, "department_id": department_id, "content": False,
                              "state": state})
        audit.add(at, client_id, "case.send_handoff", "case", case_id, case_id, {"from": "intake", "to": state})
    else:
        conn.execute(insert(Alert).values(kind="unrouted", status="open", open_key=f"unrouted:c{case_id}",
                                          case_id=case_id, department_id=plan.desk_id, message=plan.reason,
                                          raised_at=at))
    conn.execute(update(IdempotencyKey).where(IdempotencyKey.id == key_id).values(
        status_code=201, case_id=case_id,
        response_body={"id": case_id, "external_ref": payload["external_ref"], "case_number": case_number,
                       "status": state, "routing": {"reason": plan.reason, "rule": plan.rule_name},
                       "person_id": person_id, "person_match": "candidate" if earlier else "new"}))
    audit.write()
    conn.execute(insert(CaseDepartment), relations)
    return case_id


@bp.post("/api/bench/bare-referrals")
def bare_referral():
    payload = json.loads(request.get_data())
    client_id = int(request.args["client_id"])
    now = datetime.now(timezone.utc)
    engine = current_app.extensions["tsunagu.engine"]
    plan = plan_for(engine, payload, "api", now)
    with engine.begin() as conn:
        case_id = write_referral_rows(conn, client_id=client_id, key=request.headers["Idempotency-Key"],
                                      payload=payload, plan=plan, now=now)
    return jsonify(id=case_id), 201
