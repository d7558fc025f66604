"""The consent stage: seek_consent, record_consent, refuse_consent, withdraw_consent.

A consent names the agencies the person agreed may share their data (同意の範囲): recording one opens the
consented track (重層的支援会議, the plan) to those agencies; a refusal keeps the case in the 支援会議 track;
a withdrawal ends the plan in force and narrows sharing at once.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from engine import calendar, states
from engine import fields as declare
from engine.access.relations import current_given_consent
from engine.alerts import alerts
from engine.cases.checks import RECORDED_LATE_DAYS, as_date, choice, known_departments, not_before_opening, require
from engine.cases.events.context import Event, EventContext, note_only, nothing
from engine.errors import ValidationFailed
from engine.models import Consent, ConsentAgency, Plan


def _prepare_consent(ctx: EventContext) -> None:
    f = ctx.fields
    if ctx.event == "record_consent":
        require(f, "given_by", "method", "agencies")
    else:
        require(f, "given_by")
    errors: dict[str, list[str]] = {}
    choice(errors, f, "method", "consent_methods", required=ctx.event == "record_consent")
    as_date(errors, f, "obtained_on", not_after=ctx.today)
    # A consent is asked for about this consultation: the referring agency may have asked shortly before the
    # case was recorded, but a date long before it (a mistyped year) is refused, as is a withdrawal or
    # refusal dated before the consent it ends was obtained.
    not_before_opening(errors, f, "obtained_on", ctx.case,
                       "同意日" if ctx.event == "record_consent" else "確認日", grace_days=RECORDED_LATE_DAYS)
    in_force = current_given_consent(ctx.session, ctx.case.id) if ctx.event != "record_consent" else None
    obtained = f.get("obtained_on")
    if ("obtained_on" not in errors and in_force is not None and isinstance(obtained, date)
            and obtained < in_force.obtained_on):
        errors["obtained_on"] = [f"確認日は、いまの同意の同意日（{calendar.wareki(in_force.obtained_on)}）以降の日付に"
                                 "してください。"]
    if ctx.event == "record_consent":
        ctx.agencies = known_departments(ctx.session, errors, "agencies", f.get("agencies"))
    if errors:
        raise ValidationFailed(errors)


def _apply_consent(ctx: EventContext) -> None:
    status = {"record_consent": "given", "refuse_consent": "refused", "withdraw_consent": "withdrawn"}[ctx.event]
    # A refusal asked for while a given consent was in force (a 支援会議 met again from 伴走支援) ends that
    # consent as a withdrawal does.
    previous = current_given_consent(ctx.session, ctx.case.id)
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
        lapse_joins_under_consent(ctx)
    elif status == "given" and previous is not None:
        # Recorded anew, perhaps narrower: a department asked under the old one and left out now leaves.
        lapse_joins_under_consent(ctx, keep={d.id for d in ctx.agencies})


def lapse_joins_under_consent(ctx: EventContext, keep: set[int] | None = None) -> None:
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


EVENTS = (
    Event("seek_consent", note_only, nothing, fields=(declare.text("note", limit=20000, description="メモ"),)),
    Event("record_consent", _prepare_consent, _apply_consent, fields=(
        declare.line("given_by", required=True, limit=100, description="同意した人（本人・代理人）（必須）"),
        declare.code("method", required=True, limit=16, description="written / oral（必須）"),
        declare.day("obtained_on", description="同意日（YYYY-MM-DD）"),
        declare.codes("agencies", required=True, label="情報を共有してよい機関",
                      description="共有先の機関コードの一覧（必須）"),
        declare.text("note", limit=20000, description="メモ"),
    )),
    Event("refuse_consent", _prepare_consent, _apply_consent, fields=(
        declare.line("given_by", required=True, limit=100, description="意思を示した人（必須）"),
        declare.code("method", limit=16, description="written / oral"),
        declare.text("note", limit=20000, description="メモ"),
    )),
    Event("withdraw_consent", _prepare_consent, _apply_consent, fields=(
        declare.line("given_by", required=True, limit=100, description="撤回した人（必須）"),
        declare.code("method", limit=16, description="written / oral"),
        declare.text("note", limit=20000, description="メモ"),
    )),
)
