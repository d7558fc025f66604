"""ケース一覧: the cases a person may know of, filtered, searched by name or kana, a page at a time.

Lists and counts use access.visible_cases_filter. What would reveal a case's content — the name, the
圏域, the issue categories — is shown, searched and filtered only where the person may read the content
(access.content_cases_filter): an FM sees every case's state and departments, but finds a person by
name only among the cases they work on.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, exists, func, literal, or_, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session

from engine import access, calendar, states, vocab
from engine.audit import trail
from engine.departments import department_by_code
from engine.errors import ValidationFailed
from engine.models import Case, CaseCategory, Department, Handoff, Person, Plan, utcnow
from engine.people.names import match_key

PER_PAGE = 50
# Up to this many matches a list is gathered through the filter's indexes and ordered afterwards.
FILTER_FIRST = 5000


@dataclass
class CaseFilters:
    """What the list is narrowed to; empty values mean "any"."""

    state: str | None = None
    department: str | None = None  # owning department's code
    area: str | None = None
    category: str | None = None
    overdue: bool = False
    q: str | None = None  # name or kana, any width, kana kind or common 異体字; or a case number (R8-000123)


@dataclass
class CaseRow:
    """One line of the list; the person's data only where `content` is true."""

    id: int
    case_number: str
    state: str
    urgency: str
    owning_department: str | None
    opened_at: datetime
    updated_at: datetime
    content: bool  # whether the reader may see the person's data
    person_name: str | None = None
    name_kana: str | None = None
    area: str | None = None
    categories: list[str] = field(default_factory=list)
    overdue_handoff: bool = False
    overdue_evaluation: bool = False


