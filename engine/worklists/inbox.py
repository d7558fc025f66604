"""部署の受信箱: the つなぐシート waiting for a department, and its answer (受理 / 返送).

Both kinds of sheet arrive here: the case's own (primary: accepting makes the department the owner)
and requests to join a case someone else owns. Oldest deadline first; the age counts business days.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import calendar
from engine.alerts import alerts
from engine.audit import trail
from engine.cases import joins, kernel
from engine.cases.events import firing
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.models import Alert, Case, CaseCategory, Department, Handoff, Person, utcnow
from engine.rules.store import business_calendar
from engine.users.accounts import display_names

DECISIONS = ("accept", "decline")


@dataclass
class InboxItem:
    """A つなぐシート waiting for the department, with what the list shows of its case."""

    handoff_id: int
    primary: bool
    version: int  # the case's version for a primary sheet, the sheet's own for a join request
    case_id: int
    case_number: str
    person_name: str
    name_kana: str | None
    categories: list[str]
    from_department: str | None
    reason: str
    summary: str
    urgency: str
    sent_at: datetime
    due_at: datetime | None
    age_business_days: int
    overdue: bool


@dataclass
class Inbox:
    """The department, its waiting sheets, and its open alerts (e.g. a sheet sent back)."""

    department: Department
    items: list[InboxItem]
    alerts: list[Alert] = field(default_factory=list)
    alert_messages: dict[int, str] = field(default_factory=dict)  # by alert id, as the reader may read them
    alert_cases: dict[int, str] = field(default_factory=dict)  # case number by alert id
    alert_seen_by: dict[int, str] = field(default_factory=dict)  # who marked it 確認済み, by alert id


def business_age(starts: list[datetime], now: datetime):
    """A function giving, for each of `starts`, the business days waited until `now`.

    Equal to BusinessCalendar.business_days_between(start, now), but the calendar is walked once over
    the whole span (a list of old sheets would otherwise walk it once per sheet).
    """
    cal = business_calendar()
    end = now.astimezone(calendar.JST).date()
    first = min((s.astimezone(calendar.JST).date() for s in starts), default=end)
    counted: dict = {first: 0}
    day, n = first, 0
    while day < end:
        day += timedelta(days=1)
        n += cal.is_business_day(day)
        counted[day] = n

    def age(start: datetime) -> int:
        if start >= now:
            return 0
        return counted[end] - counted[start.astimezone(calendar.JST).date()]

    return age


def _check(actor) -> None:
    if actor is None or not actor.active or actor.role == "admin":
        raise PermissionDenied("受信箱を使えるのは部署の職員とFMです。")


def department_inbox(session: Session, actor, *, now: datetime | None = None, limit: int = 200) -> Inbox:
    """The sheets sent to the actor's department and not yet answered, the earliest deadline first."""
    now = now or utcnow()
    _check(actor)
    rows = session.execute(
        select(Handoff, Case.case_number, Case.version, Person.name, Person.name_kana)
        .join(Case, Case.id == Handoff.case_id).join(Person, Person.id == Case.person_id)
        .where(Handoff.to_department_id == actor.department_id, Handoff.state == "sent")
        .order_by(Handoff.due_at.asc(), Handoff.id.asc()).limit(limit)
    ).all()
    names = dict(session.execute(select(Department.id, Department.name)).all())
    age = business_age([h.sent_at for h, *_ in rows], now)
    ids = [h.case_id for h, *_ in rows]
    cats: dict[int, list[str]] = {}
    if ids:
        for case_id, code in session.execute(select(CaseCategory.case_id, CaseCategory.code)
                                             .where(CaseCategory.case_id.in_(ids))
                                             .order_by(CaseCategory.case_id, CaseCategory.position)):
            cats.setdefault(case_id, []).append(code)
    items = [
        InboxItem(handoff_id=h.id, primary=h.primary, version=case_version if h.primary else h.version,
                  case_id=h.case_id, case_number=number, person_name=name, name_kana=kana,
                  categories=cats.get(h.case_id, []), from_department=names.get(h.from_department_id),
                  reason=h.reason, summary=h.summary, urgency=h.urgency, sent_at=h.sent_at, due_at=h.due_at,
                  age_business_days=age(h.sent_at),
                  overdue=h.due_at is not None and h.due_at < now)
        for h, number, case_version, name, kana in rows
    ]
    # Each sheet shown is read: the person's name, the summary and the reason it was sent.
    trail.record_case_reads(session, actor=actor, action="handoff_sheet.read", case_ids=ids, at=now,
                            detail={"where": "inbox"})
    department_alerts = list(session.scalars(
        select(Alert).where(Alert.department_id == actor.department_id, Alert.status != "resolved")
        .order_by(Alert.raised_at.asc()).limit(limit)))
    numbers = dict(session.execute(select(Case.id, Case.case_number)
                                   .where(Case.id.in_({a.case_id for a in department_alerts}))).all())
    names = display_names(session, {a.acknowledged_by_id for a in department_alerts if a.acknowledged_by_id})
    return Inbox(department=session.get(Department, actor.department_id), items=items, alerts=department_alerts,
                 alert_messages=alerts.readable_messages(session, actor, department_alerts),
                 alert_cases={a.id: numbers.get(a.case_id) for a in department_alerts},
                 alert_seen_by={a.id: names[a.acknowledged_by_id] for a in department_alerts
                                if a.acknowledged_by_id in names})


