"""Referrals (紹介) from other systems: intake under an Idempotency-Key, and the referrer's read-back.

POST /referrals must create one case however often, and however concurrently, a client sends it. The
key row is inserted before the case, in the same transaction: a second request with the same key waits
on the unique (client, key) index (PostgreSQL) or the write lock (SQLite), then finds the first answer
and replays it. The unique (client, external_ref) on cases does the same for one referral sent under
two keys.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import routing
from engine.audit import trail
from engine.calendar import JST
from engine.cases import intake
from engine.cases.views import department_ref, referral_view
from engine.errors import Conflict, NotFound
from engine.models import ApiClient, Case, IdempotencyKey, utcnow
from engine.rules.ruleset import RoutingFacts


class IdempotencyKeyReused(Conflict):
    """The key was used before with a different body."""

    code = "idempotency_key_reused"
    title = "Idempotency-Key が別の内容で使われています"


class DuplicateReferral(Conflict):
    """The client already sent a referral with this external_ref (under another key)."""

    code = "duplicate_referral"
    title = "同じ紹介が既に登録されています"


@dataclass
class ReferralAnswer:
    """What POST /referrals answers: status, body, and whether it is a replay of the first answer."""

    status: int
    body: dict[str, Any]
    replayed: bool
    case_id: int


def body_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of the body in a canonical form (key order and spacing do not matter)."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def intake_fields(payload: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Map a referral onto engine.cases.intake.open_case's fields (source: the client's, or `api`)."""
    person = dict(payload["person"])
    return {
        "person": {k: person.get(k) for k in ("name", "name_kana", "sex", "birth_date", "area", "resident_id",
                                               "phone", "address")},
        "household": [
            {"relationship": m.get("relationship"), "name": m.get("name"), "birth_year": m.get("birth_year"),
             "note": m.get("note"), "resident_id": m.get("resident_id")}
            for m in payload.get("household") or []
        ],
        "categories": list(payload["categories"]),
        "summary": payload["summary"],
        "source": source or "api",
        "urgency": payload.get("urgency") or "normal",
        "consent_to_share": bool(payload.get("consent_to_share")),
        "consent": payload.get("consent"),
        "referrer": {k: payload["referrer"].get(k) for k in ("organization", "contact_name", "contact_phone")},
        "external_ref": payload["external_ref"],
    }


def created_body(session: Session, case: Case) -> dict[str, Any]:
    """The body of 201 Created (kept with the key and replayed as it was)."""
    view = referral_view(session, case)
    body = {k: view[k] for k in ("id", "external_ref", "case_number", "status", "status_label", "owning_department")}
    body["routing"] = {"reason": case.routing_reason, "rule": case.routing_rule_name,
                       "proposed_department": department_ref(case.proposed_department)}
    # The person the referral is about (名寄せ): matched by 宛名番号, new, or a candidate left for staff.
    body["person_id"], body["person_match"] = case.person_id, case.person_match
    return body


def _earlier_answer(session: Session, client_id: int, key: str, digest: str) -> ReferralAnswer | None:
    # Columns, not the entity: asked once per referral, and the row is only read.
    row = session.execute(
        select(IdempotencyKey.body_hash, IdempotencyKey.status_code, IdempotencyKey.response_body,
               IdempotencyKey.case_id)
        .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)).first()
    if row is None:
        return None
    if row.body_hash != digest:
        raise IdempotencyKeyReused("この Idempotency-Key は別の内容の紹介に使われています。新しい紹介には新しいキーを使ってください。")
    return ReferralAnswer(row.status_code, row.response_body, True, row.case_id)


def _refuse_duplicate(session: Session, client_id: int, external_ref: str, location) -> None:
    existing = session.execute(select(Case.id, Case.case_number)
                               .where(Case.referral_client_id == client_id, Case.external_ref == external_ref)).first()
    if existing is not None:
        raise DuplicateReferral(
            f"external_ref「{external_ref}」の紹介は既にケース {existing.case_number}（id {existing.id}）として登録されています。",
            existing_referral={"id": existing.id, "case_number": existing.case_number,
                               "location": location(existing.id)},
        )


def _refuse_duplicate_unless_replay(session: Session, client_id: int, key: str, digest: str, external_ref: str,
                                    location) -> ReferralAnswer | None:
    """Refuse a referral already registered under another key; but when a concurrent request with this
    very key committed it between the key's look-up and this one (it holds the external_ref too), answer
    as that request did: a retry is a replay, never a duplicate."""
    try:
        _refuse_duplicate(session, client_id, external_ref, location)
    except DuplicateReferral:
        answer = _earlier_answer(session, client_id, key, digest)
        if answer is not None:
            return answer
        raise
    return None


