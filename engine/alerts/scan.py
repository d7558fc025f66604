"""The stall scan (滞留スキャン): raise the alerts that are due, exactly once, from any number of processes.

A handoff must never silently break. `tsunagu alerts scan` (cron or a systemd timer, every few minutes;
also on demand, idempotently) calls :func:`scan`, which raises:

- ``handoff_stalled``: a つなぐシート still `sent` past its `due_at` → the receiving department;
- ``handoff_escalated``: still `sent` past its `escalate_at` → the FM dashboard (no department);
- ``evaluation_overdue``: a case in 伴走支援 whose active plan's `next_evaluation_date` plus the policy's
  `evaluation_grace_days` has passed → the owning department;
- ``no_contact``: a case in 伴走支援 without a contact for more than the policy's `no_contact_days`, counted
  from the later of the plan's adoption and the last contact (`Plan.no_contact_since`) → the owning
  department;
- ``notice_unseen``: a notice of a 多機関協働 candidate that nobody of the notified department has seen past its
  `escalate_at` (the policy's `notice_escalate_after_business_days`) → the FM dashboard.

How (STYLE.md, "Background work"): for each kind, one short indexed read lists the due subjects that have
no open alert of that kind yet (the partial reads follow the number of due rows, not the size of the
tables); then, batch by batch, each in its own transaction, the subjects are claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, and the alerts are written by one
``INSERT … SELECT … ON CONFLICT (open_key) DO NOTHING`` whose WHERE re-checks that the subject is still due
(on SQLite, which has one writer at a time, that statement alone re-checks under the write lock). The
unique `open_key` makes an alert exactly-once however many scans run at once. A batch that fails is
retried row by row, so one bad row costs only itself: it is counted, logged, and the scan goes on.

An alert a person resolved (engine.alerts.alerts.resolve) while its subject still waited keeps its `open_key`, so
that it is not raised again; the scan releases the key once the subject has moved on.

Before raising, the scan also resolves open alerts whose subject has moved on (a handoff no longer
`sent`, a case no longer in 伴走支援, a plan replaced, or its evaluation date or the start of its silence
moved since the alert was raised — each alert names its plan and that date):
the actions themselves resolve their alerts, and this closes the window where a person acted while a
scan was writing. Only state is looked at there, never the clock, so a back-fill with an earlier `--now`
resolves nothing that is still pending.

The scan is not a person reading or writing case data: it writes no audit rows.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable, Iterator

from sqlalchemy import String, cast, exists, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from engine.calendar import JST
from engine.dbtypes import UTCDateTime
from engine.models import Alert, Case, CaseNotice, Department, Handoff, Plan, utcnow
from engine.rules.ruleset import StallPolicy
from engine.rules.store import stall_policy

log = logging.getLogger(__name__)

BATCH_SIZE = 500
SCAN_KINDS = ("handoff_stalled", "handoff_escalated", "evaluation_overdue", "no_contact", "notice_unseen")
OPEN = ("open", "acknowledged")


@dataclass(frozen=True)
class RaisedAlert:
    """One alert a scan wrote."""

    id: int
    kind: str
    case_id: int
    handoff_id: int | None
    department_id: int | None


@dataclass
class ScanResult:
    """What one scan did: the alerts it raised, stale ones it resolved, rows it skipped or failed on."""

    now: datetime
    raised: list[RaisedAlert] = field(default_factory=list)
    resolved: int = 0
    skipped: int = 0
    failed: int = 0

    def count(self, kind: str) -> int:
        """How many alerts of `kind` this scan raised."""
        return sum(1 for a in self.raised if a.kind == kind)

    @property
    def by_kind(self) -> dict[str, int]:
        """Raised alerts per kind, every scan kind listed."""
        return {kind: self.count(kind) for kind in SCAN_KINDS}


@dataclass(frozen=True)
class _Moment:
    """The scan's `now`, with the policy in force and the day cut-offs it implies (JST days)."""

    now: datetime
    policy: StallPolicy

    @property
    def today(self) -> date:
        return self.now.astimezone(JST).date()

    @property
    def evaluation_cutoff(self) -> date:
        """An active plan is overdue when its evaluation date is before this day."""
        return self.today - timedelta(days=self.policy.evaluation_grace_days)

    @property
    def contact_cutoff(self) -> date:
        """A case is silent when the no-contact period started before this day."""
        return self.today - timedelta(days=self.policy.no_contact_days)


