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
from engine.cases.checks import (
    RECORDED_LATE_DAYS,
    as_date,
    blank,
    choice,
    known_departments,
    not_before_opening,
    require,
)
from engine.cases.events.context import Event, EventContext, note_only, nothing
from engine.departments import department_by_code, desk_id
from engine.errors import PermissionDenied, ValidationFailed
from engine.models import Consent, ConsentAgency, Department, Handoff, Plan
from engine.sharing import bases


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
    if ctx.event == "withdraw_consent" and not blank(f.get("return_to")):
        # A body outside the city that owned the case on this consent alone hands it back: to the desk, or
        # to the city department an FM names here.
        target = department_by_code(ctx.session, f["return_to"])
        if target is None or not target.active or target.outside_city:
            errors["return_to"] = [f"「{f['return_to']}」という市の部署はありません（返す先は市の部署です）。"]
        elif getattr(ctx.actor, "role", None) != "fm":
            raise PermissionDenied("担当を返す先の部署を決められるのはFMだけです（決めないときはサポートデスクに戻ります）。",
                                   guard="return_to_chooser")
        else:
            ctx.return_to = target
    if errors:
        raise ValidationFailed(errors)


def _apply_consent(ctx: EventContext) -> None:
    status = {"record_consent": "given", "refuse_consent": "refused", "withdraw_consent": "withdrawn"}[ctx.event]
    # A refusal asked for while a given consent was in force (a 支援会議 met again from 伴走支援) ends that
    # consent as a withdrawal does.
    previous = current_given_consent(ctx.session, ctx.case.id)
    ends_consent = status != "given" and previous is not None
    given_since = _given_since(ctx)
    consent = Consent(
        case_id=ctx.case.id, status=status, given_by=ctx.fields["given_by"], method=ctx.fields.get("method"),
        obtained_on=ctx.fields.get("obtained_on") or ctx.today, note=ctx.fields.get("note"),
        recorded_by_id=ctx.actor.id, recorded_at=ctx.now,
        agencies=[ConsentAgency(department_id=d.id) for d in ctx.agencies],
    )
    ctx.session.add(consent)
    ctx.session.flush()  # the new consent is the one in force from here on
    ctx.case.consent_to_share = status == "given"
    if status == "withdrawn" or ends_consent:
        for plan in ctx.session.scalars(select(Plan).where(Plan.case_id == ctx.case.id, Plan.status == "active")):
            plan.status = "ended"
        lapse_joins_under_consent(ctx, given_since)
        narrow_outside(ctx, named=set())
        hand_back(ctx)
    elif status == "given":
        if previous is not None:
            # Recorded anew, perhaps narrower: a department asked under the old one and left out now leaves.
            lapse_joins_under_consent(ctx, given_since, keep={d.id for d in ctx.agencies})
        narrow_outside(ctx, named={d.id for d in ctx.agencies})


def _given_since(ctx: EventContext):
    """When the run of given consents in force until now began (None when none is in force)."""
    given_since = None
    for c in ctx.session.scalars(select(Consent).where(Consent.case_id == ctx.case.id)
                                 .order_by(Consent.recorded_at, Consent.id)):
        if c.status != "given":
            given_since = None
        elif given_since is None:
            given_since = c.recorded_at
    return given_since


def _lapse(ctx: EventContext, h: Handoff) -> None:
    """The join ends with the consent it rested on: the sheet is withdrawn, the department keeps the case's
    metadata and what it wrote itself (engine.access.relations: former)."""
    states.fire_handoff_event(h, "lapse", ctx)
    h.withdrawn_at = h.lapsed_at = ctx.now
    alerts.resolve_open(ctx.session, handoff_id=h.id, actor=ctx.actor, note="同意の撤回・変更により参加終了", now=ctx.now)


