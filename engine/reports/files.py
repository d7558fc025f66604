"""年度集計 as files to hand out: CSV (UTF-8 with BOM) and an Excel workbook, every cell safe to open."""
from __future__ import annotations

import csv
import io

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from engine import calendar, spreadsheet
from engine.reports.yearly import YearlyReport

CSV_HEADER = ("年度", "区分", "項目", "件数")


def file_names(report: YearlyReport, extension: str) -> tuple[str, str]:
    """(the name a person reads, 年度集計_令和8年度.xlsx; the same in ASCII for a program that takes no other,
    nendo-shukei-R8.xlsx)."""
    return (f"年度集計_{report.label}.{extension}",
            f"nendo-shukei-R{calendar.reiwa_year(report.fiscal_year)}.{extension}")


def csv_text(report: YearlyReport) -> str:
    """The CSV's text: a BOM, then one line per figure (CSV_HEADER's columns), every cell safe to open."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    for title, label, count in report.csv_rows():
        w.writerow(spreadsheet.row((report.label, title, label, count)))
    return out.getvalue()


XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOLD = Font(bold=True)


def _put(sheet, row: int, column: int, value, *, font: Font | None = None) -> None:
    cell = sheet.cell(row=row, column=column, value=value)
    if isinstance(value, str):
        # Text stays text: a label from a code list that begins with "=" is not a formula to run.
        cell.data_type = "s"
    elif isinstance(value, int):
        cell.number_format = "#,##0"
    if font is not None:
        cell.font = font


def _print_on_a4(sheet: Worksheet, columns: str, rows: int, titles: str) -> None:
    """Printed on A4 portrait, as wide as the paper and as many pages long as it takes, with the `titles`
    rows at the top of every page and the page number at the foot."""
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.orientation = sheet.ORIENTATION_PORTRAIT
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.print_area = f"A1:{columns[-1]}{rows}"
    sheet.print_title_rows = titles
    sheet.print_options.horizontalCentered = True
    sheet.oddFooter.center.text = "&P / &N ページ"


def workbook(report: YearlyReport) -> bytes:
    """The year's figures as an .xlsx: a sheet laid out as the page is, and one flat table (the CSV's
    columns) for filtering and for setting one year beside another."""
    book = Workbook()
    table = book.active
    table.title = "年度集計"
    _put(table, 1, 1, f"年度集計（{report.label}）", font=Font(bold=True, size=14))
    _put(table, 2, 1, f"期間: {calendar.wareki(report.starts)}〜{calendar.wareki(report.ends)}")
    _put(table, 3, 1, "国への報告と年度ごとの評価のための件数です。個人を特定できる情報は含みません。")
    row = 5
    for section in report.sections:
        _put(table, row, 1, section.title, font=Font(bold=True, size=12))
        row += 1
        if section.note:
            _put(table, row, 1, section.note)
            row += 1
        _put(table, row, 1, "項目", font=BOLD)
        _put(table, row, 2, "件数", font=BOLD)
        row += 1
        for line in section.rows:
            _put(table, row, 1, line.label)
            _put(table, row, 2, line.count)
            row += 1
        row += 1
    table.column_dimensions["A"].width = 48
    table.column_dimensions["B"].width = 12
    _print_on_a4(table, "AB", table.max_row, "1:2")

    data = book.create_sheet("データ")
    for column, name in enumerate(CSV_HEADER, start=1):
        _put(data, 1, column, name, font=BOLD)
    for row, (title, label, count) in enumerate(report.csv_rows(), start=2):
        for column, value in enumerate((report.label, title, label, count), start=1):
            _put(data, row, column, value)
    data.freeze_panes = "A2"
    data.auto_filter.ref = data.dimensions
    for column, width in zip("ABCD", (12, 28, 48, 10)):
        data.column_dimensions[column].width = width
    _print_on_a4(data, "ABCD", data.max_row, "1:1")

    book.properties.title = f"年度集計（{report.label}）"
    book.properties.creator = "Tsunagu"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
