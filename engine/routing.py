"""Declarative routing rules (config/routing.yaml): parsing, validation, matching.

This module's pure part imports no database and no Flask. A rules file is
parsed into an immutable :class:`RuleSet`; a bad file is refused with a
:class:`RulesError` listing every problem found as ``file:line: reason``.

File format (see config/routing.yaml for the demo)::

    stall_policy:
      accept_within_business_days: 2
      urgent_accept_within_office_hours: 4
      escalate_after_business_days: 5
      no_contact_days: 60
      evaluation_grace_days: 0
    multi_agency_sets:            # name -> categories_all and/or categories_any
      "8050": {categories_all: [elder_care, hikikomori]}
    rules:                        # ordered, first match wins
      - name: 8050世帯
        match:                    # all given conditions must hold; {} or `any` = catch-all
          categories_all: [elder_care, hikikomori]
        owner: elderly
        notify: [hikikomori_station]
        reason: 日本語の理由

Match keys: ``categories_any``, ``categories_all``, ``primary_category``,
``areas``, ``age_min``, ``age_max`` (inclusive, full years on the routing
day), ``sources``, ``urgency``. A case's primary category counts as one of its
categories. A condition on age never matches a case without a birth date; a
condition on areas never matches a case without an area.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterable

import yaml

__all__ = [
    "RoutingFacts",
    "StallPolicy",
    "MultiAgencySet",
    "Rule",
    "RoutingDecision",
    "RuleSet",
    "RulesError",
    "NO_MATCH_REASON",
    "parse_rules",
    "parse_rules_file",
    "load_vocabularies",
    "age_on",
]

NO_MATCH_REASON = "一致するルールがありません。相談まるごとサポートデスクで担当を決めてください。"

STALL_POLICY_KEYS: tuple[str, ...] = (
    "accept_within_business_days",
    "urgent_accept_within_office_hours",
    "escalate_after_business_days",
    "no_contact_days",
    "evaluation_grace_days",
)
TOP_LEVEL_KEYS: tuple[str, ...] = ("stall_policy", "multi_agency_sets", "rules")
RULE_KEYS: tuple[str, ...] = ("name", "match", "owner", "notify", "reason")
LIST_MATCH_KEYS: tuple[str, ...] = (
    "categories_any",
    "categories_all",
    "primary_category",
    "areas",
    "sources",
    "urgency",
)
AGE_MATCH_KEYS: tuple[str, ...] = ("age_min", "age_max")
MATCH_KEYS: tuple[str, ...] = LIST_MATCH_KEYS + AGE_MATCH_KEYS
SET_KEYS: tuple[str, ...] = ("categories_all", "categories_any")
CATCH_ALL_WORD = "any"
# Upper bounds: a number past them is a typo, and would make every deadline or scan fail to compute.
STALL_POLICY_MAXIMA: dict[str, int] = {
    "accept_within_business_days": 60,
    "urgent_accept_within_office_hours": 200,
    "escalate_after_business_days": 120,
    "no_contact_days": 3650,
    "evaluation_grace_days": 365,
}
MAX_AGE = 150
MAX_RULE_NAME = 100  # cases.routing_rule_name
MAX_REASON = 2000


# ============================================================================ facts and results


def age_on(birth_date: date | None, on: date) -> int | None:
    """Full years of age on ``on`` (None if the birth date is unknown or in the future)."""
    if birth_date is None:
        return None
    years = on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    return years if years >= 0 else None


@dataclass(frozen=True)
class RoutingFacts:
    """What routing looks at: the case's coded facts on the routing day ``on``."""

    categories: tuple[str, ...]
    primary_category: str | None
    area: str | None
    birth_date: date | None
    source: str
    urgency: str
    on: date

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))

    @property
    def age(self) -> int | None:
        """Age in full years on the routing day, or None when unknown."""
        return age_on(self.birth_date, self.on)

    @property
    def category_set(self) -> frozenset[str]:
        """All categories of the case, the primary category included."""
        cats = set(self.categories)
        if self.primary_category:
            cats.add(self.primary_category)
        return frozenset(cats)


@dataclass(frozen=True)
class StallPolicy:
    """How long a handoff may wait (see DESIGN.md, "Stall policy")."""

    accept_within_business_days: int
    urgent_accept_within_office_hours: int
    escalate_after_business_days: int
    no_contact_days: int
    evaluation_grace_days: int


