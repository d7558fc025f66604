"""Use cases: one function per user action.

Each takes a session, the acting user and plain values; checks who is asking and the state of things;
changes rows; appends history and audit; flushes. None of them commits: the request or the command that
called it does, once, and rolls back on any exception.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from engine import access, alerts, audit, calendar, states, vocab
from engine.errors import (
    EngineError,
    GuardRefused,
    MissingField,
    NotFound,
    PermissionDenied,
    StaleVersion,
    ValidationFailed,
)
from engine.models import (
    Case,
    CaseCategory,
    CaseHistory,
    CaseNumberCounter,
    Consent,
    ConsentAgency,
    ContactNote,
    Department,
    Evaluation,
    Handoff,
    HouseholdMember,
    Meeting,
    MeetingCase,
    MeetingMember,
    Person,
    Plan,
    PlanRole,
    User,
    utcnow,
)

REQUIRED = "必須項目です。"


# --- small helpers ------------------------------------------------------------------------------


def fold_for_search(*texts: str | None) -> str:
    """Fold names for search: NFKC (全角/半角), katakana → hiragana, no spaces, lower case."""
    out = []
    for t in texts:
        if not t:
            continue
        s = unicodedata.normalize("NFKC", t).lower()
        s = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in s)
        out.append("".join(s.split()))
    return " ".join(out)


def departments_by_codes(session: Session, codes) -> dict[str, Department | None]:
    """The departments with these codes, fetched in one query and remembered for the session."""
    cache = session.info.setdefault("departments_by_code", {})
    missing = {c for c in codes if c and c not in cache}
    if missing:
        found = {d.code: d for d in session.scalars(select(Department).where(Department.code.in_(missing)))}
        for c in missing:
            cache[c] = found.get(c)
    return {c: cache.get(c) for c in codes if c}


def department_by_code(session: Session, code: str | None) -> Department | None:
    """The department with this code (looked up once per session)."""
    if not code or not isinstance(code, str):
        return None
    return departments_by_codes(session, [code])[code]


def _blank(value) -> bool:
    """Whether a field counts as not given: absent, empty, or text of spaces alone."""
    return value in (None, "", [], {}) or (isinstance(value, str) and not value.strip())


def _require(fields: dict, *names: str) -> None:
    missing = {n: [REQUIRED] for n in names if _blank(fields.get(n))}
    if missing:
        raise MissingField(missing)


def _choice(errors: dict, fields: dict, name: str, code_list: str, required: bool = True) -> None:
    value = fields.get(name)
    if _blank(value):
        if required:
            errors.setdefault(name, []).append(REQUIRED)
        elif name in fields:
            fields[name] = None  # an optional choice left empty is not given (never stored as "")
        return
    if value not in vocab.codes(code_list):
        errors.setdefault(name, []).append(f"「{value}」は選べる値ではありません。")


def _as_date(errors: dict, fields: dict, name: str, *, not_after: date | None = None) -> None:
    """Read `fields[name]` as a date; with `not_after`, a later day (something not yet done) is refused."""
    value = fields.get(name)
    if value is not None and not isinstance(value, date):
        try:
            value = fields[name] = date.fromisoformat(str(value))
        except ValueError:
            errors.setdefault(name, []).append("日付は YYYY-MM-DD の形で入力してください。")
            return
    if value is not None and not calendar.EARLIEST_YEAR <= value.year <= calendar.LATEST_YEAR:
        errors.setdefault(name, []).append(
            f"{calendar.EARLIEST_YEAR}年から{calendar.LATEST_YEAR}年までの日付を指定してください。")
        return
    if value is not None and not_after is not None and value > not_after:
        errors.setdefault(name, []).append("未来の日付は記録できません。")


def opened_on(case: Case) -> date:
    """The day (in Japan) the case's consultation was received."""
    return case.opened_at.astimezone(calendar.JST).date()


# A contact or a 支援会議 may be recorded for days before the case was: the consultation is often typed in
# after the first visit, or a partner refers a person it has been seeing. So far back, not further.
RECORDED_LATE_DAYS = 30


def not_before_opening(errors: dict, fields: dict, name: str, case: Case, what: str, *,
                       grace_days: int = 0) -> None:
    """Refuse a day (or a time's day) before the case was opened (less `grace_days`): a record of this
    case's support cannot come long before its consultation, and a mistyped year would also leave it out
    of every yearly report."""
    value = fields.get(name)
    if name in errors or value is None:
        return
    day = value.astimezone(calendar.JST).date() if isinstance(value, datetime) else value
    earliest = opened_on(case) - timedelta(days=grace_days)
    if isinstance(day, date) and day < earliest:
        if grace_days:
            errors[name] = [f"{what}は相談を受け付けた日（{calendar.wareki(opened_on(case))}）の{grace_days}日前"
                            f"（{calendar.wareki(earliest)}）以降の日付にしてください。"]
        else:
            errors[name] = [f"{what}は相談を受け付けた日（{calendar.wareki(earliest)}）以降の日付にしてください。"]


# How far ahead a next evaluation may be set: far enough for any plan, near enough that a mistyped year
# (2207 for 2027) is caught instead of never falling due.
EVALUATION_HORIZON_YEARS = 3


def evaluation_within_horizon(errors: dict, fields: dict, name: str, today: date) -> None:
    value = fields.get(name)
    if name in errors or not isinstance(value, date):
        return
    try:
        limit = today.replace(year=today.year + EVALUATION_HORIZON_YEARS)
    except ValueError:  # February 29
        limit = today.replace(year=today.year + EVALUATION_HORIZON_YEARS, day=28)
    if value > limit:
        errors[name] = [f"次回評価日は{EVALUATION_HORIZON_YEARS}年以内（{calendar.wareki(limit)}まで）の日付にしてください。"]


def _departments(session: Session, errors: dict, name: str, codes: list[str] | None) -> list[Department]:
    found = []
    codes = [c for c in (codes or []) if isinstance(c, str)] if isinstance(codes, list) else []
    departments_by_codes(session, codes)
    for i, code in enumerate(codes):
        dept = department_by_code(session, code)
        if dept is None:
            errors.setdefault(name, []).append(f"「{code}」という部署・機関はありません。")
        elif code in codes[:i]:
            errors.setdefault(name, []).append(f"「{code}」が2回以上指定されています。")
        else:
            found.append(dept)
    return found


def _as_time(errors: dict, fields: dict, name: str, *, not_after: datetime | None = None) -> None:
    """Read `fields[name]` (ISO 8601 text with a zone, or an aware datetime) as UTC, within the years the
    calendar knows; with `not_after`, a later time (something not yet done) is refused."""
    value = fields.get(name)
    if value in (None, ""):
        fields[name] = None
        return
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(value)
            if not calendar.EARLIEST_YEAR <= value.year <= calendar.LATEST_YEAR:
                raise calendar.TimeOutOfRange(value)
            value = value.astimezone(timezone.utc)
        else:
            value = calendar.parse_aware_iso8601(str(value))
    except calendar.TimeOutOfRange:
        errors.setdefault(name, []).append(
            f"{calendar.EARLIEST_YEAR}年から{calendar.LATEST_YEAR}年までの日時を指定してください。")
        return
    except (ValueError, OverflowError):
        errors.setdefault(name, []).append("日時はタイムゾーン付きの ISO 8601 で指定してください。")
        return
    if not_after is not None and value > not_after:
        errors.setdefault(name, []).append("未来の日時は記録できません。")
        return
    fields[name] = value


_COUNTERS = CaseNumberCounter.__table__
_BUMP_CASE_NUMBER = (update(_COUNTERS).where(_COUNTERS.c.fiscal_year == bindparam("fy"))
                     .values(last_number=_COUNTERS.c.last_number + 1).returning(_COUNTERS.c.last_number))