def _department_alert(session: Session, actor, alert_id: int) -> None:
    """Refuse unless the alert is addressed to the actor's department (FM alerts are the dashboard's)."""
    _check(actor)
    department_id = session.scalar(select(Alert.department_id).where(Alert.id == alert_id))
    if department_id is None or department_id != actor.department_id:
        raise NotFound("指定されたお知らせは見つかりません。")


def acknowledge_alert(session: Session, actor, alert_id: int, *, now: datetime | None = None) -> Alert:
    """確認済み of an alert to the department (a sheet sent back, a stall, an overdue evaluation …)."""
    _department_alert(session, actor, alert_id)
    return alerts.acknowledge(session, actor, alert_id, now=now)


def resolve_alert(session: Session, actor, alert_id: int, note: str | None, *,
                  now: datetime | None = None) -> Alert:
    """解決 of an alert to the department, with a note saying what was done."""
    _department_alert(session, actor, alert_id)
    return alerts.resolve(session, actor, alert_id, note=note, now=now)


def answer(session: Session, actor, handoff_id: int, decision: str, *, version: int | None,
           reason: str | None = None, now: datetime | None = None, remote_addr: str | None = None) -> Handoff:
    """受理 or 返送 a sheet from the inbox: the case's own through the case machine, a join request
    through its own machine; a stale `version` is refused and nothing is applied twice."""
    now = now or utcnow()
    _check(actor)
    if decision not in DECISIONS:
        raise ValidationFailed({"decision": ["受理か返送かを選んでください。"]})
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise NotFound("指定されたつなぐシートは見つかりません。")
    kernel.load_case(session, actor, handoff.case_id, not_found="指定されたつなぐシートは見つかりません。")
    if decision == "decline" and not (reason or "").strip():
        raise ValidationFailed({"reason": ["返送の理由を入力してください。"]})
    if not handoff.primary:
        return joins.answer_join(session, actor, handoff.id, decision, version=version,
                                    reason=(reason or "").strip() or None, now=now, remote_addr=remote_addr)
    event = "accept_handoff" if decision == "accept" else "decline_handoff"
    fields = {"reason": reason.strip()} if decision == "decline" else {}
    firing.fire_event(session, actor, handoff.case_id, event, version=version, fields=fields, now=now,
                        remote_addr=remote_addr)
    return handoff