def _routing_facts(payload: dict[str, Any], now: datetime, source: str | None = None) -> RoutingFacts:
    """The facts the case opened from this referral will be routed on (see routing.facts_of)."""
    person = payload["person"]
    categories = list(dict.fromkeys(payload["categories"]))
    birth_date = person.get("birth_date")
    return RoutingFacts(
        categories=tuple(categories), primary_category=categories[0] if categories else None,
        area=person.get("area") or None, birth_date=birth_date if isinstance(birth_date, date) else None,
        source=source or "api", urgency=payload.get("urgency") or "normal", on=now.astimezone(JST).date(),
    )


def receive(session: Session, client: ApiClient, *, key: str, payload: dict[str, Any], actor=None,
            location=lambda case_id: f"/api/v1/referrals/{case_id}", now: datetime | None = None,
            remote_addr: str | None = None) -> ReferralAnswer:
    """Open a case from a referral, once per (client, Idempotency-Key); replay the answer to a retry.

    `payload` is the validated body. Refuses with IdempotencyKeyReused (same key, another body) or
    DuplicateReferral (same external_ref, another key). May roll the session back when it lost a race
    to a concurrent request, then answers as that request did.
    """
    now = now or utcnow()

    def open_referral() -> tuple[Case, dict[str, Any]]:
        case = intake.open_case(session, actor, intake_fields(payload, client.source), now=now, client=client,
                                remote_addr=remote_addr)
        return case, created_body(session, case)

    # Reads before the first write: on SQLite the write transaction (one at a time) stays short.
    return receive_once(session, client, key=key, payload=payload, location=location, now=now,
                        before_writing=lambda: routing.prefetch(session, _routing_facts(payload, now, client.source)),
                        open_and_answer=open_referral)


def receive_once(session: Session, client: ApiClient, *, key: str, payload: dict[str, Any], location,
                 now: datetime, open_and_answer: Callable[[], tuple[Case, dict[str, Any]]],
                 before_writing: Callable[[], None] | None = None) -> ReferralAnswer:
    """Open a case from a body sent by a client, once per (client, key) and per (client, external_ref):
    `open_and_answer` opens it and says the 201 answer, kept with the key and replayed to a retry."""
    client_id = client.id
    digest = body_hash(payload)
    answer = _earlier_answer(session, client_id, key, digest)
    if answer is not None:
        return _replayed(session, client, answer)
    answer = _refuse_duplicate_unless_replay(session, client_id, key, digest, payload["external_ref"], location)
    if answer is not None:
        return _replayed(session, client, answer)
    if before_writing is not None:
        before_writing()
    row = IdempotencyKey(client_id=client_id, key=key, body_hash=digest, status_code=0, response_body={},
                         created_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent request with this key committed first: answer as it did.
        session.rollback()
        answer = _earlier_answer(session, client_id, key, digest)
        if answer is None:
            raise
        return _replayed(session, client, answer)
    try:
        case, body = open_and_answer()
    except IntegrityError:
        # The same external_ref committed first: under another key (a duplicate), or under this one by a
        # concurrent request whose key row this one did not see yet (a replay).
        session.rollback()
        answer = _refuse_duplicate_unless_replay(session, client_id, key, digest, payload["external_ref"], location)
        if answer is not None:
            return _replayed(session, client, answer)
        raise
    row.status_code, row.response_body, row.case_id = 201, body, case.id
    session.flush()
    return ReferralAnswer(201, body, False, case.id)


def _replayed(session: Session, client: ApiClient, answer: ReferralAnswer) -> ReferralAnswer:
    """A retry answered with the first answer reads the referral again: recorded as such."""
    if answer.replayed and answer.case_id is not None:
        trail.record(session, client=client, action="referral.replay", object_type="case", object_id=answer.case_id,
                     case_id=answer.case_id)
    return answer


def get(session: Session, client: ApiClient, case_id: int) -> dict[str, Any]:
    """The referrer's view of one of its own referrals; another client's answers NotFound."""
    case = session.get(Case, case_id)
    if case is None or case.referral_client_id != client.id:
        raise NotFound("指定された紹介は見つかりません。")
    trail.record(session, client=client, action="referral.read", object_type="case", object_id=case.id,
                 case_id=case.id)
    return referral_view(session, case)


def page(session: Session, client: ApiClient, *, status: str | None = None, updated_since: datetime | None = None,
         before_id: int | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
    """The client's referrals, newest first; returns the page and the id to continue before (or None)."""
    q = select(Case).where(Case.referral_client_id == client.id)
    if status:
        q = q.where(Case.state == status)
    if updated_since is not None:
        q = q.where(Case.updated_at >= updated_since)
    if before_id is not None:
        q = q.where(Case.id < before_id)
    rows = session.scalars(q.order_by(Case.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    # The status and owner of each case listed: a read of case data, recorded per case as a list of names is.
    trail.record_case_reads(session, actor=None, client=client, action="referral.read", case_ids=[c.id for c in rows])
    return [referral_view(session, c) for c in rows], (rows[-1].id if more else None)