def next_case_number(session: Session, now: datetime) -> str:
    """Give the next case number of the fiscal year, like R8-000123 (令和8年度の123件目)."""
    fy = calendar.fiscal_year(now.astimezone(calendar.JST).date())
    conn = session.connection()  # the counters are never loaded as objects: Core statements will do
    number = conn.execute(_BUMP_CASE_NUMBER, {"fy": fy}).scalar()
    if number is None:
        # The year's first case: make its counter (a concurrent first case may make it too), then count.
        ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(_COUNTERS)
        conn.execute(ins.values(fiscal_year=fy, last_number=0).on_conflict_do_nothing(index_elements=["fiscal_year"]))
        number = conn.execute(_BUMP_CASE_NUMBER, {"fy": fy}).scalar_one()
    return f"R{calendar.reiwa_year(fy)}-{number:06d}"


def _history(session: Session, case: Case, actor, event: str, from_state, to_state, now, detail=None,
             handoff_id=None) -> None:
    session.add(CaseHistory(case_id=case.id, event=event, from_state=from_state, to_state=to_state,
                            actor_id=getattr(actor, "id", None), at=now, detail=detail or {},
                            handoff_id=handoff_id))


def record_history(session: Session, case: Case, actor, event: str, now, detail=None, *, from_state=None,
                   to_state: str) -> None:
    """A history row for a step on a record of the case (its states are that record's, not the case's)."""
    _history(session, case, actor, event, from_state, to_state, now, detail)


def touch(case: Case, now: datetime) -> None:
    """Move the case's version (and updated_at) with a step that changes none of its own columns.

    Marked as changed even when `now` equals the stored time, so that the UPDATE, and with it the version
    check and the new version, always happens.
    """
    case.updated_at = now
    flag_modified(case, "updated_at")


def flush_or_stale(session: Session, case: Case | None = None) -> None:
    """Flush; a row that changed under us becomes StaleVersion (nothing of this action is kept)."""
    try:
        session.flush()
    except StaleDataError:
        current = None
        if case is not None:
            session.rollback()
            current = session.scalar(select(Case.version).where(Case.id == case.id))
        raise StaleVersion(current) from None


# --- opening a case -----------------------------------------------------------------------------


EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def birth_date_problem(value: date, today: date) -> str | None:
    """What is wrong with a birth date, if anything: in the future, or before anyone now living was born."""
    if value > today:
        return "生年月日が未来の日付になっています。"
    if value < EARLIEST_BIRTH_DATE:
        return "生年月日が古すぎます。1900年（明治33年）1月1日以降の日付を入力してください。"
    return None


UNKNOWN_SEX = "性別「{value}」はコード表にありません。"


def validate_intake(fields: dict, today: date) -> dict[str, list[str]]:
    """Check an intake's plain values against the code lists; return errors by field name."""
    errors: dict[str, list[str]] = {}
    person = fields.get("person") or {}
    if not (person.get("name") or "").strip():
        errors["person.name"] = [REQUIRED]
    if person.get("area") not in (None, "") and person["area"] not in vocab.codes("areas"):
        errors["person.area"] = [f"「{person['area']}」という圏域はありません。"]
    if person.get("sex") not in (None, "") and person["sex"] not in vocab.codes("sexes"):
        errors["person.sex"] = [UNKNOWN_SEX.format(value=person["sex"])]
    bd = person.get("birth_date")
    if bd not in (None, ""):
        if not isinstance(bd, date):
            try:
                bd = date.fromisoformat(str(bd))
                person["birth_date"] = bd
            except ValueError:
                errors["person.birth_date"] = ["生年月日は YYYY-MM-DD の形で入力してください。"]
                bd = None
        problem = birth_date_problem(bd, today) if bd is not None else None
        if problem:
            errors["person.birth_date"] = [problem]
    cats = fields.get("categories") or []
    if not cats:
        errors["categories"] = ["課題の分類を1つ以上選んでください。"]
    unknown = [c for c in cats if c not in vocab.codes("issue_categories")]
    if unknown:
        errors["categories"] = [f"「{c}」という分類はありません。" for c in unknown]
    primary = fields.get("primary_category")
    if primary and primary not in cats:
        errors["primary_category"] = ["主な分類は選んだ分類の中から選んでください。"]
    if not (fields.get("summary") or "").strip():
        errors["summary"] = [REQUIRED]
    _choice(errors, fields, "source", "sources")
    _choice(errors, fields, "urgency", "urgencies")
    return errors


def open_case(session: Session, actor: User, fields: dict[str, Any], *, now: datetime | None = None,
              client=None, remote_addr: str | None = None, route: bool = True) -> Case:
    """Record a consultation (相談受付) at any window; route it by the rules in force.

    `fields`: person {name, name_kana, sex, birth_date, area, resident_id, phone, address}, household
    [{relationship, name, birth_year, note}], categories [codes], primary_category, summary, source,
    urgency, consent_to_share, and for referrals referrer {…} and external_ref.
    """
    now = now or utcnow()
    fields = dict(fields)
    fields.setdefault("urgency", "normal")
    fields.setdefault("source", "window")
    if client is None and (actor is None or not actor.active or actor.role == "admin"):
        raise PermissionDenied("相談を受け付けられるのは職員だけです。")
    errors = validate_intake(fields, now.astimezone(calendar.JST).date())
    if errors:
        raise ValidationFailed(errors)
    p = fields["person"]
    person = Person(
        name=p["name"].strip(), name_kana=p.get("name_kana"), sex=p.get("sex"), birth_date=p.get("birth_date"),
        area=p.get("area") or None, resident_id=p.get("resident_id"), phone=p.get("phone"),
        address=p.get("address"), search_key=fold_for_search(p["name"], p.get("name_kana")),
    )
    cats = list(dict.fromkeys(fields["categories"]))
    primary = fields.get("primary_category") or cats[0]
    case = Case(
        case_number=next_case_number(session, now), person=person, summary=fields["summary"].strip(),
        source=fields["source"], urgency=fields["urgency"], state="intake",
        consent_to_share=bool(fields.get("consent_to_share")), opened_at=now, updated_at=now,
        created_by_id=getattr(actor, "id", None),
        created_department_id=getattr(actor, "department_id", None),
        referral_client_id=getattr(client, "id", None), external_ref=fields.get("external_ref"),
        referrer=fields.get("referrer"), business_categories=["comprehensive"],
        categories=[CaseCategory(code=c, primary=(c == primary), position=i) for i, c in enumerate(cats)],
        household=[
            HouseholdMember(relationship_label=m.get("relationship") or "不明", name=m.get("name"),
                            birth_year=m.get("birth_year"), note=m.get("note"))
            for m in fields.get("household") or []
        ],
        # A new case has no sheet yet: known here, so that routing it does not ask the database.
        handoffs=[],
    )
    session.add(case)
    session.flush()
    _history(session, case, actor, "open", None, "intake", now, {"source": case.source})
    audit.record(session, actor=actor, client=client, action="case.open", object_type="case",
                 object_id=case.id, case_id=case.id, remote_addr=remote_addr, at=now)
    if route:
        from engine import routing

        routing.route_new_case(session, case, actor, now=now, client=client)
    session.flush()
    return case


# --- firing events ------------------------------------------------------------------------------


@dataclass
class EventContext:
    """What the guards and the apply step of one event see."""

    session: Session
    actor: User
    case: Case
    event: str
    now: datetime
    fields: dict[str, Any]
    remote_addr: str | None = None
    client: Any = None
    handoff: Handoff | None = None
    target_department: Department | None = None
    notify: list[Department] | None = None  # send_handoff: departments also told of the case
    members: list[dict] | None = None
    agencies: list[Department] = field(default_factory=list)
    roles: list[dict] = field(default_factory=list)
    main_department: Department | None = None
    plan: Plan | None = None
    history_detail: dict[str, Any] = field(default_factory=dict)
    # The actor's relations to the case as the request found it (engine.access.relations), worked out
    # once: every guard about who may act judges the actor by them, before the event changes anything.
    rel: frozenset[str] | None = None

    @property
    def today(self) -> date:
        return self.now.astimezone(calendar.JST).date()

    def on_state_change(self, event: str, source: str, dest: str, row) -> None:
        """Called by the machine's hook after the state changed: append the history row."""
        handoff = row if isinstance(row, Handoff) else self.handoff
        _history(self.session, self.case, self.actor, event, source, dest, self.now,
                 self.history_detail if row is self.case else {},
                 handoff_id=handoff.id if handoff is not None else None)


