"""Routing rules (engine/routing.py): the demo config/routing.yaml and rule-file validation.

Pure: no database.
"""

import hashlib
from datetime import date
from pathlib import Path
from textwrap import dedent

import pytest

from engine.rules.code_lists import load_vocabularies
from engine.rules.parser import STALL_POLICY_MAXIMA, parse_rules, parse_rules_file
from engine.rules.ruleset import NO_MATCH_REASON, RoutingFacts, RulesError, RuleSet, StallPolicy

CONFIG = Path(__file__).resolve().parent.parent / "config"
ROUTING_FILE = CONFIG / "routing.yaml"
TODAY = date(2026, 11, 28)


@pytest.fixture(scope="module")
def vocab() -> dict:
    return load_vocabularies(CONFIG)


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return parse_rules_file(ROUTING_FILE, CONFIG)


def facts(
    *categories: str,
    primary: str | None = None,
    area: str | None = "廿日市",
    age: int | None = 40,
    source: str = "window",
    urgency: str = "normal",
    on: date = TODAY,
) -> RoutingFacts:
    """Build routing facts; ``age`` gives a birth date that many years before ``on``."""
    birth = None if age is None else date(on.year - age, 1, 1)
    return RoutingFacts(
        categories=tuple(categories),
        primary_category=primary if primary is not None else (categories[0] if categories else None),
        area=area,
        birth_date=birth,
        source=source,
        urgency=urgency,
        on=on,
    )


# ---------------------------------------------------------------- the demo file

# facts -> (rule name, owner). Every rule of config/routing.yaml must appear here.
DEMO_CASES = [
    (facts("elder_care", "hikikomori", age=82), "8050世帯", "elderly"),
    (facts("hikikomori", "elder_care", age=52, area="佐伯"), "8050世帯", "elderly"),
    (facts("abuse_dv", age=9), "児童虐待", "children"),
    (facts("abuse_dv", "child_rearing", age=34), "子どものいる世帯のDV・虐待", "children"),
    (facts("abuse_dv", "elder_care", age=80), "高齢者虐待", "elderly"),
    (facts("abuse_dv", age=40), "DV・虐待（その他）", "desk"),
    (facts("abuse_dv", age=None), "DV・虐待（その他）", "desk"),
    (facts("young_carer", "elder_care", age=15), "ヤングケアラー", "children"),
    (facts("elder_care", "child_rearing", age=42), "ダブルケア", "elderly"),
    (facts("elder_care", area="廿日市", age=65), "高齢者介護（廿日市圏域）", "houkatsu_hatsukaichi"),
    (facts("elder_care", area="佐伯", age=78), "高齢者介護（佐伯圏域）", "houkatsu_saeki"),
    (facts("elder_care", area="吉和", age=90), "高齢者介護（吉和圏域）", "houkatsu_yoshiwa"),
    (facts("elder_care", "medical", area="大野", age=70), "高齢者介護（大野圏域）", "houkatsu_oono"),
    (facts("elder_care", area="宮島", age=66), "高齢者介護（宮島圏域）", "houkatsu_miyajima"),
    (facts("elder_care", area="廿日市", age=64), "高齢・介護（その他）", "elderly"),
    (facts("elder_care", area=None, age=80), "高齢・介護（その他）", "elderly"),
    (facts("elder_care", area="宮島", age=None), "高齢・介護（その他）", "elderly"),
    (facts("hikikomori", "mental_health", age=35), "ひきこもり", "hikikomori_station"),
    (facts("child_rearing"), "子育て・不登校", "children"),
    (facts("school_refusal", age=13), "子育て・不登校", "children"),
    (facts("disability", "income_work"), "障害", "disability"),
    (facts("poverty"), "生活困窮・住まい", "livelihood"),
    (facts("debt"), "生活困窮・住まい", "livelihood"),
    (facts("income_work", "housing"), "生活困窮・住まい", "livelihood"),
    (facts("housing", "other"), "生活困窮・住まい", "livelihood"),
    (facts("health"), "健康・医療", "health"),
    (facts("medical"), "健康・医療", "health"),
    (facts("mental_health"), "健康・医療", "health"),
    (facts("isolation", urgency="urgent"), "孤立・ケアラー（緊急）", "desk"),
    (facts("isolation"), "孤立・ケアラー", "shakyo"),
    (facts("carer"), "孤立・ケアラー", "shakyo"),
    (facts("rights_advocacy", age=None), "権利擁護", "shakyo"),
    (facts("other", source="partner"), "協定企業からのその他の通報", "shakyo"),
]