@dataclass(frozen=True)
class MultiAgencySet:
    """A named category combination that flags a case as a 多機関協働 candidate.

    Matches when the case has every category of ``categories_all`` and, if
    ``categories_any`` is given, at least one of those.
    """

    name: str
    line: int
    categories_all: tuple[str, ...] = ()
    categories_any: tuple[str, ...] = ()

    def matches(self, categories: Iterable[str]) -> bool:
        """True if the given categories contain this combination."""
        cats = set(categories)
        if self.categories_all and not set(self.categories_all) <= cats:
            return False
        if self.categories_any and not cats.intersection(self.categories_any):
            return False
        return bool(self.categories_all or self.categories_any)


@dataclass(frozen=True)
class Rule:
    """One routing rule. ``None`` for a match field means "no condition"."""

    name: str
    line: int
    owner: str
    reason: str
    notify: tuple[str, ...] = ()
    categories_any: tuple[str, ...] | None = None
    categories_all: tuple[str, ...] | None = None
    primary_category: tuple[str, ...] | None = None
    areas: tuple[str, ...] | None = None
    age_min: int | None = None
    age_max: int | None = None
    sources: tuple[str, ...] | None = None
    urgency: tuple[str, ...] | None = None

    @property
    def is_catch_all(self) -> bool:
        """True if the rule has no condition at all (``match: {}`` or ``match: any``)."""
        return all(getattr(self, key) is None for key in MATCH_KEYS)

    def match_signature(self) -> tuple:
        """A normalised form of the match conditions (order of list items ignored)."""
        return tuple(
            (key, frozenset(value) if isinstance(value, tuple) else value)
            for key in MATCH_KEYS
            for value in [getattr(self, key)]
        )

    def matches(self, facts: RoutingFacts) -> bool:
        """True if every condition of this rule holds for ``facts``."""
        if self.categories_any is not None or self.categories_all is not None:
            cats = facts.category_set
            if self.categories_any is not None and cats.isdisjoint(self.categories_any):
                return False
            if self.categories_all is not None and not cats.issuperset(self.categories_all):
                return False
        if self.primary_category is not None and facts.primary_category not in self.primary_category:
            return False
        if self.areas is not None and facts.area not in self.areas:
            return False
        if self.sources is not None and facts.source not in self.sources:
            return False
        if self.urgency is not None and facts.urgency not in self.urgency:
            return False
        if self.age_min is not None or self.age_max is not None:
            age = facts.age
            if age is None:
                return False
            if self.age_min is not None and age < self.age_min:
                return False
            if self.age_max is not None and age > self.age_max:
                return False
        return True


@dataclass(frozen=True)
class RoutingDecision:
    """The outcome of routing one case."""

    rule_name: str | None
    owner: str | None
    notify: tuple[str, ...]
    reason: str
    multi_agency_sets: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        """True if a rule matched (an owner was proposed)."""
        return self.rule_name is not None

    @property
    def multi_agency_candidate(self) -> bool:
        """True if any 多機関協働 combination matched (the FM is alerted)."""
        return bool(self.multi_agency_sets)


@dataclass(frozen=True)
class RuleSet:
    """A validated rules file. ``checksum`` (sha256 of the text) identifies the version."""

    rules: tuple[Rule, ...]
    stall_policy: StallPolicy
    multi_agency_sets: tuple[MultiAgencySet, ...]
    source_text: str
    checksum: str

    def route(self, facts: RoutingFacts) -> RoutingDecision:
        """Apply the rules in order; the first matching rule gives the owner."""
        cats = facts.category_set
        sets = tuple(s.name for s in self.multi_agency_sets if s.matches(cats))
        for rule in self.rules:
            if rule.matches(facts):
                return RoutingDecision(
                    rule_name=rule.name,
                    owner=rule.owner,
                    notify=rule.notify,
                    reason=rule.reason,
                    multi_agency_sets=sets,
                )
        return RoutingDecision(
            rule_name=None, owner=None, notify=(), reason=NO_MATCH_REASON, multi_agency_sets=sets
        )

    def rule(self, name: str) -> Rule:
        """The rule called ``name`` (KeyError if there is none)."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Rule names in file order."""
        return tuple(rule.name for rule in self.rules)


class RulesError(Exception):
    """A rules file was refused. ``problems`` lists (file, line, reason) tuples."""

    def __init__(self, problems: list[tuple[str, int, str]]):
        self.problems = sorted(problems, key=lambda p: p[1])
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{file}:{line}: {reason}" for file, line, reason in self.problems)


# ============================================================================ YAML with line numbers


class _Map(dict):
    """A YAML mapping that remembers where it and its keys and values start (1-based)."""

    line: int = 1
    key_lines: dict
    value_lines: dict
    duplicates: list


