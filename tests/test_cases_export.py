"""`tsunagu cases export`: a client's own referrals as it reads them over the API, or the city's cases by their
codes; names and summaries only with --with-text; each export recorded as a bulk read."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import ApiClient, AuditEvent, Case
from engine.referrals import clients as api_clients
from engine.referrals import intake as referrals
from schemas.referrals import ReferralIn
from tests.api.support import referral
from tests.conftest import NOW


@pytest.fixture
def world(sessions, departments, open_case):
    """Two clients' referrals and a case opened at the window, one of them changed long before the others."""
    with unit_of_work(sessions) as s:
        for name in ("oono", "saeki"):
            api_clients.create_token(s, client_name=name, scopes=["referrals:write", "referrals:read"])
    ids = {}
    for name, ref in (("oono", "OONO-1"), ("oono", "OONO-2"), ("saeki", "SAEKI-1")):
        with unit_of_work(sessions) as s:
            client = s.scalar(select(ApiClient).where(ApiClient.name == name))
            body = referral(external_ref=ref, summary="=HYPERLINK(\"http://x\")と書かれた紹介")
            ids[ref] = referrals.receive(s, client, key=ref, payload=ReferralIn().load(body), now=NOW).case_id
    ids["window"] = open_case(summary="窓口での相談。", now=NOW - timedelta(days=400))
    with unit_of_work(sessions) as s:
        s.get(Case, ids["window"]).updated_at = NOW - timedelta(days=400)
    return ids


def _rows(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_a_client_gets_its_own_referrals_as_it_reads_them_and_no_more(cli, world, sessions):
    result = cli("cases", "export", "--client", "oono")
    rows = _rows(result)
    assert [r["external_ref"] for r in rows] == ["OONO-1", "OONO-2"]
    assert list(rows[0]) == ["id", "external_ref", "case_number", "status", "status_label", "owning_department",
                             "created_at", "accepted_at", "closed_at", "outcome"]
    assert rows[0]["status"] == "handoff" and rows[0]["status_label"] == "つなぐシート送付中"
    assert "HYPERLINK" not in result.stdout
    with sessions() as s:
        (audit,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "referrals.export")).all()
        assert audit.detail["rows"] == 2 and audit.detail["client"] == "oono"


def test_the_citys_export_is_codes_and_dates_without_text(cli, world, sessions):
    result = cli("cases", "export")
    rows = _rows(result)
    assert len(rows) == 4
    by_ref = {r["external_ref"]: r for r in rows}
    assert by_ref["OONO-1"]["referral_client"] == "oono" and by_ref["SAEKI-1"]["referral_client"] == "saeki"
    assert by_ref["OONO-1"]["categories"] and by_ref["OONO-1"]["primary_category"]
    assert by_ref["OONO-1"]["opened_on"] == "2026-11-30"
    text = result.stdout
    assert "廿日 太郎" not in text and "窓口での相談" not in text and "HYPERLINK" not in text and "person_name" not in text
    with sessions() as s:
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "case.export")).all() == []
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "cases.export")).first().detail["with_text"] is False


def test_with_text_carries_names_and_summaries_kept_as_text_and_each_case_is_recorded(cli, world, sessions):
    rows = _rows(cli("cases", "export", "--with-text"))
    window = next(r for r in rows if r["external_ref"] == "")
    assert window["person_name"] == "廿日 太郎" and window["summary"] == "窓口での相談。"
    oono = next(r for r in rows if r["external_ref"] == "OONO-1")
    assert oono["summary"].startswith("'=HYPERLINK")  # a spreadsheet shows it, never runs it
    with sessions() as s:
        exported = {a.case_id for a in s.scalars(select(AuditEvent).where(AuditEvent.action == "case.export"))}
    assert exported == set(world.values())


def test_since_leaves_out_the_cases_unchanged_since_that_day(cli, world):
    rows = _rows(cli("cases", "export", "--since", "令和8年11月1日"))
    assert sorted(r["external_ref"] for r in rows) == ["OONO-1", "OONO-2", "SAEKI-1"]
    assert len(_rows(cli("cases", "export", "--since", "2024-01-01"))) == 4


@pytest.mark.parametrize("args,says", [
    (("--since", "2026/2/30"), "2026年2月30日という日付はありません"),
    (("--since", "yesterday"), "2026-04-01 または 令和8年4月1日 の形"),
    (("--client", "oono", "--with-text"), "--with-text とは併せて使えません"),
    (("--client", "nobody"), "「nobody」というクライアントはありません"),
])
def test_what_cannot_be_exported_is_said(cli, world, args, says):
    result = cli("cases", "export", *args)
    assert result.exit_code != 0 and says in result.output


def test_an_export_with_text_appears_in_the_persons_disclosure(cli, world, sessions):
    from engine.privacy import disclosure

    assert cli("cases", "export", "--with-text").exit_code == 0
    with unit_of_work(sessions) as s:
        _, rows = disclosure.person_trail(s, str(world["window"]))
    assert [r.action_label for r in rows if r.action == "case.export"] == ["ケースの書き出し（氏名・要約を含む一括の書き出し）"]
