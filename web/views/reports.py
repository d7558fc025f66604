"""年度集計: the yearly figures (FM and administrators), on a page, as CSV and as an Excel workbook."""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, render_template, request
from flask_login import login_required

from engine.errors import ValidationFailed
from engine.reports import yearly as reports
from engine.reports.files import XLSX_MIMETYPE, csv_text, file_names, workbook
from web import db
from web.views.common import actor, remote_addr

bp = Blueprint("reports", __name__)


def _asked_report():
    """(the report of the fiscal year asked for, read and audited, None) or (None, the refusal to answer)."""
    reports.require_reader(actor())
    try:
        year = reports.parse_fiscal_year(request.args.get("year"))
    except ValidationFailed as exc:
        refusal = render_template("reports.html", report=None, years=reports.offered_years(),
                                  error=exc.errors["year"][0], asked=request.args.get("year", ""))
        return None, (refusal, 422)
    return reports.yearly(db.session(), actor(), year, remote_addr=remote_addr()), None


def _download(body: bytes | str, mimetype: str, names: tuple[str, str]) -> Response:
    """A file to save under its Japanese name (RFC 6266's filename*), or its ASCII one where that is not read."""
    named, ascii_name = names
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(named, safe='')}"
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": disposition, "Cache-Control": "no-store"})


@bp.get("/reports")
@login_required
def show():
    """The figures of one fiscal year (`?year=` is the 西暦 of its April; the current year by default)."""
    report, refusal = _asked_report()
    if refusal:
        return refusal
    return render_template("reports.html", report=report, years=reports.offered_years(), error=None,
                           asked=request.args.get("year", ""))


@bp.get("/reports.csv")
@login_required
def as_csv():
    """The same figures as CSV (UTF-8 with BOM, so that a spreadsheet opens the Japanese as it is)."""
    report, refusal = _asked_report()
    if refusal:
        return refusal
    return _download(csv_text(report), "text/csv", file_names(report, "csv"))


@bp.get("/reports.xlsx")
@login_required
def as_xlsx():
    """The same figures as an Excel workbook, for the 相談支援ネットワーク会議's yearly evaluation."""
    report, refusal = _asked_report()
    if refusal:
        return refusal
    return _download(workbook(report), XLSX_MIMETYPE, file_names(report, "xlsx"))