def narrow_outside(ctx: EventContext, *, named: set[int]) -> None:
    """A body outside the city reading the case only because it was asked in before — a consent now ended or
    not naming it, and no other basis (a commission covering the case, a statute chosen) — drops to
    metadata at once. The owner is not dropped here: it is named in a new consent (owner_named_in_consent), or
    handed back on a withdrawal (hand_back)."""
    for h in list(ctx.case.handoffs):
        if h.primary or h.state not in ("sent", "accepted") or h.to_department_id in named:
            continue
        body = ctx.session.get(Department, h.to_department_id)
        if body.outside_city and bases.standing_basis(ctx.session, ctx.case, body, consent=False) is None:
            _lapse(ctx, h)


def hand_back(ctx: EventContext) -> None:
    """On a withdrawal: a body outside the city that owned the case on the consent alone hands it back — to the
    desk, or to the city department an FM named (`return_to`) — with an alert; its plan role has ended with
    the plan."""
    case = ctx.case
    owner = ctx.session.get(Department, case.owning_department_id) if case.owning_department_id else None
    if owner is None or not owner.outside_city:
        return
    if bases.standing_basis(ctx.session, case, owner, consent=False) is not None:
        return
    for h in case.handoffs:
        if h.primary and h.to_department_id == owner.id and h.state == "accepted":
            _lapse(ctx, h)
    to = ctx.return_to
    case.owning_department_id = to.id if to is not None else None
    ctx.history_detail["handed_back"] = owner.code
    holder = to.id if to is not None else desk_id(ctx.session)
    then = f"{to.name}が担当します。" if to is not None else "担当部署を決めて、つなぐシートを送ってください。"
    alerts.raise_alert(ctx.session, kind="handed_back", case_id=case.id, department_id=holder, now=ctx.now,
                       message=f"同意が撤回され、{owner.name}（市の外の機関）は情報提供の根拠がなくなったため担当を返しました。{then}")


def lapse_joins_under_consent(ctx: EventContext, given_since, keep: set[int] | None = None) -> None:
    """Sharing narrows again (DESIGN.md): a department asked to join while the consent now ended was in
    force (`given_since`: when the consents in force until now began) took part on its strength, so its join
    ends (the sheet `withdrawn`, as at closure) and it keeps the case's metadata and what it wrote. A
    department that joined before the consent, that owns the case, or (for a consent recorded anew) that the
    new consent covers (`keep`), stays."""
    if given_since is None:
        return
    for h in ctx.case.handoffs:
        if (not h.primary and h.state in ("sent", "accepted") and h.sent_at >= given_since
                and h.to_department_id != ctx.case.owning_department_id
                and (keep is None or h.to_department_id not in keep)):
            _lapse(ctx, h)


EVENTS = (
    Event("seek_consent", note_only, nothing, fields=(declare.text("note", limit=20000, description="メモ"),),
          done="本人の同意の確認に進みました。"),
    Event("record_consent", _prepare_consent, _apply_consent, fields=(
        declare.person_name("given_by", required=True, limit=100, description="同意した人（本人・代理人）（必須）"),
        declare.code("method", required=True, limit=16, listed="consent_methods", description="written / oral（必須）"),
        declare.day("obtained_on", description="同意日（YYYY-MM-DD）"),
        declare.codes("agencies", required=True, listed="departments", label="情報を共有してよい機関",
                      description="共有先の機関コードの一覧（必須）"),
        declare.text("note", limit=20000, description="メモ"),
    ), done="同意を記録しました。"),
    Event("refuse_consent", _prepare_consent, _apply_consent, fields=(
        declare.person_name("given_by", required=True, limit=100, description="意思を示した人（必須）"),
        declare.code("method", limit=16, listed="consent_methods", description="written / oral"),
        declare.text("note", limit=20000, description="メモ"),
    ), done="同意が得られなかったことを記録しました。"),
    Event("withdraw_consent", _prepare_consent, _apply_consent, fields=(
        declare.person_name("given_by", required=True, limit=100, description="撤回した人（必須）"),
        declare.code("method", limit=16, listed="consent_methods", description="written / oral"),
        declare.text("note", limit=20000, description="メモ"),
        declare.code("return_to", listed="city_departments", description="市の外の主担当が同意だけを根拠にしていたとき、担当を返す先の市の部署コード"
                                              "（FMのみ。省略時はサポートデスク）"),
    ), done="同意の撤回を記録しました。"),
)
