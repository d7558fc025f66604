"""The `tsunagu` command, built on Flask's CLI: `tsunagu --help` lists everything.

Each command that changes data runs as one transaction: committed when it ends normally, rolled back
on any error.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo, with_appcontext

from engine import backup as db_copy
from engine import demo as demo_set
from engine import migrate, states
from engine.audit import trail
from engine.db import lost_race, sqlite_file, unit_of_work
from engine.errors import EngineError
from engine.settings import SettingError
from engine.users import accounts


class Once(click.Option):
    """An option given at most once. Click lets a repeated option silently replace the first (`--role staff
    --role fm` made an FM, `--scopes a --scopes b` dropped a scope); such a line is refused instead."""

    def __init__(self, *args, **kwargs):
        self._once_default = kwargs.pop("default", None)
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)

    def process_value(self, ctx: click.Context, value):
        given = super().process_value(ctx, value)
        if given is not None and len(given) > 1:
            raise click.UsageError(f"{self.opts[0]} は1回だけ指定してください（{len(given)}回指定されています）。", ctx=ctx)
        return given[0] if given else self._once_default


def _factory():
    from web import create_app

    return create_app()


def _database_problem(exc: Exception) -> str | None:
    """What an operator should read for a database that cannot be used, or None if it is something else."""
    from sqlalchemy import exc as sa_exc

    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.ProgrammingError)) and (
            "no such table" in text or "does not exist" in text and "relation" in text):
        return "データベースが作成されていないか、最新の版ではありません。先に tsunagu db upgrade を実行してください。"
    if isinstance(exc, sa_exc.OperationalError):
        return f"データベースに接続できません（DATABASE_URL を確認してください）: {text}"
    if isinstance(exc, (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ModuleNotFoundError)):
        return ("DATABASE_URL を使えません（sqlite:///… または postgresql+psycopg://… の形で指定してください）: "
                f"{text}")
    if isinstance(exc, sa_exc.DatabaseError) and "not a database" in text:
        return f"DATABASE_URL のファイルはデータベースではありません（別のファイルを指していないか確認してください）: {text}"
    return None


def _has_undecodable(arg) -> bool:
    """An argument the terminal gave in another encoding (Shift_JIS …): Python keeps its bytes as surrogates."""
    return isinstance(arg, str) and any("\udc80" <= ch <= "\udcff" for ch in arg)


class ReportedProblem(Exception):
    """Something the operator must fix before the command can run: its message, and exit 1."""


class TsunaguGroup(FlaskGroup):
    """Flask's command group; a setting or a database that cannot be used is a message and exit 1, not a trace."""

    def list_commands(self, ctx):
        # Every command is this group's own: listing them needs no app (FlaskGroup would build one, and print
        # a trace for a bad setting before the help).
        return click.Group.list_commands(self, ctx)

    def parse_args(self, ctx, args):
        bad = next((a for a in args if _has_undecodable(a)), None)
        if bad is not None:
            shown = bad.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise click.UsageError(f"引数「{shown}」に UTF-8 でない文字があります。端末の文字コードを UTF-8 にしてください。",
                                   ctx=ctx)
        ctx.meta["tsunagu.args"] = list(args)  # which command is asked for (see _require_schema_at_head)
        return super().parse_args(ctx, args)

    # Commands that run without the database at the newest revision: the one that brings it there, those
    # that need no database, and serve (it answers 503 until the database is ready, see README).
    WITHOUT_SCHEMA = {("db",), ("serve",), ("diagram",), ("rules", "check")}

    def _require_schema_at_head(self, ctx) -> None:
        given = ctx.meta.get("tsunagu.args", [])
        words = tuple(a for a in given if not a.startswith("-"))
        # From the first command word on: an option's value before it (`-A web`) is not a command.
        words = next((words[i:] for i, w in enumerate(words) if w in self.commands), ())
        if not words or any(words[:len(w)] == w for w in self.WITHOUT_SCHEMA) or "--help" in given:
            return
        app = ctx.ensure_object(ScriptInfo).load_app()
        path = sqlite_file(app.config["DATABASE_URL"])
        if path is not None and not path.exists():
            # Said before connecting: SQLite would create an empty file (a mistyped path left files behind).
            raise ReportedProblem(f"データベースのファイル {path} がありません。DATABASE_URL を確認し、新しく作るときは"
                                  "先に tsunagu db upgrade を実行してください。")
        current = migrate.current_revision(app.extensions["tsunagu.engine"])
        if current != migrate.head_revision():
            raise ReportedProblem(
                "データベースが作成されていないか、最新の版ではありません"
                f"（現在 {current or 'なし'}、最新 {migrate.head_revision()}）。先に tsunagu db upgrade を実行してください。")

    def invoke(self, ctx):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self._require_schema_at_head(ctx)
            return super().invoke(ctx)
        except (SettingError, ReportedProblem) as exc:
            click.echo(f"エラー: {exc}", err=True)
            ctx.exit(1)
        except (SQLAlchemyError, ModuleNotFoundError) as exc:
            if lost_race(exc):
                click.echo("エラー: 同時に実行された別の処理と重なったため、何も変更していません。もう一度実行してください。",
                           err=True)
                ctx.exit(1)
            message = _database_problem(exc)
            if message is None:
                raise
            click.echo(f"エラー: {message}", err=True)
            ctx.exit(1)