class _Seq(list):
    """A YAML sequence that remembers where it and each item start (1-based)."""

    line: int = 1
    item_lines: list


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry their source line numbers."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.value_lines = {}
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "unhashable key", key_node.start_mark
            ) from None
        if key in result:
            result.duplicates.append((key, key_node.start_mark.line + 1))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
        result.value_lines[key] = value_node.start_mark.line + 1
    return result


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq()
    result.line = node.start_mark.line + 1
    result.item_lines = []
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))
        result.item_lines.append(item.start_mark.line + 1)
    return result


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
# Rules hold no dates: keep date-like scalars as text (a bad date must not crash the loader).
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _key_line(mapping: Any, key: str, default: int) -> int:
    return getattr(mapping, "key_lines", {}).get(key, default)


def _value_line(mapping: Any, key: str, default: int) -> int:
    return getattr(mapping, "value_lines", {}).get(key, default)


def _item_line(seq: Any, index: int, default: int) -> int:
    lines = getattr(seq, "item_lines", None)
    return lines[index] if lines and index < len(lines) else default


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ============================================================================ parsing


class _Parser:
    """Collects every problem of one rules file instead of stopping at the first."""

    def __init__(self, filename: str, vocab: dict[str, set[str]]):
        self.filename = filename
        self.vocab = vocab
        self.problems: list[tuple[str, int, str]] = []

    def problem(self, line: int, reason: str) -> None:
        self.problems.append((self.filename, line, reason))

    def check_duplicates(self, mapping: Any, where: str) -> None:
        for key, line in getattr(mapping, "duplicates", []):
            self.problem(line, f"{where}キー '{key}' が重複しています")

    def check_unknown_keys(self, mapping: _Map, allowed: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.problem(
                    _key_line(mapping, key, mapping.line),
                    f"{where}不明なキー '{key}'（使えるキー: {', '.join(allowed)}）",
                )

    # ---------------------------------------------------------------- code lists
    _VOCAB_LABELS = {
        "categories": "不明な分類コード",
        "areas": "不明な圏域",
        "sources": "不明な受付経路コード",
        "urgencies": "不明な緊急度コード",
        "departments": "不明な部署コード",
    }

    def code_list(
        self, mapping: _Map, key: str, vocab_name: str, where: str, *, allow_empty: bool = False
    ) -> tuple[str, ...] | None:
        """Validate mapping[key] as a list of known codes; None if it has problems."""
        value = mapping[key]
        line = _value_line(mapping, key, mapping.line)
        if not isinstance(value, list):
            self.problem(line, f"{where} {key} はコードのリストで指定してください（例: [a, b]）")
            return None
        if not value and not allow_empty:
            self.problem(line, f"{where} {key} が空のリストです")
            return None
        ok = True
        seen: list[str] = []
        for index, item in enumerate(value):
            item_line = _item_line(value, index, line)
            if not isinstance(item, str):
                self.problem(item_line, f"{where} {key} の値 {item!r} はコード（文字列）ではありません")
                ok = False
            elif item not in self.vocab[vocab_name]:
                self.problem(item_line, f"{where}{self._VOCAB_LABELS[vocab_name]} '{item}'")
                ok = False
            elif item not in seen:
                seen.append(item)
        return tuple(seen) if ok else None

    # ---------------------------------------------------------------- sections
    def parse(self, text: str) -> RuleSet | None:
        try:
            data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark is not None else 1
            parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
            detail = " ".join(str(part) for part in parts if part)
            self.problem(line, f"YAML の構文エラー: {detail or exc}")
            return None
        if data is None:
            self.problem(1, "ファイルが空です（stall_policy と rules が必要です）")
            return None
        if not isinstance(data, _Map):
            self.problem(1, "最上位はマッピング（stall_policy, multi_agency_sets, rules）で指定してください")
            return None
        self.check_duplicates(data, "")
        self.check_unknown_keys(data, TOP_LEVEL_KEYS, "")

        policy = None
        if "stall_policy" not in data:
            self.problem(data.line, "stall_policy がありません")
        else:
            policy = self.parse_stall_policy(data)

        sets: tuple[MultiAgencySet, ...] = ()
        if "multi_agency_sets" in data:
            sets = self.parse_multi_agency_sets(data)

        rules: tuple[Rule, ...] = ()
        if "rules" not in data:
            self.problem(data.line, "rules がありません")
        else:
            rules = self.parse_rules(data)

        if self.problems or policy is None:
            return None
        return RuleSet(
            rules=rules,
            stall_policy=policy,
            multi_agency_sets=sets,
            source_text=text,
            checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )

    def parse_stall_policy(self, data: _Map) -> StallPolicy | None:
        section = data["stall_policy"]
        if not isinstance(section, _Map):
            self.problem(_value_line(data, "stall_policy", data.line), "stall_policy はマッピングで指定してください")
            return None
        self.check_duplicates(section, "stall_policy の")
        self.check_unknown_keys(section, STALL_POLICY_KEYS, "stall_policy の")
        values: dict[str, int] = {}
        for key in STALL_POLICY_KEYS:
            if key not in section:
                self.problem(_key_line(data, "stall_policy", section.line), f"stall_policy.{key} がありません")
                continue
            value = section[key]
            if not _is_int(value) or not 0 <= value <= STALL_POLICY_MAXIMA[key]:
                self.problem(
                    _value_line(section, key, section.line),
                    f"stall_policy.{key} は0以上{STALL_POLICY_MAXIMA[key]}以下の整数で指定してください",
                )
                continue
            values[key] = value
        if len(values) != len(STALL_POLICY_KEYS):
            return None
        if values["escalate_after_business_days"] < values["accept_within_business_days"]:
            # Escalation to the FM follows the receiver's own reminder: before it, the reminder never comes.
            self.problem(_value_line(section, "escalate_after_business_days", section.line),
                         "stall_policy.escalate_after_business_days は accept_within_business_days"
                         f"（{values['accept_within_business_days']}）以上にしてください")
            return None
        return StallPolicy(**values)

    def parse_multi_agency_sets(self, data: _Map) -> tuple[MultiAgencySet, ...]:
        section = data["multi_agency_sets"]
        if section is None:
            return ()
        if not isinstance(section, _Map):
            self.problem(
                _value_line(data, "multi_agency_sets", data.line),
                "multi_agency_sets は「名前: {categories_all: [...]}」のマッピングで指定してください",
            )
            return ()
        self.check_duplicates(section, "multi_agency_sets の")
        result = []
        for raw_name, body in section.items():
            name = str(raw_name)
            line = _key_line(section, raw_name, section.line)
            where = f"多機関協働の組み合わせ '{name}' の"
            if not isinstance(body, _Map) or not body:
                self.problem(line, f"{where}内容は categories_all / categories_any で指定してください")
                continue
            self.check_duplicates(body, where)
            self.check_unknown_keys(body, SET_KEYS, where)
            all_of = any_of = ()
            ok = True
            if "categories_all" in body:
                all_of = self.code_list(body, "categories_all", "categories", where)
                ok = ok and all_of is not None
            if "categories_any" in body:
                any_of = self.code_list(body, "categories_any", "categories", where)
                ok = ok and any_of is not None
            if ok and (all_of or any_of):
                result.append(
                    MultiAgencySet(name=name, line=line, categories_all=all_of, categories_any=any_of)
                )
        return tuple(result)

    def parse_rules(self, data: _Map) -> tuple[Rule, ...]:
        section = data["rules"]
        line = _value_line(data, "rules", data.line)
        if not isinstance(section, list):
            self.problem(line, "rules はルールのリストで指定してください")
            return ()
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for index, item in enumerate(section):
            item_line = _item_line(section, index, line)
            if not isinstance(item, _Map):
                self.problem(item_line, f"rules の {index + 1} 番目はマッピング（name, match, owner, reason）で指定してください")
                continue
            rule = self.parse_rule(item, index, names)
            if rule is not None:
                rules.append(rule)
        self.check_reachability(rules)
        return tuple(rules)

    def parse_rule(self, item: _Map, index: int, names: dict[str, int]) -> Rule | None:
        line = item.line
        problems_before = len(self.problems)

        raw_name = item.get("name")
        if "name" not in item or raw_name is None or (isinstance(raw_name, str) and not raw_name.strip()):
            self.problem(line, f"rules の {index + 1} 番目に name がありません")
            name = f"#{index + 1}"
        elif not isinstance(raw_name, (str, int)) or isinstance(raw_name, bool):
            self.problem(_value_line(item, "name", line), "name は文字列で指定してください")
            name = f"#{index + 1}"
        elif len(str(raw_name).strip()) > MAX_RULE_NAME:
            self.problem(_value_line(item, "name", line), f"name は{MAX_RULE_NAME}文字以内で指定してください")
            name = f"#{index + 1}"
        else:
            name = str(raw_name).strip()
            if name in names:
                self.problem(
                    _value_line(item, "name", line),
                    f"ルール名 '{name}' が重複しています（{names[name]}行目で定義済み）",
                )
            else:
                names[name] = line
        where = f"ルール '{name}' の"

        self.check_duplicates(item, where)
        self.check_unknown_keys(item, RULE_KEYS, where)

        # match
        conditions: dict[str, Any] = {}
        match = item.get("match")
        if match is None:
            self.problem(_key_line(item, "match", line), f"{where} match が空です（すべてに一致させるには match: any）")
        elif isinstance(match, str) and match.strip() == CATCH_ALL_WORD:
            pass
        elif not isinstance(match, _Map):
            self.problem(
                _value_line(item, "match", line),
                f"{where} match は条件のマッピング、または any で指定してください",
            )
        else:
            conditions = self.parse_match(match, where)

        # owner
        owner = item.get("owner")
        if "owner" not in item or owner is None:
            self.problem(line, f"{where} owner がありません")
        elif not isinstance(owner, str):
            self.problem(_value_line(item, "owner", line), f"{where} owner は部署コードで指定してください")
        elif owner not in self.vocab["departments"]:
            self.problem(_value_line(item, "owner", line), f"{where}不明な部署コード '{owner}'")

        # notify
        notify: tuple[str, ...] | None = ()
        if item.get("notify") is not None:
            notify = self.code_list(item, "notify", "departments", where, allow_empty=True)

        # reason
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            self.problem(
                _key_line(item, "reason", line),
                f"{where} reason（担当者に表示する理由）がありません",
            )
        elif len(reason.strip()) > MAX_REASON:
            self.problem(_value_line(item, "reason", line), f"{where} reason は{MAX_REASON}文字以内で指定してください")

        if len(self.problems) != problems_before:
            return None
        return Rule(
            name=name,
            line=line,
            owner=owner,
            reason=reason.strip(),
            notify=tuple(n for n in notify if n != owner) if notify else (),
            **conditions,
        )

    def parse_match(self, match: _Map, where: str) -> dict[str, Any]:
        self.check_duplicates(match, f"{where} match の")
        self.check_unknown_keys(match, MATCH_KEYS, f"{where} match の")
        vocab_for = {
            "categories_any": "categories",
            "categories_all": "categories",
            "primary_category": "categories",
            "areas": "areas",
            "sources": "sources",
            "urgency": "urgencies",
        }
        conditions: dict[str, Any] = {}
        for key in LIST_MATCH_KEYS:
            if key in match:
                value = self.code_list(match, key, vocab_for[key], f"{where} match の")
                if value is not None:
                    conditions[key] = value
        for key in AGE_MATCH_KEYS:
            if key in match:
                value = match[key]
                if not _is_int(value) or not 0 <= value <= MAX_AGE:
                    self.problem(
                        _value_line(match, key, match.line),
                        f"{where} match の {key} は0以上{MAX_AGE}以下の整数で指定してください",
                    )
                else:
                    conditions[key] = value
        lo, hi = conditions.get("age_min"), conditions.get("age_max")
        if lo is not None and hi is not None and lo > hi:
            self.problem(
                _key_line(match, "age_min", match.line),
                f"{where} age_min ({lo}) が age_max ({hi}) より大きいため、このルールは一致しません",
            )
        return conditions

    # ---------------------------------------------------------------- reachability
    def check_reachability(self, rules: list[Rule]) -> None:
        for position, later in enumerate(rules):
            for earlier in rules[:position]:
                if earlier.is_catch_all:
                    self.problem(
                        later.line,
                        f"ルール '{later.name}' は前の包括ルール '{earlier.name}' のため到達できません",
                    )
                    break
                if earlier.match_signature() == later.match_signature():
                    self.problem(
                        later.line,
                        f"ルール '{later.name}' の match は前のルール '{earlier.name}'"
                        f"（{earlier.line}行目）と同じため到達できません",
                    )
                    break
                if _covers(earlier, later):
                    self.problem(
                        later.line,
                        f"ルール '{later.name}' に一致する相談は必ず前のルール '{earlier.name}'"
                        f"（{earlier.line}行目）に一致するため到達できません",
                    )
                    break


def _covers(a: Rule, b: Rule) -> bool:
    """Sufficient (conservative) test that every case matching ``b`` also matches ``a``."""
    required = set(b.categories_all or ())
    for single in (b.categories_any, b.primary_category):
        if single is not None and len(single) == 1:
            required.update(single)

    def subset(narrow: tuple[str, ...] | None, wide: tuple[str, ...] | None) -> bool:
        return wide is None or (narrow is not None and set(narrow) <= set(wide))

    if a.categories_all is not None and not set(a.categories_all) <= required:
        return False
    if a.categories_any is not None:
        any_ok = bool(required.intersection(a.categories_any))
        any_ok = (
            any_ok
            or subset(b.categories_any, a.categories_any)
            or subset(b.primary_category, a.categories_any)
        )
        if not any_ok:
            return False
    for key in ("primary_category", "areas", "sources", "urgency"):
        if not subset(getattr(b, key), getattr(a, key)):
            return False
    if a.age_min is not None and (b.age_min is None or b.age_min < a.age_min):
        return False
    if a.age_max is not None and (b.age_max is None or b.age_max > a.age_max):
        return False
    return True


# ============================================================================ public entry points


def parse_rules(
    text: str,
    *,
    filename: str,
    departments: set[str],
    categories: set[str],
    areas: set[str],
    sources: set[str],
    urgencies: set[str],
) -> RuleSet:
    """Parse and validate a rules file's text against the code lists.

    Raises :class:`RulesError` listing every problem found (file, line, reason).
    """
    parser = _Parser(
        filename,
        {
            "departments": set(departments),
            "categories": set(categories),
            "areas": set(areas),
            "sources": set(sources),
            "urgencies": set(urgencies),
        },
    )
    ruleset = parser.parse(text)
    if parser.problems or ruleset is None:
        raise RulesError(parser.problems or [(filename, 1, "ルールファイルを読み込めません")])
    return ruleset


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: ファイルを読み込めません ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: YAML の構文エラー: {exc}") from exc


def load_vocabularies(config_dir: Path) -> dict[str, set[str]]:
    """Read categories.yaml and departments.yaml from ``config_dir``.

    Returns ``{"departments", "categories", "areas", "sources", "urgencies"}``
    code sets, ready to pass to :func:`parse_rules` as keyword arguments.
    Raises ``ValueError`` naming the file when one is missing or malformed.
    """
    config_dir = Path(config_dir)
    cat_path = config_dir / "categories.yaml"
    dep_path = config_dir / "departments.yaml"
    cats = _read_yaml(cat_path)
    if not isinstance(cats, dict):
        raise ValueError(f"{cat_path}: 最上位はマッピングで指定してください")
    result: dict[str, set[str]] = {}
    for out_key, file_key in (
        ("categories", "issue_categories"),
        ("areas", "areas"),
        ("sources", "sources"),
        ("urgencies", "urgencies"),
    ):
        section = cats.get(file_key)
        if not isinstance(section, dict) or not section:
            raise ValueError(f"{cat_path}: {file_key}（コード: 表示名）がありません")
        result[out_key] = {str(code) for code in section}
    deps = _read_yaml(dep_path)
    entries = deps.get("departments") if isinstance(deps, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{dep_path}: departments のリストがありません")
    codes = set()
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("code"), str):
            raise ValueError(f"{dep_path}: code のない部署があります: {entry!r}")
        codes.add(entry["code"])
    result["departments"] = codes
    return result


def parse_rules_file(path: Path, config_dir: Path | None = None) -> RuleSet:
    """Read and validate a rules file; code lists come from ``config_dir`` (default: the file's folder)."""
    path = Path(path)
    vocab = load_vocabularies(Path(config_dir) if config_dir is not None else path.parent)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RulesError([(str(path), 1, f"ファイルを読み込めません ({exc})")]) from exc
    try:
        # A byte order mark (Windows editors write one) is not part of the rules: the same text with or
        # without it is the same version.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise RulesError([(str(path), line, "UTF-8 として読めない文字があります（Shift_JIS などで保存されていないか"
                                            "確認し、UTF-8 で保存し直してください）")]) from exc
    return parse_rules(text, filename=str(path), **vocab)


