"""振り分けルール (/rules): the rules in force and every earlier version, as staff read them, and the link from a
case to the rule and version that routed it."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.errors import PermissionDenied
from engine.models import Case, RoutingRuleVersion
from engine.rules import book as rulebook
from engine.rules import parser as rules_file
from engine.rules import ruleset as rules_data
from engine.rules import store as rules
from tests.conftest import CONFIG_DIR
from tests.pages_support import app, text_of, web  # noqa: F401  (fixtures)


def _rows(response) -> list[str]:
    """The visible text of each rule's row, in the page's order."""
    body = response.get_data(as_text=True)
    return [text_of(m).strip() for m in re.findall(r'<tr id="rule-\d+".*?</tr>', body, flags=re.S)]


def test_every_rule_of_the_file_in_force_is_shown_in_order_in_japanese(web, actors, departments):
    ruleset = rules_file.parse_rules_file(CONFIG_DIR / "routing.yaml", CONFIG_DIR)
    r = web(actors.window).get("/rules")
    assert r.status_code == 200
    page = text_of(r)
    assert "振り分けルール（第1版）" in page and "現在使われている版です" in page
    rows = _rows(r)
    assert len(rows) == len(ruleset.rules)
    for position, (rule, row) in enumerate(zip(ruleset.rules, rows), start=1):
        assert row.startswith(f"{position} {rule.name} "), row
        assert rule.reason in row
        assert not re.search(r"\b(elder_care|hikikomori|poverty|elderly|livelihood)\b", row), row  # codes, not labels
    eight_o_fifty = rows[0]
    assert "課題のすべて: 高齢・介護、ひきこもり" in eight_o_fifty and "高齢介護課" in eight_o_fifty
    assert any("年齢: 65歳以上" in row for row in rows) and any("年齢: 17歳以下" in row for row in rows)
    assert "受理の期限 送付から2営業日" in page and "緊急の受理の期限 送付から開庁時間で4時間" in page
    assert "FMへのエスカレーション 送付から5営業日" in page and "60日で通知" in page
    assert "評価日を過ぎたとき 過ぎたらすぐに通知" in page  # the demo's grace is 0 days
    for combination in ruleset.multi_agency_sets:
        assert combination.name in page


def test_a_case_links_to_the_version_that_routed_it_which_stays_readable_after_new_rules(
        web, actors, departments, open_case, sessions, tmp_path):
    case_id = open_case(categories=["poverty"])
    with unit_of_work(sessions) as s:
        rule_name = s.get(Case, case_id).routing_rule_name
    page = web(actors.livelihood).get(f"/cases/{case_id}").get_data(as_text=True)
    link = re.search(r'href="(/rules\?version=1&amp;rule=[^"]+)"', page)
    assert link, "the case page links to the rule's version"
    # New rules: the poverty rule now has another reason.
    text = (CONFIG_DIR / "routing.yaml").read_text(encoding="utf-8")
    changed = tmp_path / "routing.yaml"
    old_reason = next(r.reason for r in rules_file.parse_rules_file(CONFIG_DIR / "routing.yaml", CONFIG_DIR).rules
                      if r.name == rule_name)
    changed.write_text(text.replace(old_reason, "新しい理由の文です。"), encoding="utf-8")
    with unit_of_work(sessions) as s:
        rules.install_rules(s, changed, config_dir=CONFIG_DIR, loaded_by="tests")
    client = web(actors.livelihood)
    now = text_of(client.get("/rules"))
    assert "振り分けルール（第2版）" in now and "新しい理由の文です。" in now and old_reason not in now
    then = client.get(link.group(1).replace("&amp;", "&"))
    assert then.status_code == 200
    earlier = text_of(then)
    assert "振り分けルール（第1版）" in earlier and "過去の版です" in earlier and "現在は第2版" in earlier
    assert f"ケースを振り分けたルール: 「{rule_name}」" in earlier and old_reason in earlier
    chosen = re.findall(r'<tr id="rule-\d+" class="chosen" aria-current="true">\s*<td class="num">\d+</td>\s*'
                        r'<th scope="row">([^<]+)</th>', then.get_data(as_text=True))
    assert chosen == [rule_name]


@pytest.mark.parametrize("version", ["9", "abc", "1.0", "０"])
def test_a_version_never_installed_is_not_found(web, actors, departments, version):
    r = web(actors.fm).get(f"/rules?version={version}")
    assert r.status_code == 404
    assert "版" in text_of(r)


def test_only_signed_in_staff_read_the_rules(app, departments, actors, web):
    r = app.test_client().get("/rules")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert web(actors.admin).get("/rules").status_code == 200


def test_a_version_the_code_lists_no_longer_read_is_shown_as_stored(web, actors, departments, sessions):
    text = (CONFIG_DIR / "routing.yaml").read_text(encoding="utf-8").replace("owner: elderly", "owner: abolished")
    with unit_of_work(sessions) as s:
        s.add(RoutingRuleVersion(number=2, checksum="x" * 64, source_name="routing.yaml", source_text=text,
                                 loaded_by="tests"))
    r = web(actors.fm).get("/rules?version=2")
    assert r.status_code == 200
    page = text_of(r)
    assert "この版は今のコード表では読めません" in page and "abolished" in page
    assert "owner: abolished" in r.get_data(as_text=True)


def test_conditions_read_in_japanese_one_line_each():
    lists = {"issue_categories": {"poverty": "生活困窮", "debt": "借金・滞納"}, "sources": {"phone": "電話"},
             "urgencies": {"urgent": "緊急"}}
    rule = rules_data.Rule(name="r", line=1, owner="x", reason="理由", categories_any=("poverty", "debt"),
                        areas=("大野", "宮島"), age_min=40, age_max=64, sources=("phone",), urgency=("urgent",))
    assert rulebook.conditions(rule, lists) == (
        "課題のいずれか: 生活困窮、借金・滞納", "圏域: 大野、宮島", "年齢: 40〜64歳", "受付経路: 電話", "緊急度: 緊急")
    assert rulebook.conditions(rules_data.Rule(name="all", line=2, owner="x", reason="r"), lists) == (rulebook.CATCH_ALL,)


def test_the_engine_refuses_a_stopped_user(sessions, departments, actors):
    with unit_of_work(sessions) as s:
        user = s.merge(actors.window)
        user.active = False
        with pytest.raises(PermissionDenied):
            rulebook.read(s, user)
    with sessions() as s:
        assert s.scalar(select(RoutingRuleVersion.number)) == 1
