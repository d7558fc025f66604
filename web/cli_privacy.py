"""The `tsunagu audit …` and `tsunagu retention …` commands: the audit trail and the retention period."""
from __future__ import annotations

import csv
import re
import sys
from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from engine import calendar
from engine.audit import trail
from engine.privacy import disclosure
from engine.privacy import retention as policy
from web.cli import Once, main, transaction


def _when(value: datetime) -> str:
    return calendar.wareki_datetime(value)


def _parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return calendar.parse_aware_iso8601(value)
    except calendar.TimeOutOfRange:
        raise click.BadParameter(f"{calendar.EARLIEST_YEAR}年から{calendar.LATEST_YEAR}年までの日時を指定してください。") \
            from None
    except ValueError:
        raise click.BadParameter("タイムゾーン付きの ISO 8601 で指定してください（例 2031-04-01T09:00:00+09:00）。")


@main.group()
def audit() -> None:
    """監査ログ（改ざん検知・開示請求）。"""


def _known_head(_ctx, _param, values: tuple[str, ...]) -> dict[int, str]:
    known = {}
    for value in values:
        seq, sep, digest = value.replace("seq=", "").replace(" hash=", ":").partition(":")
        if not sep or not seq.strip().isdigit() or not re.fullmatch(r"[0-9a-f]{64}", digest.strip()):
            raise click.BadParameter(f"「{value}」は SEQ:HASH（例 120:3fa9…、ハッシュは16進64文字）の形で指定してください。")
        known[int(seq)] = digest.strip()
    return known


@audit.command("verify")
@click.option("--known-head", "known", multiple=True, callback=_known_head, metavar="SEQ:HASH",
              help="an earlier run's last line (末尾), kept outside the database; the row at SEQ must still have HASH "
                   "(repeatable)")
@with_appcontext
def audit_verify(known: dict[int, str]) -> None:
    """Check the audit hash chain; exit 1 naming the first broken row."""
    with transaction() as session:
        result = trail.verify(session, known=known)
    if not result.ok:
        row_id = "-" if result.broken_id is None else result.broken_id
        seq = "-" if result.broken_seq is None else result.broken_seq
        click.echo(f"監査ログの検証に失敗しました: 行 id={row_id} seq={seq}: {result.reason}"
                   f"（それより前の {result.checked} 行は正常）", err=True)
        sys.exit(1)
    click.echo(f"監査ログ {result.checked} 行を確認しました。改ざんは見つかりません。")
    click.echo(f"末尾: seq={result.head_seq} hash={result.head_hash}")


@audit.command("case")
@click.argument("case_ref", metavar="CASE_NUMBER_OR_ID")
@click.option("--format", "fmt", type=click.Choice(["text", "csv"]), default="text", show_default=True)
@with_appcontext
def audit_case(case_ref: str, fmt: str) -> None:
    """Who looked at this person's record: the audit rows of every case of the same person (開示請求)."""
    with transaction() as session:
        cases, rows = disclosure.person_trail(session, case_ref, requested_by="cli:audit-case")
        provided = disclosure.provided_to(session, cases)
    if fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(disclosure.CSV_HEADER)
        out.writerows(disclosure.csv_row(r) for r in rows)
        return
    click.echo(f"対象のケース: {'、'.join(c.case_number for c in cases)}（同じ方の記録 {len(cases)} 件）")
    click.echo(f"記録 {len(rows)} 件")
    for r in rows:
        who = f"{r.actor_name}（{r.department}）" if r.actor_name else r.actor
        extra = "".join([f" 接続元 {r.remote_addr}" if r.remote_addr else "",
                         f" 連携 {r.client}" if r.client else "", f" [{r.outcome}]" if r.outcome else ""])
        click.echo(f"{_when(r.at)}  {r.case_number or '-'}  {who}  {r.action_label}{extra}")
    click.echo(f"市の外の機関への提供 {len(provided)} 件")
    for p in provided:
        note = f"（{p.note}）" if p.note else ""
        click.echo(f"{_when(p.given_at)}  {p.department}  {p.what}  根拠: {p.basis}{note}")


@main.group()
def retention() -> None:
    """保存期間を過ぎた記録の匿名化。"""


@retention.command("apply")
@click.option("--dry-run", is_flag=True, help="list what would be anonymised; change nothing")
@click.option("--now", "now_text", default=None, cls=Once, help="the time to measure from (ISO 8601), for tests")
@with_appcontext
def retention_apply(dry_run: bool, now_text: str | None) -> None:
    """Anonymise closed cases whose closure is older than TSUNAGU_RETENTION_YEARS (default 5)."""
    from sqlalchemy.orm.exc import StaleDataError

    years = int(current_app.config["RETENTION_YEARS"])
    if years < 1:
        click.echo(f"エラー: TSUNAGU_RETENTION_YEARS は1以上の年数で指定してください（いまの値: {years}）。", err=True)
        sys.exit(1)
    now = _parse_now(now_text)
    try:
        with transaction() as session:
            report = policy.apply(session, years=years, now=now, dry_run=dry_run, requested_by="cli:retention")
            if dry_run:
                session.rollback()
    except StaleDataError:
        # Another run, or someone's edit, changed one of these cases meanwhile: nothing of this run is kept.
        click.echo("エラー: 対象のケースが処理中に更新されました（同時に実行された匿名化か、職員の操作）。"
                   "何も変更していません。もう一度実行してください。", err=True)
        sys.exit(1)
    head = (f"保存期間 {years} 年: {_when(report.cutoff)} より前に終結したケース {len(report.cases)} 件")
    if dry_run:
        click.echo(f"{head}を匿名化します（試行: 何も変更していません）。")
    else:
        click.echo(f"{head}を匿名化しました（実行記録 {report.run_id}）。")
    for _, number, closed_at in report.cases:
        click.echo(f"  {number}  終結 {_when(closed_at)}")
    if not dry_run and not policy.scrub_log(current_app.extensions["tsunagu.engine"]):
        click.echo("注意: 匿名化前の内容がデータベースのログ（-wal ファイル）にまだ残っています。ほかの処理が終わった後に"
                   "もう一度 tsunagu retention apply を実行してください。", err=True)
