"""A client's source: `tsunagu token create … --source CODE` gives every referral the client sends that source
(categories.yaml `sources`), so that the routing rules on sources apply to referrals sent over REST."""
from __future__ import annotations

from sqlalchemy import select

from engine.models import ApiClient, AuditEvent, Case
from tests.api.support import post_referral, referral


def _token(cli, *args: str) -> str:
    result = cli("token", "create", "--client", "mimamori", "--scopes", "referrals:write,referrals:read", *args)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def test_a_watch_partners_report_is_routed_by_the_rule_for_its_source(cli, client, sessions):
    token = _token(cli, "--source", "partner")
    resp = post_referral(client, token, referral(categories=["other"], external_ref="M-1"))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["routing"]["rule"] == "協定企業からのその他の通報"
    with sessions() as s:
        case = s.get(Case, resp.get_json()["id"])
        assert (case.source, case.proposed_department.code) == ("partner", "shakyo")
        (made,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.create")).all()
        assert made.detail["source"] == "partner"


def test_without_a_source_a_referral_comes_from_api_and_that_rule_does_not_match(cli, client, sessions):
    token = _token(cli)
    resp = post_referral(client, token, referral(categories=["other"], external_ref="M-1"))
    assert resp.status_code == 201
    assert resp.get_json()["routing"]["rule"] != "協定企業からのその他の通報"
    with sessions() as s:
        assert s.get(Case, resp.get_json()["id"]).source == "api"


def test_a_later_token_keeps_the_clients_source_unless_given_another(cli, sessions):
    _token(cli, "--source", "partner")
    _token(cli)
    with sessions() as s:
        assert s.scalar(select(ApiClient.source).where(ApiClient.name == "mimamori")) == "partner"
    _token(cli, "--source", "outreach")
    with sessions() as s:
        assert s.scalar(select(ApiClient.source).where(ApiClient.name == "mimamori")) == "outreach"


def test_an_unknown_source_is_refused_and_names_the_codes(cli, sessions):
    result = cli("token", "create", "--client", "mimamori", "--scopes", "referrals:write", "--source", "newspaper")
    assert result.exit_code == 1
    assert "「newspaper」という受付経路はありません" in result.output and "partner" in result.output
    with sessions() as s:
        assert s.scalar(select(ApiClient).where(ApiClient.name == "mimamori")) is None