# --- what is due, kind by kind -------------------------------------------------------------------


def _open_key(kind: str, subject_id) -> object:
    """SQL for engine.alerts.alerts.open_key(): 'kind:h<handoff id>' or 'kind:c<case id>'."""
    return literal(kind, String) + cast(subject_id, String)


@dataclass(frozen=True)
class _Check:
    """One kind of alert: its subject rows, when they are due, and the alert row they give."""

    kind: str
    subject: type  # Handoff or Plan: the row that is claimed
    due: Callable[[_Moment], list]  # WHERE conditions (the subject's table, joined as `joins` says)
    key: Callable[[], object]
    order: Callable[[], object]
    alert_columns: Callable[[_Moment], dict]  # Alert column → SQL expression
    due_joins: tuple = ()  # (table, ON clause) that `due` needs
    alert_joins: tuple = ()  # … and that `alert_columns` needs besides

    def statement(self, m: _Moment, *columns, for_alert: bool = False):
        q = select(*columns).select_from(self.subject)
        for target, on in self.due_joins + (self.alert_joins if for_alert else ()):
            q = q.join(target, on)
        return q.where(*self.due(m))


def _handoff_check(kind: str, deadline, message: Callable[[_Moment], tuple[str, str]], to_department: bool):
    def columns(m: _Moment) -> dict:
        before, after = message(m)
        return {
            Alert.case_id: Handoff.case_id,
            Alert.handoff_id: Handoff.id,
            Alert.department_id: Handoff.to_department_id if to_department else None,
            Alert.message: literal(before, String) + Department.name + literal(after, String),
            Alert.due_at: deadline,
        }

    return _Check(
        kind=kind, subject=Handoff,
        due=lambda m: [Handoff.state == "sent", deadline <= m.now],
        key=lambda: _open_key(f"{kind}:h", Handoff.id),
        order=lambda: deadline,
        alert_columns=columns,
        alert_joins=((Department, Department.id == Handoff.to_department_id),),
    )


def _plan_check(kind: str, date_column, message: Callable[[_Moment], str],
                cutoff: Callable[[_Moment], date]) -> _Check:
    return _Check(
        kind=kind, subject=Plan,
        due=lambda m: [Plan.status == "active", Case.state == "accompaniment", date_column < cutoff(m)],
        key=lambda: _open_key(f"{kind}:c", Plan.case_id),
        # In index order: ordering by anything else tempts SQLite into scanning every plan to skip a sort.
        order=lambda: date_column,
        alert_columns=lambda m: {Alert.case_id: Plan.case_id, Alert.department_id: Case.owning_department_id,
                                 Alert.plan_id: Plan.id, Alert.subject_date: date_column,
                                 Alert.message: literal(message(m), String)},
        due_joins=((Case, Case.id == Plan.case_id),),
    )


def _notice_check() -> _Check:
    return _Check(
        kind="notice_unseen", subject=CaseNotice,
        due=lambda m: [CaseNotice.acknowledged_at.is_(None), CaseNotice.escalate_at <= m.now,
                       Case.multi_agency_candidate.is_(True), Case.state != "closed"],
        key=lambda: _open_key("notice_unseen:n", CaseNotice.id),
        order=lambda: CaseNotice.escalate_at,
        alert_columns=lambda m: {
            Alert.case_id: CaseNotice.case_id, Alert.notice_id: CaseNotice.id, Alert.due_at: CaseNotice.escalate_at,
            Alert.message: literal("多機関協働の候補のケースの通知を、", String) + Department.name
            + literal(f"が{m.policy.notice_escalate_after_business_days}営業日たっても確認していません。", String)},
        due_joins=((Case, Case.id == CaseNotice.case_id),),
        alert_joins=((Department, Department.id == CaseNotice.department_id),),
    )


