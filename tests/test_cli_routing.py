"""`tsunagu rules check|load` and `tsunagu alerts scan`, through Flask's CLI runner against the real database."""
from __future__ import annotations

import shutil
from datetime import timedelta
from textwrap import dedent

import pytest
import yaml
from sqlalchemy import func, select

from engine.models import Alert, AuditEvent, RoutingRuleVersion
from tests.conftest import CONFIG_DIR, NOW
from web import create_app
from web.cli import main

DEMO = (CONFIG_DIR / "routing.yaml").read_text(encoding="utf-8")

POLICY = """\
stall_policy:
  accept_within_business_days: 2
  urgent_accept_within_office_hours: 4
  escalate_after_business_days: 5
  no_contact_days: 60
  evaluation_grace_days: 0
"""


@pytest.fixture
def cli(database_url, departments, tmp_path):
    """invoke(*args) → click Result of `tsunagu …` run on a test app bound to the test database."""
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True,
                      "TSUNAGU_CONFIG_DIR": str(CONFIG_DIR)})
    runner = app.test_cli_runner()
    yield lambda *args: runner.invoke(main, list(args))
    app.extensions["tsunagu.engine"].dispose()


def versions(sessions) -> list[int]:
    with sessions() as s:
        return list(s.scalars(select(RoutingRuleVersion.number).order_by(RoutingRuleVersion.number)))


def rules_file(tmp_path, body: str, name: str = "routing.yaml"):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_check_accepts_the_demo_rules(cli):
    result = cli("rules", "check", str(CONFIG_DIR / "routing.yaml"))
    assert result.exit_code == 0, result.output
    assert "問題ありません（ルール 22 件、多機関協働の組み合わせ 5 件）" in result.stdout
    assert result.stderr == ""