# ============================================================================ the rules in force (database)
# Below: the part that reads and writes the database. Installed rules are numbered versions; every
# routing decision records the version and the rule that made it. The stall scan that turns the policy
# into alerts lives in engine/scan.py; a staff override of a proposal in engine/routing_override.py.

log = logging.getLogger(__name__)

_RULESET_CACHE: dict[tuple[int, str, str], RuleSet] = {}
_CALENDAR_CACHE: dict[str, Any] = {}


def _config_dir() -> Path:
    from engine import vocab

    return vocab.config_dir()


def business_calendar():
    """The city's business calendar (config/calendar.yaml), read once per config folder."""
    from engine.calendar import BusinessCalendar

    path = str(_config_dir() / "calendar.yaml")
    if path not in _CALENDAR_CACHE:
        _CALENDAR_CACHE[path] = BusinessCalendar.from_file(path)
    return _CALENDAR_CACHE[path]


def check_rules_file(path: Path, config_dir: Path | None = None) -> RuleSet:
    """Validate a rules file against the code lists of ``config_dir`` (default: the configured folder).

    Raises RulesError (``file:line: reason`` per problem) or ValueError when the code lists themselves
    cannot be read.
    """
    return parse_rules_file(Path(path), Path(config_dir) if config_dir is not None else _config_dir())


