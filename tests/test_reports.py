"""年度集計 (engine/reports/yearly.py, /reports): the yearly figures DESIGN.md asks to be reportable, counted by the
Japanese fiscal year, read only by FMs and administrators, audited; the page, its CSV and its workbook."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from engine import vocab
from engine.calendar import JST
from engine.cases import notes
from engine.db import unit_of_work
from engine.errors import PermissionDenied, ValidationFailed
from engine.models import AuditEvent, Case, CaseCategory
from engine.reports import yearly as reports
from engine.reports.files import csv_text, workbook
from tests.conftest import NOW
from tests.pages_support import app, text_of, web  # noqa: F401  (fixtures)

APRIL_1 = datetime(2026, 4, 1, tzinfo=JST)  # 令和8年度 starts
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def figures(report) -> dict[tuple[str, str], int]:
    return {(title, label): count for title, label, count in report.csv_rows()}


def read(sessions, actor, year=2026):
    with unit_of_work(sessions) as s:
        return reports.yearly(s, s.merge(actor), year)


@pytest.fixture
def year_of_work(open_case, fire, actors, sessions):
    """A fiscal year's work: a case opened a minute before 令和8年度 and the rest within it."""
    before = open_case(categories=["poverty"], now=(APRIL_1 - timedelta(minutes=1)).astimezone(timezone.utc))
    planned = open_case(categories=["poverty"], now=APRIL_1.astimezone(timezone.utc), source="phone")
    fire(actors.livelihood, planned, "accept_handoff")
    fire(actors.livelihood, planned, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    fire(actors.livelihood, planned, "adopt_plan", goals="「働きたい」", main_department="livelihood",
         next_evaluation_date="2027-01-15", roles=[{"department": "livelihood", "role": "就労支援"}],
         business_categories=["comprehensive", "participation"])
    with unit_of_work(sessions) as s:
        notes.add_contact_note(s, actors.livelihood, planned, {"method": "phone", "body": "電話", "business_category": "participation"}, now=NOW)
        notes.add_contact_note(s, actors.livelihood, planned, {"method": "home_visit", "body": "訪問"}, now=NOW)
    fire(actors.livelihood, planned, "evaluate", goals_met="met", decision="close", close_reason="goal_met")
    reopened = open_case(categories=["hikikomori"])
    fire(actors.window, reopened, "close", close_reason="moved_out")
    fire(actors.window, reopened, "reopen", reason="戻ってきた")
    met = open_case(categories=["other"])
    fire(actors.fm, met, "convene_support_meeting", members=[{"user": "elderly", "acknowledged": True}])
    return before, planned, reopened, met


def test_the_years_figures_count_what_happened_within_it(year_of_work, sessions, actors):
    got = figures(read(sessions, actors.fm))
    assert got[("相談受付", "新規相談 計")] == 3  # not the case opened on March 31
    assert got[("相談受付", "受付経路: 電話")] == 1
    assert got[("つなぐシート", "送付")] == 2 and got[("つなぐシート", "受理")] == 1
    assert got[("支援決定・支援プラン", "支援決定（初回のプラン）")] == 1
    assert got[("支援決定・支援プラン", "支援決定（再プラン）")] == 0
    assert got[("支援決定・支援プラン", "評価の結果: 終結")] == 1
    # Every case active on some day of the year, the one opened on March 31 and still open included.
    assert got[("事業区分", "包括的相談支援（ケース）")] == 4
    assert got[("事業区分", "参加支援（ケース）")] == 1  # from its plan
    assert got[("事業区分", "参加支援（接触記録）")] == 1
    assert got[("接触記録（支援経過）", "計")] == 2
    assert got[("接触記録（支援経過）", "電話")] == 1 and got[("接触記録（支援経過）", "訪問")] == 1
    assert got[("会議", "支援会議 開催")] == 1 and got[("会議", "支援会議 検討したケース")] == 1
    # The case closed and reopened since still counts for the year it closed; so does the plan's closure.
    assert got[("終結", "計")] == 2
    assert got[("終結", "目標達成")] == 1 and got[("終結", "転出")] == 1

    earlier = figures(read(sessions, actors.fm, 2025))
    assert earlier[("相談受付", "新規相談 計")] == 1
    assert earlier[("終結", "計")] == 0


def test_every_code_of_a_list_has_its_row_every_year(sessions, actors):
    got = figures(read(sessions, actors.admin, 2019))
    assert set(got.values()) == {0}
    for code, label in vocab.codes("close_reasons").items():
        assert ("終結", label) in got
    for label in vocab.codes("contact_methods").values():
        assert ("接触記録（支援経過）", label) in got


def test_only_fms_and_administrators_read_it_and_each_read_is_audited(sessions, actors):
    with pytest.raises(PermissionDenied), unit_of_work(sessions) as s:
        reports.yearly(s, s.merge(actors.livelihood), 2026)
    read(sessions, actors.fm)
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "report.read")).all()
        assert [(r.actor_label, r.detail) for r in rows] == [("fm", {"fiscal_year": 2026})]


