"""The 支援会議 stage: convene_support_meeting (and, in engine.cases.events.consent, seek_consent).

A 支援会議 (社会福祉法106条の6) is convened by an FM without the person's consent; its members are bound by
the 守秘義務, and each acknowledges it before reading its records (engine.cases.meetings). The FM who
convenes the case's first 支援会議 becomes its FM (担当FM). A 支援会議 may take up further cases besides its own
(`also_cases`: another member of the household …; engine.cases.discussed).
"""
from __future__ import annotations

from sqlalchemy import select

from engine import fields as declare
from engine.alerts import alerts
from engine.cases import discussed
from engine.cases.checks import RECORDED_LATE_DAYS, as_time, not_before_opening
from engine.cases.events.context import Event, EventContext
from engine.cases.kernel import add_business_category
from engine.errors import MissingField, ValidationFailed
from engine.models import Meeting, MeetingCase, MeetingMember, User
from engine.sharing import provisions

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
    as_time(errors, ctx.fields, "held_at", not_after=ctx.now)
    not_before_opening(errors, ctx.fields, "held_at", ctx.case, "開催日", grace_days=RECORDED_LATE_DAYS)
    ctx.discussed = discussed.resolve_or_refuse(ctx.session, ctx.actor, ctx.case,
                                                ctx.fields.get(discussed.FIELD), kind="support_meeting",
                                                errors=errors)
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
    ctx.session.flush()
    member_departments = [m["user"].department_id for m in ctx.members]
    provisions.provide_to_members(ctx.session, ctx.actor, ctx.case, meeting, member_departments, now=ctx.now)
    # The other cases it takes up: their members read them as they read this one (engine.cases.discussed).
    discussed.link(ctx.session, ctx.actor, meeting, ctx.discussed, member_departments, now=ctx.now,
                   remote_addr=ctx.remote_addr)
    if ctx.case.fm_id is None:
        ctx.case.fm_id = ctx.actor.id
    add_business_category(ctx.case, "multi_agency")
    # The FM has taken the case up in a 支援会議: the 多機関協働 candidate alert has done its work.
    alerts.resolve_open(ctx.session, case_id=ctx.case.id, kinds=("multi_agency_candidate", "meeting_requested"),
                        actor=ctx.actor, note="支援会議の開催により解決", now=ctx.now)


EVENTS = (
    Event("convene_support_meeting", _prepare_convene, _apply_convene, fields=(
        declare.rows("members", required=True, row_name="MeetingMemberIn", label="構成員",
               description="構成員 [{user: ログインID, acknowledged: 守秘義務確認済みか}]（必須）", row=(
                   declare.code("user", required=True, description="構成員のログインID"),
                   declare.flag("acknowledged", description="守秘義務の確認が済んでいるか"))),
        declare.moment("held_at", description="開催日時（ISO 8601）"),
        declare.text("minutes", limit=20000, description="記録"),
        declare.text("decisions", limit=20000, description="決定事項"),
        discussed.declaration("支援会議"),
    ), done="支援会議を開きました。"),
)
