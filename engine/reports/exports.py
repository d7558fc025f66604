"""Cases as rows for the systems downstream (`tsunagu cases export`).

Two exports. For a client: the statuses of its own referrals, exactly as it reads them one by one over the API
(`GET /referrals/{id}`), never more. For the city's own use: each case by the codes of config/ (state, source,
urgency, area, categories, departments, outcome) and its dates; the person's name, birth date and the
summary only when asked for (`with_text`). Either is a bulk read, recorded in the audit trail: one row for the
export, and with text one row per case, so that a 開示請求 lists every export that carried the person's data.
"""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine import calendar
from engine.audit import trail
from engine.cases.views import referral_view
from engine.errors import ValidationFailed
from engine.models import ApiClient, Case, utcnow

CLIENT_COLUMNS = ("id", "external_ref", "case_number", "status", "status_label", "owning_department",
                  "created_at", "accepted_at", "closed_at", "outcome")
CASE_COLUMNS = ("case_number", "state", "source", "urgency", "area", "primary_category", "categories",
                "owning_department", "proposed_department", "referral_client", "external_ref", "opened_on",
                "accepted_on", "closed_on", "close_reason", "updated_at")
TEXT_COLUMNS = ("person_name", "person_name_kana", "birth_date", "summary")


def _since_instant(since: date | None) -> datetime | None:
    """The start of `since` in JST: cases changed on that day or later."""
    return None if since is None else datetime.combine(since, time(0), tzinfo=calendar.JST)


def client_rows(session: Session, client_name: str, *, since: date | None = None,
                now: datetime | None = None) -> list[list[Any]]:
    """The client's own referrals changed since `since`, oldest first, as CLIENT_COLUMNS."""
    client = session.scalar(select(ApiClient).where(ApiClient.name == client_name))
    if client is None:
        raise ValidationFailed({"client": [f"「{client_name}」というクライアントはありません。"]})
    if "referrals:read" not in (client.scopes or ()):
        # What the client could not read over the API is not written for it either (a 見守り協定 partner).
        raise ValidationFailed({"client": [f"クライアント {client_name} には referrals:read のスコープがなく、"
                                           "紹介の状況を書き出せません。"]})
    q = select(Case).where(Case.referral_client_id == client.id).order_by(Case.id)
    if since is not None:
        q = q.where(Case.updated_at >= _since_instant(since))
    cases = list(session.scalars(q))
    trail.record(session, actor=None, actor_label="cli", action="referrals.export", object_type="api_client",
                 object_id=client.id, at=now or utcnow(),
                 detail={"client": client_name, "since": calendar.iso(since), "rows": len(cases)})
    rows = []
    for case in cases:
        view = referral_view(session, case)
        view["owning_department"] = (view["owning_department"] or {}).get("code")
        rows.append([view[k] for k in CLIENT_COLUMNS])
    return rows


def case_rows(session: Session, *, since: date | None = None, with_text: bool = False,
              now: datetime | None = None) -> list[list[Any]]:
    """Every case changed since `since`, oldest first, as CASE_COLUMNS (and TEXT_COLUMNS with text)."""
    now = now or utcnow()
    q = (select(Case).options(selectinload(Case.categories), selectinload(Case.owning_department),
                              selectinload(Case.proposed_department))
         .where(Case.anonymised_at.is_(None)).order_by(Case.id))
    if since is not None:
        q = q.where(Case.updated_at >= _since_instant(since))
    cases = list(session.scalars(q))
    clients = {id_: name for id_, name in session.execute(select(ApiClient.id, ApiClient.name))}
    trail.record(session, actor=None, actor_label="cli", action="cases.export", object_type="case", at=now,
                 detail={"since": calendar.iso(since), "rows": len(cases), "with_text": with_text})
    rows = []
    for case in cases:
        if with_text:
            trail.record(session, actor=None, actor_label="cli", action="case.export", object_type="case",
                         object_id=case.id, case_id=case.id, at=now)
        codes = [c.code for c in case.categories]
        row = [case.case_number, case.state, case.source, case.urgency, case.person.area,
               next((c.code for c in case.categories if c.primary), codes[0] if codes else None), " ".join(codes),
               case.owning_department.code if case.owning_department else None,
               case.proposed_department.code if case.proposed_department else None,
               clients.get(case.referral_client_id), case.external_ref,
               _day(case.opened_at), _day(case.accepted_at), _day(case.closed_at), case.close_reason,
               calendar.iso(case.updated_at)]
        if with_text:
            person = case.person
            row += [person.name, person.name_kana, calendar.iso(person.birth_date), case.summary]
        rows.append(row)
    return rows


def _day(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(calendar.JST).date().isoformat()