def install_rules(session, path: Path, *, loaded_by: str | None = None, config_dir: Path | None = None):
    """Validate `path` and store it as the next rules version; an unchanged file adds no version.

    Beyond the code lists, every owner and notified department must exist in the database (a rule that
    proposes a department nobody can sign in for would leave its cases unrouted). A file that fails
    raises RulesError and changes nothing: the old version stays in force. Returns (version row, added).
    """
    from sqlalchemy import func, select

    from engine import audit
    from engine.models import Department, RoutingRuleVersion

    path = Path(path)
    ruleset = check_rules_file(path, config_dir)
    known = set(session.scalars(select(Department.code)))
    problems = [
        (str(path), rule.line, f"ルール '{rule.name}' の部署コード '{code}' はデータベースに登録されていません"
                               "（先に部署を登録してください）")
        for rule in ruleset.rules
        for code in dict.fromkeys((rule.owner, *rule.notify))
        if code not in known
    ]
    if problems:
        raise RulesError(problems)
    current = session.scalars(
        select(RoutingRuleVersion).order_by(RoutingRuleVersion.number.desc()).limit(1)
    ).first()
    if current is not None and current.checksum == ruleset.checksum:
        return current, False
    number = (session.scalar(select(func.max(RoutingRuleVersion.number))) or 0) + 1
    row = RoutingRuleVersion(number=number, checksum=ruleset.checksum, source_name=path.name,
                             source_text=ruleset.source_text, loaded_by=loaded_by)
    session.add(row)
    session.flush()
    audit.record(session, actor=None, actor_label=loaded_by or "system", action="rules.load",
                 object_type="routing_rules", object_id=number, detail={"checksum": ruleset.checksum})
    return row, True


