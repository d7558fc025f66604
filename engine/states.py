"""The case and handoff state machines, as data, with one shared `transitions.Machine` per kind.

A machine is built once at import with `model=None`; an event is fired on a row with
`CASE_MACHINE.events[trigger].trigger(case, ctx=ctx)`, so rows are never registered with the machine.
Guards are named functions of (row, ctx) that raise an EngineError saying, in Japanese, why the event
cannot happen; a transition's `when` predicate chooses between branches of one event (`evaluate`).
The machine's after-state-change hook appends the history row to the session; it does no I/O.
"""
from __future__ import annotations

from typing import Any, Callable

from transitions import Machine

from engine import access
from engine.errors import EventNotAllowed, GuardRefused, PermissionDenied, UnknownEvent
from engine.models import Department
from engine.sharing import bases

CASE_STATE_LABELS = {
    "intake": "受付",
    "handoff": "つなぐシート送付中",
    "assigned": "担当決定",
    "support_meeting": "支援会議",
    "consent": "同意確認中",
    "layered_meeting": "重層的支援会議",
    "accompaniment": "伴走支援",
    "suspended": "中断",
    "closed": "終結",
}
OPEN_STATES = [s for s in CASE_STATE_LABELS if s != "closed"]

CASE_EVENT_LABELS = {
    "send_handoff": "つなぐシートを送る",
    "accept_handoff": "受理する",
    "decline_handoff": "返送する",
    "convene_support_meeting": "支援会議を開く",
    "seek_consent": "同意確認に進む",
    "record_consent": "同意を記録する",
    "refuse_consent": "同意が得られなかったことを記録する",
    "adopt_plan": "支援プランを決定する",
    "evaluate": "評価する",
    "resume": "支援を再開する",
    "withdraw_consent": "同意の撤回を記録する",
    "close": "終結する",
    "reopen": "再開（受付に戻す）",
}

HANDOFF_STATE_LABELS = {"sent": "送付済み", "accepted": "受理", "declined": "返送", "withdrawn": "取下げ"}
HANDOFF_EVENT_LABELS = {"accept": "受理する", "decline": "返送する", "withdraw": "取り下げる",
                        "cancel": "ケース終結に伴い取り下げる", "lapse": "同意の撤回・変更に伴い参加を終える",
                        "redirect": "送付先の変更に伴い取り下げる"}


# --- guards ------------------------------------------------------------------------------------
# Each guard takes the row and the event context (engine.cases.events.context.EventContext) and raises when the
# event's condition is not met. Guards that are about who is acting raise PermissionDenied (403);
# the others raise GuardRefused (409).

def _refuse(guard: str, message: str) -> None:
    raise GuardRefused(message, guard=guard)


def _actor_may_fire(case, ctx, guard: str) -> None:
    """Refuse unless the access policy lets the actor fire this event (engine.access.EVENT_PERMISSIONS)."""
    if not access.may_fire(ctx.session, ctx.actor, case, ctx.event, rel=getattr(ctx, "rel", None)):
        raise PermissionDenied(access.DENIED[access.EVENT_PERMISSIONS[ctx.event]], guard=guard)


def actor_is_fm(case, ctx) -> None:
    _actor_may_fire(case, ctx, "actor_is_fm")


def _require_receiving_staff(actor, handoff) -> None:
    # An administrator belongs to a department too, but runs the system, not its cases (metadata only).
    if handoff is None or actor.department_id != handoff.to_department_id or actor.role == "admin":
        raise PermissionDenied(
            "このつなぐシートを受理・返送できるのは送付先の部署の職員だけです（管理者は除く）。",
            guard="actor_in_receiving_department",
        )


def actor_in_receiving_department(case, ctx) -> None:
    _require_receiving_staff(ctx.actor, ctx.handoff)


def actor_may_send(case, ctx) -> None:
    _actor_may_fire(case, ctx, "actor_may_send")