def _case_id(case):
    f, name, _owner = case
    return f"{name}:{'+'.join(f.categories)}"


@pytest.mark.parametrize("case", DEMO_CASES, ids=[_case_id(c) for c in DEMO_CASES])
def test_demo_rule_hit(ruleset, case):
    f, rule_name, owner = case
    decision = ruleset.route(f)
    assert decision.matched
    assert (decision.rule_name, decision.owner) == (rule_name, owner)
    assert decision.reason == ruleset.rule(rule_name).reason
    assert decision.reason  # shown to staff


def test_every_demo_rule_has_a_test_case(ruleset):
    tested = {name for _f, name, _owner in DEMO_CASES}
    untested = [name for name in ruleset.rule_names if name not in tested]
    assert not untested, f"rules without a test case in DEMO_CASES: {untested}"
    assert tested <= set(ruleset.rule_names), "DEMO_CASES names a rule that is not in the file"


def test_every_demo_category_has_an_owner_somewhere(ruleset, vocab):
    covered = set()
    for rule in ruleset.rules:
        for key in ("categories_any", "categories_all", "primary_category"):
            covered.update(getattr(rule, key) or ())
    assert covered == vocab["categories"]


def test_demo_owners_and_notify(ruleset, vocab):
    for rule in ruleset.rules:
        assert rule.owner in vocab["departments"]
        assert set(rule.notify) <= vocab["departments"]
    assert ruleset.rules[0].name == "8050世帯"
    assert ruleset.rules[0].notify == ("hikikomori_station",)


def test_demo_stall_policy(ruleset):
    assert ruleset.stall_policy == StallPolicy(
        accept_within_business_days=2,
        urgent_accept_within_office_hours=4,
        escalate_after_business_days=5,
        no_contact_days=60,
        evaluation_grace_days=0,
    )


def test_demo_has_no_catch_all(ruleset):
    assert not any(rule.is_catch_all for rule in ruleset.rules)


def test_checksum_is_sha256_of_text(ruleset):
    text = ROUTING_FILE.read_text(encoding="utf-8")
    assert ruleset.source_text == text
    assert ruleset.checksum == hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- order, no match, 多機関協働


def test_first_match_wins(ruleset):
    # elder_care + hikikomori at 80 in 廿日市 matches both 8050世帯 and 高齢者介護（廿日市圏域）.
    f = facts("elder_care", "hikikomori", age=80, area="廿日市")
    assert ruleset.rule("高齢者介護（廿日市圏域）").matches(f)
    assert ruleset.rule("8050世帯").matches(f)
    decision = ruleset.route(f)
    assert decision.rule_name == "8050世帯"
    assert decision.notify == ("hikikomori_station",)


def test_first_match_wins_between_single_category_rules(ruleset):
    # disability + poverty: 障害 comes before 生活困窮・住まい.
    decision = ruleset.route(facts("poverty", "disability"))
    assert decision.rule_name == "障害"


def test_no_match_stays_with_the_desk(ruleset):
    # The documented unmatched combination: only `other`, not from a partner.
    decision = ruleset.route(facts("other", source="window"))
    assert not decision.matched
    assert decision.rule_name is None
    assert decision.owner is None
    assert decision.notify == ()
    assert decision.reason == NO_MATCH_REASON
    assert "相談まるごとサポートデスク" in decision.reason
    assert not decision.multi_agency_candidate


def test_no_categories_is_unmatched(ruleset):
    assert not ruleset.route(facts()).matched


