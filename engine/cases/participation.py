"""参加支援: matching a person in 伴走支援 to a place or role hosted by a 協力事業者, and ending the match.

A match belongs to the consented track: it is recorded and ended by those who drive the plan (the owning
department and the case FM, engine.access PLAN write) and read by those who read the plan (they and the
agencies the consent covers). The host is a code of `participation_hosts` (config/categories.yaml), so that
the yearly figures count matches per 協力事業者. Recording a match marks the case's 事業区分 参加支援.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from engine import access, calendar, vocab
from engine.audit import trail
from engine.cases import checks, kernel, submissions
from engine.errors import GuardRefused, NotFound, ValidationFailed
from engine.models import Case, ParticipationMatch, utcnow

MAX_ACTIVITY = 2000


def may_record(session: Session, actor, case: Case, rel: frozenset[str] | None = None) -> bool:
    return case.state == "accompaniment" and access.may(session, actor, case, access.PLAN, access.WRITE, rel=rel)


def _day(errors: dict, fields: dict, name: str, today: date) -> date | None:
    """`fields[name]` read as a day no later than today (services' date rule), or None when left out."""
    fields = {name: fields.get(name) if fields.get(name) != "" else None}
    checks.as_date(errors, fields, name, not_after=today)
    return None if name in errors else fields[name]


def _require_plan_writer(session: Session, actor, case: Case) -> None:
    access.require(session, actor, case, access.PLAN, access.WRITE)


def require_may_record(session: Session, actor, case_id: int) -> None:
    """Refuse before a form is looked at: a case out of sight is NotFound, one whose plan the actor does not
    drive is Forbidden (both audited by the caller), whatever the form holds."""
    _require_plan_writer(session, actor, kernel.load_case(session, actor, case_id))


def add_match_once(session: Session, actor, case_id: int, fields: dict[str, Any], *,
                   submission_token: str | None, now: datetime | None = None,
                   remote_addr: str | None = None) -> ParticipationMatch:
    """add_match from a page's form, refused with AlreadySubmitted when the same form comes twice."""
    require_may_record(session, actor, case_id)
    claim = submissions.claim(session, actor, submission_token, "participation", now=now)
    match = add_match(session, actor, case_id, fields, now=now, remote_addr=remote_addr)
    submissions.settle(session, claim, case_id)
    return match


def add_match(session: Session, actor, case_id: int, fields: dict[str, Any], *, now: datetime | None = None,
              remote_addr: str | None = None) -> ParticipationMatch:
    """Record a match: host (code), activity, start day (today when left out), and an end day if it is over."""
    now = now or utcnow()
    today = now.astimezone(calendar.JST).date()
    case = kernel.load_case(session, actor, case_id)
    _require_plan_writer(session, actor, case)
    if case.state != "accompaniment":
        raise GuardRefused("参加支援は、支援プランに沿った伴走支援の間に記録します（現在の状態では記録できません）。",
                           guard="in_accompaniment")
    errors: dict[str, list[str]] = {}
    host = fields.get("host")
    if host in (None, ""):
        errors["host"] = [checks.REQUIRED]
    elif host not in vocab.codes("participation_hosts"):
        errors["host"] = [f"「{host}」という協力事業者はコード表にありません。"]
    activity = (fields.get("activity") or "").strip()
    if not activity:
        errors["activity"] = [checks.REQUIRED]
    elif len(activity) > MAX_ACTIVITY:
        errors["activity"] = [f"{MAX_ACTIVITY}文字以内で入力してください。"]
    started = _day(errors, fields, "started_on", today) or today
    checks.not_before_opening(errors, {"started_on": started}, "started_on", case, "開始日")
    ended = _day(errors, fields, "ended_on", today)
    if ended is not None and "started_on" not in errors and ended < started:
        errors["ended_on"] = ["終了日は開始日以降の日付にしてください。"]
    if errors:
        raise ValidationFailed(errors)
    match = ParticipationMatch(case_id=case.id, host=host, host_name=vocab.label("participation_hosts", host),
                               activity=activity, started_on=started, ended_on=ended, recorded_by_id=actor.id)
    session.add(match)
    kernel.add_business_category(case, "participation")
    kernel.touch(case, now)
    session.flush()
    trail.record(session, actor=actor, action="participation.add", object_type="participation_match",
                 object_id=match.id, case_id=case.id, remote_addr=remote_addr, at=now, detail={"host": host})
    kernel.flush_or_stale(session, case)
    return match


def end_match(session: Session, actor, case_id: int, match_id: int, ended_on: Any = None, *,
              now: datetime | None = None, remote_addr: str | None = None) -> ParticipationMatch:
    """Record the day a match ended (today when left out); a match already ended is refused."""
    now = now or utcnow()
    today = now.astimezone(calendar.JST).date()
    case = kernel.load_case(session, actor, case_id)
    match = session.get(ParticipationMatch, match_id)
    if match is None or match.case_id != case.id:
        raise NotFound("指定された参加支援の記録は見つかりません。")
    _require_plan_writer(session, actor, case)
    errors: dict[str, list[str]] = {}
    ended = _day(errors, {"ended_on": ended_on}, "ended_on", today) or today
    if "ended_on" not in errors and ended < match.started_on:
        errors["ended_on"] = ["終了日は開始日以降の日付にしてください。"]
    if errors:
        raise ValidationFailed(errors)
    done = session.execute(update(ParticipationMatch)
                           .where(ParticipationMatch.id == match.id, ParticipationMatch.ended_on.is_(None))
                           .values(ended_on=ended).execution_options(synchronize_session=False)).rowcount
    if done != 1:
        raise GuardRefused("この参加支援はすでに終了が記録されています。", guard="match_open")
    session.refresh(match)
    trail.record(session, actor=actor, action="participation.end", object_type="participation_match",
                 object_id=match.id, case_id=case.id, remote_addr=remote_addr, at=now)
    return match


def end_open_matches(session: Session, case: Case, day: date) -> None:
    """A case that closes ends its matches still open, on the day it closes."""
    session.execute(update(ParticipationMatch)
                    .where(ParticipationMatch.case_id == case.id, ParticipationMatch.ended_on.is_(None),
                           ParticipationMatch.started_on <= day)
                    .values(ended_on=day).execution_options(synchronize_session=False))