def _prepare_send_handoff(ctx: EventContext) -> None:
    if _blank(ctx.fields.get("summary")) and access.sight_of(ctx.rel or frozenset()) < access.Sight.CONTENT:
        # A sender who may not read the case (an FM sending on a case that came back) cannot write its
        # summary: the case's own summary travels on the sheet, as with an FM's 振り替え.
        ctx.fields["summary"] = ctx.case.summary
    _require(ctx.fields, "to_department", "reason", "summary")
    ctx.target_department = department_by_code(ctx.session, ctx.fields["to_department"])
    if ctx.target_department is None:
        raise ValidationFailed({"to_department": [f"「{ctx.fields['to_department']}」という部署はありません。"]})
    if any(not h.primary and h.state == "sent" and h.to_department_id == ctx.target_department.id
           for h in ctx.case.handoffs):
        # One department, one sheet to answer at a time: the join request waits for it already.
        raise ValidationFailed({"to_department": [
            f"{ctx.target_department.name}には参加依頼を送付中です。参加依頼を取り下げてから、つなぐシートを送ってください。"]})
    ctx.history_detail = {"to_department": ctx.target_department.code}
    if ctx.fields.get("notify"):
        codes = list(dict.fromkeys(ctx.fields["notify"]))
        found = departments_by_codes(ctx.session, codes)
        unknown = [c for c in codes if found.get(c) is None or not found[c].active]
        if unknown:
            raise ValidationFailed({"notify": [f"「{c}」という部署はありません。" for c in unknown]})
        ctx.notify = [found[c] for c in codes if found[c].id != ctx.target_department.id]
        ctx.history_detail["notify"] = [d.code for d in ctx.notify]
    from engine import routing_override

    routing_override.check_send(ctx)


def _apply_send_handoff(ctx: EventContext) -> None:
    ctx.handoff = send_handoff_record(ctx.session, ctx.actor, ctx.case, ctx.target_department,
                                      reason=ctx.fields["reason"], summary=ctx.fields["summary"],
                                      now=ctx.now, primary=True)
    # The case is on its way: what said it waited for a sheet (未振り分け, a 返送) is done; if the new sheet
    # waits in turn, the scan says so.
    alerts.resolve_open(ctx.session, case_id=ctx.case.id, kinds=("unrouted", "handoff_declined"), actor=ctx.actor,
                        note=f"{ctx.target_department.name}につなぐシートを送付", now=ctx.now)
    if ctx.notify:
        from engine import notices

        # A rule's reason is the rule's own text; a person's つなぐ理由 may describe the person, and a
        # notified department reads nothing of the case: it is told only where the sheet went.
        reason = ctx.fields.get("notify_reason") or (
            f"{ctx.target_department.name}につなぐシートが送られ、あなたの部署が通知先に指定されました。")
        notices.notify(ctx.session, ctx.actor, ctx.case, ctx.notify, reason=reason, now=ctx.now)
    from engine import routing_override

    routing_override.record_send(ctx)


def send_handoff_record(session: Session, actor, case: Case, target: Department, *, reason: str,
                        summary: str, now: datetime, primary: bool) -> Handoff:
    """Write the つなぐシート row with its due and escalation times from the stall policy."""
    from engine import routing

    due_at, escalate_at = routing.handoff_deadlines(session, now, case.urgency)
    handoff = Handoff(
        case=case, primary=primary, state="sent", from_department_id=getattr(actor, "department_id", None),
        to_department_id=target.id, sender_id=getattr(actor, "id", None), reason=reason, summary=summary,
        urgency=case.urgency, sent_at=now, due_at=due_at, escalate_at=escalate_at,
    )
    session.add(handoff)
    return handoff


def _prepare_handoff_answer(ctx: EventContext) -> None:
    ctx.handoff = ctx.case.open_primary_handoff
    if ctx.event == "decline_handoff":
        _require(ctx.fields, "reason")


def _apply_accept_handoff(ctx: EventContext) -> None:
    h = ctx.handoff
    states.fire_handoff_event(h, "accept", ctx)
    h.accepted_at = ctx.now
    h.accepted_by_id = ctx.actor.id
    ctx.case.owning_department_id = h.to_department_id
    if ctx.case.accepted_at is None:
        ctx.case.accepted_at = ctx.now
    # Written (and the sheet's row held) before its alerts are resolved: a stall scan running now either
    # finds the sheet accepted, or raised its alert first and this resolves it; none stays open.
    flush_or_stale(ctx.session, ctx.case)
    alerts.resolve_open(ctx.session, case_id=ctx.case.id, handoff_id=h.id,
                        kinds=("handoff_stalled", "handoff_escalated", "unrouted", "handoff_declined"),
                        actor=ctx.actor, note="受理により解決", now=ctx.now)


def _returned_to(session: Session, case: Case, h: Handoff) -> int | None:
    """The department a returned sheet's alert goes to: the one that sent it, unless an FM sent it (from the
    dashboard or the case page) or the rules did (a referral routed on arrival: no sending department) —
    then the department that holds the case back in 受付, which must send it on (the desk, for a referral);
    the FM sees every alert on the dashboard in any case."""
    sender = session.get(User, h.sender_id) if h.sender_id is not None else None
    if h.from_department_id is not None and (sender is None or sender.role != "fm"):
        return h.from_department_id
    desk = department_by_code(session, access.DESK_CODE)
    return case.reopened_department_id or case.created_department_id or (desk.id if desk else None)


def _apply_decline_handoff(ctx: EventContext) -> None:
    h = ctx.handoff
    states.fire_handoff_event(h, "decline", ctx)
    h.declined_at = ctx.now
    h.declined_by_id = ctx.actor.id
    h.decline_reason = ctx.fields["reason"]
    alerts.resolve_open(ctx.session, handoff_id=h.id, kinds=("handoff_stalled", "handoff_escalated"),
                        actor=ctx.actor, note="返送により解決", now=ctx.now)
    to_name = ctx.session.get(Department, h.to_department_id).name
    alerts.raise_alert(
        ctx.session, kind="handoff_declined", case_id=ctx.case.id, handoff_id=h.id,
        department_id=_returned_to(ctx.session, ctx.case, h),
        message=f"{to_name}がつなぐシートを返送しました: {h.decline_reason}", now=ctx.now,
    )


# Who may sit in a meeting: staff and FMs. An administrator runs the system and reads no case content.
MEETING_MEMBER_ROLES = ("staff", "fm")
NOT_A_MEETING_MEMBER = "「{login}」は管理者のため、会議の構成員にできません。"


