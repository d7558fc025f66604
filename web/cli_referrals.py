"""`tsunagu referrals import` (referrals from a CSV file, each created as `POST /referrals` would create it) and
`tsunagu cases export` (cases as CSV for the systems downstream)."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from engine.referrals import clients as api_clients
from engine.reports import exports
from engine.spreadsheet import row as spreadsheet_row
from web.cli import Once, main, transaction
from web.form_dates import NoSuchDate, parse_date


@main.group("referrals")
def referrals_group() -> None:
    """紹介（他のシステムからの紹介の取り込み）。"""


@referrals_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--client", "client_name", required=True, cls=Once, help="the API client the referrals come from")
@click.option("--dry-run", is_flag=True, help="check and route every row, save nothing")
@with_appcontext
def referrals_import(file: Path, client_name: str, dry_run: bool) -> None:
    """Create a referral per row of a CSV (UTF-8, with or without BOM, or CP932).

    Columns: the API's field paths (external_ref, referrer.organization, person.name, person.birth_date,
    categories, summary, urgency, consent.*, household.1.name …); see docs/api.md. Each row is saved on its
    own; a refused row is said with its line and column, and the command then exits 1.
    """
    # Imported here, not with the commands: the schemas read the code lists of the configuration folder as
    # they load, and every other command must still start (and say so) when that folder is missing.
    from web.referral_files import FileRefused, import_rows, read_rows

    try:
        rows = read_rows(file.read_bytes())
    except OSError as exc:
        click.echo(f"エラー: {file} を読めません（{exc.strerror or exc}）。", err=True)
        sys.exit(1)
    except FileRefused as exc:
        click.echo(f"エラー: {file}: {exc}（何も取り込んでいません）", err=True)
        sys.exit(1)
    with transaction() as session:
        client_id = api_clients.referral_sender(session, client_name).id
    created = replayed = refused = 0
    for outcome in import_rows(current_app.extensions["tsunagu.sessions"], client_id, rows, dry_run=dry_run):
        if outcome.status == "refused":
            refused += 1
            _refused(outcome.line, outcome.errors)
            continue
        replayed += outcome.status != "created"
        if outcome.status == "duplicate":
            click.echo(f"{outcome.line}行目: {outcome.errors['external_ref'][0]}（取り込みませんでした）")
            continue
        body = outcome.body
        routing = body.get("routing") or {}
        to = body.get("owning_department") or routing.get("proposed_department")
        where = f"{body['status_label']}: {to['name']}" if to else f"{body['status_label']}: {routing.get('reason') or ''}"
        if outcome.status == "replayed":
            click.echo(f"{outcome.line}行目: 取り込み済みです（{body['case_number']}）。")
        else:
            created += 1
            verb = "受け付けられます" if dry_run else "受け付けました"
            number = "" if dry_run else f" {body['case_number']}"
            click.echo(f"{outcome.line}行目: {verb}{number}（{where}）")
    mode = "（試行: 何も保存していません）" if dry_run else ""
    click.echo(f"新しい紹介 {created} 件、取り込み済み {replayed} 件、受け付けなかった行 {refused} 件{mode}。")
    if refused:
        sys.exit(1)


def _refused(line: int, errors: dict[str, list[str]]) -> None:
    said = " / ".join(f"{column}: {' '.join(messages)}" for column, messages in errors.items())
    click.echo(f"エラー: {line}行目 {said}", err=True)


@main.group("cases")
def cases_group() -> None:
    """ケース（下流のシステムへの書き出し）。"""


def _day(value: str | None):
    if value is None:
        return None
    try:
        return parse_date(value)
    except NoSuchDate as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    except ValueError:
        raise click.BadParameter("2026-04-01 または 令和8年4月1日 の形で指定してください。", param_hint="--since") from None


@cases_group.command("export")
@click.option("--since", cls=Once, help="cases changed on or after this day (2026-04-01, 令和8年4月1日)")
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True, cls=Once)
@click.option("--client", "client_name", default=None, cls=Once,
              help="a client's own referrals, as it reads them over the API")
@click.option("--with-text", is_flag=True, help="the city's export with names, birth dates and summaries")
@with_appcontext
def cases_export(since: str | None, fmt: str, client_name: str | None, with_text: bool) -> None:
    """Write cases as CSV on stdout: codes and dates only, unless --with-text. Audited as a bulk read."""
    since = _day(since)
    if client_name is not None and with_text:
        click.echo("エラー: --client の書き出しは紹介元が API で読める項目だけです（--with-text とは併せて使えません）。",
                   err=True)
        sys.exit(1)
    with transaction() as session:
        if client_name is not None:
            header, rows = exports.CLIENT_COLUMNS, exports.client_rows(session, client_name, since=since)
        else:
            header = exports.CASE_COLUMNS + (exports.TEXT_COLUMNS if with_text else ())
            rows = exports.case_rows(session, since=since, with_text=with_text)
    out = csv.writer(sys.stdout, lineterminator="\r\n")
    out.writerow(header)
    for values in rows:
        out.writerow(spreadsheet_row(values))
