"""年度集計: the yearly figures (FM and administrators), on a page and as CSV."""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, render_template, request
from flask_login import login_required

from engine import reports
from engine.errors import ValidationFailed
from web import db
from web.views.common import actor, remote_addr

bp = Blueprint("reports", __name__)

CSV_HEADER = ("年度", "区分", "項目", "件数")


def _year():
    """The fiscal year asked for, or the refusal to show instead."""
    try:
        return reports.parse_fiscal_year(request.args.get("year")), None
    except ValidationFailed as exc:
        return None, exc.errors["year"][0]


@bp.get("/reports")
@login_required
def show():
    """The figures of one fiscal year (`?year=` is the 西暦 of its April; the current year by default)."""
    reports.require_reader(actor())
    year, error = _year()
    report = None if error else reports.yearly(db.session(), actor(), year, remote_addr=remote_addr())
    return render_template("reports.html", report=report, years=reports.offered_years(), error=error,
                           asked=request.args.get("year", "")), (422 if error else 200)


@bp.get("/reports.csv")
@login_required
def as_csv():
    """The same figures as CSV (UTF-8 with BOM, so that a spreadsheet opens the Japanese as it is)."""
    reports.require_reader(actor())
    year, error = _year()
    if error:
        return render_template("reports.html", report=None, years=reports.offered_years(), error=error,
                               asked=request.args.get("year", "")), 422
    report = reports.yearly(db.session(), actor(), year, remote_addr=remote_addr())
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    for title, label, count in report.csv_rows():
        w.writerow((report.label, title, label, count))
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="report-{report.fiscal_year}.csv"',
                             "Cache-Control": "no-store"})