def _prepare_convene(ctx: EventContext) -> None:
    raw = ctx.fields.get("members")
    if not raw:
        raise MissingField({"members": ["構成員を1人以上指定してください。"]})
    errors: dict[str, list[str]] = {}
    members = [{"user": ctx.actor, "acknowledged": True, "secretariat": True}]
    for i, m in enumerate(raw):
        login = m.get("user") if isinstance(m, dict) else m
        user = ctx.session.scalar(select(User).where(User.login == login, User.active.is_(True)))
        if user is None:
            errors.setdefault(f"members.{i}.user", []).append(f"「{login}」という職員はいません。")
            continue
        if user.role not in MEETING_MEMBER_ROLES:
            errors.setdefault(f"members.{i}.user", []).append(NOT_A_MEETING_MEMBER.format(login=login))
            continue
        if user.id == ctx.actor.id:
            continue
        if any(other["user"].id == user.id for other in members):
            errors.setdefault(f"members.{i}.user", []).append(f"「{login}」が2回以上指定されています。")
            continue
        members.append({"user": user, "acknowledged": bool(isinstance(m, dict) and m.get("acknowledged")),
                        "secretariat": False})
    # A 支援会議 is recorded once it has been held: a time still to come is refused.
    _as_time(errors, ctx.fields, "held_at", not_after=ctx.now)
    not_before_opening(errors, ctx.fields, "held_at", ctx.case, "開催日", grace_days=RECORDED_LATE_DAYS)
    if errors:
        raise ValidationFailed(errors)
    ctx.members = members


def _apply_convene(ctx: EventContext) -> None:
    meeting = Meeting(
        kind="support_meeting", case_id=ctx.case.id, held_at=ctx.fields.get("held_at") or ctx.now,
        convenor_id=ctx.actor.id, secretariat_department_id=ctx.actor.department_id,
        minutes=ctx.fields.get("minutes"), decisions=ctx.fields.get("decisions"),
        members=[MeetingMember(user_id=m["user"].id, department_id=m["user"].department_id,
                               secretariat=m["secretariat"],
                               acknowledged_at=ctx.now if m["acknowledged"] else None)
                 for m in ctx.members],
        discussed_cases=[MeetingCase(case_id=ctx.case.id)],
    )
    ctx.session.add(meeting)
    if ctx.case.fm_id is None:
        ctx.case.fm_id = ctx.actor.id
    _add_business_category(ctx.case, "multi_agency")
    # The FM has taken the case up in a 支援会議: the 多機関協働 candidate alert has done its work.
    alerts.resolve_open(ctx.session, case_id=ctx.case.id, kinds=("multi_agency_candidate",), actor=ctx.actor,
                        note="支援会議の開催により解決", now=ctx.now)


def _add_business_category(case: Case, code: str) -> None:
    if code not in (case.business_categories or []):
        case.business_categories = [*(case.business_categories or []), code]


def _prepare_consent(ctx: EventContext) -> None:
    f = ctx.fields
    if ctx.event == "record_consent":
        _require(f, "given_by", "method", "agencies")
    else:
        _require(f, "given_by")
    errors: dict[str, list[str]] = {}
    _choice(errors, f, "method", "consent_methods", required=ctx.event == "record_consent")
    _as_date(errors, f, "obtained_on", not_after=ctx.today)
    # A consent is asked for about this consultation: the referring agency may have asked shortly before the
    # case was recorded, but a date long before it (a mistyped year) is refused, as is a withdrawal or
    # refusal dated before the consent it ends was obtained.
    not_before_opening(errors, f, "obtained_on", ctx.case,
                       "同意日" if ctx.event == "record_consent" else "確認日", grace_days=RECORDED_LATE_DAYS)
    in_force = access.current_given_consent(ctx.session, ctx.case.id) if ctx.event != "record_consent" else None
    obtained = f.get("obtained_on")
    if ("obtained_on" not in errors and in_force is not None and isinstance(obtained, date)
            and obtained < in_force.obtained_on):
        errors["obtained_on"] = [f"確認日は、いまの同意の同意日（{calendar.wareki(in_force.obtained_on)}）以降の日付に"
                                 "してください。"]
    if ctx.event == "record_consent":
        ctx.agencies = _departments(ctx.session, errors, "agencies", f.get("agencies"))
    if errors:
        raise ValidationFailed(errors)


def _apply_consent(ctx: EventContext) -> None:
    status = {"record_consent": "given", "refuse_consent": "refused", "withdraw_consent": "withdrawn"}[ctx.event]
    # A refusal asked for while a given consent was in force (a 支援会議 met again from 伴走支援) ends that
    # consent as a withdrawal does.
    previous = access.current_given_consent(ctx.session, ctx.case.id)
    ends_consent = status != "given" and previous is not None
    consent = Consent(
        case_id=ctx.case.id, status=status, given_by=ctx.fields["given_by"], method=ctx.fields.get("method"),
        obtained_on=ctx.fields.get("obtained_on") or ctx.today, note=ctx.fields.get("note"),
        recorded_by_id=ctx.actor.id, recorded_at=ctx.now,
        agencies=[ConsentAgency(department_id=d.id) for d in ctx.agencies],
    )
    ctx.session.add(consent)
    if status == "given":
        ctx.case.consent_to_share = True
    else:
        ctx.case.consent_to_share = False
    if status == "withdrawn" or ends_consent:
        for plan in ctx.session.scalars(select(Plan).where(Plan.case_id == ctx.case.id, Plan.status == "active")):
            plan.status = "ended"
        _lapse_joins_under_consent(ctx)
    elif status == "given" and previous is not None:
        # Recorded anew, perhaps narrower: a department asked under the old one and left out now leaves.
        _lapse_joins_under_consent(ctx, keep={d.id for d in ctx.agencies})


def _lapse_joins_under_consent(ctx: EventContext, keep: set[int] | None = None) -> None:
    """Sharing narrows again (DESIGN.md): a department asked to join while the consent now ended was in
    force took part on its strength, so its join ends (the sheet `withdrawn`, as at closure) and the case
    leaves its sight. A department that joined before the consent, that owns the case, or (for a consent
    recorded anew) that the new consent covers (`keep`), stays."""
    s = ctx.session
    given_since = None
    for c in s.scalars(select(Consent).where(Consent.case_id == ctx.case.id)
                       .order_by(Consent.recorded_at, Consent.id)):
        if c.status != "given":
            given_since = None
        elif given_since is None and c.id is not None:
            given_since = c.recorded_at
    if given_since is None:
        return
    lapsed = []
    for h in ctx.case.handoffs:
        if (not h.primary and h.state in ("sent", "accepted") and h.sent_at >= given_since
                and h.to_department_id != ctx.case.owning_department_id
                and (keep is None or h.to_department_id not in keep)):
            states.fire_handoff_event(h, "lapse", ctx)
            h.withdrawn_at = ctx.now
            lapsed.append(h)
    for h in lapsed:
        alerts.resolve_open(s, handoff_id=h.id, actor=ctx.actor, note="同意の撤回・変更により参加終了", now=ctx.now)


def _prepare_plan(ctx: EventContext) -> None:
    f = ctx.fields
    _require(f, "goals", "roles", "main_department", "next_evaluation_date")
    errors: dict[str, list[str]] = {}
    _as_date(errors, f, "next_evaluation_date")
    evaluation_within_horizon(errors, f, "next_evaluation_date", ctx.today)
    _as_date(errors, f, "decided_on", not_after=ctx.today)
    not_before_opening(errors, f, "decided_on", ctx.case, "支援決定日")
    roles = []
    if not isinstance(f["roles"], list) or not all(isinstance(r, dict) for r in f["roles"]):
        raise ValidationFailed({"roles": ["役割分担は {department, role} の一覧で指定してください。"]})
    wanted = [r.get("department") for r in f["roles"]] + [f["main_department"]]
    departments_by_codes(ctx.session, [c for c in wanted if isinstance(c, str)])
    for i, r in enumerate(f["roles"]):
        dept = department_by_code(ctx.session, r.get("department"))
        if dept is None:
            errors.setdefault(f"roles.{i}.department", []).append(f"「{r.get('department')}」という機関はありません。")
        elif not (r.get("role") or "").strip():
            errors.setdefault(f"roles.{i}.role", []).append(REQUIRED)
        elif any(other["department"].id == dept.id for other in roles):
            errors.setdefault(f"roles.{i}.department", []).append(
                f"{dept.name}の役割はすでに指定されています。1つの機関の役割は1行にまとめてください。")
        else:
            roles.append({"department": dept, "role": r["role"].strip()})
    ctx.main_department = department_by_code(ctx.session, f["main_department"])
    if ctx.main_department is None:
        errors.setdefault("main_department", []).append(f"「{f['main_department']}」という機関はありません。")
    given = f.get("business_categories") or []
    for i, code in enumerate(given):
        if code not in vocab.codes("business_categories"):
            errors.setdefault("business_categories", []).append(f"「{code}」という事業区分はありません。")
        elif code in given[:i]:
            errors.setdefault("business_categories", []).append(f"「{code}」が2回以上指定されています。")
    if errors:
        raise ValidationFailed(errors)
    ctx.roles = roles


