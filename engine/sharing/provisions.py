"""提供記録: each time a person's data is given to a body outside the city — what, to whom, when, by whom, on
which basis. Written with the share itself, in its transaction; read on the case page and in the 開示請求
answer; every provision is in the audit trail too (action `provision.<what>`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import trail
from engine.models import Case, Department, Provision, User
from engine.sharing.bases import WHAT_LABELS, Basis, standing_basis


def provide(session: Session, actor, case: Case, department: Department, what: str, basis: Basis, *,
            now: datetime, handoff_id: int | None = None, meeting_id: int | None = None, client=None,
            remote_addr: str | None = None) -> Provision | None:
    """Record that `department` was given the case's data as `what` on `basis` (nothing for a city section)."""
    if not department.outside_city or basis.kind == "inside_city":
        return None
    row = Provision(case_id=case.id, department_id=department.id, what=what, basis=basis.kind,
                    basis_code=basis.code, basis_note=basis.note, commission_work=basis.commission_work,
                    consent_id=basis.consent_id, meeting_id=meeting_id or basis.meeting_id, handoff_id=handoff_id,
                    given_by_id=getattr(actor, "id", None), given_by_client_id=getattr(client, "id", None),
                    given_at=now)
    session.add(row)
    session.flush()
    trail.record(session, actor=actor, client=client, action=f"provision.{what}", object_type="provision",
                 object_id=row.id, case_id=case.id, remote_addr=remote_addr, at=now,
                 detail={"to": department.code, "basis": basis.kind, "code": basis.code})
    return row


def provide_to_members(session: Session, actor, case: Case, meeting, department_ids, *, now: datetime) -> None:
    """A meeting's records reach its members' bodies: for a 支援会議, on its membership (社会福祉法106条の6, that
    meeting's records only); for a 重層的支援会議, on the basis each body has (the consent that names it)."""
    for department in session.scalars(select(Department).where(Department.id.in_(set(department_ids)))):
        if not department.outside_city:
            continue
        if meeting.kind == "support_meeting":
            basis = Basis("support_meeting", meeting_id=meeting.id)
        else:
            basis = standing_basis(session, case, department)
            if basis is None:
                continue  # engine.cases.meetings refuses such a member before this
        provide(session, actor, case, department, "meeting", basis, now=now, meeting_id=meeting.id)


@dataclass
class ProvisionRow:
    """One provision as staff and the person read it (labels), with the codes other systems read."""

    given_at: datetime
    department: str
    what: str
    basis: str
    note: str | None
    given_by: str | None
    department_code: str
    what_code: str  # sheet, join, meeting, fact, notice, plan_role
    basis_kind: str  # commission, consent, support_meeting, statute
    basis_code: str | None  # a statute or an emergency (config sharing_bases)


def of_case(session: Session, case_ids) -> list[ProvisionRow]:
    """The provisions of these cases, oldest first (the caller has checked who may read them)."""
    rows = session.execute(
        select(Provision, Department.name, Department.code, User.display_name)
        .join(Department, Department.id == Provision.department_id)
        .outerjoin(User, User.id == Provision.given_by_id)
        .where(Provision.case_id.in_(list(case_ids))).order_by(Provision.given_at, Provision.id)).all()
    out = []
    for p, department, code, given_by in rows:
        basis = Basis(p.basis, code=p.basis_code).label
        if p.basis == "commission" and p.commission_work:
            basis = f"{basis}: {p.commission_work}"
        out.append(ProvisionRow(given_at=p.given_at, department=department, what=WHAT_LABELS[p.what], basis=basis,
                                note=p.basis_note, given_by=given_by, department_code=code, what_code=p.what,
                                basis_kind=p.basis, basis_code=p.basis_code))
    return out
