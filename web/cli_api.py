"""`tsunagu token …` and `tsunagu webhooks …`: API clients, their tokens and their callbacks."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from engine import calendar
from engine.db import unit_of_work
from engine.referrals import clients as api_clients
from engine.referrals import webhooks as hooks
from web.cli import Once, main, transaction


@main.group()
def token() -> None:
    """API クライアントのトークン（他のシステムからの接続）。"""


@token.command("create")
@click.option("--client", "client_name", required=True, help="client name (created if new)", cls=Once)
@click.option("--scopes", required=True, help="comma-separated: referrals:write,referrals:read,cases:read,…", cls=Once)
@click.option("--user", "user_login", default=None, cls=Once,
              help="staff login the token acts for (needed for cases:* and alerts:*)")
@click.option("--source", default=None, cls=Once,
              help="the source code (categories.yaml sources, e.g. partner) of every referral the client sends")
@with_appcontext
def token_create(client_name: str, scopes: str, user_login: str | None, source: str | None) -> None:
    """Create a token; it is printed once, alone on the last line."""
    with transaction() as session:
        client, secret = api_clients.create_token(session, client_name=client_name, scopes=scopes.split(","),
                                                  user_login=user_login, source=source)
        who = f"職員 {user_login} として" if user_login else "外部システムとして"
        summary = (f"クライアント {client.name} のトークンを作りました（{who}、スコープ: {', '.join(client.scopes)}、"
                   f"紹介の受付経路: {client.source or 'api'}）。")
    click.echo(summary)
    click.echo("トークンはこの一度だけ表示されます。安全な場所に保管してください:")
    click.echo(secret)


@token.command("revoke")
@click.argument("client_name")
@with_appcontext
def token_revoke(client_name: str) -> None:
    """Revoke every token of a client, at once."""
    with transaction() as session:
        count = api_clients.revoke_tokens(session, client_name)
    click.echo(f"クライアント {client_name} のトークン {count} 件を失効させました。")


@main.group()
def webhooks() -> None:
    """Webhook（紹介の状態の変化を紹介元へ知らせる）。"""


@webhooks.command("register")
@click.option("--client", "client_name", required=True, cls=Once)
@click.option("--url", required=True, help="callback URL (http or https)", cls=Once)
@with_appcontext
def webhooks_register(client_name: str, url: str) -> None:
    """Set a client's callback URL; prints the signing secret once, alone on the last line."""
    with transaction() as session:
        secret = api_clients.register_webhook(session, client_name, url)
    click.echo(f"クライアント {client_name} のコールバック URL を {url} にしました。")
    click.echo("署名の秘密鍵はこの一度だけ表示されます（X-Tsunagu-Signature の検証に使う）:")
    click.echo(secret)


@webhooks.command("deliver")
@click.option("--now", "now_text", default=None, cls=Once,
              help="ISO 8601 time with offset to act at (tests, back-fills)")
@with_appcontext
def webhooks_deliver(now_text: str | None) -> None:
    """Send what the outbox holds (retries with backoff; cron-able); exit 1 when any delivery failed."""
    now = None
    if now_text:
        try:
            now = calendar.parse_aware_iso8601(now_text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--now") from None
    sessions = current_app.extensions["tsunagu.sessions"]
    report = hooks.deliver(sessions, now=now)
    with unit_of_work(sessions) as session:
        left = hooks.pending(session)
    click.echo(f"Webhook: 送信 {report.delivered} 件、失敗 {report.failed} 件、未送信 {left} 件。")
    for line in report.failures[:20]:
        click.echo(f"  {line}", err=True)
    if report.failed:
        # Cron mail and systemd show a failed run only by its exit status; the events are tried again later.
        click.echo(f"エラー: {report.failed} 件を送信できませんでした（次の実行で再送します）。", err=True)
        sys.exit(1)