def _apply_plan(ctx: EventContext) -> None:
    s = ctx.session
    earlier = s.scalars(select(Plan).where(Plan.case_id == ctx.case.id)).all()
    for plan in earlier:
        if plan.status == "active":
            plan.status = "superseded"
            plan.revised_at = ctx.now
    meeting = Meeting(kind="layered_meeting", case_id=ctx.case.id, held_at=ctx.now, convenor_id=ctx.actor.id,
                      secretariat_department_id=ctx.actor.department_id, minutes=ctx.fields.get("minutes"),
                      decisions="支援プランを決定", members=[MeetingMember(
                          user_id=ctx.actor.id, department_id=ctx.actor.department_id, secretariat=True,
                          acknowledged_at=ctx.now)],
                      discussed_cases=[MeetingCase(case_id=ctx.case.id)])
    s.add(meeting)
    plan = Plan(
        case_id=ctx.case.id, number=max((p.number for p in earlier), default=0) + 1, status="active",
        goals=ctx.fields["goals"], main_department_id=ctx.main_department.id,
        next_evaluation_date=ctx.fields["next_evaluation_date"], no_contact_since=ctx.today,
        business_categories=ctx.fields.get("business_categories") or [], meeting=meeting,
        decided_on=ctx.fields.get("decided_on") or ctx.today, created_by_id=ctx.actor.id, created_at=ctx.now,
        roles=[PlanRole(department_id=r["department"].id, role=r["role"]) for r in ctx.roles],
    )
    s.add(plan)
    ctx.case.owning_department_id = ctx.main_department.id
    if ctx.case.support_decision_date is None:  # the first plan since the case was opened (or reopened)
        ctx.case.support_decision_date = plan.decided_on
    for code in plan.business_categories:
        _add_business_category(ctx.case, code)


def active_plan(session: Session, case_id: int) -> Plan | None:
    return session.scalars(select(Plan).where(Plan.case_id == case_id, Plan.status == "active")).first()


def _prepare_evaluate(ctx: EventContext) -> None:
    f = ctx.fields
    _require(f, "decision", "goals_met")
    # What the decision needs is missing (422 missing-field, as for any event), not wrong.
    if f.get("decision") == "continue" and _blank(f.get("next_evaluation_date")):
        raise MissingField({"next_evaluation_date": ["継続する場合は次回評価日が必須です。"]})
    if f.get("decision") == "close" and _blank(f.get("close_reason")):
        raise MissingField({"close_reason": ["終結する場合は終結の理由が必須です。"]})
    errors: dict[str, list[str]] = {}
    _choice(errors, f, "decision", "evaluation_decisions")
    if f.get("goals_met") not in vocab.codes("goals_met"):
        errors.setdefault("goals_met", []).append(
            "目標の達成度は " + "・".join(f"{label}（{code}）" for code, label in vocab.codes("goals_met").items())
            + " から選んでください。")
    if f.get("decision") == "close":
        _choice(errors, f, "close_reason", "close_reasons")
    elif not _blank(f.get("close_reason")):
        errors.setdefault("close_reason", []).append("終結の理由は、終結するときだけ指定してください。")
    _as_date(errors, f, "next_evaluation_date")
    evaluation_within_horizon(errors, f, "next_evaluation_date", ctx.today)
    _as_date(errors, f, "evaluated_on", not_after=ctx.today)
    ctx.plan = active_plan(ctx.session, ctx.case.id)
    adopted_on = (ctx.plan.decided_on or ctx.plan.created_at.astimezone(calendar.JST).date()) \
        if ctx.plan is not None else None
    if "evaluated_on" not in errors and isinstance(f.get("evaluated_on"), date) and adopted_on is not None \
            and f["evaluated_on"] < adopted_on:
        errors["evaluated_on"] = [f"評価日はプランを決定した日（{calendar.wareki(adopted_on)}）以降の日付にしてください。"]
    if errors:
        raise ValidationFailed(errors)
    ctx.history_detail["decision"] = f["decision"]
    if f["decision"] == "close":
        ctx.history_detail["close_reason"] = f["close_reason"]


def _apply_evaluate(ctx: EventContext) -> None:
    f = ctx.fields
    ev = Evaluation(case_id=ctx.case.id, plan_id=ctx.plan.id, evaluated_on=f.get("evaluated_on") or ctx.today,
                    goals_met=f["goals_met"], changes=f.get("changes"), decision=f["decision"],
                    next_evaluation_date=f.get("next_evaluation_date"), evaluator_id=ctx.actor.id,
                    created_at=ctx.now)
    ctx.session.add(ev)
    ctx.plan.evaluated_at = ctx.now
    if f["decision"] == "close":
        _close_fields(ctx, f["close_reason"], f.get("changes"))
    if f["decision"] == "continue":
        ctx.plan.next_evaluation_date = f["next_evaluation_date"]
    alerts.resolve_open(ctx.session, case_id=ctx.case.id, kinds=("evaluation_overdue",), actor=ctx.actor,
                        note="評価により解決", now=ctx.now)


def _prepare_close(ctx: EventContext) -> None:
    _require(ctx.fields, "close_reason")
    errors: dict[str, list[str]] = {}
    _choice(errors, ctx.fields, "close_reason", "close_reasons")
    if errors:
        raise ValidationFailed(errors)
    ctx.history_detail["close_reason"] = ctx.fields["close_reason"]
    if ctx.fields.get("note"):  # kept with the closure: a reopen clears the case's own close_note
        ctx.history_detail["note"] = ctx.fields["note"]


def _close_fields(ctx: EventContext, reason: str, note: str | None) -> None:
    case = ctx.case
    case.closed_at = ctx.now
    case.close_reason = reason
    case.close_note = note
    for h in case.handoffs:
        if h.state == "sent":
            states.fire_handoff_event(h, "cancel", ctx)
            h.withdrawn_at = ctx.now
    for plan in ctx.session.scalars(select(Plan).where(Plan.case_id == case.id, Plan.status == "active")):
        plan.status = "ended"
    alerts.resolve_open(ctx.session, case_id=case.id, actor=ctx.actor, note="終結により解決", now=ctx.now)
    from engine import join_offers, participation

    join_offers.lapse_open(ctx.session, case.id, ctx.now)
    participation.end_open_matches(ctx.session, case, ctx.today)


def _apply_close(ctx: EventContext) -> None:
    _close_fields(ctx, ctx.fields["close_reason"], ctx.fields.get("note"))


def _prepare_reopen(ctx: EventContext) -> None:
    _require(ctx.fields, "reason")
    ctx.history_detail["reason"] = ctx.fields["reason"]


