"""FM dashboard: what needs a field manager's eye, and what they can do about it from the list.

Sections, each oldest first: stalled and escalated つなぐシート, 多機関協働 candidates, overdue
evaluations, cases without an owner (no rule matched, or the sheet came back); and, read from the cases
themselves, those no department owns while nothing is on its way and no alert says so (an alert resolved
by hand, a 支援会議 held from 受付). Only handoff metadata is
shown here: dates, departments, states — an FM reads content only on the cases they work on.
Actions: acknowledge (確認), resolve with a note (解決), and reassign (振り替え): send the case onward
to another department, which resolves the alert. A sheet both past its deadline and escalated is one row
with both reasons: its 確認 and 解決 act on both alerts, its 振り替え sends the sheet once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import states
from engine.alerts import alerts
from engine.audit import trail
from engine.cases import checks, joins, kernel
from engine.cases.events import firing
from engine.cases.events.context import HandoffContext
from engine.cases.events.handoff import send_sheet
from engine.departments import department_by_code
from engine.errors import EventNotAllowed, GuardRefused, NotFound, PermissionDenied, ValidationFailed
from engine.models import Alert, Case, CaseHistory, Department, Handoff, utcnow
from engine.users.accounts import display_names
from engine.worklists.inbox import business_age

SECTIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("stalled", "止まっているつなぐシート", ("handoff_escalated", "handoff_stalled")),
    ("meeting_request", "支援会議の開催の依頼", ("meeting_requested",)),
    ("multi_agency", "多機関協働の候補", ("multi_agency_candidate",)),
    ("evaluation", "評価期限を過ぎたプラン", ("evaluation_overdue",)),
    ("unrouted", "担当が決まっていないケース（未振り分け・返送）", ("unrouted", "handoff_declined")),
    ("no_contact", "接触が途絶えているケース", ("no_contact",)),
]
REASSIGNABLE = ("handoff_stalled", "handoff_escalated", "handoff_declined", "unrouted")
# The alerts of one waiting sheet, shown as one row (the escalation first: it is what reached the FM).
SHEET_KINDS = ("handoff_escalated", "handoff_stalled")


@dataclass
class DashboardItem:
    """One alert as the FM sees it: handoff metadata only."""

    alert_id: int
    kind: str
    kind_label: str
    status: str
    message: str
    raised_at: datetime
    due_at: datetime | None
    case_id: int
    case_number: str
    case_state: str
    handoff_from: str | None = None
    handoff_to: str | None = None
    handoff_to_code: str | None = None
    sent_at: datetime | None = None
    waited_business_days: int | None = None
    reassignable: bool = False
    acknowledged_by: str | None = None  # who marked it 確認済み, and when
    acknowledged_at: datetime | None = None
    also: list["DashboardItem"] = field(default_factory=list)  # the sheet's other alerts, on the same row

    @property
    def reasons(self) -> list["DashboardItem"]:
        """This alert and the others its row shows."""
        return [self, *self.also]

    @property
    def alert_ids(self) -> list[int]:
        return [r.alert_id for r in self.reasons]

    @property
    def any_open(self) -> bool:
        return any(r.status == "open" for r in self.reasons)


@dataclass
class DashboardSection:
    """One section of the dashboard, oldest first, with its full count."""

    key: str
    title: str
    items: list[DashboardItem]
    total: int


@dataclass
class WaitingCase:
    """A case nobody owns, with no つなぐシート on its way and no open alert saying so."""

    case_id: int
    case_number: str
    state: str
    opened_at: datetime
    updated_at: datetime
    holder: str | None  # the department holding it meanwhile (the one that reopened or recorded it)


# The states a case may be in while no department owns it (受付, and a 支援会議 held from there).
UNOWNED_STATES = ("intake", "support_meeting", "consent")


def waiting_without_owner(session: Session, actor, *, limit: int = 50) -> tuple[list[WaitingCase], int]:
    """Cases that wait for a department to take them while no alert says so, oldest change first, and how
    many.

    The alert sections list what alerts say; an `unrouted` or 返送 alert resolved by hand while its case
    still waited, or a 支援会議 held from 受付, would otherwise leave the case on no worklist at all
    (「つながりが途切れる」).
    """
    _check_fm(actor, read=True)
    moving = select(Handoff.id).where(Handoff.case_id == Case.id, Handoff.primary.is_(True),
                                      Handoff.state == "sent").exists()
    alerted = select(Alert.id).where(Alert.case_id == Case.id, Alert.kind.in_(("unrouted", "handoff_declined")),
                                     Alert.status.in_(("open", "acknowledged"))).exists()
    base = select(Case).where(Case.state.in_(UNOWNED_STATES), Case.owning_department_id.is_(None), ~moving, ~alerted)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    names = dict(session.execute(select(Department.id, Department.name)).all())
    rows = session.scalars(base.order_by(Case.updated_at.asc(), Case.id.asc()).limit(limit)).all()
    return [WaitingCase(c.id, c.case_number, c.state, c.opened_at, c.updated_at,
                        names.get(c.reopened_department_id or c.created_department_id)) for c in rows], total


def reassignable(alert: Alert, case_state: str, handoff: Handoff | None) -> bool:
    """Whether 振り替え can act on this alert now: a sheet still waiting (stalled or escalated) is sent
    elsewhere; a case back in 受付 (unrouted, or its own sheet came back) is sent on. A returned join
    request leaves nothing to send onward (the department that asked decides), nor does a case already on
    its way or further on."""
    if alert.kind not in REASSIGNABLE:
        return False
    if alert.kind in ("handoff_stalled", "handoff_escalated"):
        return handoff is not None and handoff.state == "sent"
    if alert.kind == "handoff_declined" and handoff is not None and not handoff.primary:
        return False
    return case_state == "intake"


def _check_fm(actor, *, read: bool = False) -> None:
    if actor is None or not actor.active:
        raise PermissionDenied("FMダッシュボードを使えるのはFMだけです。")
    if actor.role == "fm" or (read and actor.role == "admin"):
        return
    raise PermissionDenied("FMダッシュボードを使えるのはFMだけです。")


def fm_dashboard(session: Session, actor, *, now: datetime | None = None, limit: int = 50) -> list[DashboardSection]:
    """The open and acknowledged alerts by section, oldest first (stalled sheets by the time sent)."""
    now = now or utcnow()
    _check_fm(actor, read=True)
    depts = {d.id: d for d in session.scalars(select(Department))}
    sections = []
    for key, title, kinds in SECTIONS:
        live = (Alert.status.in_(("open", "acknowledged")), Alert.kind.in_(kinds))
        # Rows, not alerts: the alerts of one sheet are one row.
        row_key = func.coalesce(Alert.handoff_id, -Alert.id) if key == "stalled" else Alert.id
        total = session.scalar(select(func.count(func.distinct(row_key))).where(*live)) or 0
        q = (select(Alert, Case.case_number, Case.state, Handoff)
             .join(Case, Case.id == Alert.case_id)
             .outerjoin(Handoff, Handoff.id == Alert.handoff_id)
             .where(Alert.status.in_(("open", "acknowledged")), Alert.kind.in_(kinds)))
        if key == "stalled":
            q = q.order_by(Handoff.sent_at.asc(), Alert.handoff_id.asc(), Alert.kind != "handoff_escalated",
                           Alert.id.asc())
        else:
            q = q.order_by(Alert.raised_at.asc(), Alert.id.asc())
        items = []
        found = session.execute(q.limit(limit)).all()
        messages = alerts.readable_messages(session, actor, [alert for alert, *_ in found])
        age = business_age([h.sent_at for *_, h in found if h is not None and h.state == "sent"], now)
        seen_by = display_names(session, {a.acknowledged_by_id for a, *_ in found if a.acknowledged_by_id})
        rows: dict[int, DashboardItem] = {}
        for alert, number, state, handoff in found:
            item = DashboardItem(
                alert_id=alert.id, kind=alert.kind, kind_label=alerts.ALERT_LABELS[alert.kind], status=alert.status,
                message=messages[alert.id], raised_at=alert.raised_at, due_at=alert.due_at, case_id=alert.case_id,
                case_number=number, case_state=state,
                # A returned join request (a sheet that did not move the case) leaves nothing to send
                # onward: the department that asked decides what next.
                reassignable=reassignable(alert, state, handoff),
                acknowledged_by=seen_by.get(alert.acknowledged_by_id), acknowledged_at=alert.acknowledged_at,
            )
            if handoff is not None:
                src, dst = depts.get(handoff.from_department_id), depts.get(handoff.to_department_id)
                item.handoff_from = src.name if src else None
                item.handoff_to = dst.name if dst else None
                item.handoff_to_code = dst.code if dst else None
                item.sent_at = handoff.sent_at
                if key == "stalled":
                    item.due_at = item.due_at or handoff.due_at
                if handoff.state == "sent":
                    item.waited_business_days = age(handoff.sent_at)
            if key == "stalled" and alert.handoff_id is not None and alert.handoff_id in rows:
                rows[alert.handoff_id].also.append(item)
                continue
            if key == "stalled" and alert.handoff_id is not None:
                rows[alert.handoff_id] = item
            items.append(item)
        sections.append(DashboardSection(key=key, title=title, items=items, total=total))
    return sections


def _row_of(session: Session, alert_id: int) -> list[int]:
    """The alerts the dashboard shows on one row with `alert_id`: the unresolved alerts of the same waiting
    sheet (past its deadline, escalated), `alert_id` first; otherwise that alert alone."""
    alert = session.get(Alert, alert_id)
    if alert is None or alert.handoff_id is None or alert.kind not in SHEET_KINDS:
        return [alert_id]
    others = session.scalars(select(Alert.id).where(
        Alert.handoff_id == alert.handoff_id, Alert.kind.in_(SHEET_KINDS), Alert.id != alert_id,
        Alert.status.in_(("open", "acknowledged"))).order_by(Alert.id))
    return [alert_id, *others]


def acknowledge(session: Session, actor, alert_id: int, *, now: datetime | None = None) -> Alert:
    """確認: the FM has seen the alert (and the other open alerts of its row)."""
    _check_fm(actor)
    still_open = [a for a in _row_of(session, alert_id) if _status(session, a) == "open"]
    if not still_open:
        return alerts.acknowledge(session, actor, alert_id, now=now)  # refused, saying why, as ever
    for other in still_open:
        alerts.acknowledge(session, actor, other, now=now)
    return session.get(Alert, alert_id)


def resolve(session: Session, actor, alert_id: int, note: str | None, *, now: datetime | None = None) -> Alert:
    """解決: close the alert (and the others of its row) with a note saying what was done."""
    _check_fm(actor)
    row = _row_of(session, alert_id)
    first = alerts.resolve(session, actor, alert_id, note=note, now=now)
    for other in row[1:]:
        alerts.resolve(session, actor, other, note=note, now=now)
    return first


def _status(session: Session, alert_id: int) -> str | None:
    return session.scalar(select(Alert.status).where(Alert.id == alert_id))


def reassign(session: Session, actor, alert_id: int, *, to_department: str | None, reason: str | None,
             now: datetime | None = None, remote_addr: str | None = None) -> Case:
    """振り替え: send the alert's case to another department and resolve the alert.

    A sheet still waiting is withdrawn and a new one goes to `to_department` (the case stays
    つなぐシート送付中, the new sheet with fresh deadlines); a case back in 受付 (unrouted, or its sheet
    came back) is sent with the case machine's send_handoff.
    """
    now = now or utcnow()
    _check_fm(actor)
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound("指定されたアラートは見つかりません。")
    if alert.status == "resolved":
        raise EventNotAllowed("reassign", alert.status, alerts.STATUS_LABELS[alert.status], [], [],
                              event_label="振り替える")
    errors: dict[str, list[str]] = {}
    target = department_by_code(session, to_department)
    if not to_department:
        errors["to_department"] = [checks.REQUIRED]
    elif target is None or not target.active:
        errors["to_department"] = [f"「{to_department}」という部署はありません。"]
    if not (reason or "").strip():
        errors["reason"] = ["振り替える理由を入力してください。"]
    if errors:
        raise ValidationFailed(errors)
    reason = reason.strip()
    case = kernel.load_case(session, actor, alert.case_id, for_update=True)
    handoff = session.get(Handoff, alert.handoff_id) if alert.handoff_id else None
    if not reassignable(alert, case.state, handoff):
        raise GuardRefused("このアラートは振り替えできません。ケースの画面で対応してください。", guard="reassignable")
    if handoff is not None and handoff.state == "sent":
        if handoff.to_department_id == target.id:
            raise ValidationFailed({"to_department": ["今の送付先と同じ部署です。"]})
        if not handoff.primary:
            joins.require_join_target(session, case, target)
        ctx = HandoffContext(session, actor, case, handoff, now, {"reason": reason})
        states.fire_handoff_event(handoff, "withdraw", ctx)
        handoff.withdrawn_at = now
        kernel.flush_handoff_or_stale(session, handoff.id)  # answered meanwhile: stale, nothing written
        alerts.resolve_open(session, handoff_id=handoff.id, actor=actor, note=f"振り替え: {target.name}", now=now)
        new = send_sheet(session, actor, case, target, reason=reason, summary=handoff.summary, now=now,
                         primary=handoff.primary, remote_addr=remote_addr)
        session.add(CaseHistory(case_id=case.id, event="handoff.reassign", from_state=case.state,
                                to_state=case.state, actor_id=actor.id, at=now, handoff_id=new.id,
                                detail={"to_department": target.code, "reason": reason,
                                        "withdrawn_handoff": handoff.id}))
        case.updated_at = now
        trail.record(session, actor=actor, action="handoff.reassign", object_type="handoff", object_id=new.id,
                     case_id=case.id, remote_addr=remote_addr, at=now,
                     detail={"from_handoff": handoff.id, "to_department": target.code})
    else:  # back in 受付 (reassignable() said so)
        summary = case.summary
        firing.fire_event(session, actor, case.id, "send_handoff", version=case.version, now=now,
                            remote_addr=remote_addr,
                            fields={"to_department": target.code, "reason": reason, "summary": summary})
        alerts.resolve_open(session, case_id=case.id, kinds=("unrouted", "handoff_declined"), actor=actor,
                            note=f"振り替え: {target.name}", now=now)
    if alert.status != "resolved":
        session.flush()
        session.refresh(alert)
        if alert.status != "resolved":
            alerts.resolve(session, actor, alert.id, note=f"振り替え: {target.name}（{reason}）", now=now)
    kernel.flush_or_stale(session, case)
    return case
