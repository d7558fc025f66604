"""A person as one reader may see them — the one read of a person, for the person page and for
`GET /api/v1/people/{id}` alike: who they are, their cases, their households, the 名寄せ candidates the reader
decides and the merges of their record. Every read is audited (`person.read`, with the parts shown).

How far a reader sees is engine.people.records.sight_of_person: a reader of the content of one of the
person's cases sees everything here; an FM or the administrator (who decide merges) sees who the person is,
their cases as far as each is in their sight, the candidates and the merges, never the households (the
content of the cases). The API answers with `api_view`: the same read, cut as its document says (candidates
for readers of the content only; merges are the page's).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, calendar, states
from engine.audit import trail
from engine.calendar import iso
from engine.models import Case, Department, Household, Person, User, utcnow
from engine.people import households, records

REASON_LABELS = {"name": "生年月日と氏名が一致", "kana": "生年月日とふりがなが一致",
                 "name_kana": "生年月日と氏名・ふりがなが一致"}


@dataclass
class PersonCase:
    """One case of the person: visible (number, state) to a reader who may know of it, else only that it
    exists and which department owns it."""

    owner: str | None
    visible: bool
    id: int | None = None
    case_number: str | None = None
    state_label: str | None = None
    opened_at: datetime | None = None
    owner_code: str | None = None
    state: str | None = None
    closed_at: datetime | None = None
    access: str = "none"  # content / metadata / none


@dataclass
class Identity:
    """Who a record is: what a decision to merge rests on."""

    id: int
    name: str
    name_kana: str | None
    birth_date: date | None
    birth_year: int | None
    area: str | None
    resident_id: str | None


@dataclass
class CandidateRow:
    """An open 名寄せ candidate as its decider sees it: the other record and the owners of its cases."""

    id: int
    reason: str
    found_at: datetime
    other: Identity
    reason_code: str  # name / kana / name_kana
    other_owners: list[str]
    newer: bool  # the person of the page is the newer record (the one a confirmation merges away)


@dataclass
class MergeRow:
    """A merge of the record: which record became which, why, by whom; undone or not."""

    id: int
    survivor: Identity
    merged: Identity
    reason: str
    merged_at: datetime
    merged_by: str | None
    case_count: int
    undone_at: datetime | None = None
    undone_by: str | None = None
    undo_reason: str | None = None


@dataclass
class PersonFile:
    """The person page's data, cut to what the reader may see."""

    person: Person
    content: bool  # the reader reads the content of a case of the person
    identity: Identity
    requested_id: int = 0  # the id asked for (a record merged since answers with the one it became)
    details: dict[str, str | None] = field(default_factory=dict)  # sex, address, phone: content only
    cases: list[PersonCase] = field(default_factory=list)
    households: list[households.HouseholdView] = field(default_factory=list)
    editable_households: set[int] = field(default_factory=set)  # those the reader may change
    may_start_household: bool = False  # no household on record, and the reader may write a case of the person
    candidates: list[CandidateRow] = field(default_factory=list)
    undecided_elsewhere: int = 0  # open candidates someone else decides
    merges: list[MergeRow] = field(default_factory=list)
    may_merge: bool = False


def identity(person: Person) -> Identity:
    year = person.birth_year if person.birth_year is not None else (
        person.birth_date.year if person.birth_date else None)
    return Identity(id=person.id, name=person.name, name_kana=person.name_kana, birth_date=person.birth_date,
                    birth_year=year, area=person.area, resident_id=person.resident_id)


def _owners(session: Session, cases: list[Case]) -> dict[int, tuple[str, str]]:
    ids = {c.owning_department_id for c in cases if c.owning_department_id}
    return {i: (code, name) for i, code, name in session.execute(
        select(Department.id, Department.code, Department.name).where(Department.id.in_(ids)))} if ids else {}


def _owner_names(session: Session, cases: list[Case]) -> dict[int, str]:
    return {i: name for i, (_, name) in _owners(session, cases).items()}


_ACCESS = {access.Sight.CONTENT: "content", access.Sight.METADATA: "metadata"}


def cases_of(session: Session, actor, person: Person) -> list[PersonCase]:
    """The person's cases, oldest first, each as far as `actor` may see it."""
    cases = list(session.scalars(select(Case).where(Case.person_id == person.id).order_by(Case.opened_at, Case.id)))
    owners = _owners(session, cases)
    out = []
    for case in cases:
        code, owner = owners.get(case.owning_department_id, (None, None))
        sight = access.case_sight(session, actor, case)
        if sight >= access.Sight.METADATA:
            out.append(PersonCase(owner=owner, owner_code=code, visible=True, id=case.id,
                                  case_number=case.case_number, state=case.state,
                                  state_label=states.CASE_STATE_LABELS[case.state], opened_at=case.opened_at,
                                  closed_at=case.closed_at, access=_ACCESS[sight]))
        else:
            out.append(PersonCase(owner=owner, owner_code=code, visible=False))
    return out