@click.group(cls=TsunaguGroup, create_app=_factory, add_default_commands=False, add_version_option=False)
def main() -> None:
    """Tsunagu (つなぐ): 重層的支援体制整備事業の多機関連携ワークフロー。"""


@contextmanager
def transaction():
    """One unit of work for a command; an EngineError becomes a clear message and exit 1."""
    try:
        with unit_of_work(current_app.extensions["tsunagu.sessions"]) as session:
            yield session
    except EngineError as exc:
        errors = getattr(exc, "errors", None)
        if errors:  # the title, then each field and why (the message only repeats the first of them)
            click.echo(f"エラー: {exc.title}", err=True)
            for name, messages in errors.items():
                click.echo(f"  {name}: {'; '.join(messages)}", err=True)
        else:
            click.echo(f"エラー: {exc.message}", err=True)
        sys.exit(1)


def _config_dir() -> Path:
    return Path(current_app.config["TSUNAGU_CONFIG_DIR"])


# --- database -----------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """データベースの作成・移行。"""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create or migrate the database named by DATABASE_URL to the newest revision."""
    from alembic.util import CommandError

    try:
        migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    except (CommandError, AssertionError) as exc:
        raise click.BadParameter(f"「{revision}」という版はありません（head か版の番号を指定してください）: {exc}",
                                 param_hint="--revision") from None
    click.echo(f"データベースを {migrate.current_revision(current_app.extensions['tsunagu.engine'])} に更新しました。")


@db.command("current")
@with_appcontext
def db_current() -> None:
    """Print the database's revision and whether it is the newest (`db heads`)."""
    path = sqlite_file(current_app.config["DATABASE_URL"])
    if path is not None and not path.exists():  # said, not created empty by connecting to it
        raise ReportedProblem(f"データベースのファイル {path} がありません。DATABASE_URL を確認し、新しく作るときは "
                              "tsunagu db upgrade を実行してください。")
    current = migrate.current_revision(current_app.extensions["tsunagu.engine"])
    head = migrate.head_revision()
    if current is None:
        click.echo("データベースの版: なし（まだ作成されていません。tsunagu db upgrade で作成してください）")
    elif current == head:
        click.echo(f"データベースの版: {current}（最新の版です）")
    elif migrate.is_known_revision(current):
        click.echo(f"データベースの版: {current}（最新の版は {head} です。tsunagu db upgrade で更新してください）")
    else:
        click.echo(f"データベースの版: {current}（このプログラムにない版です。プログラムの最新の版は {head} です。"
                   "より新しいプログラムで更新されたデータベースではないか確認してください）")


@db.command("heads", with_appcontext=False)
def db_heads() -> None:
    """Print the newest revision this program migrates to (needs no database)."""
    click.echo(f"最新の版: {migrate.head_revision()}")


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def db_backup(file: Path) -> None:
    """Copy the SQLite database to FILE while the app runs (a new file, owner-only; PostgreSQL: pg_dump)."""
    source = sqlite_file(current_app.config["DATABASE_URL"])
    if source is None:
        raise ReportedProblem("tsunagu db backup は SQLite のファイルを写します。PostgreSQL は pg_dump で取得してください"
                              "（例: pg_dump --format=custom --file=tsunagu.dump DB名）。")
    try:
        result = db_copy.sqlite_copy(source, file)
    except db_copy.BackupRefused as exc:
        raise ReportedProblem(exc.message) from None
    # The live database keeps a record that a copy of everything left it, and where to.
    with transaction() as session:
        trail.record(session, actor=None, actor_label="cli", action="database.backup", object_type="database",
                     detail={"file": str(result.path.resolve()), "bytes": result.size})
    click.echo(f"バックアップを作成しました: {result.path}（{result.size:,} バイト）")


# --- demo, users --------------------------------------------------------------------------------


@main.command("demo")
@with_appcontext
def demo_cmd() -> None:
    """Load the Hatsukaichi demo set (idempotent)."""
    with transaction() as session:
        result = demo_set.load(session, _config_dir())
    click.echo(
        f"デモデータ: 部署 {result['departments']} 件追加, ルール{'を登録' if result['rules_installed'] else 'は変更なし'}, "
        f"サンプルケース {result['cases']} 件追加。ログイン: 部署ごとの職員 {result['staff']} 人（desk-staff など）、"
        f"fm、admin（パスワード {demo_set.DEMO_PASSWORD}。全員の一覧と、それぞれにできることは README.md の"
        "「Demo sign-ins」）"
    )