CHECKS: dict[str, _Check] = {
    "handoff_stalled": _handoff_check(
        "handoff_stalled", Handoff.due_at, to_department=True,
        message=lambda m: ("つなぐシートが受理期限を過ぎても受理されていません（送付先: ", "）。"),
    ),
    "handoff_escalated": _handoff_check(
        "handoff_escalated", Handoff.escalate_at, to_department=False,
        message=lambda m: (f"つなぐシートが{m.policy.escalate_after_business_days}営業日を過ぎても受理されていません"
                           "（送付先: ", "）。FMの確認が必要です。"),
    ),
    "evaluation_overdue": _plan_check(
        "evaluation_overdue", Plan.next_evaluation_date, cutoff=lambda m: m.evaluation_cutoff,
        message=lambda m: "支援プランの評価予定日を過ぎています" + (
            f"（猶予{m.policy.evaluation_grace_days}日を含む）" if m.policy.evaluation_grace_days else "")
            + "。評価を行ってください。",
    ),
    "no_contact": _plan_check(
        "no_contact", Plan.no_contact_since, cutoff=lambda m: m.contact_cutoff,
        message=lambda m: f"伴走支援中ですが、{m.policy.no_contact_days}日を超えて接触の記録がありません。",
    ),
    "notice_unseen": _notice_check(),
}


def candidates_statement(kind: str, now: datetime, policy: StallPolicy):
    """The one indexed read that lists the due subjects (handoff or plan ids) without an open alert.

    The open-alert test is a scalar subquery rather than NOT EXISTS on purpose: PostgreSQL turns NOT EXISTS
    into an anti-join and, misjudging how many handoffs are due (most handoffs have a past due time, but
    those are accepted), may hash the whole alerts table, resolved history included. A scalar subquery
    stays one probe of the unique open_key index per due row, on both databases.
    """
    check = CHECKS[kind]
    m = _Moment(now, policy)
    alerted = select(literal(1)).where(Alert.open_key == check.key()).limit(1).scalar_subquery()
    return (check.statement(m, check.subject.id)
            .where(alerted.is_(None))
            .order_by(check.order()))


def _claim_statement(check: _Check, m: _Moment, ids: list[int]):
    return (check.statement(m, check.subject.id).where(check.subject.id.in_(ids))
            .with_for_update(skip_locked=True, of=check.subject))


def _insert_statement(check: _Check, m: _Moment, ids: list[int], dialect: str):
    columns = {Alert.kind: literal(check.kind, String), Alert.status: literal("open", String),
               Alert.open_key: check.key(), Alert.raised_at: literal(m.now, UTCDateTime()),
               **check.alert_columns(m)}
    columns = {col: expr for col, expr in columns.items() if expr is not None}
    source = check.statement(m, *columns.values(), for_alert=True).where(check.subject.id.in_(ids))
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(Alert)
    return (ins.from_select(list(columns), source, include_defaults=False)
            .on_conflict_do_nothing(index_elements=[Alert.open_key])
            .returning(Alert.id, Alert.kind, Alert.case_id, Alert.handoff_id, Alert.department_id))


# --- resolving what moved on ---------------------------------------------------------------------