def _apply_reopen(ctx: EventContext) -> None:
    # A new round of support gets its own 支援決定 (each plan keeps the day it was decided).
    ctx.case.support_decision_date = None
    ctx.case.closed_at = None
    ctx.case.close_reason = None
    ctx.case.close_note = None
    ctx.case.owning_department_id = None
    # Staff who reopen a case hold it in 受付 for their department (with the recording window and the desk),
    # so that they can send it on or close it again. An FM routes any case already.
    actor = ctx.actor
    ctx.case.reopened_department_id = (actor.department_id if getattr(actor, "role", None) == "staff"
                                       else None)
    # The referrer reads when its referral was accepted: this round has no acceptance yet (history keeps
    # the earlier one).
    ctx.case.accepted_at = None
    # Back in 受付 with no owner, the case must not wait unseen: the department holding it (or the desk) is
    # told until a department accepts it or it is closed again. No typed reason: the alert is metadata.
    desk = department_by_code(ctx.session, access.DESK_CODE)
    holder = ctx.case.reopened_department_id or (desk.id if desk else None)
    alerts.raise_alert(ctx.session, kind="unrouted", case_id=ctx.case.id, department_id=holder, now=ctx.now,
                       message="終結したケースが再開されました。送付先を決めてつなぐシートを送るか、再び終結してください。")


def _note_only(ctx: EventContext) -> None:
    if ctx.fields.get("note"):
        ctx.history_detail["note"] = ctx.fields["note"]


def _nothing(ctx: EventContext) -> None:
    pass


# event → (prepare, apply, fields with their meaning: shown in the OpenAPI document and the forms)
EVENTS: dict[str, tuple] = {
    "send_handoff": (_prepare_send_handoff, _apply_send_handoff,
                     {"to_department": "送付先の部署コード（必須）", "reason": "つなぐ理由（必須）",
                      "summary": "相談内容の要約（ケースの内容を閲覧できる職員が送る時必須。閲覧できない送り手が省略したときは、ケースに記録された要約が載る）",
                      "override_reason": "振り分けルールの提案と異なる部署へ送る理由（省略したときは、つなぐ理由をその理由として記録）"}),
    "accept_handoff": (_prepare_handoff_answer, _apply_accept_handoff, {}),
    "decline_handoff": (_prepare_handoff_answer, _apply_decline_handoff, {"reason": "返送の理由（必須）"}),
    "convene_support_meeting": (_prepare_convene, _apply_convene,
                                {"members": "構成員 [{user: ログインID, acknowledged: 守秘義務確認済みか}]（必須）",
                                 "held_at": "開催日時（ISO 8601）", "minutes": "記録", "decisions": "決定事項"}),
    "seek_consent": (_note_only, _nothing, {"note": "メモ"}),
    "record_consent": (_prepare_consent, _apply_consent,
                       {"given_by": "同意した人（本人・代理人）（必須）", "method": "written / oral（必須）",
                        "obtained_on": "同意日（YYYY-MM-DD）", "agencies": "共有先の機関コードの一覧（必須）",
                        "note": "メモ"}),
    "refuse_consent": (_prepare_consent, _apply_consent,
                       {"given_by": "意思を示した人（必須）", "method": "written / oral", "note": "メモ"}),
    "adopt_plan": (_prepare_plan, _apply_plan,
                   {"goals": "本人の言葉による目標（必須）", "roles": "[{department, role}]（必須）",
                    "main_department": "主担当の機関コード（必須）", "next_evaluation_date": "次回評価日（必須）",
                   "decided_on": "支援決定日（重層的支援会議で決定した日。省略時は今日）",
                    "business_categories": "事業区分コードの一覧", "minutes": "重層的支援会議の記録"}),
    "evaluate": (_prepare_evaluate, _apply_evaluate,
                 {"goals_met": "目標の達成度コード（必須、categories.yaml の goals_met）", "changes": "変化・状況",
                  "decision": "continue / replan / suspend / close（必須）",
                  "next_evaluation_date": "次回評価日（継続時必須）", "close_reason": "終結理由（終結時必須）",
                  "evaluated_on": "評価日"}),
    "resume": (_note_only, _nothing, {"note": "メモ"}),
    "withdraw_consent": (_prepare_consent, _apply_consent,
                         {"given_by": "撤回した人（必須）", "method": "written / oral", "note": "メモ"}),
    "close": (_prepare_close, _apply_close, {"close_reason": "終結理由コード（必須）", "note": "メモ"}),
    "reopen": (_prepare_reopen, _apply_reopen, {"reason": "再開の理由（必須）"}),
}


CASE_NOT_FOUND = "指定されたケースは見つかりません。"


def load_case(session: Session, actor, case_id: int, *, for_update: bool = False,
              min_sight: access.Sight = access.Sight.METADATA, not_found: str = CASE_NOT_FOUND) -> Case:
    """Load a case the actor may see; NotFound otherwise (the actor may not learn that it exists).

    Reached through one of its records (a sheet, a meeting), the refusal names that record (`not_found`),
    as it would if the record did not exist: the answer must not tell an existing record from a missing one.
    """
    return load_case_with_relations(session, actor, case_id, for_update=for_update, min_sight=min_sight,
                                    not_found=not_found)[0]


def load_case_with_relations(session: Session, actor, case_id: int, *, for_update: bool = False,
                             min_sight: access.Sight = access.Sight.METADATA,
                             not_found: str = CASE_NOT_FOUND) -> tuple[Case, frozenset[str]]:
    """load_case, and the actor's relations to the case that decided it (for the checks that follow)."""
    case = session.get(Case, case_id, with_for_update=for_update) if for_update else session.get(Case, case_id)
    rel = access.relations(session, actor, case) if case is not None else frozenset()
    if case is None or access.sight_of(rel) < min_sight:
        raise NotFound(not_found)
    return case, rel


def fire_event(session: Session, actor: User, case_id: int, event: str, *, version: int | None,
               fields: dict[str, Any] | None = None, now: datetime | None = None,
               remote_addr: str | None = None, client=None, case_values: dict[str, Any] | None = None) -> Case:
    """Fire one event of the case machine: the state change, its records, history and audit, flushed.

    Order of refusals: unknown event, stale version, event not allowed now, missing or wrong fields,
    guards (who may act, then the event's conditions). `case_values` are set on the case row with the
    state change (the engine's own use: routing records its decision that way; never caller input).
    """
    now = now or utcnow()
    case, rel = load_case_with_relations(session, actor, case_id)
    if event not in states.CASE_EVENT_LABELS:
        states.check_event(case, event)
    if version is None:
        raise MissingField({"version": ["読み込んだときのバージョンを指定してください。"]})
    if case.version != version:
        raise StaleVersion(case.version, version)
    states.check_event(case, event)
    prepare, apply, _ = EVENTS[event]
    ctx = EventContext(session=session, actor=actor, case=case, event=event, now=now,
                       fields=dict(fields or {}), remote_addr=remote_addr, client=client, rel=rel)
    before = case.state
    try:
        prepare(ctx)
        with session.no_autoflush:  # the state and the fields it requires reach the row in one UPDATE
            case.updated_at = now
            for key, value in (case_values or {}).items():
                setattr(case, key, value)
            states.fire_case_event(case, event, ctx)
    except (PermissionDenied, GuardRefused, states.EventNotAllowed):
        # Refused on what was read after the case row (its sheets, its meetings): if someone changed the
        # case meanwhile, that is what the caller must hear (409 stale), not a refusal of a case now gone.
        _raise_if_changed(session, case.id, version)
        raise
    with session.no_autoflush:
        apply(ctx)
    flush_or_stale(session, case)
    audit.record(session, actor=actor, client=client, action=f"case.{event}", object_type="case",
                 object_id=case.id, case_id=case.id, remote_addr=remote_addr, at=now,
                 detail={"from": before, "to": case.state})
    from engine import outbox

    outbox.queue_status_change(session, case, event, before, now)
    session.flush()
    return case


def last_change(session: Session, case_id: int) -> tuple[int | None, str | None]:
    """Who made the newest change in the case's history (None for the system), and which event it was."""
    row = session.execute(select(CaseHistory.actor_id, CaseHistory.event).where(CaseHistory.case_id == case_id)
                          .order_by(CaseHistory.id.desc()).limit(1)).first()
    return (row.actor_id, row.event) if row is not None else (None, None)