@pytest.mark.parametrize("value", ["2018", "2099", "令和8", "２０２６", "2026.0", "-1"])
def test_a_year_outside_the_offered_ones_is_refused_by_name(value):
    with pytest.raises(ValidationFailed) as err:
        reports.parse_fiscal_year(value, today=date(2026, 12, 1))
    assert "選べるのは令和元年度（2019）から令和8年度（2026）までです。" in err.value.errors["year"][0]


def test_the_fiscal_year_turns_on_april_first():
    assert reports.parse_fiscal_year(None, today=date(2027, 3, 31)) == 2026
    assert reports.parse_fiscal_year("", today=date(2027, 4, 1)) == 2027
    assert reports.offered_years(date(2019, 4, 1)) == [(2019, "令和元年度")]


# --- the page and the CSV --------------------------------------------------------------------------


def test_the_page_shows_the_year_in_wareki_and_offers_the_csv(year_of_work, web, actors):
    r = web(actors.fm).get("/reports?year=2026")
    assert r.status_code == 200
    text = text_of(r)
    assert "年度集計（令和8年度）" in text and "期間: 令和8年4月1日〜令和9年3月31日" in text
    assert "新規相談 計 3" in text
    for number in ("R8-", "廿日 太郎"):  # nothing that names a case or a person
        assert number not in r.get_data(as_text=True)
    csv_response = web(actors.admin).get("/reports.csv?year=2026")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    body = csv_response.get_data(as_text=True)
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0] == ["年度", "区分", "項目", "件数"]
    assert ["令和8年度", "相談受付", "新規相談 計", "3"] in rows


def test_the_workbook_holds_the_pages_figures_laid_out_and_as_one_table(year_of_work, web, actors, sessions):
    page = web(actors.fm).get("/reports?year=2026")
    assert 'href="/reports.xlsx?year=2026"' in page.get_data(as_text=True)
    r = web(actors.fm).get("/reports.xlsx?year=2026")
    assert r.status_code == 200 and r.mimetype == XLSX
    assert r.headers["Content-Disposition"].startswith('attachment; filename="nendo-shukei-R8.xlsx"; filename*=')
    assert r.headers["Cache-Control"] == "no-store"
    book = load_workbook(io.BytesIO(r.get_data()))
    assert book.sheetnames == ["年度集計", "データ"]
    laid_out = book["年度集計"]
    assert laid_out["A1"].value == "年度集計（令和8年度）"
    assert laid_out["A2"].value == "期間: 令和8年4月1日〜令和9年3月31日"
    pairs = [(a.value, b.value) for a, b in laid_out.iter_rows(min_row=4, max_col=2)]
    assert ("新規相談 計", 3) in pairs
    assert ("相談受付", None) in pairs  # each section under its title
    table = [tuple(c.value for c in row) for row in book["データ"].iter_rows()]
    assert table[0] == ("年度", "区分", "項目", "件数")
    with unit_of_work(sessions) as s:
        report = reports.yearly(s, s.merge(actors.fm), 2026)
    assert table[1:] == [(report.label, title, label, count) for title, label, count in report.csv_rows()]
    text = "".join(str(v) for row in table for v in row)
    for named in ("R8-", "廿日 太郎"):  # nothing that names a case or a person
        assert named not in text
    with sessions() as s:
        reads = s.scalars(select(AuditEvent.actor_label).where(AuditEvent.action == "report.read")).all()
    assert reads == ["fm", "fm", "fm"]  # the page, the download, and this test's own read


def test_a_label_that_looks_like_a_formula_stays_text_in_the_workbook_and_the_csv():
    report = reports.YearlyReport(2026, "令和8年度", date(2026, 4, 1), date(2027, 3, 31),
                                  [reports.Section("=SUM(1,2)", [reports.Row("@HYPERLINK(\"x\")", 4),
                                                                 reports.Row("新規相談 計", 5)])])
    book = load_workbook(io.BytesIO(workbook(report)))
    for sheet, ref in (("年度集計", "A5"), ("年度集計", "A7"), ("データ", "B2"), ("データ", "C2")):
        cell = book[sheet][ref]
        assert cell.data_type == "s" and cell.value[0] in "=@", (sheet, ref, cell.value)
    assert book["データ"]["D2"].value == 4
    rows = list(csv.reader(io.StringIO(csv_text(report).lstrip("\ufeff"))))
    assert rows[1:] == [["令和8年度", "'=SUM(1,2)", "'@HYPERLINK(\"x\")", "4"],
                        ["令和8年度", "'=SUM(1,2)", "新規相談 計", "5"]]


