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
from flask.cli import FlaskGroup, with_appcontext

from engine.db import unit_of_work
from engine.errors import EngineError


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
    return None


class TsunaguGroup(FlaskGroup):
    """Flask's command group; a setting or a database that cannot be used is a message and exit 1, not a trace."""

    def invoke(self, ctx):
        from sqlalchemy.exc import SQLAlchemyError

        from engine.settings import SettingError

        try:
            return super().invoke(ctx)
        except SettingError as exc:
            click.echo(f"エラー: {exc}", err=True)
            ctx.exit(1)
        except (SQLAlchemyError, ModuleNotFoundError) as exc:
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
    from engine import migrate

    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"データベースを {migrate.current_revision(current_app.extensions['tsunagu.engine'])} に更新しました。")


# --- demo, users --------------------------------------------------------------------------------


@main.command("demo")
@with_appcontext
def demo_cmd() -> None:
    """Load the Hatsukaichi demo set (idempotent)."""
    from engine import demo

    with transaction() as session:
        result = demo.load(session, _config_dir())
    click.echo(
        f"デモデータ: 部署 {result['departments']} 件追加, ルール{'を登録' if result['rules_installed'] else 'は変更なし'}, "
        f"サンプルケース {result['cases']} 件追加。ログイン: desk-staff / fm / admin（パスワード {demo.DEMO_PASSWORD}）"
    )


@main.group()
def user() -> None:
    """職員ユーザーの管理。"""


@user.command("add")
@click.argument("login")
@click.option("--role", type=click.Choice(["staff", "fm", "admin"]), required=True, cls=Once)
@click.option("--department", "department", required=True, help="department code", cls=Once)
@click.option("--name", "display_name", default=None, help="display name (氏名)", cls=Once)
@with_appcontext
def user_add(login: str, role: str, department: str, display_name: str | None) -> None:
    """Add a staff user; the password is read from stdin (one line) or prompted twice at a terminal."""
    from engine import users

    stdin = sys.stdin
    if stdin.isatty():
        password = click.prompt("パスワード", hide_input=True, confirmation_prompt="パスワード（確認）")
    else:
        # Bytes, decoded here: text that is not UTF-8 is refused by create_user, never a trace.
        raw = (stdin.buffer.readline() if hasattr(stdin, "buffer")
               else stdin.readline().encode("utf-8", "surrogateescape"))
        password = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")

    with transaction() as session:
        users.create_user(session, login=login, role=role, department_code=department, password=password,
                          display_name=display_name)
    click.echo(f"利用者 {login} を追加しました。")


@user.command("disable")
@click.argument("login")
@with_appcontext
def user_disable(login: str) -> None:
    """Disable a user at once: open sessions end, tokens acting for them stop."""
    from engine import users

    with transaction() as session:
        users.disable_user(session, None, login)
    click.echo(f"利用者 {login} を停止しました。")


@main.command("diagram")
@click.option("--kind", type=click.Choice(["case", "handoff"]), default="case", show_default=True)
def diagram(kind: str) -> None:
    """Print the state machine as a Mermaid diagram."""
    from engine import states

    click.echo(states.mermaid(kind))


# --- serving ------------------------------------------------------------------------------------


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Run the web app and API under gunicorn (a production WSGI server)."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
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


from web import cli_api  # noqa: E402,F401
from web import cli_privacy  # noqa: E402,F401
from web import cli_routing  # noqa: E402,F401