def active_rules(session):
    """The newest installed rules version and its parsed RuleSet, or (None, None) before any is loaded.

    Raises RulesError if the stored text no longer validates against the code lists (a department or
    category was removed from config/ after the rules were loaded).
    """
    from sqlalchemy import select

    from engine.models import RoutingRuleVersion

    cached = session.info.get("active_rules")
    if cached is not None and session.get_transaction() is not None and cached[0] is session.get_transaction():
        return cached[1]
    # The version and checksum name the rules; their text is read and parsed once per process.
    row = session.execute(
        select(RoutingRuleVersion.number, RoutingRuleVersion.checksum)
        .order_by(RoutingRuleVersion.number.desc()).limit(1)
    ).first()
    if row is None:
        return None, None
    result = (row.number, stored_ruleset(session, row.number, row.checksum))
    session.info["active_rules"] = (session.get_transaction(), result)
    return result


def stored_ruleset(session, number: int, checksum: str) -> RuleSet:
    """The parsed RuleSet of installed version `number` (whose checksum is `checksum`): its stored text is
    read and parsed once per process. Raises RulesError if that text no longer validates."""
    from sqlalchemy import select

    from engine.models import RoutingRuleVersion

    key = (number, checksum, str(_config_dir()))
    if key not in _RULESET_CACHE:
        source_name, source_text = session.execute(
            select(RoutingRuleVersion.source_name, RoutingRuleVersion.source_text)
            .where(RoutingRuleVersion.number == number)
        ).one()
        _RULESET_CACHE[key] = parse_rules(source_text, filename=source_name, **load_vocabularies(_config_dir()))
    return _RULESET_CACHE[key]


