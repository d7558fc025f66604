"""The routing rules as data: a rules file's validated content, and how it routes a consultation.

Rules are tried in order; the first whose every condition holds gives the owning department, the
departments to tell and the reason shown to staff. A named combination of categories (8050, ダブルケア …)
flags the case as a 多機関協働 candidate whichever rule matched.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable

NO_MATCH_REASON = "一致するルールがありません。相談まるごとサポートデスクで担当を決めてください。"


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
    # A notice of a 多機関協働 candidate that nobody of the notified department has seen goes to the FM after
    # this many business days (optional in the file).
    notice_escalate_after_business_days: int = 3


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
