"""A person as one reader may see them (the person page): who they are, their cases, their households, the
名寄せ candidates the reader decides and the merges of their record. Every read is audited (`person.read`,
with the parts shown).

How far a reader sees is engine.people.records.sight_of_person: a reader of the content of one of the
person's cases sees everything here; an FM or the administrator (who decide merges) sees who the person is,
their cases as far as each is in their sight, the candidates and the merges, never the households (the
content of the cases).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, states
from engine.audit import trail
from engine.models import Case, Department, Household, Person, User
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


def _owner_names(session: Session, cases: list[Case]) -> dict[int, str]:
    ids = {c.owning_department_id for c in cases if c.owning_department_id}
    return dict(session.execute(select(Department.id, Department.name).where(Department.id.in_(ids))).all()) \
        if ids else {}


def cases_of(session: Session, actor, person: Person) -> list[PersonCase]:
    """The person's cases, oldest first, each as far as `actor` may see it."""
    cases = list(session.scalars(select(Case).where(Case.person_id == person.id).order_by(Case.opened_at, Case.id)))
    owners = _owner_names(session, cases)
    out = []
    for case in cases:
        owner = owners.get(case.owning_department_id)
        if access.case_sight(session, actor, case) >= access.Sight.METADATA:
            out.append(PersonCase(owner=owner, visible=True, id=case.id, case_number=case.case_number,
                                  state_label=states.CASE_STATE_LABELS[case.state], opened_at=case.opened_at))
        else:
            out.append(PersonCase(owner=owner, visible=False))
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
            id=row.id, reason=REASON_LABELS.get(row.reason, row.reason), found_at=row.found_at,
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


def read_person(session: Session, actor, person_id: int, *, today: date,
                remote_addr: str | None = None) -> PersonFile:
    """The person page of the live record `person_id` is now (NotFound if `actor` may not see the person).
    Audited as `person.read`, naming the parts shown, the cases shown and the other records shown as
    candidates."""
    person = records.require_sight(session, actor, person_id)
    content = records.sight_of_person(session, actor, person) >= access.Sight.CONTENT
    file = PersonFile(person=person, content=content, identity=identity(person),
                      cases=cases_of(session, actor, person))
    parts = ["person", "cases"]
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
    file.candidates, file.undecided_elsewhere = _candidates(session, actor, person)
    if file.candidates:
        parts.append("candidates")
    if getattr(actor, "role", None) in records.MERGERS:
        file.may_merge = True
        file.merges = _merges(session, person)
        parts.append("merges")
    trail.record(session, actor=actor, action="person.read", object_type="person", object_id=person.id,
                 remote_addr=remote_addr,
                 detail={"parts": parts, "cases": [c.id for c in file.cases if c.visible],
                         "candidates": [c.other.id for c in file.candidates]})
    return file