@pytest.mark.parametrize(
    "f, expected_sets",
    [
        (facts("elder_care", "hikikomori", age=80), ("8050",)),
        (facts("elder_care", "child_rearing", age=40), ("ダブルケア",)),
        (facts("young_carer", age=14), ("ヤングケアラー",)),
        (facts("elder_care", "child_rearing", "hikikomori", age=50), ("8050", "ダブルケア")),
        (facts("young_carer", "elder_care", "hikikomori", age=16), ("8050", "ヤングケアラー")),
        (facts("abuse_dv", "child_rearing"), ("DVと子育て",)),
        (facts("hikikomori", "poverty"), ("ひきこもりと生活困窮",)),
        (facts("elder_care", age=80), ()),
        (facts("poverty"), ()),
    ],
)
def test_multi_agency_sets(ruleset, f, expected_sets):
    decision = ruleset.route(f)
    assert decision.multi_agency_sets == expected_sets
    assert decision.multi_agency_candidate is bool(expected_sets)


def test_multi_agency_flag_even_without_a_matching_rule(vocab):
    text = dedent(
        """\
        stall_policy: {accept_within_business_days: 2, urgent_accept_within_office_hours: 4,
                       escalate_after_business_days: 5, no_contact_days: 60, evaluation_grace_days: 0}
        multi_agency_sets:
          "8050": {categories_all: [elder_care, hikikomori]}
        rules: []
        """
    )
    decision = parse_rules(text, filename="r.yaml", **vocab).route(facts("elder_care", "hikikomori"))
    assert not decision.matched
    assert decision.multi_agency_sets == ("8050",)


def test_primary_category_counts_as_a_category(ruleset):
    f = RoutingFacts(
        categories=(), primary_category="poverty", area="大野", birth_date=None,
        source="api", urgency="normal", on=TODAY,
    )
    assert ruleset.route(f).owner == "livelihood"


# ---------------------------------------------------------------- matching semantics (inline rules)

POLICY = dedent(
    """\
    stall_policy:
      accept_within_business_days: 2
      urgent_accept_within_office_hours: 4
      escalate_after_business_days: 5
      no_contact_days: 60
      evaluation_grace_days: 0
    """
)


def parse(body: str, vocab: dict) -> RuleSet:
    return parse_rules(POLICY + dedent(body), filename="routing.yaml", **vocab)


def test_age_bounds_are_inclusive_and_use_the_routing_day(vocab):
    rs = parse(
        """\
        rules:
          - name: young-old
            match: {categories_any: [elder_care], age_min: 65, age_max: 74}
            owner: elderly
            reason: 前期高齢者
        """,
        vocab,
    )
    born = date(1961, 12, 1)

    def at(on: date) -> bool:
        f = RoutingFacts(("elder_care",), "elder_care", "廿日市", born, "window", "normal", on)
        return rs.route(f).matched

    assert not at(date(2026, 11, 30))  # 64
    assert at(date(2026, 12, 1))  # 65th birthday
    assert at(date(2036, 11, 30))  # 74
    assert not at(date(2036, 12, 1))  # 75
    assert not rs.route(facts("elder_care", age=None)).matched  # unknown age never matches an age rule


def test_all_conditions_must_hold(vocab):
    rs = parse(
        """\
        rules:
          - name: narrow
            match:
              categories_all: [poverty, debt]
              primary_category: [debt]
              areas: [吉和]
              sources: [phone, visit]
              urgency: [urgent]
            owner: livelihood
            reason: 条件すべて
          - name: catch-all
            match: any
            owner: desk
            reason: その他
        """,
        vocab,
    )
    base = dict(primary="debt", area="吉和", source="phone", urgency="urgent")
    assert rs.route(facts("poverty", "debt", **base)).rule_name == "narrow"
    for change in (
        dict(primary="poverty"),
        dict(area="佐伯"),
        dict(area=None),
        dict(source="window"),
        dict(urgency="normal"),
    ):
        assert rs.route(facts("poverty", "debt", **{**base, **change})).rule_name == "catch-all", change
    assert rs.route(facts("debt", **base)).rule_name == "catch-all"  # categories_all needs both


@pytest.mark.parametrize("match", ["any", "{}"])
def test_explicit_catch_all_as_last_rule(vocab, match):
    rs = parse(
        f"""\
        rules:
          - name: all
            match: {match}
            owner: desk
            notify: [community_welfare]
            reason: すべてデスクへ
        """,
        vocab,
    )
    assert rs.rules[0].is_catch_all
    decision = rs.route(facts("other"))
    assert (decision.rule_name, decision.owner, decision.notify) == ("all", "desk", ("community_welfare",))


