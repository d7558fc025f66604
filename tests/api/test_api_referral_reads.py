"""GET /referrals/{id} and GET /referrals: the referrer reads back its own referrals, and only those."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest

from engine.db import unit_of_work
from engine.models import AuditEvent, Case
from tests.api.support import assert_problem, auth, post_referral, referral

REFERRAL_KEYS = {"id", "external_ref", "case_number", "status", "status_label", "owning_department", "created_at",
                 "accepted_at", "closed_at", "outcome"}


def _send(client, token, n: int, prefix: str = "R") -> list[dict]:
    return [post_referral(client, token, referral(external_ref=f"{prefix}-{i}"), key=f"{prefix}-{i}").get_json()
            for i in range(n)]


def test_referrer_view_follows_the_case_and_never_shows_notes(client, partner, fire, actors):
    created = post_referral(client, partner).get_json()
    view = client.get(f"/api/v1/referrals/{created['id']}", headers=auth(partner)).get_json()
    assert set(view) == REFERRAL_KEYS
    assert (view["status"], view["status_label"], view["owning_department"]) == ("handoff", "つなぐシート送付中", None)
    assert view["created_at"].endswith("+00:00") and view["accepted_at"] is None and view["outcome"] is None
    fire(actors.elderly, created["id"], "accept_handoff")
    view = client.get(f"/api/v1/referrals/{created['id']}", headers=auth(partner)).get_json()
    assert view["status"] == "assigned" and view["owning_department"] == {"code": "elderly", "name": "高齢介護課"}
    assert view["accepted_at"] is not None
    fire(actors.elderly, created["id"], "close", close_reason="other_system", note="介護保険サービスへ移行（内部メモ）")
    view = client.get(f"/api/v1/referrals/{created['id']}", headers=auth(partner)).get_json()
    assert (view["status"], view["outcome"]) == ("closed", "other_system") and view["closed_at"] is not None
    text = str(view)
    assert "内部メモ" not in text and "ひきこもり" not in text and "廿日" not in text


def test_another_clients_referral_is_404(client, partner, make_token, open_case):
    created = post_referral(client, partner).get_json()
    other = make_token("referrals:read,referrals:write", name="other")
    assert_problem(client.get(f"/api/v1/referrals/{created['id']}", headers=auth(other)), 404, "not-found")
    window_case = open_case()  # opened at a window, no client at all
    assert_problem(client.get(f"/api/v1/referrals/{window_case}", headers=auth(partner)), 404, "not-found")
    assert_problem(client.get("/api/v1/referrals/999999", headers=auth(partner)), 404, "not-found")
    assert_problem(client.get("/api/v1/referrals/99999999999", headers=auth(partner)), 404, "not-found")
    assert_problem(client.get("/api/v1/referrals/abc", headers=auth(partner)), 404, "not-found")


def test_list_is_own_newest_first_and_pages_through_next(client, partner, make_token):
    mine = _send(client, partner, 5)
    other = make_token("referrals:write,referrals:read", name="other")
    _send(client, other, 2, prefix="O")
    resp = client.get("/api/v1/referrals?limit=2", headers=auth(partner))
    page = resp.get_json()
    assert resp.status_code == 200 and set(page) == {"items", "next"}
    seen = [r["id"] for r in page["items"]]
    while page["next"]:
        assert page["next"].startswith("http://localhost/api/v1/referrals?")
        page = client.get(page["next"], headers=auth(partner)).get_json()
        assert len(page["items"]) <= 2
        seen += [r["id"] for r in page["items"]]
    assert seen == sorted((r["id"] for r in mine), reverse=True)
    assert all(set(r) == REFERRAL_KEYS for r in page["items"])


def test_list_filters_by_status(client, partner, fire, actors):
    made = _send(client, partner, 3)
    fire(actors.elderly, made[1]["id"], "accept_handoff")
    items = client.get("/api/v1/referrals?status=assigned", headers=auth(partner)).get_json()["items"]
    assert [r["id"] for r in items] == [made[1]["id"]]
    items = client.get("/api/v1/referrals?status=handoff", headers=auth(partner)).get_json()["items"]
    assert [r["id"] for r in items] == [made[2]["id"], made[0]["id"]]
    none = client.get("/api/v1/referrals?status=closed", headers=auth(partner)).get_json()
    assert none == {"items": [], "next": None}


def test_list_filters_by_updated_since(client, partner, sessions):
    made = _send(client, partner, 3)
    with unit_of_work(sessions) as s:
        middle = s.get(Case, made[1]["id"]).updated_at
        s.get(Case, made[0]["id"]).updated_at = middle - timedelta(hours=1)
    since = middle.astimezone().isoformat()
    for query in (quote(since), since):  # an unencoded '+' arrives as a space and is put back
        items = client.get(f"/api/v1/referrals?updated_since={query}", headers=auth(partner)).get_json()["items"]
        assert [r["id"] for r in items] == [made[2]["id"], made[1]["id"]]


def test_list_refuses_bad_filters_by_name(client, partner):
    body = assert_problem(client.get("/api/v1/referrals?status=lost&updated_since=yesterday&limit=1000&cursor=x",
                                     headers=auth(partner)), 422, "validation-error")
    assert set(body["errors"]) == {"status", "updated_since", "limit", "cursor"}
    body = assert_problem(client.get("/api/v1/referrals?updated_since=2026-11-30T10:00:00", headers=auth(partner)),
                          422, "validation-error")
    assert "タイムゾーン" in body["errors"]["updated_since"][0]


def test_updated_since_before_or_after_every_record_asks_for_all_or_none(client, partner):
    made = _send(client, partner, 2)
    for since, expected in (("0001-01-01T00:00:00Z", [made[1]["id"], made[0]["id"]]),
                            ("9999-12-31T23:59:59-14:00", []), ("1899-12-31T23:59:59%2B09:00", [made[1]["id"], made[0]["id"]])):
        r = client.get(f"/api/v1/referrals?updated_since={since}", headers=auth(partner))
        assert r.status_code == 200, (since, r.get_data(as_text=True))
        assert [x["id"] for x in r.get_json()["items"]] == expected, since


@pytest.mark.parametrize("since", ["20261201T040942Z", "2026-12-01T04Z", "2026-12-01T04:09:42%2B09",
                                   "2026-W48-2T00:00:00Z", "2026-12-01T04:09:42,5%2B00:00",
                                   "２０２６-12-01T00:00:00Z"])
def test_updated_since_is_an_rfc3339_time_as_the_document_says(client, partner, since):
    body = assert_problem(client.get(f"/api/v1/referrals?updated_since={since}", headers=auth(partner)),
                          422, "validation-error")
    assert "RFC 3339" in body["errors"]["updated_since"][0]


def test_a_cursor_longer_than_its_pattern_is_refused(client, partner):
    body = assert_problem(client.get("/api/v1/referrals?cursor=12345678901", headers=auth(partner)), 422,
                          "validation-error")
    assert "cursor" in body["errors"]


def test_every_read_of_a_referral_is_in_the_trail_with_its_client(client, partner, sessions):
    """What a partner reads back (status, owner, times, outcome) is case data: each read is audited, the
    replayed answer to a retry too, so that a 開示請求 shows who learned what."""
    from sqlalchemy import select

    def trail() -> list[tuple[str, int, str]]:
        with sessions() as s:
            return [(e.action, e.case_id, e.actor_label) for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action.like("referral.%")).order_by(AuditEvent.seq))]

    first, second = _send(client, partner, 2)
    assert trail() == []
    client.get(f"/api/v1/referrals/{first['id']}", headers=auth(partner))
    client.get("/api/v1/referrals", headers=auth(partner))
    again = post_referral(client, partner, referral(external_ref="R-0"), key="R-0")
    assert again.headers["Idempotent-Replayed"] == "true"
    label = trail()[0][2]
    assert label.startswith("client:")
    assert trail() == [("referral.read", first["id"], label), ("referral.read", second["id"], label),
                       ("referral.read", first["id"], label), ("referral.replay", first["id"], label)]
