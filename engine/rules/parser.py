"""Reading the routing rules file (config/routing.yaml): parsing and validation.

Pure: no database, no Flask. A rules file is parsed into an immutable RuleSet (engine.rules.ruleset); a bad
file is refused with a RulesError listing every problem found as ``file:line: reason``, each line named.

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
from pathlib import Path
from typing import Any

import yaml

from engine.rules.code_lists import load_vocabularies
from engine.rules.ruleset import (
    AGE_MATCH_KEYS,
    LIST_MATCH_KEYS,
    MATCH_KEYS,
    MultiAgencySet,
    Rule,
    RulesError,
    RuleSet,
    StallPolicy,
)
from engine.rules.yaml_lines import LineLoader, LineMap, is_int, item_line, key_line, value_line

STALL_POLICY_KEYS: tuple[str, ...] = (
    "accept_within_business_days",
    "urgent_accept_within_office_hours",
    "escalate_after_business_days",
    "no_contact_days",
    "evaluation_grace_days",
)
TOP_LEVEL_KEYS: tuple[str, ...] = ("stall_policy", "multi_agency_sets", "rules")
RULE_KEYS: tuple[str, ...] = ("name", "match", "owner", "notify", "reason")
SET_KEYS: tuple[str, ...] = ("categories_all", "categories_any")
CATCH_ALL_WORD = "any"
# Upper bounds: a number past them is a typo, and would make every deadline or scan fail to compute.
# Keys a rules file may leave out, with the value it then has.
OPTIONAL_STALL_POLICY_KEYS: dict[str, int] = {"notice_escalate_after_business_days": 3}
STALL_POLICY_MAXIMA: dict[str, int] = {
    "notice_escalate_after_business_days": 60,
    "accept_within_business_days": 60,
    "urgent_accept_within_office_hours": 200,
    "escalate_after_business_days": 120,
    "no_contact_days": 3650,
    "evaluation_grace_days": 365,
}
MAX_AGE = 150
MAX_RULE_NAME = 100  # cases.routing_rule_name
MAX_REASON = 2000


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

    def check_unknown_keys(self, mapping: LineMap, allowed: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.problem(
                    key_line(mapping, key, mapping.line),
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
        self, mapping: LineMap, key: str, vocab_name: str, where: str, *, allow_empty: bool = False
    ) -> tuple[str, ...] | None:
        """Validate mapping[key] as a list of known codes; None if it has problems."""
        value = mapping[key]
        line = value_line(mapping, key, mapping.line)
        if not isinstance(value, list):
            self.problem(line, f"{where} {key} はコードのリストで指定してください（例: [a, b]）")
            return None
        if not value and not allow_empty:
            self.problem(line, f"{where} {key} が空のリストです")
            return None
        ok = True
        seen: list[str] = []
        for index, item in enumerate(value):
            at = item_line(value, index, line)
            if not isinstance(item, str):
                self.problem(at, f"{where} {key} の値 {item!r} はコード（文字列）ではありません")
                ok = False
            elif item not in self.vocab[vocab_name]:
                self.problem(at, f"{where}{self._VOCAB_LABELS[vocab_name]} '{item}'")
                ok = False
            elif item not in seen:
                seen.append(item)
        return tuple(seen) if ok else None

    # ---------------------------------------------------------------- sections
    def parse(self, text: str) -> RuleSet | None:
        try:
            data = yaml.load(text, Loader=LineLoader)  # noqa: S506 - LineLoader is a SafeLoader
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
        if not isinstance(data, LineMap):
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

    def parse_stall_policy(self, data: LineMap) -> StallPolicy | None:
        section = data["stall_policy"]
        if not isinstance(section, LineMap):
            self.problem(value_line(data, "stall_policy", data.line), "stall_policy はマッピングで指定してください")
            return None
        self.check_duplicates(section, "stall_policy の")
        self.check_unknown_keys(section, STALL_POLICY_KEYS + tuple(OPTIONAL_STALL_POLICY_KEYS), "stall_policy の")
        values: dict[str, int] = {}
        for key in STALL_POLICY_KEYS + tuple(OPTIONAL_STALL_POLICY_KEYS):
            if key not in section:
                if key in OPTIONAL_STALL_POLICY_KEYS:
                    values[key] = OPTIONAL_STALL_POLICY_KEYS[key]
                    continue
                self.problem(key_line(data, "stall_policy", section.line), f"stall_policy.{key} がありません")
                continue
            value = section[key]
            if not is_int(value) or not 0 <= value <= STALL_POLICY_MAXIMA[key]:
                self.problem(
                    value_line(section, key, section.line),
                    f"stall_policy.{key} は0以上{STALL_POLICY_MAXIMA[key]}以下の整数で指定してください",
                )
                continue
            values[key] = value
        if len(values) != len(STALL_POLICY_KEYS) + len(OPTIONAL_STALL_POLICY_KEYS):
            return None
        if values["escalate_after_business_days"] < values["accept_within_business_days"]:
            # Escalation to the FM follows the receiver's own reminder: before it, the reminder never comes.
            self.problem(value_line(section, "escalate_after_business_days", section.line),
                         "stall_policy.escalate_after_business_days は accept_within_business_days"
                         f"（{values['accept_within_business_days']}）以上にしてください")
            return None
        return StallPolicy(**values)

    def parse_multi_agency_sets(self, data: LineMap) -> tuple[MultiAgencySet, ...]:
        section = data["multi_agency_sets"]
        if section is None:
            return ()
        if not isinstance(section, LineMap):
            self.problem(
                value_line(data, "multi_agency_sets", data.line),
                "multi_agency_sets は「名前: {categories_all: [...]}」のマッピングで指定してください",
            )
            return ()
        self.check_duplicates(section, "multi_agency_sets の")
        result = []
        for raw_name, body in section.items():
            name = str(raw_name)
            line = key_line(section, raw_name, section.line)
            where = f"多機関協働の組み合わせ '{name}' の"
            if not isinstance(body, LineMap) or not body:
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

    def parse_rules(self, data: LineMap) -> tuple[Rule, ...]:
        section = data["rules"]
        line = value_line(data, "rules", data.line)
        if not isinstance(section, list):
            self.problem(line, "rules はルールのリストで指定してください")
            return ()
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for index, item in enumerate(section):
            at = item_line(section, index, line)
            if not isinstance(item, LineMap):
                self.problem(at, f"rules の {index + 1} 番目はマッピング（name, match, owner, reason）で指定してください")
                continue
            rule = self.parse_rule(item, index, names)
            if rule is not None:
                rules.append(rule)
        self.check_reachability(rules)
        return tuple(rules)

    def parse_rule(self, item: LineMap, index: int, names: dict[str, int]) -> Rule | None:
        line = item.line
        problems_before = len(self.problems)

        raw_name = item.get("name")
        if "name" not in item or raw_name is None or (isinstance(raw_name, str) and not raw_name.strip()):
            self.problem(line, f"rules の {index + 1} 番目に name がありません")
            name = f"#{index + 1}"
        elif not isinstance(raw_name, (str, int)) or isinstance(raw_name, bool):
            self.problem(value_line(item, "name", line), "name は文字列で指定してください")
            name = f"#{index + 1}"
        elif len(str(raw_name).strip()) > MAX_RULE_NAME:
            self.problem(value_line(item, "name", line), f"name は{MAX_RULE_NAME}文字以内で指定してください")
            name = f"#{index + 1}"
        else:
            name = str(raw_name).strip()
            if name in names:
                self.problem(
                    value_line(item, "name", line),
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
            self.problem(key_line(item, "match", line), f"{where} match が空です（すべてに一致させるには match: any）")
        elif isinstance(match, str) and match.strip() == CATCH_ALL_WORD:
            pass
        elif not isinstance(match, LineMap):
            self.problem(
                value_line(item, "match", line),
                f"{where} match は条件のマッピング、または any で指定してください",
            )
        else:
            conditions = self.parse_match(match, where)

        # owner
        owner = item.get("owner")
        if "owner" not in item or owner is None:
            self.problem(line, f"{where} owner がありません")
        elif not isinstance(owner, str):
            self.problem(value_line(item, "owner", line), f"{where} owner は部署コードで指定してください")
        elif owner not in self.vocab["departments"]:
            self.problem(value_line(item, "owner", line), f"{where}不明な部署コード '{owner}'")

        # notify
        notify: tuple[str, ...] | None = ()
        if item.get("notify") is not None:
            notify = self.code_list(item, "notify", "departments", where, allow_empty=True)

        # reason
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            self.problem(
                key_line(item, "reason", line),
                f"{where} reason（担当者に表示する理由）がありません",
            )
        elif len(reason.strip()) > MAX_REASON:
            self.problem(value_line(item, "reason", line), f"{where} reason は{MAX_REASON}文字以内で指定してください")

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

    def parse_match(self, match: LineMap, where: str) -> dict[str, Any]:
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
                if not is_int(value) or not 0 <= value <= MAX_AGE:
                    self.problem(
                        value_line(match, key, match.line),
                        f"{where} match の {key} は0以上{MAX_AGE}以下の整数で指定してください",
                    )
                else:
                    conditions[key] = value
        lo, hi = conditions.get("age_min"), conditions.get("age_max")
        if lo is not None and hi is not None and lo > hi:
            self.problem(
                key_line(match, "age_min", match.line),
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