# ---------------------------------------------------------------- validation errors


def problems_of(body: str, vocab: dict, *, with_policy: bool = True) -> list[tuple[str, int, str]]:
    text = (POLICY if with_policy else "") + dedent(body)
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="routing.yaml", **vocab)
    return info.value.problems


def assert_problem(problems, line: int, *fragments: str):
    for file, l, reason in problems:
        if l == line and all(fragment in reason for fragment in fragments):
            assert file == "routing.yaml"
            return
    pytest.fail(f"no problem at line {line} with {fragments}: {problems}")


# POLICY takes lines 1-6, so a rules body starts at line 7.


def test_unknown_department(vocab):
    problems = problems_of(
        """\
        rules:
          - name: a
            match: {categories_any: [poverty]}
            owner: foo
            reason: r
          - name: b
            match: {categories_any: [debt]}
            owner: livelihood
            notify: [desk, bar]
            reason: r
        """,
        vocab,
    )
    assert_problem(problems, 10, "不明な部署コード 'foo'")
    assert_problem(problems, 15, "不明な部署コード 'bar'")
    assert len(problems) == 2


def test_unknown_category_area_source_urgency(vocab):
    problems = problems_of(
        """\
        rules:
          - name: a
            match:
              categories_any:
                - poverty
                - povrety
              areas: [広島]
              sources: [fax]
              urgency: [critical]
            owner: livelihood
            reason: r
        """,
        vocab,
    )
    assert_problem(problems, 12, "不明な分類コード 'povrety'")
    assert_problem(problems, 13, "不明な圏域 '広島'")
    assert_problem(problems, 14, "不明な受付経路コード 'fax'")
    assert_problem(problems, 15, "不明な緊急度コード 'critical'")


def test_unknown_category_in_multi_agency_set(vocab):
    problems = problems_of(
        """\
        multi_agency_sets:
          "8050":
            categories_all: [elder_care, hikikomory]
        rules: []
        """,
        vocab,
    )
    assert_problem(problems, 9, "'8050'", "不明な分類コード 'hikikomory'")


@pytest.mark.parametrize("match_line", ["match:", "match: null", None])
def test_empty_match(vocab, match_line):
    match = f"    {match_line}\n" if match_line else ""
    rule = "  - name: empty\n" + match + "    owner: desk\n    reason: r\n"
    problems = problems_of("rules:\n" + rule, vocab)
    # the `match` key line, or the rule line when the key is absent
    assert_problem(problems, 9 if match_line else 8, "ルール 'empty'", "match が空です")


def test_rule_after_catch_all_is_unreachable(vocab):
    problems = problems_of(
        """\
        rules:
          - name: y
            match: any
            owner: desk
            reason: r
          - name: x
            match: {categories_any: [poverty]}
            owner: livelihood
            reason: r
        """,
        vocab,
    )
    assert problems == [("routing.yaml", 12, "ルール 'x' は前の包括ルール 'y' のため到達できません")]
    assert str(RulesError(problems)) == "routing.yaml:12: ルール 'x' は前の包括ルール 'y' のため到達できません"


def test_identical_match_is_unreachable(vocab):
    problems = problems_of(
        """\
        rules:
          - name: first
            match: {categories_any: [poverty, debt], areas: [佐伯]}
            owner: livelihood
            reason: r
          - name: second
            match:
              areas: [佐伯]
              categories_any: [debt, poverty]
            owner: desk
            reason: r
        """,
        vocab,
    )
    assert_problem(problems, 12, "ルール 'second'", "前のルール 'first'（8行目）と同じため到達できません")


def test_rule_shadowed_by_a_wider_rule_is_unreachable(vocab):
    problems = problems_of(
        """\
        rules:
          - name: wide
            match: {categories_any: [poverty, debt]}
            owner: livelihood
            reason: r
          - name: narrow
            match: {categories_all: [debt, housing], areas: [宮島]}
            owner: desk
            reason: r
          - name: fine
            match: {categories_any: [debt, housing]}
            owner: desk
            reason: r
        """,
        vocab,
    )
    assert problems == [
        (
            "routing.yaml",
            12,
            "ルール 'narrow' に一致する相談は必ず前のルール 'wide'（8行目）に一致するため到達できません",
        )
    ]


