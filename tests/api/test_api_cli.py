"""`tsunagu token create|revoke` and `tsunagu webhooks register`: what operators type."""
from __future__ import annotations

from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import ApiClient, ApiToken, AuditEvent
from tests.api.support import assert_problem, auth, post_referral
from web.cli import main


def _run(app, *args):
    return app.test_cli_runner().invoke(main, list(args))


def test_token_create_prints_the_token_alone_on_the_last_line(app, client, sessions):
    result = _run(app, "token", "create", "--client", "oono", "--scopes", "referrals:write,referrals:read")
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("tsu_") and " " not in token
    assert post_referral(client, token).status_code == 201
    with unit_of_work(sessions) as s:
        row = s.scalar(select(ApiToken))
        assert row.token_hash != token and token not in row.token_hash and row.last_used_at is not None
        assert s.scalar(select(ApiClient)).scopes == ["referrals:write", "referrals:read"]
        assert all(token not in str(a.detail) for a in s.scalars(select(AuditEvent)))


def test_staff_scopes_need_a_user(app, actors):
    result = _run(app, "token", "create", "--client", "x", "--scopes", "cases:read")
    assert result.exit_code == 1 and "--user" in result.output
    result = _run(app, "token", "create", "--client", "x", "--scopes", "alerts:read", "--user", "nobody")
    assert result.exit_code == 1 and "nobody" in result.output
    result = _run(app, "token", "create", "--client", "x", "--scopes", "everything")
    assert result.exit_code == 1 and result.stderr.count("「everything」") == 1  # each reason once
    assert result.stderr.startswith("エラー: 入力内容に誤りがあります\n  scopes: ")
    result = _run(app, "token", "create", "--client", "x", "--scopes", "cases:read,alerts:read", "--user", "fm")
    assert result.exit_code == 0, result.output


def test_token_acting_for_a_user_reaches_only_what_the_user_may(app, client, actors, open_case):
    token = _run(app, "token", "create", "--client", "elderly-sys", "--scopes", "cases:read",
                 "--user", "elderly").output.strip().splitlines()[-1]
    case_id = open_case(categories=["poverty"])  # 生活福祉課's, not 高齢介護課's
    assert_problem(client.get(f"/api/v1/cases/{case_id}", headers=auth(token)), 404, "not-found")


def test_a_token_handed_out_never_changes_what_it_may_do(app, client, actors):
    first = _run(app, "token", "create", "--client", "oono", "--scopes", "referrals:write,referrals:read")
    again = _run(app, "token", "create", "--client", "oono", "--scopes", "referrals:read,referrals:write")
    assert again.exit_code == 0, again.output  # the same scopes: one more token (a rotation)
    old = first.stdout.strip().splitlines()[-1]
    for scopes, user in (("referrals:read", []), ("cases:read", ["--user", "elderly"])):
        refused = _run(app, "token", "create", "--client", "oono", "--scopes", scopes, *user)
        assert refused.exit_code == 1
        assert "有効なトークンが 2 件" in refused.stderr and "token revoke oono" in refused.stderr
        assert "tsu_" not in refused.stdout
    # The partner's token still does what it did, and nothing more.
    assert post_referral(client, old).status_code == 201
    assert_problem(client.get("/api/v1/cases/1", headers=auth(old)), 403, "insufficient-scope")
    # Revoked, the client may be set up anew.
    assert _run(app, "token", "revoke", "oono").exit_code == 0
    anew = _run(app, "token", "create", "--client", "oono", "--scopes", "referrals:read")
    assert anew.exit_code == 0, anew.output
    assert client.get("/api/v1/referrals", headers=auth(anew.stdout.strip().splitlines()[-1])).status_code == 200


def test_revoke_stops_every_token_of_the_client_at_once(app, client):
    first, second = (_run(app, "token", "create", "--client", "oono", "--scopes", "referrals:read")
                     .output.strip().splitlines()[-1] for _ in range(2))
    assert client.get("/api/v1/referrals", headers=auth(first)).status_code == 200
    result = _run(app, "token", "revoke", "oono")
    assert result.exit_code == 0 and "2" in result.output
    for token in (first, second):
        assert_problem(client.get("/api/v1/referrals", headers=auth(token)), 401, "unauthorized")
    assert _run(app, "token", "revoke", "nobody").exit_code == 1


def test_webhooks_register_prints_the_secret_once(app, sessions):
    _run(app, "token", "create", "--client", "oono", "--scopes", "referrals:read")
    result = _run(app, "webhooks", "register", "--client", "oono", "--url", "https://example.invalid/hook")
    assert result.exit_code == 0
    secret = result.output.strip().splitlines()[-1]
    with unit_of_work(sessions) as s:
        client = s.scalar(select(ApiClient))
        assert (client.webhook_url, client.webhook_secret) == ("https://example.invalid/hook", secret)
    assert _run(app, "webhooks", "register", "--client", "oono", "--url", "ftp://x").exit_code == 1
    for never in ("http://127.0.0.1:5193/hook with space", "http://127.0.0.1/ho\r\nok", "http://[::1/hook"):
        refused = _run(app, "webhooks", "register", "--client", "oono", "--url", never)
        assert refused.exit_code == 1 and "URL" in refused.stderr