def target_is_other_department(case, ctx) -> None:
    target = ctx.target_department
    if target is None:
        _refuse("target_is_other_department", "送付先の部署を指定してください。")
    if ctx.actor.department_id == target.id and case.owning_department_id == target.id:
        _refuse("target_is_other_department", "自分の部署にはつなぐシートを送れません。")
    if not target.active:
        _refuse("target_is_other_department", f"{target.name}は現在つなぐシートを受け付けていません。")


def target_has_basis(case, ctx) -> None:
    """A body outside the city receives the sheet only on a basis (engine.sharing.bases)."""
    ctx.basis = bases.require_basis(ctx.session, case, ctx.target_department, "sheet", chosen=ctx.chosen_basis)


def owner_named_in_consent(case, ctx) -> None:
    """The 主担当 leads the consented track: a body outside the city that owns the case must be named in the
    consent (or hand the case to another department first)."""
    owner = ctx.session.get(Department, case.owning_department_id) if case.owning_department_id else None
    if owner is not None and owner.outside_city and owner.id not in {d.id for d in ctx.agencies}:
        _refuse("owner_named_in_consent",
                f"主担当の{owner.name}は市の外の機関です。同意の範囲に含めるか、先に担当を市の部署に引き継いでください。")


def actor_works_on_case(case, ctx) -> None:
    _actor_may_fire(case, ctx, "actor_works_on_case")


def actor_is_meeting_member(case, ctx) -> None:
    _actor_may_fire(case, ctx, "actor_is_meeting_member")


def members_acknowledged_secrecy(case, ctx) -> None:
    members = ctx.members or []
    if len(members) < 2:
        _refuse("members_acknowledged_secrecy", "支援会議には招集者のほかに1人以上の構成員が必要です。")
    missing = [m["user"].display_name for m in members if not m["acknowledged"]]
    if missing:
        _refuse(
            "members_acknowledged_secrecy",
            "守秘義務の確認が済んでいない構成員がいます: " + "、".join(missing)
            + "。確認を得た人だけで開き、ほかの人は会議のページで構成員に加えてください（加えられた人は、"
              "守秘義務を確認するまで記録を読めません）。",
        )


def consent_covers_agencies(case, ctx) -> None:
    if not ctx.agencies:
        _refuse("consent_covers_agencies", "同意の範囲（情報を共有してよい機関）を1つ以上指定してください。")


def main_department_has_role(case, ctx) -> None:
    role_departments = {r["department"].id for r in ctx.roles}
    if ctx.main_department.id not in role_departments:
        _refuse("main_department_has_role", "主担当の機関は役割分担の中に含めてください。")


def plan_agencies_within_consent(case, ctx) -> None:
    covered = access.consented_department_ids(ctx.session, case.id)
    outside = [r["department"].name for r in ctx.roles if r["department"].id not in covered]
    if outside:
        _refuse(
            "plan_agencies_within_consent",
            "本人の同意の範囲に含まれない機関には役割を割り当てられません: " + "、".join(outside),
        )


def evaluation_date_in_future(case, ctx) -> None:
    d = ctx.fields.get("next_evaluation_date")
    if d is not None and d <= ctx.today:
        _refuse("evaluation_date_in_future", "次回評価日は今日より後の日付にしてください。")


def case_without_owner(case, ctx) -> None:
    if case.owning_department_id is not None:
        _refuse("case_without_owner", "このケースには担当部署があります。別の部署に移すときは、参加依頼や支援プランの主担当で決めてください。")


def case_has_owner(case, ctx) -> None:
    if case.owning_department_id is None:
        _refuse("case_has_owner", "担当部署が決まっていないため、同意を記録して重層的支援会議に進むことはできません。"
                "先につなぐシートを送り、担当部署を決めてください。")


def case_has_active_plan(case, ctx) -> None:
    if ctx.plan is None:
        _refuse("case_has_active_plan", "評価する支援プランがありません。")