def _sweeps(m: _Moment) -> list:
    """UPDATEs resolving open scan alerts whose subject is no longer waiting (state only, no clock), and
    releasing the keys that alerts resolved by a person kept while their subject waited
    (engine.alerts.HELD_ON_RESOLVE)."""
    def resolve(kinds: tuple[str, ...], gone, note: str):
        return [(update(Alert).where(Alert.status.in_(OPEN), Alert.kind.in_(kinds), gone)
                 .values(status="resolved", open_key=None, resolved_at=m.now, resolution_note=note)
                 .execution_options(synchronize_session=False)),
                # Few rows hold a key. "> ''" (every key: keys are never empty) is a range SQLite reads from
                # the unique index on open_key; for IS NOT NULL, or beside a status test, it would read far
                # more. The open alerts whose subject is gone were resolved by the statement before.
                (update(Alert).where(Alert.open_key > "", Alert.kind.in_(kinds), gone)
                 .values(open_key=None).execution_options(synchronize_session=False))]

    def still_due_for(date_column):
        # The plan the alert was raised about is still the active one, in 伴走支援, and the date that made it
        # due has not moved (an evaluation sets the next date, a contact moves the start of the silence; a
        # replan is another plan, whose own lateness is a new alert). Rows, not times: a scan run with an
        # earlier or later --now than the clock the people acting on the case go by reads the same.
        return exists().where(Plan.id == Alert.plan_id, Plan.status == "active", date_column == Alert.subject_date,
                              Case.id == Plan.case_id, Case.state == "accompaniment")

    return [
        *resolve(("handoff_stalled", "handoff_escalated"),
                ~exists().where(Handoff.id == Alert.handoff_id, Handoff.state == "sent"),
                "つなぐシートは受理・返送・取下げ済みのため解決"),
        *resolve(("evaluation_overdue",), ~still_due_for(Plan.next_evaluation_date),
                "評価済み、または伴走支援が終わったため解決"),
        *resolve(("no_contact",), ~still_due_for(Plan.no_contact_since),
                "接触が記録された、または伴走支援が終わったため解決"),
        *resolve(("notice_unseen",),
                 ~exists().where(CaseNotice.id == Alert.notice_id, CaseNotice.acknowledged_at.is_(None),
                                 Case.id == CaseNotice.case_id, Case.state != "closed"),
                 "通知が確認された、またはケースが終結したため解決"),
    ]


# --- the scan ------------------------------------------------------------------------------------


def _chunks(ids: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


@contextmanager
def _transaction(factory: sessionmaker[Session], dialect: str) -> Iterator[Session]:
    """One short transaction of the scan, committed when the block ends."""
    with factory() as session, session.begin():
        if dialect == "postgresql":
            # These are short indexed reads; PostgreSQL prices the due-handoff read far too high (it
            # cannot know that the handoffs with a past due time are nearly all accepted) and would spend
            # more time JIT-compiling it than running it.
            session.execute(text("SET LOCAL jit = off"))
        yield session


def _raise_batch(factory: sessionmaker[Session], check: _Check, m: _Moment, ids: list[int],
                 dialect: str) -> list[RaisedAlert]:
    """Claim `ids`, re-check them and write their alerts in one transaction; return what was written."""
    with _transaction(factory, dialect) as session:
        if dialect == "postgresql":
            ids = list(session.scalars(_claim_statement(check, m, ids)))
            if not ids:
                return []
        rows = session.execute(_insert_statement(check, m, ids, dialect)).all()
    return [RaisedAlert(*row) for row in rows]


def scan(session_factory: sessionmaker[Session], now: datetime | None = None, *,
         batch_size: int = BATCH_SIZE, kinds: tuple[str, ...] = SCAN_KINDS) -> ScanResult:
    """Raise every alert due at `now` (default: the current time) that is not already open; commit per batch.

    Safe to run again and from several processes at once: each (object, kind) gets one open alert.
    """
    now = now or utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    result = ScanResult(now=now)
    with session_factory() as session:
        dialect = session.get_bind().dialect.name
        m = _Moment(now, stall_policy(session))

    try:
        with _transaction(session_factory, dialect) as session:
            for statement in _sweeps(m):
                result.resolved += session.execute(statement).rowcount
    except Exception:
        result.failed += 1
        log.exception("resolving alerts that moved on failed")

    for kind in kinds:
        check = CHECKS[kind]
        try:
            with _transaction(session_factory, dialect) as session:
                ids = list(session.scalars(candidates_statement(kind, now, m.policy)))
        except Exception:
            result.failed += 1
            log.exception("listing %s candidates failed", kind)
            continue
        for batch in _chunks(ids, batch_size):
            failed = 0
            try:
                raised = _raise_batch(session_factory, check, m, batch, dialect)
            except Exception:
                log.warning("%s: a batch of %d failed; retrying one by one", kind, len(batch), exc_info=True)
                raised = []
                for one in batch:
                    try:
                        raised += _raise_batch(session_factory, check, m, [one], dialect)
                    except Exception:
                        failed += 1
                        log.exception("%s: raising the alert for %s %s failed", kind,
                                      check.subject.__tablename__, one)
            result.raised += raised
            result.failed += failed
            result.skipped += len(batch) - len(raised) - failed
    return result