@dataclass
class CasePage:
    """A page of rows with the total the filters match."""

    rows: list[CaseRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the total makes (at least one)."""
        return max(1, -(-self.total // self.per_page))


def validate_filters(filters: CaseFilters) -> None:
    """Refuse a filter value that is not in its code list (errors by field name)."""
    errors: dict[str, list[str]] = {}
    if filters.state and filters.state not in states.CASE_STATE_LABELS:
        errors["state"] = [f"「{filters.state}」という状態はありません。"]
    if filters.area and filters.area not in vocab.codes("areas"):
        errors["area"] = [f"「{filters.area}」という圏域はありません。"]
    if filters.category and filters.category not in vocab.codes("issue_categories"):
        errors["category"] = [f"「{filters.category}」という分類はありません。"]
    if errors:
        raise ValidationFailed(errors)


def _overdue_handoff(now: datetime):
    return exists().where(Handoff.case_id == Case.id, Handoff.state == "sent", Handoff.due_at < now)


def _overdue_evaluation(today: date):
    return and_(Case.state == "accompaniment",
                exists().where(Plan.case_id == Case.id, Plan.status == "active", Plan.next_evaluation_date < today))


def search_cases(session: Session, actor, filters: CaseFilters, *, page: int = 1, per_page: int | None = None,
                 now: datetime | None = None, total: int | None = None) -> CasePage:
    """One page of the cases `actor` may know of, newest change first, with the total count
    (counted unless the caller already knows it, as the start page does from the counts by state)."""
    now = now or utcnow()
    per_page = per_page or PER_PAGE
    validate_filters(filters)
    today = now.astimezone(calendar.JST).date()
    conditions = [access.visible_cases_filter(session, actor)]
    # Department staff read every case they know of: their lists need no second, identical filter.
    content = None if access.content_is_visibility(actor) else access.content_cases_filter(session, actor)
    needs_person = False
    if filters.state:
        conditions.append(Case.state == filters.state)
    if filters.department:
        dept = department_by_code(session, filters.department)
        if dept is None:
            raise ValidationFailed({"department": [f"「{filters.department}」という部署はありません。"]})
        conditions.append(Case.owning_department_id == dept.id)
    if filters.overdue:
        conditions.append(or_(_overdue_handoff(now), _overdue_evaluation(today)))
    number = case_number_of(filters.q)
    if (filters.area or filters.category or (filters.q and not number)) and content is not None:
        conditions.append(content)
    if filters.area:
        needs_person = True
        conditions.append(Person.area == filters.area)
    if filters.category:
        conditions.append(exists().where(CaseCategory.case_id == Case.id, CaseCategory.code == filters.category))
    # Each word folded as matching folds a name (width, kana kind, spaces and the common 異体字: 吉野 finds 𠮷野,
    # 高崎 finds 髙﨑), to be sought in the stored keys of the same folding.
    key = [w for w in map(match_key, filters.q.split()) if w] if filters.q and not number else []
    if number:
        # A case number finds that case among all the reader may know of (its row names the person only for
        # those who read its content).
        conditions.append(Case.case_number == number)
    if key:
        # Each word must occur in the folded name or kana ("はつか たろう" finds 廿日 太郎 / ハツカ タロウ).
        # The people who match are found first, in one pass over `people` (a substring cannot use an
        # index); the cases are then reached through their person_id index. An anonymised person has no
        # name to be found by.
        words = []
        for word in key:
            escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            words.append(or_(Person.name_key.like(pattern, escape="\\"),
                             Person.kana_key.like(pattern, escape="\\")))
        conditions.append(Case.person_id.in_(select(Person.id).where(Person.anonymised_at.is_(None), *words)))

    def matching_keys(limit: int | None = None):
        keys_q = select(Case.id, Case.updated_at).where(*conditions).limit(limit)
        if needs_person:
            keys_q = keys_q.join(Person, Person.id == Case.person_id)
        return sorted(session.execute(keys_q).all(), key=lambda k: (k.updated_at, k.id), reverse=True)

    keys = None
    if key or number:
        # A name search matches few people: gather them once, which also counts them.
        keys = matching_keys()
        total = len(keys)
    elif total is None and not (filters.state or filters.department or filters.area or filters.category
                                or filters.overdue):
        # Unfiltered: the counts by state, read from the departments' relations table, add up to it.
        total = sum(access.visible_state_counts(session, actor).values())
    elif total is None:
        # A filtered list is often short: gathering it counts it too. Past FILTER_FIRST, count instead.
        keys = matching_keys(FILTER_FIRST + 1)
        if len(keys) <= FILTER_FIRST:
            total = len(keys)
        else:
            keys = None
    if total is None:
        count_q = select(func.count()).select_from(Case)
        if needs_person:
            count_q = count_q.join(Person, Person.id == Case.person_id)
        total = session.scalar(count_q.where(*conditions)) or 0

    page = max(1, page)
    columns = select(Case.id, Case.case_number, Case.state, Case.urgency, Case.owning_department_id, Case.opened_at,
                     Case.updated_at, Person.name, Person.name_kana, Person.area,
                     (sql_case((content, True), else_=False) if content is not None else literal(True)).label("content")
                     ).join(Person, Person.id == Case.person_id)
    newest_first = (Case.updated_at.desc(), Case.id.desc())
    if keys is not None or total <= FILTER_FIRST:
        # Few matches: find them all through the filter's indexes, then order them. (Walking the
        # whole table in updated_at order to find a handful would read every row.)
        keys = keys if keys is not None else matching_keys()
        page_ids = [k.id for k in keys[(page - 1) * per_page:page * per_page]]
        rows_q = columns.where(Case.id.in_(page_ids)).order_by(*newest_first)
    else:
        # Many matches: walk the updated_at index and stop when the page is full. The page's ids come first,
        # then its rows: the rows skipped on the way to a far page are never read, nor their people joined.
        walk_conditions = [access.visible_cases_filter(session, actor, walk=True), *conditions[1:]]
        ids_q = select(Case.id).where(*walk_conditions)
        if needs_person:
            ids_q = ids_q.join(Person, Person.id == Case.person_id)
        page_ids = list(session.scalars(ids_q.order_by(*newest_first).limit(per_page)
                                        .offset((page - 1) * per_page)))
        rows_q = columns.where(Case.id.in_(page_ids)).order_by(*newest_first)
    found = session.execute(rows_q).all()
    names = _department_names(session)
    ids = [r.id for r in found]
    late_handoffs: set[int] = set()
    late_evaluations: set[int] = set()
    cats: dict[int, list[str]] = {}
    if ids:
        late_handoffs = set(session.scalars(select(Handoff.case_id).where(
            Handoff.case_id.in_(ids), Handoff.state == "sent", Handoff.due_at < now)))
        late_evaluations = set(session.scalars(select(Plan.case_id).join(Case, Case.id == Plan.case_id).where(
            Plan.case_id.in_(ids), Plan.status == "active", Plan.next_evaluation_date < today,
            Case.state == "accompaniment")))
        for case_id, code in session.execute(
                select(CaseCategory.case_id, CaseCategory.code).where(CaseCategory.case_id.in_(ids))
                .order_by(CaseCategory.case_id, CaseCategory.position)):
            cats.setdefault(case_id, []).append(code)
    rows = []
    for r in found:
        row = CaseRow(id=r.id, case_number=r.case_number, state=r.state, urgency=r.urgency,
                      owning_department=names.get(r.owning_department_id), opened_at=r.opened_at,
                      updated_at=r.updated_at, content=bool(r.content),
                      overdue_handoff=r.id in late_handoffs, overdue_evaluation=r.id in late_evaluations)
        if row.content:
            row.person_name, row.name_kana, row.area = r.name, r.name_kana, r.area
            row.categories = cats.get(r.id, [])
        rows.append(row)
    # A name shown is personal data read: the person's 開示請求 trail says who saw it in a list.
    trail.record_case_reads(session, actor=actor, action="case.found", case_ids=[r.id for r in rows if r.content],
                            at=now)
    return CasePage(rows=rows, total=total, page=page, per_page=per_page)


_CASE_NUMBER = re.compile(r"R\d{1,2}-\d{6}")


def case_number_of(text: str | None) -> str | None:
    """The case number `text` is (any width and case: ｒ８－０００１２３ is R8-000123), or None."""
    if not text:
        return None
    folded = unicodedata.normalize("NFKC", text).strip().upper().replace("−", "-").replace("ー", "-")
    return folded if _CASE_NUMBER.fullmatch(folded) else None


def _department_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Department.id, Department.name)).all())


def department_choices(session: Session, *, city_only: bool = False) -> list[tuple[str, str]]:
    """(code, name) of the active departments (with `city_only`, the city's own sections), in the configured
    order."""
    q = select(Department).where(Department.active.is_(True)).order_by(Department.id)
    if city_only:
        q = q.where(Department.kind == "city_section")
    return [(d.code, d.name) for d in session.scalars(q)]


def state_counts(session: Session, actor) -> dict[str, Any]:
    """How many cases the actor may know of are in each state."""
    return access.visible_state_counts(session, actor)