def actor_may_reopen(case, ctx) -> None:
    if getattr(case, "anonymised_at", None) is not None:
        # Nobody may: its records are gone (retention). Refused as a permission so allowed_events omits it.
        raise PermissionDenied("保存期間を過ぎて匿名化されたケースは再開できません。新しい相談として受け付けてください。",
                               guard="actor_may_reopen")
    _actor_may_fire(case, ctx, "actor_may_reopen")


def actor_may_withdraw_handoff(handoff, ctx) -> None:
    if not (ctx.actor.is_fm or ctx.actor.department_id == handoff.from_department_id):
        raise PermissionDenied("つなぐシートを取り下げられるのは送った部署の職員かFMです。",
                               guard="actor_may_withdraw_handoff")


def handoff_actor_in_receiving_department(handoff, ctx) -> None:
    _require_receiving_staff(ctx.actor, handoff)


GUARDS: dict[str, Callable[[Any, Any], None]] = {
    f.__name__: f
    for f in (
        actor_is_fm, actor_in_receiving_department, actor_may_send, target_is_other_department, target_has_basis,
        owner_named_in_consent,
        actor_works_on_case, actor_is_meeting_member, members_acknowledged_secrecy,
        consent_covers_agencies, main_department_has_role, plan_agencies_within_consent,
        evaluation_date_in_future, case_has_active_plan, actor_may_reopen, case_has_owner, case_without_owner,
    )
}
HANDOFF_GUARDS: dict[str, Callable[[Any, Any], None]] = {
    "actor_in_receiving_department": handoff_actor_in_receiving_department,
    "actor_may_withdraw_handoff": actor_may_withdraw_handoff,
}

# Guards about who acts: used to list the events a given person may fire now.
ACTOR_GUARDS = {
    "actor_is_fm", "actor_in_receiving_department", "actor_may_send", "actor_works_on_case",
    "actor_is_meeting_member", "actor_may_reopen",
}
# Guards on the case alone that also leave an event out of that list: nobody could fire it now.
LISTED_CASE_GUARDS = {"case_has_owner", "case_without_owner"}


# --- the tables --------------------------------------------------------------------------------

_EVALUATE_GUARDS = ["actor_works_on_case", "case_has_active_plan"]

CASE_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "send_handoff", "source": ["intake"], "dest": "handoff",
     "guards": ["actor_may_send", "target_is_other_department", "target_has_basis"]},
    # A 支援会議 held from 受付 (no rule matched, or the sheet came back) leaves the case without an owner;
    # the meeting decides who takes it, and the sheet goes from there.
    {"trigger": "send_handoff", "source": ["support_meeting", "consent"], "dest": "handoff",
     "guards": ["actor_may_send", "target_is_other_department", "case_without_owner", "target_has_basis"]},
    {"trigger": "accept_handoff", "source": ["handoff"], "dest": "assigned",
     "guards": ["actor_in_receiving_department"]},
    {"trigger": "decline_handoff", "source": ["handoff"], "dest": "intake",
     "guards": ["actor_in_receiving_department"]},
    # From 支援会議 itself too: a 支援会議 may meet again (with other members), before or after a refusal.
    {"trigger": "convene_support_meeting",
     "source": ["intake", "assigned", "support_meeting", "accompaniment", "suspended"],
     "dest": "support_meeting", "guards": ["actor_is_fm", "members_acknowledged_secrecy"]},
    {"trigger": "seek_consent", "source": ["support_meeting"], "dest": "consent",
     "guards": ["actor_is_meeting_member"]},
    # The 重層的支援会議 and the plan are an owning department's: a case still without one (a 支援会議 held
    # from 受付) is sent on first.
    {"trigger": "record_consent", "source": ["assigned", "support_meeting", "consent"],
     "dest": "layered_meeting",
     "guards": ["actor_works_on_case", "case_has_owner", "consent_covers_agencies", "owner_named_in_consent"]},
    {"trigger": "refuse_consent", "source": ["consent"], "dest": "support_meeting",
     "guards": ["actor_works_on_case"]},
    {"trigger": "adopt_plan", "source": ["layered_meeting"], "dest": "accompaniment",
     "guards": ["actor_works_on_case", "main_department_has_role", "plan_agencies_within_consent",
                "evaluation_date_in_future"]},
    {"trigger": "evaluate", "source": ["accompaniment"], "dest": "accompaniment", "when": "continue",
     "guards": [*_EVALUATE_GUARDS, "evaluation_date_in_future"]},
    {"trigger": "evaluate", "source": ["accompaniment"], "dest": "layered_meeting", "when": "replan",
     "guards": _EVALUATE_GUARDS},
    {"trigger": "evaluate", "source": ["accompaniment"], "dest": "suspended", "when": "suspend",
     "guards": _EVALUATE_GUARDS},
    {"trigger": "evaluate", "source": ["accompaniment"], "dest": "closed", "when": "close",
     "guards": _EVALUATE_GUARDS},
    {"trigger": "resume", "source": ["suspended"], "dest": "accompaniment", "guards": ["actor_works_on_case"]},
    {"trigger": "withdraw_consent", "source": ["layered_meeting", "accompaniment", "suspended"],
     "dest": "support_meeting", "guards": ["actor_works_on_case"]},
    {"trigger": "close", "source": OPEN_STATES, "dest": "closed", "guards": ["actor_works_on_case"]},
    {"trigger": "reopen", "source": ["closed"], "dest": "intake", "guards": ["actor_may_reopen"]},
]

