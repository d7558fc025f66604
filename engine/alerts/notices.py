"""通知 (notices): a department told of a case that another department owns.

A routing rule may name departments to notify besides the owner (8050: 高齢介護課 owns the case and the
ひきこもり支援ステーション is told), and whoever sends a つなぐシート may name some too. A notice lets the
department know the case exists — its number, state, departments and why it was told — and nothing of
its content: the person's data stays with those who work on the case, and a notified department that
should work on it is asked to join (engine.cases.joins.request_join). Notices wait in the department's inbox
until someone there acknowledges them; both the notice and the acknowledgement are in the case history
and the audit trail.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from engine import states
from engine.alerts import alerts
from engine.audit import trail
from engine.errors import Conflict, NotFound
from engine.models import Case, CaseHistory, CaseNotice, Department, Handoff, utcnow
from engine.rules.store import business_calendar, stall_policy
from engine.sharing import bases, provisions


class AlreadyAcknowledged(Conflict):
    """The notice was acknowledged before (by this person or a colleague)."""

    code = "already_acknowledged"
    title = "確認済みです"

    def __init__(self):
        super().__init__("この通知は既に確認済みです。")


# What a body outside the city is told when no basis covers it: that there is a case, not what it is about
# (a rule's reason names the person's situation: 「ひきこもりの子」).
REASON_WITHHELD = ("あなたの機関に関係する可能性のある相談があり、通知先に指定されました。内容は、本人の同意など情報提供の"
                   "根拠が記録されるまで表示されません。")


def notify(session: Session, actor, case: Case, departments: list[Department], *, reason: str,
           now: datetime, client=None) -> list[CaseNotice]:
    """Tell `departments` of the case (those that own it or were told before are skipped).

    A body outside the city reads the reason only on a basis (engine.sharing.bases), recorded as a provision;
    without one it reads REASON_WITHHELD."""
    told = set(session.scalars(select(CaseNotice.department_id).where(CaseNotice.case_id == case.id)))
    escalate_at = business_calendar().deadline_after_business_days(
        now, stall_policy(session).notice_escalate_after_business_days)
    made = []
    for dept in departments:
        if dept.id in told or dept.id == case.owning_department_id:
            continue
        told.add(dept.id)
        basis = bases.standing_basis(session, case, dept)
        notice = CaseNotice(case_id=case.id, department_id=dept.id, reason=reason if basis else REASON_WITHHELD,
                            created_at=now, escalate_at=escalate_at)
        session.add(notice)
        made.append(notice)
        if basis is not None:
            provisions.provide(session, actor, case, dept, "notice", basis, now=now, client=client)
    return made


@dataclass
class InboxNotice:
    """One unacknowledged notice, as the department's inbox shows it (no content of the case)."""

    id: int
    case_id: int
    case_number: str
    state_label: str
    owner: str | None
    reason: str
    created_at: datetime


def waiting(session: Session, actor) -> list[InboxNotice]:
    """The notices to the actor's department that nobody there has acknowledged, oldest first."""
    if getattr(actor, "department_id", None) is None:
        return []
    owner = Department.__table__.alias("owner")
    rows = session.execute(
        select(CaseNotice.id, Case.id, Case.case_number, Case.state, owner.c.name, CaseNotice.reason,
               CaseNotice.created_at)
        .join(Case, Case.id == CaseNotice.case_id)
        .outerjoin(owner, owner.c.id == Case.owning_department_id)
        .where(CaseNotice.department_id == actor.department_id, CaseNotice.acknowledged_at.is_(None),
               # Owning the case since, the department has more than a notice to go by.
               or_(Case.owning_department_id.is_(None), Case.owning_department_id != actor.department_id))
        .order_by(CaseNotice.created_at, CaseNotice.id))
    rows = rows.all()
    # A case not accepted yet names the department its sheet waits with.
    waiting_with = dict(session.execute(
        select(Handoff.case_id, Department.name).join(Department, Department.id == Handoff.to_department_id)
        .where(Handoff.case_id.in_([r[1] for r in rows if r[4] is None]), Handoff.primary.is_(True),
               Handoff.state == "sent")).all()) if any(r[4] is None for r in rows) else {}
    return [InboxNotice(id=r[0], case_id=r[1], case_number=r[2], state_label=states.CASE_STATE_LABELS[r[3]],
                        owner=r[4] or (f"未定（{waiting_with[r[1]]}に送付中）" if r[1] in waiting_with else None),
                        reason=r[5], created_at=r[6]) for r in rows]


@dataclass
class CaseNoticeRow:
    """A department told of the case, as the case page lists it (metadata: who, when, seen or not)."""

    department: str
    created_at: datetime
    acknowledged_at: datetime | None


def of_case(session: Session, case_id: int) -> list[CaseNoticeRow]:
    """The departments told of the case, in the order they were told (the caller has checked sight)."""
    return [CaseNoticeRow(*r) for r in session.execute(
        select(Department.name, CaseNotice.created_at, CaseNotice.acknowledged_at)
        .join(Department, Department.id == CaseNotice.department_id)
        .where(CaseNotice.case_id == case_id).order_by(CaseNotice.id))]


def acknowledge(session: Session, actor, notice_id: int, *, now: datetime | None = None,
                remote_addr: str | None = None) -> CaseNotice:
    """確認済み: someone of the notified department has seen the notice."""
    now = now or utcnow()
    notice = session.get(CaseNotice, notice_id)
    # Anyone outside the notified department is answered as if there were no such notice (the web layer
    # audits the refusal, engine.audit.refusals.record_refusal).
    if notice is None or getattr(actor, "department_id", None) != notice.department_id \
            or getattr(actor, "role", None) not in ("staff", "fm") or not actor.active:
        raise NotFound("指定された通知は見つかりません。")
    if notice.acknowledged_at is not None:
        raise AlreadyAcknowledged()
    # Only the first of two people acknowledging at once marks it: the UPDATE itself re-checks (the
    # database's row lock, or SQLite's one writer, orders them) and the second finds it done.
    marked = session.execute(
        update(CaseNotice).where(CaseNotice.id == notice.id, CaseNotice.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by_id=actor.id)
        .execution_options(synchronize_session=False)).rowcount
    if marked != 1:
        raise AlreadyAcknowledged()
    session.refresh(notice)
    alerts.resolve_open(session, notice_id=notice.id, kinds=("notice_unseen",), actor=actor, now=now,
                        note="通知先の部署が確認したため解決")
    session.add(CaseHistory(case_id=notice.case_id, event="notice.acknowledge", from_state="notified",
                            to_state="acknowledged", actor_id=actor.id, at=now,
                            detail={"department": notice.department.code}))
    trail.record(session, actor=actor, action="notice.acknowledge", object_type="notice", object_id=notice.id,
                 case_id=notice.case_id, remote_addr=remote_addr, at=now)
    session.flush()
    return notice