def _file_rules() -> RuleSet:
    key = (0, "file", str(_config_dir()))
    if key not in _RULESET_CACHE:
        _RULESET_CACHE[key] = parse_rules_file(_config_dir() / "routing.yaml", _config_dir())
    return _RULESET_CACHE[key]


def stall_policy(session) -> StallPolicy:
    """The stall policy in force: the installed rules', else the config folder's routing.yaml."""
    try:
        _, ruleset = active_rules(session)
    except RulesError as exc:
        log.error("installed routing rules no longer validate; using routing.yaml's stall policy: %s", exc)
        ruleset = None
    return (ruleset or _file_rules()).stall_policy


def handoff_deadlines(session, sent_at, urgency: str):
    """(due_at, escalate_at) for a handoff sent at `sent_at`, on the business calendar, in UTC."""
    policy = stall_policy(session)
    cal = business_calendar()
    if urgency == "urgent":
        due = cal.deadline_after_office_hours(sent_at, policy.urgent_accept_within_office_hours)
    else:
        due = cal.deadline_after_business_days(sent_at, policy.accept_within_business_days)
    escalate = cal.deadline_after_business_days(sent_at, policy.escalate_after_business_days)
    return due, max(due, escalate)


def prefetch(session, facts: RoutingFacts | None = None) -> None:
    """Read what routing a new case will need into the session's caches, so that an intake can do these
    reads before its first write: the rules in force, and the departments the decision for ``facts``
    names (the desk's when no rule matches), or without facts every department the rules name."""
    from engine import services
    from engine.access import DESK_CODE

    try:
        _, ruleset = active_rules(session)
    except RulesError:
        ruleset = None  # route_new_case reports it
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
    services.departments_by_codes(session, sorted(codes))