def _candidates(session: Session, actor, person: Person) -> tuple[list[CandidateRow], int]:
    shown, elsewhere = [], 0
    for row in records.open_candidates(session, person.id):
        other = records.live(session, row.candidate_id if row.person_id == person.id else row.person_id)
        if other.id == person.id:
            continue  # the two records are one already (merged another way)
        if not records.may_decide(session, actor, row):
            elsewhere += 1
            continue
        their = list(session.scalars(select(Case).where(Case.person_id == other.id)))
        owners = _owner_names(session, their)
        shown.append(CandidateRow(
            id=row.id, reason=REASON_LABELS.get(row.reason, row.reason), reason_code=row.reason, found_at=row.found_at,
            other=identity(other), newer=row.person_id == person.id,
            other_owners=sorted({owners.get(c.owning_department_id, "担当未定") for c in their})))
    return shown, elsewhere


def _merges(session: Session, person: Person) -> list[MergeRow]:
    out = []
    for m in records.merges_of(session, person.id):
        by = session.get(User, m.merged_by_id) if m.merged_by_id else None
        undone_by = session.get(User, m.undone_by_id) if m.undone_by_id else None
        out.append(MergeRow(
            id=m.id, survivor=identity(session.get(Person, m.survivor_id)),
            merged=identity(session.get(Person, m.merged_id)), reason=m.reason, merged_at=m.merged_at,
            merged_by=by.display_name if by else None, case_count=len(m.case_ids or []), undone_at=m.undone_at,
            undone_by=undone_by.display_name if undone_by else None, undo_reason=m.undo_reason))
    return out


def read_person(session: Session, actor, person_id: int, *, today: date | None = None,
                remote_addr: str | None = None, face: str = "page") -> PersonFile:
    """The live record `person_id` is now, as `actor` may see it (NotFound if they may not see the person).
    Audited as `person.read`, naming the parts shown, the cases shown and the other records shown as
    candidates. `face` "api" reads what the API answers (candidates for readers of the content only, no
    merges)."""
    today = today or utcnow().astimezone(calendar.JST).date()
    person = records.require_sight(session, actor, person_id)
    content = records.sight_of_person(session, actor, person) >= access.Sight.CONTENT
    file = PersonFile(person=person, content=content, identity=identity(person), requested_id=person_id,
                      cases=cases_of(session, actor, person))
    parts = ["identity", "details", "cases"] if content else ["identity", "cases"]
    if content:
        file.details = {"sex": person.sex, "address": person.address, "phone": person.phone}
        file.households = households.households_for(session, actor, person, today=today)
        for view in file.households:
            # The person's own cases are listed once, above the households.
            view.cases = [c for c in view.cases if c.whose != households.SELF]
            if households.may_edit(session, actor, session.get(Household, view.id)):
                file.editable_households.add(view.id)
        file.may_start_household = not file.households and households.may_write_a_case_of(
            session, actor, {person.id})
        parts.append("households")
    if content or face == "page":
        file.candidates, file.undecided_elsewhere = _candidates(session, actor, person)
    if file.candidates:
        parts.append("candidates")
    if face == "page" and getattr(actor, "role", None) in records.MERGERS:
        file.may_merge = True
        file.merges = _merges(session, person)
        parts.append("merges")
    detail: dict[str, Any] = {"parts": parts, "cases": [c.id for c in file.cases if c.visible],
                              "candidates": [c.other.id for c in file.candidates]}
    if person.id != person_id:
        detail["requested"] = person_id
    trail.record(session, actor=actor, action="person.read", object_type="person", object_id=person.id,
                 remote_addr=remote_addr, detail=detail)
    return file


def api_view(file: PersonFile) -> dict[str, Any]:
    """The read as `GET /api/v1/people/{id}` answers it (schemas/people.py), dates as ISO 8601 text."""
    person = file.person
    view: dict[str, Any] = {
        "id": person.id, "requested_id": file.requested_id,
        "merged_into": person.id if person.id != file.requested_id else None,
        "access": "content" if file.content else "metadata",
        "name": person.name, "name_kana": person.name_kana, "birth_date": iso(person.birth_date),
        "area": person.area,
        "cases": [{"id": c.id, "case_number": c.case_number,
                   "owning_department": None if c.owner_code is None else {"code": c.owner_code, "name": c.owner},
                   "access": c.access, "status": c.state, "status_label": c.state_label,
                   "opened_at": iso(c.opened_at), "closed_at": iso(c.closed_at)} for c in file.cases],
    }
    if file.content:
        view.update({"sex": person.sex, "resident_id": person.resident_id})
        view["households"] = []
        for h in file.households:
            item = dataclasses.asdict(h)
            for m in item["members"]:
                m["since"], m["until"] = iso(m["since"]), iso(m["until"])
            view["households"].append(item)
        view["candidates"] = [{"id": c.id, "person_id": c.other.id, "reason": c.reason_code, "name": c.other.name,
                               "name_kana": c.other.name_kana, "birth_date": iso(c.other.birth_date),
                               "found_at": iso(c.found_at)} for c in file.candidates]
    return view
