"""年度集計 broken down: the year's consultations by 圏域 and by month, and its つなぐシート and cases by department.

Counts only, as the rest of the report. A consultation is a case opened in the year, placed in the 圏域 its
person's record holds now (the record keeps no earlier address). A department's cases are those active on
some day of the year that it owns now; its つなぐシート are those sent to it in the year (参加依頼 included).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from engine import calendar
from engine.models import Case, Department, Handoff, Person


@dataclass
class Breakdowns:
    """The year's figures broken down (see the module docstring)."""

    consultations_by_area: Counter  # 圏域 code (None: not recorded) → consultations
    months: list[str]  # 令和8年4月 … 令和9年3月
    consultations_by_month: list[int]
    sheets_by_month: list[int]
    departments: list[tuple[int, str]] = field(default_factory=list)  # (id, name): active, or counted
    sheets_by_department: Counter = field(default_factory=Counter)  # department id → sheets received
    cases_by_department: Counter = field(default_factory=Counter)  # department id (None: no owner) → cases


def _month_starts(fiscal_year: int) -> list[date]:
    """The first days of the year's twelve months and of the next year's April."""
    return [date(fiscal_year + (month < 4), month, 1) for month in (*range(4, 13), 1, 2, 3)] + [
        date(fiscal_year + 1, 4, 1)]


def _by_month(session: Session, column, starts: list[date]) -> list[int]:
    """How many rows fall in each month, `column` an aware moment; one query."""
    bounds = [datetime.combine(d, time(0), tzinfo=calendar.JST) for d in starts]
    months = [func.coalesce(func.sum(case((and_(column >= a, column < b), 1), else_=0)), 0)
              for a, b in zip(bounds, bounds[1:])]
    return [int(n) for n in session.execute(select(*months).where(column >= bounds[0], column < bounds[-1])).one()]


def _grouped(session: Session, column, *where) -> Counter:
    return Counter(dict(session.execute(select(column, func.count()).where(*where).group_by(column)).all()))


def breakdowns(session: Session, fiscal_year: int) -> Breakdowns:
    starts = _month_starts(fiscal_year)
    t0, t1 = (datetime.combine(d, time(0), tzinfo=calendar.JST) for d in (starts[0], starts[-1]))
    opened = (Case.opened_at >= t0, Case.opened_at < t1)
    by_area = Counter(dict(session.execute(
        select(Person.area, func.count()).join(Case, Case.person_id == Person.id).where(*opened)
        .group_by(Person.area)).all()))
    sheets = _grouped(session, Handoff.to_department_id, Handoff.sent_at >= t0, Handoff.sent_at < t1)
    cases = _grouped(session, Case.owning_department_id, Case.opened_at < t1,
                     (Case.closed_at.is_(None)) | (Case.closed_at >= t0))
    departments = [(d.id, d.name) for d in session.scalars(select(Department).order_by(Department.id))
                   if d.active or sheets.get(d.id) or cases.get(d.id)]
    return Breakdowns(
        consultations_by_area=by_area,
        months=[f"{calendar.wareki_year(d)}{d.month}月" for d in starts[:-1]],
        consultations_by_month=_by_month(session, Case.opened_at, starts),
        sheets_by_month=_by_month(session, Handoff.sent_at, starts),
        departments=departments, sheets_by_department=sheets, cases_by_department=cases)
