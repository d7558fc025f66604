"""Retention (保存期間): anonymise closed cases whose closure is older than the retention period.

Anonymising keeps what the yearly report counts (states, dates, departments, categories, codes, the area,
the birth year) and removes what identifies or describes the person: name, kana, phone, address, 宛名番号,
birth date (reduced to its year), household names and notes, and every free text of the case (summary,
つなぐシート texts, minutes, notes, plan goals and roles, evaluations, carried facts, consent notes and who
gave it, history notes). Open cases are never touched. A meeting that discussed several cases keeps its
minutes and decisions until the last of them is anonymised, and no meeting is ever removed with a case. The
audit trail is kept for good: its rows hold no personal content, and the 守秘義務 of a 支援会議 outlives
every role.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine.audit import trail
from engine.models import (
    Alert,
    Case,
    CaseHistory,
    Consent,
    ContactNote,
    Evaluation,
    Handoff,
    HouseholdMember,
    JoinOffer,
    Meeting,
    MeetingCase,
    ParticipationMatch,
    Plan,
    PlanRole,
    RetentionRun,
    SharedFact,
    utcnow,
)

MARKER = "［保存期間経過により削除］"
PERSON_MARKER = "（匿名化済み）"
# History details that are codes and ids, kept for the yearly figures and the trail's sense; every other
# key (a reason, a note, a routing override's reason, and whatever is added later) is removed, so that a
# new free-text key cannot outlive the case by being forgotten here.
CODE_DETAIL = ("source", "to_department", "notify", "proposed_department", "decision", "close_reason", "fields",
               "department")


def cutoff_for(now: datetime, years: int) -> datetime:
    """`now` minus `years` calendar years (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


@dataclass
class RetentionReport:
    """What a run did, or would do (dry run)."""

    cutoff: datetime
    years: int
    dry_run: bool
    cases: list[tuple[int, str, datetime]] = field(default_factory=list)  # id, case number, closed at
    run_id: int | None = None


def due_cases(session: Session, cutoff: datetime, *, lock: bool = False) -> list[Case]:
    """Closed, not yet anonymised cases closed before `cutoff`, oldest closure first."""
    q = (select(Case).where(Case.state == "closed", Case.closed_at < cutoff, Case.anonymised_at.is_(None))
         .order_by(Case.closed_at, Case.id))
    if lock:
        q = q.with_for_update(of=Case)
    return list(session.scalars(q))


def apply(session: Session, *, years: int, now: datetime | None = None, dry_run: bool = False,
          requested_by: str = "retention") -> RetentionReport:
    """Anonymise every due case (or, dry run, only list them: nothing is written).

    A real run leaves a RetentionRun row and one audit row per case (`case.anonymise`).
    """
    if years < 1:
        raise ValueError("retention period must be at least one year")
    now = now or utcnow()
    cutoff = cutoff_for(now, years)
    cases = due_cases(session, cutoff, lock=not dry_run)
    report = RetentionReport(cutoff=cutoff, years=years, dry_run=dry_run,
                             cases=[(c.id, c.case_number, c.closed_at) for c in cases])
    if dry_run:
        return report
    run = RetentionRun(ran_at=now, cutoff=cutoff, dry_run=False, case_ids=[c.id for c in cases])
    session.add(run)
    session.flush()
    report.run_id = run.id
    for case in cases:
        if case.state != "closed":  # reopened since it was listed: not ours to touch
            continue
        anonymise_case(session, case, now)
        trail.record(session, actor=None, actor_label=requested_by, action="case.anonymise",
                     object_type="case", object_id=case.id, case_id=case.id, at=now,
                     detail={"retention_run": run.id})
    session.flush()
    return report


def scrub_log(engine) -> bool:
    """After a run has committed: leave no copy of what it removed in the database's own log.

    SQLite keeps the pages as they were before the change in its WAL file until a checkpoint copies them
    back and the log is restarted; this checkpoints and truncates the log (waiting, up to the busy timeout,
    for readers still on an older snapshot). False if it could not finish (run it again later). PostgreSQL
    keeps old row versions until VACUUM reuses their space: nothing to do from here (see the README)."""
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as conn:
        busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()[0]
        conn.commit()
    return busy == 0


def _blank(value: str | None) -> str | None:
    return None if value is None else MARKER


def meetings_cleared_with(session: Session, case: Case) -> list[Meeting]:
    """The meetings whose minutes and decisions go with `case` (being anonymised): those that discussed it
    and every other case they discussed is anonymised too. A meeting's records speak of each case it took
    up (engine.cases.discussed): they stay while one of them is still kept whole, and the meeting itself is
    never removed (cases are anonymised, not deleted, so no meeting goes with its case)."""
    discussed = select(MeetingCase.meeting_id).where(MeetingCase.case_id == case.id)
    out = []
    for m in session.scalars(select(Meeting).where(or_(Meeting.case_id == case.id, Meeting.id.in_(discussed)))
                             .order_by(Meeting.id)):
        its_cases = select(MeetingCase.case_id).where(MeetingCase.meeting_id == m.id)
        kept = session.scalar(select(func.count()).select_from(Case).where(
            or_(Case.id == m.case_id, Case.id.in_(its_cases)), Case.id != case.id, Case.anonymised_at.is_(None)))
        if not kept:
            out.append(m)
    return out


def anonymise_case(session: Session, case: Case, now: datetime) -> None:
    """Clear or reduce everything personal of one closed case (see the module docstring)."""
    p = case.person
    others = session.scalar(select(func.count()).select_from(Case).where(
        Case.person_id == p.id, Case.id != case.id, Case.anonymised_at.is_(None)))
    if not others:
        if p.birth_date is not None:
            p.birth_year = p.birth_date.year
        p.name, p.name_kana, p.search_key, p.name_key, p.kana_key = PERSON_MARKER, None, "", "", ""
        p.phone = p.address = p.resident_id = None
        p.birth_date = None
        p.anonymised_at = now
        # The members the person's consultations listed (no record of their own) go with the person.
        for m in session.scalars(select(HouseholdMember).where(HouseholdMember.relative_to_id == p.id,
                                                               HouseholdMember.person_id.is_(None))):
            m.name = None
            m.note = None
    case.summary = MARKER
    case.close_note = _blank(case.close_note)
    case.override_reason = _blank(case.override_reason)
    if case.referrer:
        case.referrer = {"organization": case.referrer.get("organization")}
    case.anonymised_at = now
    for h in session.scalars(select(Handoff).where(Handoff.case_id == case.id)):
        h.reason, h.summary, h.decline_reason = MARKER, MARKER, _blank(h.decline_reason)
    for row in session.scalars(select(CaseHistory).where(CaseHistory.case_id == case.id)):
        if any(k not in CODE_DETAIL for k in (row.detail or {})):
            row.detail = {k: v for k, v in row.detail.items() if k in CODE_DETAIL}
    for m in meetings_cleared_with(session, case):
        m.minutes, m.decisions = _blank(m.minutes), _blank(m.decisions)
    for c in session.scalars(select(Consent).where(Consent.case_id == case.id)):
        c.given_by, c.note = MARKER, None
    for f in session.scalars(select(SharedFact).where(SharedFact.case_id == case.id)):
        f.text = MARKER
    for plan in session.scalars(select(Plan).where(Plan.case_id == case.id)):
        plan.goals = MARKER
        for r in session.scalars(select(PlanRole).where(PlanRole.plan_id == plan.id)):
            r.role = MARKER
    for e in session.scalars(select(Evaluation).where(Evaluation.case_id == case.id)):
        e.changes = _blank(e.changes)
    for n in session.scalars(select(ContactNote).where(ContactNote.case_id == case.id)):
        n.body = MARKER
    for pm in session.scalars(select(ParticipationMatch).where(ParticipationMatch.case_id == case.id)):
        pm.activity = MARKER
    for a in session.scalars(select(Alert).where(Alert.case_id == case.id)):
        a.message = ""
        a.note, a.resolution_note = _blank(a.note), _blank(a.resolution_note)
    for o in session.scalars(select(JoinOffer).where(JoinOffer.case_id == case.id)):
        o.message, o.answer_note = MARKER, _blank(o.answer_note)