def test_the_page_refuses_staff_and_a_bad_year(web, actors, sessions):
    assert web(actors.livelihood).get("/reports").status_code == 403
    assert web(actors.livelihood).get("/reports.csv").status_code == 403
    assert web(actors.livelihood).get("/reports.xlsx").status_code == 403
    r = web(actors.fm).get("/reports?year=1999")
    assert r.status_code == 422
    assert "選べるのは令和元年度（2019）から" in text_of(r)
    assert web(actors.fm).get("/reports.csv?year=abc").status_code == 422
    assert web(actors.fm).get("/reports.xlsx?year=abc").status_code == 422
    with sessions() as s:
        assert s.scalars(select(AuditEvent.action).where(AuditEvent.action == "report.read")).all() == []


def test_a_plan_counts_in_the_year_of_its_decision_and_a_replan_as_such(open_case, fire, actors, sessions):
    """Recorded in 令和8年度, decided at a 重層的支援会議 in March (令和7年度); the replan in 令和8年度."""
    case_id = open_case(categories=["poverty"], now=datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc))
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    fire(actors.livelihood, case_id, "adopt_plan", goals="g", main_department="livelihood", decided_on="2026-03-27",
         next_evaluation_date="2027-01-15", roles=[{"department": "livelihood", "role": "r"}])
    fire(actors.livelihood, case_id, "evaluate", goals_met="partly", decision="replan")
    fire(actors.livelihood, case_id, "adopt_plan", goals="g2", main_department="livelihood",
         next_evaluation_date="2027-03-15", roles=[{"department": "livelihood", "role": "r"}])
    with sessions() as s:
        assert s.get(Case, case_id).support_decision_date == date(2026, 3, 27)
    this_year, last_year = figures(read(sessions, actors.fm)), figures(read(sessions, actors.fm, 2025))
    assert (last_year[("支援決定・支援プラン", "支援決定（初回のプラン）")],
            last_year[("支援決定・支援プラン", "支援決定（再プラン）")]) == (1, 0)
    assert (this_year[("支援決定・支援プラン", "支援決定（初回のプラン）")],
            this_year[("支援決定・支援プラン", "支援決定（再プラン）")]) == (0, 1)


def test_a_decision_day_to_come_is_refused(open_case, fire, actors, sessions):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    with pytest.raises(ValidationFailed) as err:
        fire(actors.livelihood, case_id, "adopt_plan", goals="g", main_department="livelihood",
             decided_on="2027-04-01", next_evaluation_date="2027-06-01",
             roles=[{"department": "livelihood", "role": "r"}])
    assert err.value.errors == {"decided_on": ["未来の日付は記録できません。"]}


def test_a_decision_before_the_case_was_opened_is_refused_and_evaluations_follow_the_decision(
        open_case, fire, actors, sessions):
    case_id = open_case(categories=["poverty"], now=NOW - timedelta(days=40))
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    with pytest.raises(ValidationFailed) as err:
        fire(actors.livelihood, case_id, "adopt_plan", goals="g", main_department="livelihood", decided_on="1901-01-01",
             next_evaluation_date="2027-06-01", roles=[{"department": "livelihood", "role": "r"}])
    assert err.value.errors == {"decided_on": ["支援決定日は相談を受け付けた日（令和8年10月21日）以降の日付にしてください。"]}
    fire(actors.livelihood, case_id, "adopt_plan", goals="g", main_department="livelihood", decided_on="2026-11-20",
         next_evaluation_date="2027-06-01", roles=[{"department": "livelihood", "role": "r"}])
    # Recorded on November 30, decided on the 20th: an evaluation on the 25th is after the decision.
    assert fire(actors.livelihood, case_id, "evaluate", goals_met="met", decision="continue",
                next_evaluation_date="2027-09-01", evaluated_on="2026-11-25") == "accompaniment"


def test_a_code_no_longer_in_its_list_still_has_a_row(open_case, sessions, actors):
    from sqlalchemy import update

    case_id = open_case(categories=["poverty"])
    with unit_of_work(sessions) as s:
        s.execute(update(CaseCategory).where(CaseCategory.case_id == case_id).values(code="obsolete_code"))
        s.execute(update(Case).where(Case.id == case_id).values(business_categories=["old_kind"],
                                                                 source="old_window"))
    got = figures(read(sessions, actors.fm))
    assert got[("相談受付", "主な課題: obsolete_code（コード表にないコード）")] == 1
    assert got[("相談受付", "受付経路: old_window（コード表にないコード）")] == 1
    assert got[("事業区分", "old_kind（コード表にないコード）（ケース）")] == 1

