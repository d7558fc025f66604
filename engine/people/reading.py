"""A person as one reader may see them: who they are, their cases, their households and the open 名寄せ
candidates, as plain data (the API renders it). Every read is audited (`person.read`, with the parts shown).

How far the reader sees is engine.people.records.sight_of_person's: the reader of the content of one of the
person's cases sees the person's details, households and candidates; an FM or the administrator, who decide
merges, sees who the person is (name, kana, birth date, area) and that their cases exist; anyone else is
told the person is not found, as for a case out of sight. Each case is shown as far as the reader may see
that case: state and number when they may, else only that it exists and which department owns it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, calendar, states
from engine.audit import trail
from engine.calendar import iso
from engine.errors import NotFound
from engine.models import Case, Department, Person, utcnow
from engine.people import households, records

IDENTITY = ("name", "name_kana", "birth_date", "area")  # what an FM or the administrator sees of a person
DETAILS = ("sex", "resident_id")  # and what only a reader of the content of one of their cases sees


@dataclass
class PersonFile:
    """A person as one reader may see them: the live record, how far the reader sees it, and the view."""

    person: Person
    sight: access.Sight
    view: dict[str, Any]


def _access(sight: access.Sight) -> str:
    return {access.Sight.CONTENT: "content", access.Sight.METADATA: "metadata"}.get(sight, "none")


def cases_of(session: Session, actor, person: Person) -> list[dict[str, Any]]:
    """The person's cases, oldest first: number, state and dates of those the reader may see; of the others
    only that they exist and which department owns them."""
    owners = Department.__table__.alias("owner")
    rows = session.execute(
        select(Case, owners.c.code, owners.c.name).outerjoin(owners, owners.c.id == Case.owning_department_id)
        .where(Case.person_id == person.id).order_by(Case.opened_at, Case.id)).all()
    out = []
    for case, code, name in rows:
        sight = access.case_sight(session, actor, case)
        seen = sight >= access.Sight.METADATA
        out.append({
            "id": case.id if seen else None,
            "case_number": case.case_number if seen else None,
            "owning_department": None if code is None else {"code": code, "name": name},
            "access": _access(sight),
            "status": case.state if seen else None,
            "status_label": states.CASE_STATE_LABELS[case.state] if seen else None,
            "opened_at": iso(case.opened_at) if seen else None,
            "closed_at": iso(case.closed_at) if seen else None,
        })
    return out


def households_of(session: Session, actor, person: Person, *, today: date) -> list[dict[str, Any]]:
    """The person's households now (engine.people.households.households_for), with the cases of the other
    members (the person's own are in their case list). Dates as ISO 8601 text."""
    out = []
    for view in households.households_for(session, actor, person, today=today):
        item = dataclasses.asdict(view)
        for m in item["members"]:
            m["since"], m["until"] = iso(m["since"]), iso(m["until"])
        item["cases"] = [c for c in item["cases"] if c["whose"] != households.SELF]
        out.append(item)
    return out


def candidates_of(session: Session, person: Person) -> list[dict[str, Any]]:
    """The open 名寄せ candidates of the record: each other record it may be one person with (as it is now,
    after any merge), why, and who that record is."""
    out = []
    for row in records.open_candidates(session, person.id):
        other = records.live(session, row.candidate_id if row.person_id == person.id else row.person_id)
        if other.id == person.id:
            continue
        out.append({"id": row.id, "person_id": other.id, "reason": row.reason, "name": other.name,
                    "name_kana": other.name_kana, "birth_date": iso(other.birth_date),
                    "found_at": iso(row.found_at)})
    return out


def read_person(session: Session, actor, person_id: int, *, remote_addr: str | None = None,
                today: date | None = None) -> PersonFile:
    """The person `person_id` is now (itself, or the record it was merged into) as `actor` may see them;
    NotFound when they may not. Audited as `person.read` with the parts shown."""
    person = records.require_sight(session, actor, person_id)
    sight = records.sight_of_person(session, actor, person)
    if sight < access.Sight.METADATA:  # require_sight has refused already; a backstop
        raise NotFound("指定された人は見つかりません。")
    today = today or utcnow().astimezone(calendar.JST).date()
    view: dict[str, Any] = {
        "id": person.id,
        "requested_id": person_id,
        "merged_into": person.id if person.id != person_id else None,
        "access": _access(sight),
        "name": person.name,
        "name_kana": person.name_kana,
        "birth_date": iso(person.birth_date),
        "area": person.area,
    }
    parts = ["identity", "cases"]
    if sight >= access.Sight.CONTENT:
        view.update({k: getattr(person, k) for k in DETAILS})
        parts[1:1] = ["details"]
    view["cases"] = cases_of(session, actor, person)
    if sight >= access.Sight.CONTENT:
        view["households"] = households_of(session, actor, person, today=today)
        view["candidates"] = candidates_of(session, person)
        parts += ["households", "candidates"]
    detail: dict[str, Any] = {"parts": parts}
    if person.id != person_id:
        detail["requested"] = person_id
    trail.record(session, actor=actor, action="person.read", object_type="person", object_id=person.id,
                 remote_addr=remote_addr, detail=detail)
    return PersonFile(person=person, sight=sight, view=view)