@pytest.mark.parametrize(
    "key, value",
    [
        ("accept_within_business_days", "-1"),
        ("accept_within_business_days", "two"),
        ("accept_within_business_days", "1.5"),
        ("no_contact_days", "true"),
        ("evaluation_grace_days", "null"),
        ("accept_within_business_days", "99999999999"),  # a deadline past any calendar
        ("no_contact_days", "800000"),  # a cut-off before year 1: every later scan would fail
    ],
)
def test_stall_policy_must_be_integers_within_bounds(vocab, key, value):
    text = POLICY.replace(f"{key}: ", f"{key}: {value} #")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.strip().startswith(key))
    problems = problems_of(text + "rules: []\n", vocab, with_policy=False)
    most = STALL_POLICY_MAXIMA[key]
    assert problems == [("routing.yaml", line, f"stall_policy.{key} は0以上{most}以下の整数で指定してください")]


def test_stall_policy_missing_and_unknown_keys(vocab):
    problems = problems_of(
        """\
        stall_policy:
          accept_within_business_days: 2
          urgent_accept_within_office_hours: 4
          escalate_after_business_days: 5
          no_contact_dayz: 60
        rules: []
        """,
        vocab,
        with_policy=False,
    )
    assert_problem(problems, 5, "stall_policy の不明なキー 'no_contact_dayz'")
    assert_problem(problems, 1, "stall_policy.no_contact_days がありません")
    assert_problem(problems, 1, "stall_policy.evaluation_grace_days がありません")


def test_missing_sections(vocab):
    problems = problems_of("multi_agency_sets: {}\nrulez: []\n", vocab, with_policy=False)
    assert_problem(problems, 1, "stall_policy がありません")
    assert_problem(problems, 1, "rules がありません")
    assert_problem(problems, 2, "不明なキー 'rulez'")


def test_yaml_syntax_error_line(vocab):
    problems = problems_of(
        """\
        rules:
          - name: a
            match: {categories_any: [poverty}
            owner: livelihood
            reason: r
        """,
        vocab,
    )
    assert len(problems) == 1
    file, line, reason = problems[0]
    assert line == 9
    assert reason.startswith("YAML の構文エラー: ")


def test_yaml_syntax_error_bad_indentation(vocab):
    problems = problems_of("rules:\n  - name: a\n   owner: desk\n", vocab)
    assert len(problems) == 1 and problems[0][2].startswith("YAML の構文エラー")
    assert problems[0][1] == 9


def test_duplicate_rule_names(vocab):
    problems = problems_of(
        """\
        rules:
          - name: same
            match: {categories_any: [poverty]}
            owner: livelihood
            reason: r
          - name: same
            match: {categories_any: [debt]}
            owner: livelihood
            reason: r
        """,
        vocab,
    )
    assert problems == [("routing.yaml", 12, "ルール名 'same' が重複しています（8行目で定義済み）")]


def test_unknown_keys_in_rule_and_match(vocab):
    problems = problems_of(
        """\
        rules:
          - name: typo
            match:
              categories_any: [poverty]
              area: [佐伯]
            owner: livelihood
            notfy: [desk]
            reason: r
        """,
        vocab,
    )
    assert_problem(problems, 11, "ルール 'typo' の match の不明なキー 'area'")
    assert_problem(problems, 13, "ルール 'typo' の不明なキー 'notfy'")
    assert len(problems) == 2


def test_typo_in_match_does_not_become_a_catch_all(vocab):
    problems = problems_of(
        """\
        rules:
          - name: typo
            match: {categorys_any: [poverty]}
            owner: livelihood
            reason: r
        """,
        vocab,
    )
    assert_problem(problems, 9, "不明なキー 'categorys_any'")


def test_duplicate_key_in_match(vocab):
    problems = problems_of(
        """\
        rules:
          - name: dup
            match:
              areas: [佐伯]
              areas: [宮島]
            owner: desk
            reason: r
        """,
        vocab,
    )
    assert_problem(problems, 11, "キー 'areas' が重複しています")


