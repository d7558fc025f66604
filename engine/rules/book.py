"""振り分けルール as staff read them: an installed version of the routing rules, rule by rule, in Japanese.

A case records the rule and the version that routed it (engine.routing). This is where a person looks that
rule up as it was, also after newer rules came into force: the rules in their order (the first that
matches wins), what each one matches, the department it proposes and those it tells, its reason; the
多機関協働 combinations; the stall policy. The rules hold no personal data: every active staff user may
read them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import vocab
from engine.errors import NotFound, PermissionDenied
from engine.models import Department, RoutingRuleVersion
from engine.rules import store
from engine.rules.ruleset import Rule, RulesError, StallPolicy


@dataclass(frozen=True)
class RuleLine:
    """One rule as read: its place in the order, its name, its conditions in Japanese, what it proposes."""

    position: int
    name: str
    conditions: tuple[str, ...]
    owner: str
    notify: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class VersionLine:
    number: int
    loaded_at: datetime
    loaded_by: str | None


@dataclass(frozen=True)
class Rulebook:
    """One installed version, readable; `problem` says why its rules cannot be shown (its text no longer
    validates against the code lists), and then `source_text` is shown as stored."""

    number: int
    in_force: bool
    loaded_at: datetime
    loaded_by: str | None
    source_name: str
    source_text: str
    rules: tuple[RuleLine, ...]
    combinations: tuple[tuple[str, str], ...]
    policy: tuple[tuple[str, str], ...]
    problem: str | None
    versions: tuple[VersionLine, ...]


CATCH_ALL = "条件なし（ここまでのどのルールにも当たらない相談すべて）"


def _joined(labels: dict[str, str], codes) -> str:
    # "、" between labels: a label may hold "・" itself (高齢・介護).
    return "、".join(labels.get(c, c) for c in codes)


def _age(rule: Rule) -> str | None:
    if rule.age_min is not None and rule.age_max is not None:
        return f"年齢: {rule.age_min}〜{rule.age_max}歳"
    if rule.age_min is not None:
        return f"年齢: {rule.age_min}歳以上"
    if rule.age_max is not None:
        return f"年齢: {rule.age_max}歳以下"
    return None


def conditions(rule: Rule, lists: dict[str, dict[str, str]]) -> tuple[str, ...]:
    """What a rule matches on, one line per condition, in Japanese (all must hold)."""
    cats = lists["issue_categories"]
    found = [
        rule.categories_any is not None and f"課題のいずれか: {_joined(cats, rule.categories_any)}",
        rule.categories_all is not None and f"課題のすべて: {_joined(cats, rule.categories_all)}",
        rule.primary_category is not None and f"主な課題: {_joined(cats, rule.primary_category)}",
        rule.areas is not None and f"圏域: {'、'.join(rule.areas)}",
        _age(rule),
        rule.sources is not None and f"受付経路: {_joined(lists['sources'], rule.sources)}",
        rule.urgency is not None and f"緊急度: {_joined(lists['urgencies'], rule.urgency)}",
    ]
    return tuple(line for line in found if line) or (CATCH_ALL,)


def _policy(policy: StallPolicy) -> tuple[tuple[str, str], ...]:
    return (
        ("受理の期限", f"送付から{policy.accept_within_business_days}営業日"),
        ("緊急の受理の期限", f"送付から開庁時間で{policy.urgent_accept_within_office_hours}時間"),
        ("FMへのエスカレーション", f"送付から{policy.escalate_after_business_days}営業日"),
        ("伴走支援で接触がないとき", f"{policy.no_contact_days}日で通知"),
        ("評価日を過ぎたとき", f"{policy.evaluation_grace_days}日の猶予の後に通知" if policy.evaluation_grace_days
         else "過ぎたらすぐに通知"),
        ("多機関協働の候補の通知が確認されないとき", f"通知から{policy.notice_escalate_after_business_days}営業日でFMへ"),
    )


def read(session: Session, actor, number: int | None = None) -> Rulebook:
    """Installed version `number` (the one in force when None), as a person reads it.

    Refuses (PermissionDenied) anyone but active staff; NotFound when no such version was installed.
    """
    if actor is None or not actor.active:
        raise PermissionDenied("振り分けルールを見られるのは職員だけです。")
    versions = tuple(VersionLine(r.number, r.loaded_at, r.loaded_by) for r in session.execute(
        select(RoutingRuleVersion.number, RoutingRuleVersion.loaded_at, RoutingRuleVersion.loaded_by)
        .order_by(RoutingRuleVersion.number.desc())))
    if not versions:
        raise NotFound("振り分けルールがまだ読み込まれていません（tsunagu rules load）。")
    wanted = versions[0].number if number is None else number
    row = session.scalar(select(RoutingRuleVersion).where(RoutingRuleVersion.number == wanted))
    if row is None:
        raise NotFound(f"第{wanted}版の振り分けルールはありません。")
    names = dict(session.execute(select(Department.code, Department.name)).all())
    lists = vocab.lists()
    try:
        ruleset = store.stored_ruleset(session, row.number, row.checksum)
    except RulesError as exc:
        ruleset, problem = None, "この版は今のコード表では読めません（" + "、".join(
            f"{line}行目: {reason}" for _, line, reason in exc.problems[:5]) + "）。保存されたままの内容を示します。"
    else:
        problem = None
    rules = () if ruleset is None else tuple(
        RuleLine(position=i, name=rule.name, conditions=conditions(rule, lists),
                 owner=names.get(rule.owner, rule.owner), notify=tuple(names.get(c, c) for c in rule.notify),
                 reason=rule.reason)
        for i, rule in enumerate(ruleset.rules, start=1))
    cats = lists["issue_categories"]
    combinations = () if ruleset is None else tuple(
        (s.name, "／".join(filter(None, [
            s.categories_all and f"すべて: {_joined(cats, s.categories_all)}",
            s.categories_any and f"いずれか: {_joined(cats, s.categories_any)}"])))
        for s in ruleset.multi_agency_sets)
    return Rulebook(
        number=row.number, in_force=row.number == versions[0].number, loaded_at=row.loaded_at,
        loaded_by=row.loaded_by, source_name=row.source_name, source_text=row.source_text, rules=rules,
        combinations=combinations, policy=() if ruleset is None else _policy(ruleset.stall_policy),
        problem=problem, versions=versions)