def facts_of(case, on: date) -> RoutingFacts:
    """The routing facts of a case on the routing day ``on`` (JST)."""
    return RoutingFacts(categories=tuple(case.category_codes), primary_category=case.primary_category,
                        area=case.person.area, birth_date=case.person.birth_date, source=case.source,
                        urgency=case.urgency, on=on)


def route_new_case(session, case, actor, *, now, client=None) -> RoutingDecision:
    """Run the rules on a newly opened case.

    A match sends the つなぐシート to the owning department (state `handoff`); no match leaves the case in
    `intake` and raises an `unrouted` alert to the desk. So does a match whose department is missing or
    no longer accepts つなぐシート: recording the consultation must never fail because of the rules.
    A 多機関協働 combination flags the case and alerts the FM. The decision records the rules version
    and rule.
    """
    from engine import alerts, services
    from engine.access import DESK_CODE, SYSTEM_ACTOR
    from engine.calendar import JST

    try:
        number, ruleset = active_rules(session)
        unusable = ""
    except RulesError as exc:
        log.error("installed routing rules no longer validate; case %s left unrouted: %s", case.id, exc)
        number, ruleset = None, None
        unusable = "登録されている振り分けルールが現在の部署・分類の設定と合わないため、自動で振り分けできませんでした。"
    if ruleset is None:
        decision = RoutingDecision(rule_name=None, owner=None, notify=(),
                                   reason=(unusable or "振り分けルールが登録されていません。") + NO_MATCH_REASON,
                                   multi_agency_sets=())
    else:
        decision = ruleset.route(facts_of(case, now.astimezone(JST).date()))
    owner = services.department_by_code(session, decision.owner)
    reason = decision.reason
    if decision.owner is not None and (owner is None or not owner.active):
        name = owner.name if owner is not None else decision.owner
        reason = (f"{decision.reason}（ただし提案先の{name}は現在つなぐシートを受け付けていないため、"
                  f"自動では送付していません。{NO_MATCH_REASON}）")
    record = {"routing_rule_version": number, "routing_rule_name": decision.rule_name,
              "routing_reason": reason, "proposed_department_id": owner.id if owner else None}
    if decision.multi_agency_candidate:
        record["multi_agency_candidate"] = True
        # The case row exists; its pending history row goes with the next flush.
        with session.no_autoflush:
            alerts.raise_alert(session, kind="multi_agency_candidate", case_id=case.id,
                               message="多機関協働の候補です（" + "・".join(decision.multi_agency_sets) + "）",
                               now=now)
    if owner is None or not owner.active:
        for key, value in record.items():
            setattr(case, key, value)
        desk = services.department_by_code(session, DESK_CODE)
        alerts.raise_alert(session, kind="unrouted", case_id=case.id, department_id=desk.id if desk else None,
                           message=reason, now=now)
        return decision
    sender = actor if actor is not None and actor.role != "admin" else SYSTEM_ACTOR
    notify = [d.code for d in (services.department_by_code(session, c) for c in decision.notify)
              if d is not None and d.active]
    # The decision reaches the case row in the same UPDATE as the state change.
    services.fire_event(session, sender, case.id, "send_handoff", version=case.version, now=now, client=client,
                        fields={"to_department": owner.code, "reason": reason, "summary": case.summary,
                                "notify": notify, "notify_reason": reason}, case_values=record)
    return decision


@dataclass(frozen=True)
class Proposal:
    """What the rules in force would do with a consultation: computed, never written."""

    rule_version: int | None
    decision: RoutingDecision
    owner: Any = None  # engine.models.Department, or None when no rule matched
    notify: tuple = ()  # Departments also told of the case


def propose(session, facts: RoutingFacts) -> Proposal:
    """Route `facts` by the rules in force without writing anything (shown to staff before sending)."""
    from engine import services

    number, ruleset = active_rules(session)
    if ruleset is None:
        decision = RoutingDecision(rule_name=None, owner=None, notify=(),
                                   reason="振り分けルールが登録されていません。" + NO_MATCH_REASON,
                                   multi_agency_sets=())
    else:
        decision = ruleset.route(facts)
    owner = services.department_by_code(session, decision.owner)
    notify = tuple(d for d in (services.department_by_code(session, c) for c in decision.notify)
                   if d is not None and d.active)
    return Proposal(rule_version=number, decision=decision, owner=owner, notify=notify)
