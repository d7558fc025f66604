"""Alerts (アラート): raised once per object and kind, acknowledged and resolved by people."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.access.relations import Sight, case_sight
from engine.access.visibility import visible_cases_filter
from engine.audit import trail
from engine.errors import EventNotAllowed, NotFound, PermissionDenied, ValidationFailed
from engine.models import Alert, Case, Department, Handoff, utcnow

ALERT_LABELS = {
    "handoff_stalled": "つなぐシート未受理（期限超過）",
    "handoff_escalated": "つなぐシート未受理（FMへエスカレーション）",
    "handoff_declined": "つなぐシート返送",
    "unrouted": "担当部署未決定",
    "multi_agency_candidate": "多機関協働の候補",
    "evaluation_overdue": "評価期限超過",
    "no_contact": "一定期間接触なし",
    "basis_needed": "情報提供の根拠が必要",
    "handed_back": "担当の返還（同意の撤回）",
    "notice_unseen": "多機関協働の通知が未確認",
    "watch_report": "見守り通報（様子の確認が必要）",
    "meeting_requested": "支援会議の開催の依頼",
}
STATUS_LABELS = {"open": "未対応", "acknowledged": "確認済み", "resolved": "解決済み"}


def open_key(kind: str, case_id: int, handoff_id: int | None) -> str:
    """The key that makes an open alert unique per (object, kind)."""
    return f"{kind}:h{handoff_id}" if handoff_id is not None else f"{kind}:c{case_id}"


def raise_alert(session: Session, *, kind: str, case_id: int, handoff_id: int | None = None,
                department_id: int | None = None, message: str = "", due_at: datetime | None = None,
                now: datetime | None = None) -> int | None:
    """Insert the alert unless one of that kind is already open for the object; return its id or None.

    Uses INSERT … ON CONFLICT DO NOTHING on the unique `open_key`, so that any number of scans, in any
    number of processes, leave exactly one open alert.
    """
    values = dict(
        kind=kind, status="open", open_key=open_key(kind, case_id, handoff_id), case_id=case_id,
        handoff_id=handoff_id, department_id=department_id, message=message,
        raised_at=now or utcnow(), due_at=due_at,
    )
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(Alert)
    stmt = ins.values(**values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["open_key"]).returning(Alert.id)
    return session.execute(stmt).scalar()


def resolve_open(session: Session, *, case_id: int | None = None, handoff_id: int | None = None,
                 notice_id: int | None = None, kinds: tuple[str, ...] | None = None, actor=None,
                 note: str | None = None, now: datetime | None = None) -> int:
    """Resolve the open or acknowledged alerts of a case, a handoff or a notice (of `kinds`, if given)."""
    q = update(Alert).where(Alert.status != "resolved")
    if notice_id is not None:
        q = q.where(Alert.notice_id == notice_id)
    if case_id is not None and handoff_id is not None:
        # The case's alerts of these kinds, and the handoff's (a handoff's alerts carry its case id too).
        q = q.where(Alert.case_id == case_id)
    elif case_id is not None:
        q = q.where(Alert.case_id == case_id)
    elif handoff_id is not None:
        q = q.where(Alert.handoff_id == handoff_id)
    if kinds:
        q = q.where(Alert.kind.in_(kinds))
    q = q.values(status="resolved", open_key=None, resolved_at=now or utcnow(),
                 resolved_by_id=getattr(actor, "id", None), resolution_note=note)
    return session.execute(q, execution_options={"synchronize_session": False}).rowcount


def visible_alerts_query(session: Session, actor):
    """Alerts an actor may list: an FM or the administrator sees all (they see every case's metadata);
    staff see their department's alerts on the cases they may know of. Show their messages through
    readable_messages(), which keeps a typed reason from those who may not read the case's content."""
    q = select(Alert).where(Alert.case_id.in_(select(Case.id).where(visible_cases_filter(session, actor))))
    if actor.role == "fm" or actor.role == "admin":
        return q
    return q.where(Alert.department_id == actor.department_id)


# Alerts whose message quotes what a person typed (a 返送 reason): case content, like the reason on the
# case page, which only those with content sight read.
QUOTING_KINDS = ("handoff_declined", "meeting_requested")
# Where a request for a 支援会議 (engine.cases.meeting_requests) turns from who asked to what they typed.
REQUEST_REASON = "：理由 "


def readable_messages(session: Session, actor, shown: list[Alert]) -> dict[int, str]:
    """Each alert's message as `actor` may read it, by alert id.

    A message the engine composed from metadata (departments, deadlines, the rules' reasons) reads the
    same for everyone who may see the alert, but for the combination of categories behind a 多機関協働
    candidate, which is case content: shown (and audited as `alert.read`) to those who may read the case's
    content, the others read that the case is a candidate. A 返送 alert's message quotes the reason the receiving
    department typed: it is shown whole only to those who may read the case's content, and that reading
    is recorded in the audit trail (`alert.read`); the others read that the sheet came back, and from whom.
    """
    return readable_texts(session, actor, shown, notes=False)[0]


CANDIDATE_WITHHELD = "多機関協働の候補です。課題の組み合わせは、このケースの記録を読める職員だけに表示されます。"
NOTE_WITHHELD = "（記録があります。内容は、このケースの記録を読める職員と記録した本人だけに表示されます）"


@dataclass(frozen=True)
class AlertNotes:
    """An alert's two notes as one reader may read them (None where none was written)."""

    acknowledgement: str | None = None
    resolution: str | None = None

    @property
    def latest(self) -> str | None:
        return self.resolution if self.resolution is not None else self.acknowledgement


def readable_texts(session: Session, actor, shown: list[Alert], *,
                   notes: bool = True) -> tuple[dict[int, str], dict[int, AlertNotes]]:
    """Each alert's message (as readable_messages) and, with `notes`, its notes, as `actor` may read them.

    A note is what a person typed on acknowledging or resolving (「電話で督促した」, a 振り替え's reason),
    and may say anything about the case: each is shown whole to the person who wrote it and to those who
    may read the case's content (recorded as `alert.read`, with the message's typed reason where there is
    one); the others read that there is a note, not what it says.
    """
    out = {a.id: a.message or "" for a in shown}
    note_out: dict[int, AlertNotes] = {}
    # The combination of categories that made a 多機関協働 candidate (8050, DV と子育て …) is case content,
    # as GET /cases/{id} treats the categories: shown to those who may read the case's content.
    candidates = [a for a in shown if a.kind == "multi_agency_candidate"]
    quoting = [a for a in shown if a.kind in QUOTING_KINDS]
    noted = [a for a in shown if notes and (a.note or a.resolution_note)]
    if not quoting and not noted and not candidates:
        return out, note_out
    actor_id = getattr(actor, "id", None)
    case_ids = {a.case_id for a in quoting + noted + candidates}
    readable = set(session.scalars(select(Case.id).where(Case.id.in_(case_ids),
                                                         visible_cases_filter(session, actor, Sight.CONTENT))))
    handoffs = {h.id: (h.primary, name) for h, name in session.execute(
        select(Handoff, Department.name).join(Department, Department.id == Handoff.to_department_id)
        .where(Handoff.id.in_({a.handoff_id for a in quoting if a.handoff_id is not None})))}
    for a in quoting:
        if a.case_id in readable:
            continue
        if a.kind == "meeting_requested":  # "<who>から支援会議の開催の依頼：<reason>": who is metadata
            who = (a.message or "").split(REQUEST_REASON, 1)[0]
            out[a.id] = f"{who}があります。依頼の理由は、このケースの記録を読める職員だけに表示されます。"
            continue
        primary, to_name = handoffs.get(a.handoff_id, (True, None))
        what = "つなぐシートを返送しました" if primary else "参加依頼を返送しました"
        out[a.id] = (f"{to_name or '送付先の部署'}が{what}。返送の理由は、このケースの記録を読める職員だけに表示されます。")
    for a in candidates:
        if a.case_id not in readable:
            out[a.id] = CANDIDATE_WITHHELD
    read_notes: set[int] = set()

    def as_read(a: Alert, text: str | None, author_id: int | None) -> str | None:
        if text is None:
            return None
        if actor_id is not None and actor_id == author_id:
            return text
        if a.case_id in readable:
            read_notes.add(a.id)
            return text
        return NOTE_WITHHELD

    for a in noted:
        note_out[a.id] = AlertNotes(as_read(a, a.note, a.acknowledged_by_id),
                                    as_read(a, a.resolution_note, a.resolved_by_id))
    for a in shown:
        typed = "request_reason" if a.kind == "meeting_requested" else "decline_reason"
        parts = ([typed] if a in quoting and a.case_id in readable else []) + (
            ["categories"] if a in candidates and a.case_id in readable else []) + (
            ["note"] if a.id in read_notes else [])
        if parts:
            trail.record(session, actor=actor, action="alert.read", object_type="alert", object_id=a.id,
                         case_id=a.case_id, detail={"shown": parts})
    return out, note_out


def _load(session: Session, actor, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound("指定されたアラートは見つかりません。")
    if actor.role not in ("fm", "admin") and alert.department_id != actor.department_id:
        raise NotFound("指定されたアラートは見つかりません。")
    if case_sight(session, actor, session.get(Case, alert.case_id)) < Sight.METADATA:
        raise NotFound("指定されたアラートは見つかりません。")
    return alert


def _move(session: Session, alert: Alert, event: str, from_statuses: tuple[str, ...], values: dict) -> None:
    """Change the alert's status only if it is still in one of `from_statuses`.

    Two people acting on one alert at once: PostgreSQL's row lock (taken when it was loaded) orders them,
    but SQLite reads without one; the UPDATE's own condition makes the second find the alert moved on,
    and it is refused like any action the alert's status no longer allows.
    """
    moved = session.execute(
        update(Alert).where(Alert.id == alert.id, Alert.status.in_(from_statuses)).values(**values)
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(alert)
    if moved != 1:
        raise _not_allowed(event, alert)


RESOLUTION_NOTE_REQUIRED = "何をしたか（解決の内容）を入力してください。"
ACTION_LABELS = {"acknowledge": "確認済みにする", "resolve": "解決にする"}


def _not_allowed(event: str, alert: Alert) -> EventNotAllowed:
    """The alert's status no longer allows `event`; what it still allows (an acknowledged one: resolve)."""
    more = alert.status == "acknowledged"
    return EventNotAllowed(event, alert.status, STATUS_LABELS[alert.status], ["resolve"] if more else [],
                           ["解決にする"] if more else [], event_label=ACTION_LABELS[event])


# The scan's kinds. Resolved by a person while its subject still waits, such an alert keeps its `open_key`:
# the next scan does not raise it again (the person has dealt with it) until the subject has moved on — the
# sheet answered, the plan evaluated, a contact recorded — when the scan releases the key (engine.alerts.scan).
HELD_ON_RESOLVE = frozenset({"handoff_stalled", "handoff_escalated", "evaluation_overdue", "no_contact",
                             "notice_unseen"})


def acknowledge(session: Session, actor, alert_id: int, note: str | None = None,
                now: datetime | None = None) -> Alert:
    """Mark an open alert as seen (確認済み)."""
    alert = _load(session, actor, alert_id)
    if alert.status != "open":
        raise _not_allowed("acknowledge", alert)
    if actor.role == "admin":
        raise PermissionDenied("管理者はアラートを処理できません。")
    values = {"status": "acknowledged", "acknowledged_at": now or utcnow(), "acknowledged_by_id": actor.id}
    if note:
        values["note"] = note
    _move(session, alert, "acknowledge", ("open",), values)
    trail.record(session, actor=actor, action="alert.acknowledge", object_type="alert",
                 object_id=alert.id, case_id=alert.case_id)
    session.flush()
    return alert


def resolve(session: Session, actor, alert_id: int, note: str | None = None,
            now: datetime | None = None) -> Alert:
    """Close an alert with a note saying what was done (解決): required, from every page, the API and the FM's
    振り替え alike, so that the next person reads why the alert is gone."""
    alert = _load(session, actor, alert_id)
    if alert.status == "resolved":
        raise _not_allowed("resolve", alert)
    if actor.role == "admin":
        raise PermissionDenied("管理者はアラートを処理できません。")
    note = (note or "").strip()
    if not note:
        raise ValidationFailed({"note": [RESOLUTION_NOTE_REQUIRED]})
    values = {"status": "resolved", "resolved_at": now or utcnow(), "resolved_by_id": actor.id}
    if alert.kind not in HELD_ON_RESOLVE:
        values["open_key"] = None
    values["resolution_note"] = note
    _move(session, alert, "resolve", ("open", "acknowledged"), values)
    trail.record(session, actor=actor, action="alert.resolve", object_type="alert",
                 object_id=alert.id, case_id=alert.case_id)
    session.flush()
    return alert
