"""参加の申し出 (join offers): a department told of a case offers to work on it; the owner answers.

A routing rule, or whoever sent a つなぐシート, may tell a department of a case (engine.alerts.notices). Being told
opens the case's metadata only. When the department can help (the ひきこもり支援ステーション, told of an
8050 household, can visit the son), it offers to join, with a message to the owner. The offer waits on the
case page, and in the owning department's inbox, until the owner (or the case FM) answers:

- 参加を依頼する: a join つなぐシート goes to the department (engine.cases.joins.request_join); from then on it
  reads the case as any department a つなぐシート is sent to, and accepts or declines it from its inbox;
- 見送る: the offer is let go, with a note to the department (shown to it with its offer).

Every step moves the case's version (a page shown before is refused as stale), writes a history row and
an audit row. The department may withdraw its offer while it waits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, states
from engine.audit import trail
from engine.cases import joins, kernel
from engine.errors import Conflict, EventNotAllowed, NotFound, PermissionDenied, StaleVersion, ValidationFailed
from engine.models import Case, JoinOffer, User, utcnow

MESSAGE_MAX = 2000
STATUS_LABELS = {"open": "回答待ち", "accepted": "参加を依頼済み", "declined": "見送り", "withdrawn": "取下げ",
                 "lapsed": "ケース終結により終了"}


class OfferAlreadyOpen(Conflict):
    """The department's earlier offer on this case still waits for an answer."""

    code = "offer_already_open"
    title = "参加の申し出は回答待ちです"

    def __init__(self):
        super().__init__("この部署の参加の申し出は、まだ回答を待っています。")


class OfferAnswered(Conflict):
    """The offer was answered (or withdrawn) before."""

    code = "offer_answered"
    title = "参加の申し出は回答済みです"

    def __init__(self, status: str):
        super().__init__(f"この参加の申し出は既に「{STATUS_LABELS[status]}」です。", status=status)


def _open_key(case_id: int, department_id: int) -> str:
    return f"{case_id}:{department_id}"


def _touch(session: Session, case: Case, version: int | None, now: datetime) -> None:
    """Refuse a page shown before the case changed; move the case's version with this step."""
    if version is not None and case.version != version:
        raise StaleVersion(case.version, version)
    kernel.touch(case, now)
    kernel.flush_or_stale(session, case)


def _record(session: Session, actor, case: Case, offer: JoinOffer, event: str, before: str | None, now: datetime,
            remote_addr: str | None) -> None:
    detail = {"department": offer.department.code}
    kernel.record_history(session, case, actor, f"join_offer.{event}", now, detail, from_state=before,
                            to_state=offer.status)
    trail.record(session, actor=actor, action=f"join_offer.{event}", object_type="join_offer", object_id=offer.id,
                 case_id=case.id, remote_addr=remote_addr, at=now, detail=detail)


def may_offer(rel: frozenset[str]) -> bool:
    """Whether someone so related to a case may offer to join it: told of it, and nothing more."""
    return rel == frozenset({access.NOTIFIED})


def offer(session: Session, actor: User, case_id: int, *, message: str | None, version: int | None = None,
          now: datetime | None = None, remote_addr: str | None = None) -> JoinOffer:
    """The actor's department, told of the case, offers to work on it (申し出)."""
    now = now or utcnow()
    case, rel = kernel.load_case_with_relations(session, actor, case_id)
    if not may_offer(rel):
        raise PermissionDenied("参加を申し出られるのは、このケースの通知を受けた部署（まだ関わっていない部署）の職員だけです。")
    if case.state == "closed":
        raise EventNotAllowed("offer_join", case.state, states.CASE_STATE_LABELS[case.state], [], [],
                              event_label="このケースへの参加を申し出る")
    message = (message or "").strip()
    if not message:
        raise ValidationFailed({"message": ["担当部署への申し出の内容（何ができるか）を入力してください。"]})
    if len(message) > MESSAGE_MAX:
        raise ValidationFailed({"message": [f"{MESSAGE_MAX}文字以内で入力してください。"]})
    key = _open_key(case.id, actor.department_id)
    if session.scalar(select(JoinOffer.id).where(JoinOffer.open_key == key)) is not None:
        raise OfferAlreadyOpen()
    _touch(session, case, version, now)
    row = JoinOffer(case_id=case.id, department_id=actor.department_id, message=message, status="open",
                    open_key=key, created_at=now, created_by_id=actor.id)
    session.add(row)
    session.flush()
    _record(session, actor, case, row, "offer", None, now, remote_addr)
    session.flush()
    return row


def _load(session: Session, case_id: int, offer_id: int) -> JoinOffer:
    row = session.get(JoinOffer, offer_id, with_for_update=True)
    if row is None or row.case_id != case_id:
        raise NotFound("指定された参加の申し出は見つかりません。")
    return row


