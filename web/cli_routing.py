"""`tsunagu rules check|load FILE` (routing rules), `tsunagu departments load [FILE]` (departments and their
commissions) and `tsunagu alerts scan` (the stall scan)."""
from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from engine import departments as departments_file
from engine.alerts import scan
from engine.alerts.alerts import ALERT_LABELS
from engine.audit import trail
from engine.calendar import EARLIEST_YEAR, LATEST_YEAR, TimeOutOfRange, parse_aware_iso8601, wareki_datetime
from engine.models import Alert, Case, Department
from engine.rules import store as rules_store
from engine.rules.ruleset import RulesError
from web.cli import Once, main, transaction


def _config_dir() -> Path:
    return Path(current_app.config["TSUNAGU_CONFIG_DIR"])


def _refuse(exc: Exception) -> None:
    """Print a refused file's problems, one `file:line: reason` per line, on stderr; exit 1."""
    for line in str(exc).splitlines():
        click.echo(line, err=True)
    sys.exit(1)


# --- routing rules ------------------------------------------------------------------------------


@main.group()
def rules() -> None:
    """振り分けルール（routing.yaml）の検査と登録。"""


@rules.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@with_appcontext
def rules_check(file: Path) -> None:
    """Validate a routing file against the code lists; exit 1 with file:line: reason on error."""
    try:
        ruleset = rules_store.check_rules_file(file, _config_dir())
    except (RulesError, ValueError) as exc:
        _refuse(exc)
    click.echo(f"{file}: 問題ありません（ルール {len(ruleset.rules)} 件、"
               f"多機関協働の組み合わせ {len(ruleset.multi_agency_sets)} 件）。")


@rules.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@with_appcontext
def rules_load(file: Path) -> None:
    """Validate and install a new version of the rules (nothing changes if the file is refused)."""
    loaded_by = f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'}"
    try:
        with transaction() as session:
            row, added = rules_store.install_rules(session, file, loaded_by=loaded_by, config_dir=_config_dir())
            number = row.number
    except (RulesError, ValueError) as exc:
        _refuse(exc)
    if added:
        click.echo(f"振り分けルール第{number}版を登録しました（{file}）。これ以降の振り分けに使われます。")
    else:
        click.echo(f"変更はありません: {file} は登録済みの第{number}版と同じ内容です。")


# --- departments --------------------------------------------------------------------------------


@main.group()
def departments() -> None:
    """部署・機関（departments.yaml）と委託の範囲の登録。"""


@departments.command("load")
@click.argument("file", type=click.Path(path_type=Path), required=False)
@with_appcontext
def departments_load(file: Path | None) -> None:
    """Install departments.yaml (default: the config directory's): departments by code, with the commission
    (委託) of each body outside the city. Nothing changes if the file is refused; a department it leaves out
    stays (cases refer to it)."""
    file = file or _config_dir() / "departments.yaml"
    try:
        with transaction() as session:
            added, changed = departments_file.install(session, file)
            if added or changed:
                trail.record(session, actor=None, actor_label="cli", action="departments.load",
                             object_type="departments", object_id=None,
                             detail={"file": str(file), "added": added, "changed": changed})
    except ValueError as exc:
        _refuse(exc)
    if not added and not changed:
        click.echo(f"変更はありません: {file} の部署・機関は登録済みの内容と同じです。")
        return
    for label, codes in (("追加", added), ("変更", changed)):
        if codes:
            click.echo(f"{label}: {', '.join(codes)}")
    click.echo(f"部署・機関を登録しました（{file}）。委託の範囲の変更は、これ以降の情報提供に使われます。")


# --- alerts -------------------------------------------------------------------------------------


class AwareDateTime(click.ParamType):
    """An ISO 8601 date-time with a zone offset (or Z), as aware UTC."""

    name = "ISO8601"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_aware_iso8601(value)
        except TimeOutOfRange:
            self.fail(f"{value!r} は使えません。{EARLIEST_YEAR}年から{LATEST_YEAR}年までの日時を指定してください。",
                      param, ctx)
        except ValueError:
            self.fail(f"{value!r} は使えません。タイムゾーン付きの ISO 8601 日時で指定してください"
                      "（例: 2027-01-06T17:00:00+09:00）。", param, ctx)


@main.group()
def alerts() -> None:
    """アラート（滞留したつなぐシート、評価期限の超過、接触のないケース）。"""


@alerts.command("scan")
@click.option("--now", type=AwareDateTime(), default=None, cls=Once,
              help="基準時刻（タイムゾーン付き ISO 8601）。省略時は現在時刻。テストや遡っての実行に。")
@click.option("--batch-size", type=click.IntRange(min=1), default=scan.BATCH_SIZE, show_default=True,
              help="1トランザクションで処理する件数")
@with_appcontext
def alerts_scan(now: datetime | None, batch_size: int) -> None:
    """Raise due alerts (stalled handoffs, overdue reviews …); idempotent; safe from several hosts at once."""
    sessions = current_app.extensions["tsunagu.sessions"]
    result = scan.scan(sessions, now, batch_size=batch_size)
    ids = [a.id for a in result.raised]
    with sessions() as session:
        for start in range(0, len(ids), 500):
            rows = session.execute(
                select(Alert.kind, Case.case_number, Department.name, Alert.due_at)
                .join(Case, Case.id == Alert.case_id)
                .outerjoin(Department, Department.id == Alert.department_id)
                .where(Alert.id.in_(ids[start:start + 500])).order_by(Alert.id)
            )
            for kind, case_number, department, due_at in rows:
                due = f"\t期限 {wareki_datetime(due_at)}" if due_at else ""
                click.echo(f"{ALERT_LABELS[kind]}\t{case_number}\t{department or 'FM'}{due}")
    counts = "、".join(f"{ALERT_LABELS[k]} {n}件" for k, n in result.by_kind.items() if n)
    click.echo(f"{wareki_datetime(result.now)} 時点のスキャン: アラート {len(result.raised)} 件を発行しました"
               f"{'（' + counts + '）' if counts else ''}。状況が変わったアラート {result.resolved} 件を解決しました。")
    if result.failed:
        click.echo(f"エラー: {result.failed} 件を処理できませんでした（詳細はログを参照）。", err=True)
        sys.exit(1)