HANDOFF_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "accept", "source": ["sent"], "dest": "accepted", "guards": ["actor_in_receiving_department"]},
    {"trigger": "decline", "source": ["sent"], "dest": "declined", "guards": ["actor_in_receiving_department"]},
    {"trigger": "withdraw", "source": ["sent"], "dest": "withdrawn", "guards": ["actor_may_withdraw_handoff"]},
    # The case was closed: its open handoffs lapse with it (the case's own history row records why).
    {"trigger": "cancel", "source": ["sent"], "dest": "withdrawn", "guards": []},
    # The person withdrew (or narrowed) the consent under which a department was asked to join: the join
    # ends with it.
    {"trigger": "lapse", "source": ["sent", "accepted"], "dest": "withdrawn", "guards": []},
    # 送付先の変更 (engine.cases.redirect): whoever may change the routing (the recording window, the desk,
    # an FM) withdraws the waiting sheet, whoever sent it (the rules, for a referral).
    {"trigger": "redirect", "source": ["sent"], "dest": "withdrawn", "guards": []},
]


def _conditions(spec: dict[str, Any], registry: dict[str, Callable]) -> list[Callable]:
    conds: list[Callable] = []
    if "when" in spec:
        branch = spec["when"]
        conds.append(lambda ev, b=branch: ev.kwargs["ctx"].fields.get("decision") == b)
    for name in spec["guards"]:
        guard = registry[name]
        conds.append(lambda ev, g=guard: g(ev.model, ev.kwargs["ctx"]) or True)
    return conds


def _history_hook(prefix: str) -> Callable:
    def record(ev) -> None:
        ev.kwargs["ctx"].on_state_change(prefix + ev.event.name, ev.transition.source, ev.transition.dest,
                                         ev.model)

    return record


def _build(states: dict[str, str], table: list[dict[str, Any]], registry: dict[str, Callable],
           initial: str, history_prefix: str) -> Machine:
    return Machine(
        model=None,
        states=list(states),
        initial=initial,
        transitions=[
            {"trigger": t["trigger"], "source": t["source"], "dest": t["dest"],
             "conditions": _conditions(t, registry)}
            for t in table
        ],
        auto_transitions=False,
        send_event=True,
        after_state_change=_history_hook(history_prefix),
    )


CASE_MACHINE = _build(CASE_STATE_LABELS, CASE_TRANSITIONS, GUARDS, "intake", "")
HANDOFF_MACHINE = _build(HANDOFF_STATE_LABELS, HANDOFF_TRANSITIONS, HANDOFF_GUARDS, "sent", "handoff.")

