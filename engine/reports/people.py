"""年度集計: consultations, people and households side by side.

A consultation is a case; one person may consult several times in a year, and one household may hold the
cases of several of its members (名寄せ and 世帯, engine.people). The year's figures therefore count:
- consultations: the cases opened in the year;
- people: the distinct persons of those cases (a record merged into another counts as the one it became),
  and of them those the city first recorded in the year (`Person.created_at`);
- households, at the year's end (for the current year, today): those whose current members hold two or
  more open cases between them, and those whose members' open cases together carry one of the 多機関協働
  combinations of the routing rules in force (multi_agency_sets: 8050, ダブルケア …).

Counts only: no name, number or text of a case or a person.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine import calendar
from engine.models import Case, CaseCategory, CaseHistory, HouseholdMember, Person
from engine.rules.ruleset import RulesError
from engine.rules.store import active_rules

log = logging.getLogger(__name__)


@dataclass
class PeopleFigures:
    """The year's consultations, people and households (see the module docstring)."""

    consultations: int
    people: int
    new_people: int
    as_of: date  # the day the household figures describe
    households_with_several: int
    households_by_set: list[tuple[str, int]] = field(default_factory=list)  # (set name, households), rules order


def _live_ids(session: Session, case_people) -> dict[int, int]:
    """Each person id of `case_people` (a subquery) → the live record it is now (merges followed)."""
    ids = set(session.scalars(case_people))
    live = {i: i for i in ids}
    merged = dict(session.execute(select(Person.id, Person.merged_into_id)
                                  .where(Person.id.in_(case_people), Person.merged_into_id.is_not(None))).all())
    for start, into in merged.items():
        seen = {start}
        while into is not None and into not in seen:  # a chain of merges, followed to its end
            seen.add(into)
            live[start] = into
            into = session.scalar(select(Person.merged_into_id).where(Person.id == into))
    return live


def open_at(session: Session, case_ids, end: datetime) -> set[int]:
    """Of `case_ids` (a subquery), the cases open at the instant `end`: opened before it, and not closed then
    (the last closure or reopening before it, from the history, was not a closure)."""
    opened = set(session.scalars(select(Case.id).where(Case.id.in_(case_ids), Case.opened_at < end)))
    closed: dict[int, bool] = {}
    for case_id, to_state in session.execute(
            select(CaseHistory.case_id, CaseHistory.to_state)
            .where(CaseHistory.case_id.in_(case_ids), CaseHistory.at < end,
                   or_(CaseHistory.to_state == "closed", CaseHistory.from_state == "closed"))
            .order_by(CaseHistory.at, CaseHistory.id)):
        closed[case_id] = to_state == "closed"
    return {c for c in opened if not closed.get(c, False)}


def figures(session: Session, fiscal_year: int, *, today: date) -> PeopleFigures:
    """The figures of one fiscal year (西暦 of its April), the households as of its last day or `today`."""
    starts, next_start = date(fiscal_year, 4, 1), date(fiscal_year + 1, 4, 1)
    t0 = datetime.combine(starts, time(0), tzinfo=calendar.JST)
    t1 = datetime.combine(next_start, time(0), tzinfo=calendar.JST)
    of_year = select(Case.person_id).where(Case.opened_at >= t0, Case.opened_at < t1)
    consultations = session.scalar(select(func.count()).select_from(Case)
                                   .where(Case.opened_at >= t0, Case.opened_at < t1))
    live = _live_ids(session, of_year.distinct())
    people = set(live.values())
    created = dict(session.execute(select(Person.id, Person.created_at).where(
        or_(Person.id.in_(of_year.distinct()), Person.id.in_(sorted(people - set(live)))))).all())
    new_people = sum(1 for p in people if created.get(p) is not None and t0 <= created[p] < t1)

    as_of = min(today, next_start - timedelta(days=1))
    end = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=calendar.JST)
    current = ((HouseholdMember.since.is_(None)) | (HouseholdMember.since <= as_of),
               (HouseholdMember.until.is_(None)) | (HouseholdMember.until > as_of))
    members_cases = (select(HouseholdMember.household_id, Case.id)
                     .join(Case, Case.person_id == HouseholdMember.person_id)
                     .where(HouseholdMember.person_id.is_not(None), *current))
    their_case_ids = members_cases.with_only_columns(Case.id)
    still_open = open_at(session, their_case_ids, end)
    cases_of: dict[int, set[int]] = defaultdict(set)
    for household_id, case_id in session.execute(members_cases):
        if case_id in still_open:
            cases_of[household_id].add(case_id)
    categories: dict[int, set[str]] = defaultdict(set)
    for case_id, code in session.execute(select(CaseCategory.case_id, CaseCategory.code)
                                         .where(CaseCategory.case_id.in_(their_case_ids))):
        if case_id in still_open:
            categories[case_id].add(code)
    return PeopleFigures(
        consultations=consultations, people=len(people), new_people=new_people, as_of=as_of,
        households_with_several=sum(1 for cases in cases_of.values() if len(cases) >= 2),
        households_by_set=[(s.name, sum(1 for cases in cases_of.values()
                                        if s.matches(set().union(*(categories[c] for c in cases)))))
                           for s in _multi_agency_sets(session)])


def _multi_agency_sets(session: Session):
    """The 多機関協働 combinations of the routing rules in force (none before any is installed, or when the
    installed rules no longer validate)."""
    try:
        _, ruleset = active_rules(session)
    except RulesError as exc:
        log.error("installed routing rules no longer validate; no household combinations counted: %s", exc)
        return ()
    return ruleset.multi_agency_sets if ruleset is not None else ()