def _raise_if_changed(session: Session, case_id: int, version: int) -> None:
    """StaleVersion if the case's committed version is no longer `version` (read afresh, not from the
    session's copy)."""
    with session.no_autoflush:  # the refused event's changes are not to be written, even to be read back
        current = session.execute(select(Case.version).where(Case.id == case_id)).scalar()
    if current is not None and current != version:
        raise StaleVersion(current, version)


def allowed_events(session: Session, actor: User, case: Case) -> list[str]:
    """The events the state allows now that `actor` may fire (guards about the actor applied)."""
    rel = access.relations(session, actor, case)
    now = utcnow()

    def ctx_for(event: str) -> EventContext:
        ctx = EventContext(session=session, actor=actor, case=case, event=event, now=now, fields={}, rel=rel)
        if event in ("accept_handoff", "decline_handoff"):
            ctx.handoff = case.open_primary_handoff
        return ctx

    return states.allowed_events_for(case, ctx_for)


# --- records that do not move the case ----------------------------------------------------------


def add_contact_note(session: Session, actor: User, case_id: int, fields: dict[str, Any], *,
                     now: datetime | None = None, remote_addr: str | None = None) -> ContactNote:
    """Add a contact to the 支援経過記録: date, method, what happened.

    Where the note goes follows engine.access.note_meeting_id: the owner, a joined department and a covered
    agency write into the ordinary (consented) track; a 支援会議 member who is none of these writes a record
    of their 支援会議, read only by its members. `fields["meeting_id"]` lets a member mark a note as a record
    of one of their 支援会議 explicitly.
    """
    now = now or utcnow()
    case = load_case(session, actor, case_id)
    rel = access.require(session, actor, case, access.CONTACT_NOTES, access.WRITE)
    if case.state == "closed":
        # The page offers no form on a closed case; one opened before the closure is refused here.
        raise GuardRefused("終結したケースには支援経過を記録できません。記録が必要なときは、ケースを再開してください。",
                           guard="case_open", allowed_events=[])
    errors: dict[str, list[str]] = {}
    fields = dict(fields)
    if not (fields.get("body") or "").strip():
        errors["body"] = [REQUIRED]
    _choice(errors, fields, "method", "contact_methods")
    _choice(errors, fields, "business_category", "business_categories", required=False)
    _as_date(errors, fields, "contact_on", not_after=now.astimezone(calendar.JST).date())
    not_before_opening(errors, fields, "contact_on", case, "接触日", grace_days=RECORDED_LATE_DAYS)
    meeting_id = access.note_meeting_id(session, actor, case, rel)
    if fields.get("meeting_id") not in (None, ""):
        if fields["meeting_id"] not in access.member_meeting_ids(session, actor, case.id):
            errors["meeting_id"] = ["構成員として参加している支援会議を指定してください。"]
        meeting_id = fields["meeting_id"]
    if errors:
        raise ValidationFailed(errors)
    note = ContactNote(case_id=case.id, contact_on=fields.get("contact_on") or now.astimezone(calendar.JST).date(),
                       method=fields["method"], staff_id=actor.id, department_id=actor.department_id,
                       business_category=fields.get("business_category"), body=fields["body"].strip(),
                       meeting_id=meeting_id, created_at=now)
    session.add(note)
    session.flush()
    # Restart the no-contact clock before resolving: a scan holding the plan row waits for us, or we for it.
    session.execute(
        update(Plan).where(Plan.case_id == case.id, Plan.status == "active",
                           (Plan.no_contact_since.is_(None)) | (Plan.no_contact_since < note.contact_on))
        .values(no_contact_since=note.contact_on)
    )
    alerts.resolve_open(session, case_id=case.id, kinds=("no_contact",), actor=actor, note="接触記録により解決",
                        now=now)
    audit.record(session, actor=actor, action="contact_note.add", object_type="contact_note",
                 object_id=note.id, case_id=case.id, remote_addr=remote_addr, at=now,
                 detail={"meeting_id": meeting_id} if meeting_id is not None else None)
    session.flush()
    return note


def acknowledge_secrecy(session: Session, actor: User, meeting_id: int, *, now: datetime | None = None) -> MeetingMember:
    """A member acknowledges the 守秘義務 of a meeting (before reading its records)."""
    now = now or utcnow()
    member = session.scalar(select(MeetingMember).where(MeetingMember.meeting_id == meeting_id,
                                                        MeetingMember.user_id == actor.id))
    if member is None:
        raise NotFound("指定された会議は見つかりません。")
    meeting = session.get(Meeting, meeting_id)
    if member.acknowledged_at is None and not access.invitation_reaches(session, actor, meeting):
        # A 重層的支援会議's invitation to an agency the consent no longer covers has lapsed.
        load_case(session, actor, meeting.case_id, not_found="指定された会議は見つかりません。")
    if member.acknowledged_at is None:
        # Compare-and-set: of requests racing each other (a double click, two tabs), one acknowledges and
        # writes the audit row; the others find it done.
        done = session.execute(
            update(MeetingMember).where(MeetingMember.id == member.id, MeetingMember.acknowledged_at.is_(None))
            .values(acknowledged_at=now).execution_options(synchronize_session=False)).rowcount
        session.refresh(member)
        if done == 1:
            audit.record(session, actor=actor, action="meeting.acknowledge_secrecy", object_type="meeting",
                         object_id=meeting_id, case_id=meeting.case_id, at=now)
            session.flush()
    return member


def record_case_read(session: Session, actor: User, case: Case, *, what: str = "case",
                     remote_addr: str | None = None, client=None) -> None:
    """Audit a read of a case's content made outside the read models (an export, a print).

    engine.views.case_view and engine.casefile's readers record their reads themselves.
    """
    audit.record(session, actor=actor, client=client, action=f"{what}.read", object_type="case",
                 object_id=case.id, case_id=case.id, remote_addr=remote_addr)


def record_refusal(session: Session, actor, error: EngineError, *, action: str, case_id: int | None = None,
                   remote_addr: str | None = None, client=None, object_type: str | None = None,
                   object_id: int | None = None) -> None:
    """Audit a refused read or write (the refusal itself is the only row such a request leaves).

    For every NotFound and PermissionDenied an engine call raises, the web layer rolls the request's work
    back (`session.rollback()`), calls this with what was attempted (action such as "case.read",
    "plan.read", "case.close"), and commits it (web.db: `g.commit_on_error = True`). Nothing else of the
    refused request is kept. Its detail holds the error code only.
    """
    if object_type is None:
        object_type, object_id = ("case", case_id) if case_id else ("request", None)
    audit.record(session, actor=actor, client=client, action=action, object_type=object_type,
                 object_id=object_id, case_id=case_id, remote_addr=remote_addr, outcome="refused",
                 detail={"code": error.code, "status": error.status})


# The records a URL may name besides a case: (view argument, model, object type in the audit trail).
def _refusal_objects():
    from engine.models import Alert, CaseNotice, JoinOffer, Meeting

    return (("offer_id", JoinOffer, "join_offer"), ("handoff_id", Handoff, "handoff"),
            ("meeting_id", Meeting, "meeting"), ("alert_id", Alert, "alert"), ("notice_id", CaseNotice, "notice"))


def refused_target(session: Session, view_args: dict) -> tuple[int | None, str | None, int | None]:
    """The case a refused request was about, and the record it named: (case id, object type, object id).

    The case is the one the URL names if it exists, else the case of the record the URL names: a refusal
    must reach the trail of the person it concerns (開示請求), and never the trail of a case that did not exist.
    """
    named = view_args.get("case_id", view_args.get("referral_id"))  # a referral's id is its case's
    case_id = named if isinstance(named, int) and session.get(Case, named) is not None else None
    for key, model, kind in _refusal_objects():
        if isinstance(view_args.get(key), int):
            row = session.get(model, view_args[key])
            if case_id is None and row is not None:
                case_id = row.case_id
            return case_id, kind, view_args[key]
    if case_id is None and isinstance(named, int):
        return None, "case", named
    return case_id, None, None