CASE_EVENTS = list(CASE_EVENT_LABELS)


def events_from(state: str, table: list[dict[str, Any]] = CASE_TRANSITIONS) -> list[str]:
    """The events whose source includes `state`, in the table's order, without repeats."""
    seen: list[str] = []
    for t in table:
        if state in t["source"] and t["trigger"] not in seen:
            seen.append(t["trigger"])
    return seen


def allowed_events_for(case, ctx_factory: Callable[[str], Any]) -> list[str]:
    """The events `state` allows whose actor guards pass for the context `ctx_factory(event)` builds."""
    allowed = []
    for event in events_from(case.state):
        ctx = ctx_factory(event)
        ok = True
        for t in CASE_TRANSITIONS:
            if t["trigger"] != event or case.state not in t["source"]:
                continue
            try:
                for g in t["guards"]:
                    if g in ACTOR_GUARDS or g in LISTED_CASE_GUARDS:
                        GUARDS[g](case, ctx)
            except (PermissionDenied, GuardRefused):
                ok = False
            break
        if ok:
            allowed.append(event)
    return allowed


def check_event(case, event: str) -> None:
    """Raise UnknownEvent or EventNotAllowed (with the allowed events) unless `event` can fire now."""
    allowed = events_from(case.state)
    if event not in CASE_EVENT_LABELS:
        raise UnknownEvent(event, allowed)
    if event not in allowed:
        raise EventNotAllowed(
            event=event, state=case.state, state_label=CASE_STATE_LABELS[case.state],
            allowed_events=allowed, allowed_labels=[CASE_EVENT_LABELS[e] for e in allowed],
            event_label=CASE_EVENT_LABELS[event],
        )


def fire_case_event(case, event: str, ctx) -> None:
    """Check and fire `event` on `case`; guards raise, the history hook runs on success."""
    check_event(case, event)
    if not CASE_MACHINE.events[event].trigger(case, ctx=ctx):
        # Only `evaluate` can fall through every branch: its decision chose none of them.
        raise GuardRefused("評価の結論（継続・再プラン・中断・終結）を選んでください。", guard="decision")


# What a person asks for on a sheet; the other triggers follow from a case event (close, a change of
# consent, a change of routing) and are never offered in a refusal.
HANDOFF_PERSON_EVENTS = ("accept", "decline", "withdraw")


def fire_handoff_event(handoff, event: str, ctx) -> None:
    """Fire `event` on a handoff (accept, decline, withdraw)."""
    possible = events_from(handoff.state, HANDOFF_TRANSITIONS)
    allowed = [e for e in possible if e in HANDOFF_PERSON_EVENTS]
    if event not in HANDOFF_EVENT_LABELS:
        raise UnknownEvent(event, allowed)
    if event not in possible:
        raise EventNotAllowed(
            event=event, state=handoff.state, state_label=HANDOFF_STATE_LABELS[handoff.state],
            allowed_events=allowed, allowed_labels=[HANDOFF_EVENT_LABELS[e] for e in allowed],
            event_label=HANDOFF_EVENT_LABELS[event],
        )
    HANDOFF_MACHINE.events[event].trigger(handoff, ctx=ctx)


def mermaid(kind: str = "case") -> str:
    """The machine as a Mermaid state diagram (for documentation; built on demand, never per request)."""
    from transitions.extensions import GraphMachine

    labels, table = ((CASE_STATE_LABELS, CASE_TRANSITIONS) if kind == "case"
                     else (HANDOFF_STATE_LABELS, HANDOFF_TRANSITIONS))

    class _Diagram:
        pass

    diagram = _Diagram()
    GraphMachine(
        model=diagram, states=list(labels), initial=next(iter(labels)), auto_transitions=False,
        transitions=[{"trigger": t["trigger"], "source": t["source"], "dest": t["dest"]} for t in table],
        graph_engine="mermaid", title=f"Tsunagu {kind}",
    )
    return diagram.get_graph().draw(None)