@main.group()
def user() -> None:
    """職員ユーザーの管理。"""


def _read_password() -> str:
    """A password from stdin (one line) or, at a terminal, prompted twice."""
    stdin = sys.stdin
    if stdin.isatty():
        return click.prompt("パスワード", hide_input=True, confirmation_prompt="パスワード（確認）")
    # Bytes, decoded here: text that is not UTF-8 is refused by the engine's password rules, never a trace.
    raw = (stdin.buffer.readline() if hasattr(stdin, "buffer")
           else stdin.readline().encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape").rstrip("\r\n")


@user.command("add")
@click.argument("login")
@click.option("--role", type=click.Choice(["staff", "fm", "admin"]), required=True, cls=Once)
@click.option("--department", "department", required=True, help="department code", cls=Once)
@click.option("--name", "display_name", default=None, help="display name (氏名)", cls=Once)
@click.option("--must-change-password", is_flag=True,
              help="the user sets their own password at first sign-in (for a password the operator chose)")
@with_appcontext
def user_add(login: str, role: str, department: str, display_name: str | None, must_change_password: bool) -> None:
    """Add a staff user; the password is read from stdin (one line) or prompted twice at a terminal."""
    password = _read_password()
    with transaction() as session:
        accounts.create_user(session, None, login=login, role=role, department_code=department, password=password,
                          display_name=display_name, must_change=must_change_password)
    if must_change_password:
        click.echo(f"利用者 {login} を追加しました。最初のログインで本人がパスワードを変更します。")
    else:
        click.echo(f"利用者 {login} を追加しました。")


@user.command("disable")
@click.argument("login")
@with_appcontext
def user_disable(login: str) -> None:
    """Disable a user at once: open sessions end, tokens acting for them stop."""
    with transaction() as session:
        accounts.disable_user(session, None, login)
    click.echo(f"利用者 {login} を停止しました。")


@user.command("password")
@click.argument("login")
@with_appcontext
def user_password(login: str) -> None:
    """Set a user's password (forgotten, or first handed over); read like `user add`'s. Lifts the lock
    left by failed sign-ins and ends the user's open sessions."""
    password = _read_password()
    with transaction() as session:
        accounts.reset_password(session, None, login, password)
    click.echo(f"利用者 {login} のパスワードを設定しました。ログインしたら、画面の「パスワード変更」で本人が変更してください。")


@user.command("enable")
@click.argument("login")
@with_appcontext
def user_enable(login: str) -> None:
    """Let a disabled user sign in again (their revoked tokens stay revoked)."""
    with transaction() as session:
        accounts.enable_user(session, None, login)
    click.echo(f"利用者 {login} を再開しました。")


@user.command("list")
@with_appcontext
def user_list() -> None:
    """List the staff users, one per line: login, role, department, and what stops them signing in."""
    with transaction() as session:
        for u in accounts.list_users(session, None):
            state = "、".join(accounts.account_notes(u)) or "有効"
            click.echo("\t".join([u.login, u.role, u.department.code, u.display_name, state]))


@main.command("diagram")
@click.option("--kind", type=click.Choice(["case", "handoff"]), default="case", show_default=True)
def diagram(kind: str) -> None:
    """Print the state machine as a Mermaid diagram."""
    click.echo(states.mermaid(kind))


# --- serving ------------------------------------------------------------------------------------


def _listen_host(host: str) -> str:
    """The host part of gunicorn's bind address: a name or an address, never a port or an empty string
    (gunicorn reads "" as every interface, and "127.0.0.1:99" as another port)."""
    import ipaddress

    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not host or not all(part and all(c.isalnum() or c == "-" for c in part) for part in host.split(".")):
            raise click.BadParameter(f"「{host}」はホスト名でも IP アドレスでもありません（ポートは --port で指定します）。",
                                     param_hint="--host") from None
        return host
    return f"[{address}]" if address.version == 6 else str(address)


def _address_to_open(host: str, port: int) -> str:
    """The address a browser on this machine opens for a server bound to `host` (as _listen_host gives it):
    listening on every interface (0.0.0.0, [::]) answers on the loopback address too."""
    shown = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"http://{shown}:{port}"


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256))
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Run the web app and API under gunicorn (a production WSGI server)."""
    from gunicorn.app.base import BaseApplication

    host = _listen_host(host)
    address = _address_to_open(host, port)

    def when_ready(arbiter) -> None:  # in the master, once, after the address is bound and before the workers
        click.echo(f"つなぐを起動しました。ブラウザで {address} を開いてください（止めるときは Ctrl+C）。")

    class _Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("when_ready", when_ready)
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            # Never log query strings or headers that could carry a token.
            self.cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms')

        def load(self):
            from web import create_app

            return create_app()

    _Server().run()


from web import (
    cli_api,  # noqa: E402,F401
    cli_privacy,  # noqa: E402,F401
    cli_referrals,  # noqa: E402,F401
    cli_routing,  # noqa: E402,F401
)