def test_age_min_greater_than_age_max(vocab):
    problems = problems_of(
        """\
        rules:
          - name: never
            match:
              categories_any: [elder_care]
              age_min: 70
              age_max: 64
            owner: elderly
            reason: r
        """,
        vocab,
    )
    assert problems == [
        ("routing.yaml", 11, "ルール 'never' の age_min (70) が age_max (64) より大きいため、このルールは一致しません")
    ]


def test_age_must_be_a_non_negative_integer(vocab):
    problems = problems_of(
        """\
        rules:
          - name: a
            match: {categories_any: [elder_care], age_min: -1}
            owner: elderly
            reason: r
        """,
        vocab,
    )
    assert_problem(problems, 9, "age_min は0以上150以下の整数で指定してください")


def test_names_reasons_and_ages_have_upper_bounds(vocab):
    problems = problems_of(
        f"""\
        rules:
          - name: {"長" * 101}
            match: {{categories_any: [elder_care], age_max: 99999999999999999999999}}
            owner: elderly
            reason: {"理" * 2001}
        """,
        vocab,
    )
    assert [reason for _, _, reason in problems] == [
        "name は100文字以内で指定してください",
        "ルール '#1' の match の age_max は0以上150以下の整数で指定してください",
        "ルール '#1' の reason は2000文字以内で指定してください",
    ]


@pytest.mark.parametrize("key", ["categories_any", "categories_all"])
def test_empty_category_lists(vocab, key):
    problems = problems_of(
        f"""\
        rules:
          - name: a
            match:
              {key}: []
            owner: livelihood
            reason: r
        """,
        vocab,
    )
    assert problems == [("routing.yaml", 10, f"ルール 'a' の match の {key} が空のリストです")]


def test_missing_owner_and_reason(vocab):
    problems = problems_of(
        """\
        rules:
          - name: half
            match: {categories_any: [poverty]}
        """,
        vocab,
    )
    assert_problem(problems, 8, "ルール 'half' の owner がありません")
    assert_problem(problems, 8, "ルール 'half' の reason")


def test_all_problems_are_collected_in_line_order(vocab):
    problems = problems_of(
        """\
        rules:
          - name: a
            match: {categories_any: [nope]}
            owner: nobody
            reason: r
          - name: a
            match:
            owner: desk
            reason: r
        """,
        vocab,
    )
    reasons = [(line, reason) for _f, line, reason in problems]
    assert [line for line, _r in reasons] == sorted(line for line, _r in reasons)
    assert_problem(problems, 9, "不明な分類コード 'nope'")
    assert_problem(problems, 10, "不明な部署コード 'nobody'")
    assert_problem(problems, 12, "重複")
    assert_problem(problems, 13, "match が空です")
    text = str(RulesError(problems))
    assert "routing.yaml:9: " in text and "routing.yaml:13: " in text
    assert len(text.splitlines()) == len(problems)


def test_top_level_must_be_a_mapping(vocab):
    assert problems_of("- a\n- b\n", vocab, with_policy=False)[0][1] == 1
    assert "空" in problems_of("", vocab, with_policy=False)[0][2]


def test_parse_rules_file_reports_the_path(tmp_path):
    bad = tmp_path / "routing.yaml"
    rule = "rules:\n  - name: a\n    match: {areas: [札幌]}\n    owner: desk\n    reason: r\n"
    bad.write_text(POLICY + rule, "utf-8")
    with pytest.raises(RulesError) as info:
        parse_rules_file(bad, CONFIG)
    assert str(info.value) == f"{bad}:9: ルール 'a' の match の不明な圏域 '札幌'"


def test_load_vocabularies(vocab):
    assert "houkatsu_miyajima" in vocab["departments"]
    assert "young_carer" in vocab["categories"]
    assert vocab["areas"] == {"廿日市", "佐伯", "吉和", "大野", "宮島"}
    assert "partner" in vocab["sources"]
    assert vocab["urgencies"] == {"normal", "urgent"}


def test_escalation_before_the_acceptance_limit_is_refused(vocab):
    text = POLICY.replace("escalate_after_business_days: ", "escalate_after_business_days: 1 #")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.strip().startswith("escalate_after_business_days"))
    assert problems_of(text + "rules: []\n", vocab, with_policy=False) == [
        ("routing.yaml", line, "stall_policy.escalate_after_business_days は accept_within_business_days（2）以上にしてください")]
