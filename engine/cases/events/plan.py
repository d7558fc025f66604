"""The plan stage: adopt_plan (the 重層的支援会議 decides a 支援プラン), evaluate it, resume after a pause.

A plan holds goals in the person's words, a role per agency (each within the consent), the 主担当 (who
owns the case from then on) and the next evaluation date; an evaluation continues it, sends it back to the
重層的支援会議 (再プラン), pauses it (中断) or closes the case.

adopt_plan records the 重層的支援会議 that decided the plan as a meeting of its own: when it was held
(`held_at`; its day is the 支援決定日), the agencies that attended (`attendees`, each within the consent;
the recorder's department, its secretariat, always), its minutes, and the plan. Its audit row names them.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import calendar, vocab
from engine import fields as declare
from engine.access.relations import consented_department_ids
from engine.alerts import alerts
from engine.audit import trail
from engine.cases import discussed
from engine.cases.checks import (
    REQUIRED,
    as_date,
    as_time,
    blank,
    choice,
    evaluation_within_horizon,
    not_before_opening,
    require,
)
from engine.cases.events.closing import close_fields
from engine.cases.events.context import Event, EventContext, note_only, nothing
from engine.cases.kernel import add_business_category
from engine.departments import department_by_code, departments_by_codes
from engine.errors import MissingField, ValidationFailed
from engine.models import Department, Evaluation, Meeting, MeetingAttendee, MeetingCase, MeetingMember, Plan, PlanRole
from engine.sharing import bases, provisions


def _prepare_plan(ctx: EventContext) -> None:
    f = ctx.fields
    require(f, "goals", "roles", "main_department", "next_evaluation_date")
    errors: dict[str, list[str]] = {}
    as_date(errors, f, "next_evaluation_date")
    evaluation_within_horizon(errors, f, "next_evaluation_date", ctx.today)
    as_date(errors, f, "decided_on", not_after=ctx.today)
    not_before_opening(errors, f, "decided_on", ctx.case, "支援決定日")
    as_time(errors, f, "held_at", not_after=ctx.now)
    not_before_opening(errors, f, "held_at", ctx.case, "開催日時")
    _same_day(errors, f)
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
    ctx.discussed = discussed.resolve_or_refuse(ctx.session, ctx.actor, ctx.case, f.get(discussed.FIELD),
                                                kind="layered_meeting", errors=errors)
    ctx.attendees = _attendees(ctx, errors, roles)
    if errors:
        raise ValidationFailed(errors)
    ctx.roles = roles


def _same_day(errors: dict[str, list[str]], f: dict) -> None:
    """The 支援決定日 is the day the 重層的支援会議 was held: given both, they agree."""
    held, decided = f.get("held_at"), f.get("decided_on")
    if "held_at" in errors or "decided_on" in errors or held is None or decided is None:
        return
    if held.astimezone(calendar.JST).date() != decided:
        errors["decided_on"] = [f"支援決定日は重層的支援会議を開いた日（{calendar.wareki(held)}）にしてください。"]


def _attendees(ctx: EventContext, errors: dict[str, list[str]], roles: list[dict]) -> list:
    """The agencies that attended, as given (else those with a role), and the recorder's department first;
    each within the consent of every case the meeting discusses (a 重層的支援会議 meets under it)."""
    given = ctx.fields.get("attendees") or []
    if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
        errors.setdefault("attendees", []).append("出席機関は機関コードの一覧で指定してください。")
        return []
    own = ctx.session.get(Department, ctx.actor.department_id)
    found = [own] if own is not None else []
    if not given:
        return found + [r["department"] for r in roles if r["department"] not in found]
    covered = consented_department_ids(ctx.session, ctx.case.id)
    for other in ctx.discussed:
        covered &= consented_department_ids(ctx.session, other.id)
    outside = []
    for i, code in enumerate(given):
        dept = department_by_code(ctx.session, code)
        if dept is None:
            errors.setdefault("attendees", []).append(f"「{code}」という機関はありません。")
        elif code in given[:i]:
            errors.setdefault("attendees", []).append(f"「{code}」が2回以上指定されています。")
        elif dept in found:
            continue
        elif dept.id not in covered:
            outside.append(dept.name)
        else:
            found.append(dept)
    if outside:
        errors.setdefault("attendees", []).append(
            "本人の同意の範囲に含まれない機関は、重層的支援会議の出席機関にできません: " + "、".join(outside))
    return found


def _apply_plan(ctx: EventContext) -> None:
    s = ctx.session
    earlier = s.scalars(select(Plan).where(Plan.case_id == ctx.case.id)).all()
    for plan in earlier:
        if plan.status == "active":
            plan.status = "superseded"
            plan.revised_at = ctx.now
    held_at = ctx.fields.get("held_at") or ctx.now
    meeting = Meeting(kind="layered_meeting", case_id=ctx.case.id, held_at=held_at, convenor_id=ctx.actor.id,
                      secretariat_department_id=ctx.actor.department_id, minutes=ctx.fields.get("minutes"),
                      decisions="支援プランを決定", members=[MeetingMember(
                          user_id=ctx.actor.id, department_id=ctx.actor.department_id, secretariat=True,
                          acknowledged_at=ctx.now)],
                      attendees=[MeetingAttendee(department_id=d.id) for d in ctx.attendees],
                      discussed_cases=[MeetingCase(case_id=ctx.case.id)])
    s.add(meeting)
    s.flush()
    attending = [d.id for d in ctx.attendees]
    # The attending bodies outside the city receive the person's data on the consent that names them.
    provisions.provide_to_members(s, ctx.actor, ctx.case, meeting, attending, now=ctx.now)
    # The other cases it takes up, each under its own person's consent (engine.cases.discussed); as for its
    # own case, members added later are given the records on the basis each body has (engine.cases.meetings).
    discussed.link(s, ctx.actor, meeting, ctx.discussed, attending, now=ctx.now, remote_addr=ctx.remote_addr)
    decided_on = ctx.fields.get("decided_on") or (held_at.astimezone(calendar.JST).date()
                                                 if ctx.fields.get("held_at") else ctx.today)
    plan = Plan(
        case_id=ctx.case.id, number=max((p.number for p in earlier), default=0) + 1, status="active",
        goals=ctx.fields["goals"], main_department_id=ctx.main_department.id,
        next_evaluation_date=ctx.fields["next_evaluation_date"], no_contact_since=ctx.today,
        business_categories=ctx.fields.get("business_categories") or [], meeting=meeting,
        decided_on=decided_on, created_by_id=ctx.actor.id, created_at=ctx.now,
        roles=[PlanRole(department_id=r["department"].id, role=r["role"]) for r in ctx.roles],
    )
    s.add(plan)
    s.flush()
    trail.record(s, actor=ctx.actor, client=ctx.client, action="meeting.record_layered", object_type="meeting",
                 object_id=meeting.id, case_id=ctx.case.id, remote_addr=ctx.remote_addr, at=ctx.now,
                 detail={"held_at": calendar.iso(held_at), "attendees": [d.code for d in ctx.attendees],
                         "plan_id": plan.id, "plan_number": plan.number})
    # Each role outside the city is the body's part in the plan: given on the consent that names it.
    for r in ctx.roles:
        if r["department"].outside_city:
            provisions.provide(s, ctx.actor, ctx.case, r["department"], "plan_role",
                               bases.require_basis(s, ctx.case, r["department"], "plan_role"), now=ctx.now)
    ctx.case.owning_department_id = ctx.main_department.id
    if ctx.case.support_decision_date is None:  # the first plan since the case was opened (or reopened)
        ctx.case.support_decision_date = plan.decided_on
    for code in plan.business_categories:
        add_business_category(ctx.case, code)


def active_plan(session: Session, case_id: int) -> Plan | None:
    return session.scalars(select(Plan).where(Plan.case_id == case_id, Plan.status == "active")).first()


def _prepare_evaluate(ctx: EventContext) -> None:
    f = ctx.fields
    require(f, "decision", "goals_met")
    # What the decision needs is missing (422 missing-field, as for any event), not wrong.
    if f.get("decision") == "continue" and blank(f.get("next_evaluation_date")):
        raise MissingField({"next_evaluation_date": ["継続する場合は次回評価日が必須です。"]})
    if f.get("decision") == "close" and blank(f.get("close_reason")):
        raise MissingField({"close_reason": ["終結する場合は終結の理由が必須です。"]})
    errors: dict[str, list[str]] = {}
    choice(errors, f, "decision", "evaluation_decisions")
    if f.get("goals_met") not in vocab.codes("goals_met"):
        errors.setdefault("goals_met", []).append(
            "目標の達成度は " + "・".join(f"{label}（{code}）" for code, label in vocab.codes("goals_met").items())
            + " から選んでください。")
    if f.get("decision") == "close":
        choice(errors, f, "close_reason", "close_reasons")
    elif not blank(f.get("close_reason")):
        errors.setdefault("close_reason", []).append("終結の理由は、終結するときだけ指定してください。")
    as_date(errors, f, "next_evaluation_date")
    evaluation_within_horizon(errors, f, "next_evaluation_date", ctx.today)
    as_date(errors, f, "evaluated_on", not_after=ctx.today)
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
        close_fields(ctx, f["close_reason"], f.get("changes"))
    if f["decision"] == "continue":
        ctx.plan.next_evaluation_date = f["next_evaluation_date"]
    alerts.resolve_open(ctx.session, case_id=ctx.case.id, kinds=("evaluation_overdue",), actor=ctx.actor,
                        note="評価により解決", now=ctx.now)


EVENTS = (
    Event("adopt_plan", _prepare_plan, _apply_plan, fields=(
        declare.text("goals", required=True, limit=20000, description="本人の言葉による目標（必須）"),
        declare.rows("roles", required=True, row_name="PlanRoleIn", label="役割", description="[{department, role}]（必須）", row=(
            declare.code("department", required=True, listed="departments", description="機関コード"),
            declare.text("role", required=True, limit=2000, description="役割"))),
        declare.code("main_department", required=True, listed="departments", description="主担当の機関コード（必須）"),
        declare.day("next_evaluation_date", required=True, description="次回評価日（必須）"),
        declare.day("decided_on", description="支援決定日（重層的支援会議で決定した日。省略時は開催日時の日、それもなければ今日）"),
        declare.moment("held_at", description="重層的支援会議の開催日時（ISO 8601。省略時は記録した日時）。"
                       "支援決定日と併せて指定するときは同じ日"),
        declare.codes("attendees", limit=64, listed="departments", nullable=False, label="出席機関",
                      description="重層的支援会議に出席した機関コードの一覧（本人の同意の範囲の機関）。記録した職員の部署は"
                                  "事務局として常に含まれる。省略時は、その部署と役割分担の機関"),
        declare.codes("business_categories", limit=32, listed="business_categories", nullable=False,
                      description="事業区分コードの一覧"),
        declare.text("minutes", limit=20000, description="重層的支援会議の記録"),
        discussed.declaration("重層的支援会議"),
    ), done="支援プランを決定しました。"),
    Event("evaluate", _prepare_evaluate, _apply_evaluate, fields=(
        declare.code("goals_met", required=True, limit=None, choices="goals_met",
                     description="目標の達成度コード（必須、categories.yaml の goals_met）"),
        declare.text("changes", limit=20000, description="変化・状況"),
        declare.code("decision", required=True, limit=None, choices="evaluation_decisions",
                     description="continue / replan / suspend / close（必須）"),
        declare.day("next_evaluation_date", description="次回評価日（継続時必須）"),
        declare.code("close_reason", limit=32, listed="close_reasons", description="終結理由（終結時必須）"),
        declare.day("evaluated_on", description="評価日"),
    ), done={"accompaniment": "評価を記録し、伴走支援を続けることにしました。",
             "layered_meeting": "評価を記録し、重層的支援会議で支援プランを見直すことにしました。",
             "suspended": "評価を記録し、支援を中断しました。",
             "closed": "評価を記録し、ケースを終結しました。"}),
    Event("resume", note_only, nothing, fields=(declare.text("note", limit=20000, description="メモ"),),
          done="支援を再開しました。"),
)