def answer(session: Session, actor: User, case_id: int, offer_id: int, decision: str, *, note: str | None = None,
           version: int | None = None, now: datetime | None = None, remote_addr: str | None = None) -> JoinOffer:
    """The owner (or the case FM) answers an offer: `accept` asks the department to join, `decline` lets it go."""
    now = now or utcnow()
    if decision not in ("accept", "decline"):
        raise ValidationFailed({"decision": ["参加を依頼するか、見送るかを選んでください。"]})
    case = kernel.load_case(session, actor, case_id)
    row = _load(session, case_id, offer_id)
    access.require(session, actor, case, access.CASE_METADATA, access.WRITE)
    if row.status != "open":
        raise OfferAnswered(row.status)
    note = (note or "").strip() or None
    if decision == "decline" and not note:
        raise ValidationFailed({"note": ["見送る理由を、申し出た部署あてに入力してください。"]})
    if decision == "accept":
        # The join sheet moves the case's version itself (and refuses a stale page).
        handoff = joins.request_join(
            session, actor, case.id, to_department=row.department.code, version=version, now=now,
            remote_addr=remote_addr, summary=case.summary,
            reason="参加の申し出を受けて、参加を依頼します。" + (f"\n{note}" if note else ""))
        row.handoff_id = handoff.id
    else:
        _touch(session, case, version, now)
    row.status = "accepted" if decision == "accept" else "declined"
    row.open_key = None
    row.answered_at, row.answered_by_id, row.answer_note = now, actor.id, note
    _record(session, actor, case, row, decision, "open", now, remote_addr)
    session.flush()
    return row


def withdraw(session: Session, actor: User, case_id: int, offer_id: int, *, version: int | None = None,
             now: datetime | None = None, remote_addr: str | None = None) -> JoinOffer:
    """The offering department takes its offer back while it waits."""
    now = now or utcnow()
    case = kernel.load_case(session, actor, case_id)
    row = _load(session, case_id, offer_id)
    if actor.department_id != row.department_id or actor.role == "admin":
        raise PermissionDenied("参加の申し出を取り下げられるのは、申し出た部署の職員だけです。")
    if row.status != "open":
        raise OfferAnswered(row.status)
    _touch(session, case, version, now)
    row.status, row.open_key, row.answered_at, row.answered_by_id = "withdrawn", None, now, actor.id
    _record(session, actor, case, row, "withdraw", "open", now, remote_addr)
    session.flush()
    return row


def lapse_open(session: Session, case_id: int, now: datetime) -> None:
    """The case closes: offers still waiting end with it (a part of the close, recorded by its history row)."""
    for row in session.scalars(select(JoinOffer).where(JoinOffer.case_id == case_id, JoinOffer.status == "open")):
        row.status, row.open_key, row.answered_at = "lapsed", None, now


@dataclass
class OfferView:
    """One offer as a reader of the case page (or of an inbox) sees it."""

    id: int
    case_id: int
    case_number: str
    department: str
    department_id: int
    message: str
    status: str
    status_label: str
    created_at: datetime
    answered_at: datetime | None
    answer_note: str | None  # the owner's note, written to the offering department


def _view(row: JoinOffer, case_number: str) -> OfferView:
    return OfferView(id=row.id, case_id=row.case_id, case_number=case_number, department=row.department.name,
                     department_id=row.department_id, message=row.message, status=row.status,
                     status_label=STATUS_LABELS[row.status], created_at=row.created_at,
                     answered_at=row.answered_at, answer_note=row.answer_note)


def of_case(session: Session, actor: User, case: Case, rel: frozenset[str]) -> list[OfferView]:
    """The case's offers as `actor` may see them: all of them for those who drive the case, a department's
    own (its message and the owner's answer to it) for the department."""
    q = select(JoinOffer).where(JoinOffer.case_id == case.id).order_by(JoinOffer.id)
    if not access.may(session, actor, case, access.CASE_METADATA, access.WRITE, rel=rel):
        q = q.where(JoinOffer.department_id == actor.department_id)
    return [_view(row, case.case_number) for row in session.scalars(q)]


def waiting_for(session: Session, actor: User) -> list[OfferView]:
    """Open offers on the cases the actor's department owns (its inbox), oldest first."""
    if actor is None or actor.department_id is None or actor.role == "admin":
        return []
    rows = session.execute(
        select(JoinOffer, Case.case_number).join(Case, Case.id == JoinOffer.case_id)
        .where(JoinOffer.status == "open", Case.owning_department_id == actor.department_id)
        .order_by(JoinOffer.created_at, JoinOffer.id)).all()
    return [_view(row, number) for row, number in rows]
