"""年度集計 as people use it: broken down by 圏域, by month and by department; saved under a name that says
which year it is; the workbook printed on A4; a year that cannot be read answered with what a good one is."""
from __future__ import annotations

import io
from datetime import date, datetime, timezone
from urllib.parse import quote

import pytest
from openpyxl import load_workbook

from engine.calendar import JST
from engine.db import unit_of_work
from engine.errors import ValidationFailed
from engine.reports import yearly as reports
from engine.reports.files import workbook
from tests.conftest import intake_fields
from tests.pages_support import app, text_of, web  # noqa: F401  (fixtures)


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=JST).astimezone(timezone.utc)


def _figures(sessions, actor, year=2026) -> dict[tuple[str, str], int]:
    with unit_of_work(sessions) as s:
        report = reports.yearly(s, s.merge(actor), year)
    return {(title, label): count for title, label, count in report.csv_rows()}


@pytest.fixture
def spread_year(open_case, fire, actors):
    """Consultations in three 圏域 (and one with none recorded), in April, November and March of 令和8年度."""
    def person(area):
        return {**intake_fields()["person"], "area": area}

    april = open_case(categories=["poverty"], person=person("廿日市"), now=_utc(2026, 4, 1, 0, 0))
    fire(actors.livelihood, april, "accept_handoff", now=_utc(2026, 4, 2, 9, 0))
    open_case(categories=["poverty"], person=person("佐伯"), now=_utc(2026, 11, 30, 10, 0))
    open_case(categories=["poverty"], person=person("佐伯"), now=_utc(2026, 11, 30, 11, 0))
    open_case(categories=["poverty"], person={k: v for k, v in person(None).items() if k != "area"},
              now=_utc(2027, 3, 31, 23, 59))
    open_case(categories=["poverty"], person=person("宮島"), now=_utc(2027, 4, 1, 0, 0))  # the next year's


def test_the_years_consultations_by_area_and_month_and_its_sheets_and_cases_by_department(spread_year, sessions,
                                                                                         actors):
    got = _figures(sessions, actors.fm)
    assert [(label, got[("圏域別 相談受付", label)]) for label in ("廿日市", "佐伯", "吉和", "大野", "宮島", "（未設定）")] \
        == [("廿日市", 1), ("佐伯", 2), ("吉和", 0), ("大野", 0), ("宮島", 0), ("（未設定）", 1)]
    month = "月別 相談受付・つなぐシート"
    consultations = [count for (title, label), count in got.items() if title == month and label.endswith(" 新規相談")]
    assert consultations == [1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1]  # 4月 … 3月
    assert got[(month, "令和8年4月 新規相談")] == 1 and got[(month, "令和9年3月 新規相談")] == 1
    assert got[(month, "令和8年11月 つなぐシート送付")] == 2
    assert got[("部署別 受け取ったつなぐシート", "生活福祉課（生活困窮者自立相談支援）")] == 4
    assert got[("部署別 受け取ったつなぐシート", "高齢介護課")] == 0  # every department has its row
    assert got[("部署別 担当ケース", "生活福祉課（生活困窮者自立相談支援）")] == 1  # the one it accepted
    assert got[("部署別 担当ケース", "担当部署未決定")] == 3  # sheets not yet accepted


def test_the_files_are_named_for_the_year_in_japanese_with_an_ascii_name_beside(web, actors):
    for extension in ("csv", "xlsx"):
        r = web(actors.fm).get(f"/reports.{extension}?year=2026")
        assert r.status_code == 200
        assert r.headers["Content-Disposition"] == (
            f"attachment; filename=\"nendo-shukei-R8.{extension}\"; "
            f"filename*=UTF-8''{quote(f'年度集計_令和8年度.{extension}')}")
    r = web(actors.fm).get("/reports.xlsx?year=2019")
    assert "nendo-shukei-R1.xlsx" in r.headers["Content-Disposition"]
    assert quote("年度集計_令和元年度.xlsx") in r.headers["Content-Disposition"]


def test_the_workbook_prints_on_a4_as_wide_as_the_paper_with_its_headings_on_every_page():
    report = reports.YearlyReport(2026, "令和8年度", date(2026, 4, 1), date(2027, 3, 31), [
        reports.Section("相談受付", [reports.Row(f"項目{i}", i) for i in range(80)]),
        reports.Section("終結", [reports.Row("計", 3)])])
    book = load_workbook(io.BytesIO(workbook(report)))
    for name, titles, area in (("年度集計", "$1:$2", "$A$1:$B$90"), ("データ", "$1:$1", "$A$1:$D$82")):
        sheet = book[name]
        assert int(sheet.page_setup.paperSize) == 9, name  # A4
        assert sheet.page_setup.orientation == "portrait"
        assert sheet.sheet_properties.pageSetUpPr.fitToPage is True
        assert (int(sheet.page_setup.fitToWidth), int(sheet.page_setup.fitToHeight)) == (1, 0)
        assert sheet.print_title_rows == titles, name
        assert sheet.print_area == f"'{name}'!{area}", name
    laid_out = book["年度集計"]
    assert laid_out["A90"].value == "計" and laid_out["B90"].value == 3  # the print area ends at the last figure


@pytest.mark.parametrize("value", ["abc", "令和8", "8", "2018", "20266"])
def test_a_year_that_cannot_be_read_is_answered_with_what_a_year_looks_like(value, web, actors):
    with pytest.raises(ValidationFailed) as err:
        reports.parse_fiscal_year(value, today=date(2026, 12, 1))
    message = err.value.errors["year"][0]
    assert message == ("年度は、その年度が始まる4月の西暦の年を4桁の数字で指定してください（例: 令和8年度は 2026）。"
                       "選べるのは令和元年度（2019）から令和8年度（2026）までです。")
    r = web(actors.fm).get(f"/reports?year={quote(value)}")
    assert r.status_code == 422
    assert "4桁の数字で指定してください（例: 令和" in text_of(r)