BAD_FILES = {
    "yaml_syntax": (POLICY + "rules:\n  - name: a\n    match: {categories_any: [poverty]\n    owner: livelihood\n",
                    [(10, "YAML の構文エラー")]),
    "unknown_department": (POLICY + dedent("""\
        rules:
          - name: 生活困窮
            match: {categories_any: [poverty]}
            owner: housing_section
            reason: r
        """), [(10, "不明な部署コード 'housing_section'")]),
    "unknown_category_and_area": (POLICY + dedent("""\
        rules:
          - name: 生活困窮
            match:
              categories_any: [povrety]
              areas: [広島]
            owner: livelihood
            reason: r
        """), [(10, "不明な分類コード 'povrety'"), (11, "不明な圏域 '広島'")]),
    "empty_match": (POLICY + dedent("""\
        rules:
          - name: 生活困窮
            match:
            owner: livelihood
            reason: r
        """), [(9, "match が空です")]),
    "unreachable_rule": (POLICY + dedent("""\
        rules:
          - name: 困窮と借金
            match: {categories_any: [poverty, debt]}
            owner: livelihood
            reason: r
          - name: 借金
            match: {categories_any: [debt]}
            owner: shakyo
            reason: r
        """), [(12, "ルール '借金' に一致する相談は必ず前のルール '困窮と借金'（8行目）に一致するため到達できません")]),
    "negative_and_missing_number": (POLICY.replace("  no_contact_days: 60\n", "").replace(": 5\n", ": -5\n")
                                    + "rules: []\n", [(1, "stall_policy.no_contact_days がありません"),
                                                      (4, "stall_policy.escalate_after_business_days は0以上120以下の整数")]),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
@pytest.mark.parametrize("command", ["check", "load"])
def test_a_bad_file_is_refused_with_file_line_reason(cli, sessions, tmp_path, name, command):
    body, expected = BAD_FILES[name]
    path = rules_file(tmp_path, body)
    result = cli("rules", command, str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == len(expected), lines
    for line, (number, reason) in zip(lines, expected):
        assert line.startswith(f"{path}:{number}: "), line
        assert reason in line, line
    assert versions(sessions) == [1]  # the old version stays in force


def test_check_reports_an_unreadable_file(cli, tmp_path):
    result = cli("rules", "check", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{tmp_path / 'missing.yaml'}:1: ファイルを読み込めません")


def test_a_file_not_in_utf8_names_the_line(cli, tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_bytes("# 振り分けルール\nrules: []\n# 高齢\n".encode("utf-8").replace("高齢".encode("utf-8"),
                                                                               "高齢".encode("shift_jis")))
    result = cli("rules", "check", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3: UTF-8 として読めない文字があります")


@pytest.mark.parametrize("command", ["check", "load"])
def test_a_folder_is_refused_as_an_unreadable_file(cli, tmp_path, command):
    result = cli("rules", command, str(tmp_path))  # exit 1 with file:line: reason, as for any bad file
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{tmp_path}:1: ファイルを読み込めません")


def test_load_adds_a_version_only_when_the_text_changed(cli, sessions, tmp_path):
    same = cli("rules", "load", str(CONFIG_DIR / "routing.yaml"))
    assert same.exit_code == 0, same.output
    assert "第1版と同じ内容" in same.stdout
    assert versions(sessions) == [1]
    changed = rules_file(tmp_path, DEMO.replace("no_contact_days: 60", "no_contact_days: 45"))
    result = cli("rules", "load", str(changed))
    assert result.exit_code == 0, result.output
    assert "振り分けルール第2版を登録しました" in result.stdout
    assert cli("rules", "load", str(changed)).exit_code == 0
    assert versions(sessions) == [1, 2]
    with sessions() as s:
        row = s.scalar(select(RoutingRuleVersion).where(RoutingRuleVersion.number == 2))
        assert row.source_text == changed.read_text(encoding="utf-8")
        assert row.loaded_by.startswith("cli:")
        assert s.scalar(select(func.count()).where(AuditEvent.action == "rules.load")) == 2
    # The same text saved by an editor that puts a byte order mark first is the same rules.
    marked = tmp_path / "marked.yaml"
    marked.write_bytes(b"\xef\xbb\xbf" + changed.read_bytes())
    again = cli("rules", "load", str(marked))
    assert again.exit_code == 0 and "第2版と同じ内容" in again.stdout, again.output
    assert versions(sessions) == [1, 2]
    assert cli("rules", "check", str(marked)).exit_code == 0


def test_load_refuses_a_department_the_database_does_not_have(cli, sessions, database_url, tmp_path):
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    deps = yaml.safe_load((config / "departments.yaml").read_text(encoding="utf-8"))
    deps["departments"].append({"code": "housing", "name": "住宅課", "kind": "city_section"})
    (config / "departments.yaml").write_text(yaml.safe_dump(deps, allow_unicode=True), encoding="utf-8")
    path = rules_file(config, DEMO.replace("owner: livelihood", "owner: housing"))
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TSUNAGU_CONFIG_DIR": str(config)})
    try:
        runner = app.test_cli_runner()
        assert runner.invoke(main, ["rules", "check", str(path)]).exit_code == 0  # the code list knows it
        result = runner.invoke(main, ["rules", "load", str(path)])
    finally:
        app.extensions["tsunagu.engine"].dispose()
    assert result.exit_code == 1
    assert "部署コード 'housing' はデータベースに登録されていません" in result.stderr
    assert result.stderr.startswith(f"{path}:")
    assert versions(sessions) == [1]


# --- alerts scan ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2027-01-06T17:00:00", "2027-01-06", "来週", ""])
def test_scan_refuses_a_now_without_zone(cli, value):
    result = cli("alerts", "scan", "--now", value)
    assert result.exit_code == 2
    assert "タイムゾーン付きの ISO 8601 日時で指定してください" in result.stderr


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-12:00"])
def test_scan_refuses_a_now_out_of_range_without_a_trace(cli, value):
    result = cli("alerts", "scan", "--now", value)
    assert result.exit_code == 2
    assert "1900年から2999年までの日時" in result.stderr and "Traceback" not in result.output


def test_scan_prints_what_it_raised(cli, open_case, sessions):
    open_case(categories=["poverty"])
    now = (NOW + timedelta(days=3)).isoformat()
    result = cli("alerts", "scan", "--now", now)
    assert result.exit_code == 0, result.output
    first, summary = result.stdout.splitlines()
    assert first.split("\t") == ["つなぐシート未受理（期限超過）", "R8-000001", "生活福祉課（生活困窮者自立相談支援）",
                                 "期限 令和8年12月2日 17:15"]
    assert summary.startswith("令和8年12月3日 10:00 時点のスキャン: アラート 1 件を発行しました")
    again = cli("alerts", "scan", "--now", now)
    assert again.exit_code == 0
    assert again.stdout.startswith("令和8年12月3日 10:00 時点のスキャン: アラート 0 件")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 1


# --- departments ---------------------------------------------------------------------------------

DEPARTMENTS = (CONFIG_DIR / "departments.yaml").read_text(encoding="utf-8")


def _station(sessions):
    from engine.models import Department

    with sessions() as s:
        d = s.scalar(select(Department).where(Department.code == "hikikomori_station"))
        return d.commission_work, list(d.commission_categories)


def test_departments_load_without_changes_says_so(cli):
    result = cli("departments", "load")
    assert result.exit_code == 0, result.output
    assert "変更はありません" in result.output


def test_departments_load_widens_a_commission_and_the_next_share_goes_on_it(cli, sessions, tmp_path, actors,
                                                                            open_case, fire):
    case_id = open_case(categories=["other"])  # unrouted: the desk holds it
    with pytest.raises(Exception) as refused:
        fire(actors.window, case_id, "send_handoff", to_department="hikikomori_station", reason="r", summary="s")
    assert "委託" in str(refused.value)
    wider = tmp_path / "departments.yaml"
    old = "categories: [hikikomori, isolation, school_refusal, mental_health]"
    assert old in DEPARTMENTS
    wider.write_text(DEPARTMENTS.replace(old, old.replace("]", ", other]")), encoding="utf-8")
    result = cli("departments", "load", str(wider))
    assert result.exit_code == 0, result.output
    assert "変更: hikikomori_station" in result.output
    assert _station(sessions)[1][-1] == "other"
    with sessions() as s:
        row = s.scalar(select(AuditEvent).where(AuditEvent.action == "departments.load"))
        assert row.detail["changed"] == ["hikikomori_station"] and row.detail["added"] == []
    assert fire(actors.window, case_id, "send_handoff", to_department="hikikomori_station", reason="r",
                summary="s") == "handoff"


@pytest.mark.parametrize("change, message", [
    (("categories: [hikikomori, isolation, school_refusal, mental_health]", "categories: [hikikomori, space]"),
     "不明: space"),
    (("    kind: outside_agency", "    kind: agency"), "kind は"),
    (("  - code: health\n    name: 健康推進課\n", "  - code: health\n    name: 健康推進課\n    commission: {work: x, "
                                                   "categories: [health]}\n"), "市の部署に commission"),
])
def test_departments_load_refuses_a_bad_file_and_changes_nothing(cli, sessions, tmp_path, change, message):
    before = _station(sessions)
    old, new = change
    assert old in DEPARTMENTS
    bad = tmp_path / "departments.yaml"
    bad.write_text(DEPARTMENTS.replace(old, new, 1), encoding="utf-8")
    result = cli("departments", "load", str(bad))
    assert result.exit_code == 1
    assert message in result.output and str(bad) in result.output
    assert _station(sessions) == before
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "departments.load")) == 0