# --- asking another department to join (a handoff that does not move the case) ------------------


def involved_department_ids(case: Case) -> set[int]:
    """The departments already in the case: its owner, and those with a sheet waiting or accepted."""
    ids = {h.to_department_id for h in case.handoffs if h.state in ("sent", "accepted")}
    if case.owning_department_id is not None:
        ids.add(case.owning_department_id)
    return ids


def involved_department_codes(session: Session, case: Case) -> set[str]:
    """involved_department_ids, as department codes (a form's choices)."""
    ids = involved_department_ids(case)
    return set(session.scalars(select(Department.code).where(Department.id.in_(ids)))) if ids else set()


def require_join_target(session: Session, case: Case, target: Department) -> None:
    """The checks on a department asked to join (request_join, and an FM's 振り替え of a join request): not
    one already in the case (involved_department_ids), and within the consent."""
    if target.id in involved_department_ids(case):
        raise ValidationFailed({"to_department": [f"{target.name}は既にこのケースに関わっています。"]})
    require_join_within_consent(session, case, target)


def require_join_within_consent(session: Session, case: Case, target: Department) -> None:
    """With the person's consent in force, the case's content reaches only the agencies it covers: a
    department outside it is not asked to join (by its owner, or by an FM's 振り替え of a join request).
    The 支援会議 is where others are consulted without it."""
    covered = access.consented_department_ids(session, case.id)
    if covered and target.id not in covered:
        raise GuardRefused(f"{target.name}は本人の同意の範囲に含まれていないため、参加を依頼できません。"
                           "同意の範囲を記録し直すか、支援会議で協議してください。", guard="join_within_consent")


def request_join(session: Session, actor: User, case_id: int, *, to_department: str, reason: str,
                 summary: str, version: int | None = None, now: datetime | None = None,
                 remote_addr: str | None = None) -> Handoff:
    """Ask another department to join the case with a つなぐシート of its own (same stall timers).

    The case does not move, but its version does: a form shown before someone else changed the case
    (`version`) is refused as stale, and two requests racing each other are one after the other.
    """
    now = now or utcnow()
    case = load_case(session, actor, case_id)
    access.require(session, actor, case, access.CASE_METADATA, access.WRITE)
    if version is not None and case.version != version:
        raise StaleVersion(case.version, version)
    if case.state == "closed":
        raise states.EventNotAllowed("request_join", case.state, states.CASE_STATE_LABELS[case.state],
                                     [], [], event_label="他部署に参加を依頼する")
    fields = {"to_department": to_department, "reason": reason, "summary": summary}
    _require(fields, "to_department", "reason", "summary")
    target = department_by_code(session, to_department)
    if target is None:
        raise ValidationFailed({"to_department": [f"「{to_department}」という部署はありません。"]})
    require_join_target(session, case, target)
    touch(case, now)  # the case's version moves with the request
    flush_or_stale(session, case)
    handoff = send_handoff_record(session, actor, case, target, reason=reason, summary=summary, now=now,
                                  primary=False)
    session.flush()
    _history(session, case, actor, "handoff.request_join", None, "sent", now,
             {"to_department": target.code}, handoff_id=handoff.id)
    audit.record(session, actor=actor, action="handoff.request_join", object_type="handoff",
                 object_id=handoff.id, case_id=case.id, remote_addr=remote_addr, at=now)
    session.flush()
    return handoff


@dataclass
class HandoffContext:
    """The context of an event on a join handoff."""

    session: Session
    actor: User
    case: Case
    handoff: Handoff
    now: datetime
    fields: dict[str, Any]

    def on_state_change(self, event: str, source: str, dest: str, row) -> None:
        _history(self.session, self.case, self.actor, event, source, dest, self.now,
                 {k: v for k, v in self.fields.items() if k == "reason"}, handoff_id=self.handoff.id)


def may_withdraw_join(session: Session, actor: User, case: Case, handoff: Handoff,
                      rel: frozenset[str] | None = None) -> bool:
    """Whether `actor` may take back a join request: its sender's staff, or an FM who drives the case.

    (An FM reassigning a stalled sheet from the dashboard withdraws it too; that is the dashboard's own act.)
    """
    if actor.department_id == handoff.from_department_id and actor.role != "admin":
        return True
    return actor.role == "fm" and access.may(session, actor, case, access.CASE_METADATA, access.WRITE, rel=rel)


def answer_join(session: Session, actor: User, handoff_id: int, event: str, *, version: int | None = None,
                reason: str | None = None, now: datetime | None = None,
                remote_addr: str | None = None) -> Handoff:
    """Accept, decline or withdraw a join request (a handoff that does not move the case)."""
    now = now or utcnow()
    handoff = session.get(Handoff, handoff_id)
    if handoff is None or handoff.primary:
        raise NotFound("指定されたつなぐシートは見つかりません。")
    try:
        _refuse_if_answered_meanwhile(handoff, actor, event, version)
        case = load_case(session, actor, handoff.case_id, not_found="指定されたつなぐシートは見つかりません。")
    except NotFound:
        # A colleague's answer may have ended this department's sight of the case a moment ago: the sheet
        # was addressed to it, so say it was answered (409), not that it does not exist.
        session.refresh(handoff)
        _refuse_if_answered_meanwhile(handoff, actor, event, version)
        raise
    if version is not None and handoff.version != version:
        raise StaleVersion(handoff.version, version)
    if event == "decline" and not (reason or "").strip():
        raise MissingField({"reason": ["返送の理由を入力してください。"]})
    if event == "withdraw" and not may_withdraw_join(session, actor, case, handoff):
        raise PermissionDenied("参加依頼を取り下げられるのは、依頼した部署の職員と、このケースを担当するFMだけです。",
                               guard="actor_may_withdraw_handoff")
    ctx = HandoffContext(session, actor, case, handoff, now, {"reason": reason} if reason else {})
    states.fire_handoff_event(handoff, event, ctx)
    if event == "accept":
        handoff.accepted_at, handoff.accepted_by_id = now, actor.id
    elif event == "decline":
        handoff.declined_at, handoff.declined_by_id, handoff.decline_reason = now, actor.id, reason
    else:
        handoff.withdrawn_at = now
    # The sheet's new state first: a concurrent answer is refused here (stale), before anything else is
    # written, and the sheet's row is held while its alerts are resolved.
    flush_handoff_or_stale(session, handoff.id)
    alerts.resolve_open(session, handoff_id=handoff.id, kinds=("handoff_stalled", "handoff_escalated"),
                        actor=actor, note="回答により解決", now=now)
    if event == "decline":
        alerts.raise_alert(session, kind="handoff_declined", case_id=case.id, handoff_id=handoff.id,
                           department_id=handoff.from_department_id,
                           message=f"参加依頼が返送されました: {reason}", now=now)
    audit.record(session, actor=actor, action=f"handoff.{event}", object_type="handoff", object_id=handoff.id,
                 case_id=case.id, remote_addr=remote_addr, at=now)
    flush_handoff_or_stale(session, handoff.id)
    return handoff


def _refuse_if_answered_meanwhile(handoff: Handoff, actor: User, event: str, version: int | None) -> None:
    """A join sheet addressed to the actor's department and answered already: StaleVersion (409)."""
    if (event in ("accept", "decline") and handoff.state != "sent"
            and handoff.to_department_id == getattr(actor, "department_id", None)):
        raise StaleVersion(handoff.version, version)


def flush_handoff_or_stale(session: Session, handoff_id: int) -> None:
    """Flush; a sheet that changed under us becomes StaleVersion with its current version (nothing kept)."""
    try:
        session.flush()
    except StaleDataError:
        session.rollback()
        raise StaleVersion(session.scalar(select(Handoff.version).where(Handoff.id == handoff_id))) from None
