"""Routing a consultation by the rules in force: what they propose, worked out without writing anything.

engine.rules holds the rules (the file's parser, the installed versions, the stall policy); this module
applies them to one consultation. It decides and never acts: the intake (engine.cases.intake) sends the
つなぐシート, or leaves the case at the desk with an alert, by the Proposal it gets from here; the window's
preview shows the same Proposal before anything is sent.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from engine.departments import DESK_CODE, department_by_code, departments_by_codes
from engine.rules.ruleset import NO_MATCH_REASON, RoutingDecision, RoutingFacts, RulesError
from engine.rules.store import active_rules

log = logging.getLogger(__name__)

NO_RULES = "振り分けルールが登録されていません。"
UNUSABLE_RULES = ("登録されている振り分けルールが現在の部署・分類の設定と合わないため、自動で振り分けできませんでした。")


@dataclass(frozen=True)
class Proposal:
    """What the rules in force would do with a consultation: computed, never written."""

    rule_version: int | None
    decision: RoutingDecision
    owner: Any = None  # the proposed engine.models.Department; None when no rule matched
    notify: tuple = ()  # the active Departments also told of the case
    reason: str = ""  # the decision's reason, saying too why nothing is sent when the owner takes no sheets

    @property
    def sends(self) -> bool:
        """Whether the つなぐシート goes to the proposed department (it exists and takes sheets)."""
        return self.owner is not None and self.owner.active

    def case_values(self) -> dict[str, Any]:
        """The decision as the case row keeps it: rules version, rule, reason and proposed department."""
        return {"routing_rule_version": self.rule_version, "routing_rule_name": self.decision.rule_name,
                "routing_reason": self.reason, "proposed_department_id": self.owner.id if self.owner is not None else None}


def facts_of(case, on: date) -> RoutingFacts:
    """The routing facts of a case on the routing day ``on`` (JST)."""
    return RoutingFacts(categories=tuple(case.category_codes), primary_category=case.primary_category,
                        area=case.person.area, birth_date=case.person.birth_date, source=case.source,
                        urgency=case.urgency, on=on)


def propose(session: Session, facts: RoutingFacts) -> Proposal:
    """Route `facts` by the rules in force without writing anything.

    Recording a consultation must never fail because of the rules: with no rules installed, with installed
    rules that no longer validate against config/, or with a proposed department that takes no つなぐシート,
    the proposal names no owner and its reason says why.
    """
    try:
        number, ruleset = active_rules(session)
        unusable = ""
    except RulesError as exc:
        log.error("installed routing rules no longer validate; nothing is routed: %s", exc)
        number, ruleset, unusable = None, None, UNUSABLE_RULES
    if ruleset is None:
        decision = RoutingDecision(rule_name=None, owner=None, notify=(),
                                   reason=(unusable or NO_RULES) + NO_MATCH_REASON, multi_agency_sets=())
    else:
        decision = ruleset.route(facts)
    found = departments_by_codes(session, [decision.owner, *decision.notify])
    owner = found.get(decision.owner) if decision.owner else None
    reason = decision.reason
    if decision.owner is not None and (owner is None or not owner.active):
        name = owner.name if owner is not None else decision.owner
        reason = (f"{decision.reason}（ただし提案先の{name}は現在つなぐシートを受け付けていないため、"
                  f"自動では送付していません。{NO_MATCH_REASON}）")
    notify = tuple(d for d in (found.get(c) for c in decision.notify) if d is not None and d.active)
    return Proposal(rule_version=number, decision=decision, owner=owner, notify=notify, reason=reason)


def prefetch(session: Session, facts: RoutingFacts | None = None) -> None:
    """Read what routing a new case will need into the session's caches, so that an intake can do these
    reads before its first write: the rules in force, and the departments the decision for ``facts``
    names (the desk's when no rule matches), or without facts every department the rules name."""
    try:
        _, ruleset = active_rules(session)
    except RulesError:
        ruleset = None  # propose() reports it
    if ruleset is None:
        codes = {DESK_CODE}
    elif facts is not None:
        decision = ruleset.route(facts)
        codes = {decision.owner or DESK_CODE, *decision.notify}
    else:
        codes = {DESK_CODE}
        for rule in ruleset.rules:
            codes.add(rule.owner)
            codes.update(rule.notify)
    departments_by_codes(session, sorted(codes))
    department_by_code(session, DESK_CODE)
