"""The OpenAPI document (committed copy in step with the code), the readable docs, and errors at the edges."""
from __future__ import annotations

import json
import logging
import re
from html.parser import HTMLParser

import pytest
from flask import Blueprint

from tests.api.support import assert_problem, auth, post_referral
from web.api import spec as api_spec
from web.api.problems import PROBLEMS


def test_committed_spec_matches_the_code(client):
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.mimetype == "application/json"
    committed = json.loads(api_spec.COMMITTED.read_text(encoding="utf-8"))
    assert served.get_json() == committed, (
        "web/api/openapi.json is out of date: run `python -m web.api.spec > web/api/openapi.json`")
    assert api_spec.render(api_spec.build()) == api_spec.COMMITTED.read_text(encoding="utf-8")


def test_spec_lists_every_contract_operation_with_its_scope(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    ops = {(m.upper(), p): op for p, item in spec["paths"].items() for m, op in item.items() if m != "parameters"}
    open_ops = {k for k, v in ops.items() if "x-required-scope" not in v}
    assert open_ops == {("GET", "/api/v1/healthz"), ("GET", "/api/v1/readyz")}  # no token needed
    assert all("security" not in ops[k] for k in open_ops)
    assert {(k, v["x-required-scope"]) for k, v in ops.items() if k not in open_ops} == {
        (("POST", "/api/v1/referrals"), "referrals:write"),
        (("GET", "/api/v1/referrals"), "referrals:read"),
        (("GET", "/api/v1/referrals/{referral_id}"), "referrals:read"),
        (("POST", "/api/v1/referral-batches"), "referrals:write"),
        (("GET", "/api/v1/cases/{case_id}"), "cases:read"),
        (("GET", "/api/v1/people/{person_id}"), "cases:read"),
        (("POST", "/api/v1/cases/{case_id}/events"), "cases:write"),
        (("GET", "/api/v1/alerts"), "alerts:read"),
        (("POST", "/api/v1/alerts/{alert_id}/acknowledge"), "alerts:write"),
        (("POST", "/api/v1/alerts/{alert_id}/resolve"), "alerts:write"),
        (("POST", "/api/v1/watch-reports"), "watch:write"),
        (("GET", "/api/v1/watch-reports/{report_id}"), "watch:read"),
    }
    for op in ops.values():
        for status, resp in op["responses"].items():
            if int(status) >= 400:
                ref = resp["$ref"].rsplit("/", 1)[-1]
                assert "application/problem+json" in spec["components"]["responses"][ref]["content"]
    post = ops[("POST", "/api/v1/referrals")]
    assert {"201", "400", "401", "403", "409", "413", "415", "422"} <= set(post["responses"])
    assert [p["name"] for p in post["parameters"]] == ["Idempotency-Key"]


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.assets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)
                if tag != "a":
                    self.assets.append(value)
            if name == "id":
                self.ids.add(value)


def test_docs_page_is_served_whole_by_the_app(client):
    resp = client.get("/api/v1/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    parser = _Assets()
    parser.feed(html)
    assert not [u for u in parser.urls if re.match(r"^(https?:)?//", u)], "no outside URLs"
    assert parser.assets
    for url in parser.assets:  # stylesheets, scripts, images: all from the app itself
        assert client.get(url).status_code == 200, url
    for url in {u.split("#")[0] for u in parser.urls if u.startswith("/")}:
        assert client.get(url).status_code < 400, url
    for anchor in {u[1:] for u in parser.urls if u.startswith("#")}:
        assert anchor in parser.ids, anchor
    for path in ("/api/v1/referrals", "/api/v1/cases/{case_id}/events", "/api/v1/alerts/{alert_id}/resolve"):
        assert path in html
    assert "SendHandoffEvent" in html and "to_department" in html and "idempotency-key-reused" in html
    assert "cdn" not in html.lower()


def test_every_problem_type_resolves_to_a_page(client):
    for name, (status, title, _) in PROBLEMS.items():
        resp = client.get(f"/api/v1/problems/{name}")
        assert resp.status_code == 200 and title in resp.get_data(as_text=True)
    assert client.get("/api/v1/problems/nothing-like-this").status_code == 404


def test_unknown_paths_and_methods_inside_the_api_are_problems(client, partner):
    assert_problem(client.get("/api/v1/nothing"), 404, "not-found")
    resp = client.delete("/api/v1/referrals", headers=auth(partner))
    assert_problem(resp, 405, "method-not-allowed")
    assert "POST" in resp.headers["Allow"]
    # Pages keep their own error pages.
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_unexpected_error_is_a_generic_500_without_trace(database_url, db_engine, departments, make_token, caplog):
    from web import create_app
    from web.api.core import requires

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True})
    boom = Blueprint("boom", __name__)

    @boom.get("/api/v1/boom")
    @requires("referrals:read")
    def explode():
        raise RuntimeError("secret internals: password=hunter2")

    from web.api.problems import handle_unexpected

    boom.register_error_handler(Exception, handle_unexpected)
    app.register_blueprint(boom)
    token = make_token("referrals:read")
    with caplog.at_level(logging.INFO):
        resp = app.test_client().get("/api/v1/boom", headers=auth(token))
    body = assert_problem(resp, 500, "internal-error")
    text = resp.get_data(as_text=True)
    assert "hunter2" not in text and "RuntimeError" not in text and "Traceback" not in text
    assert body["detail"]
    assert "hunter2" in caplog.text  # the cause is logged on the server …
    assert token not in caplog.text  # … but never the token
    app.extensions["tsunagu.engine"].dispose()


def test_a_database_not_yet_migrated_answers_503_not_500(tmp_path):
    """Before `tsunagu db upgrade` the API says it cannot serve yet, as GET /readyz does, with no trace."""
    from web import create_app

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "SECRET_KEY": "test", "TESTING": True})
    client = app.test_client()
    resp = client.get("/api/v1/referrals", headers=auth("tsu_whatever"))
    body = assert_problem(resp, 503, "service-unavailable")
    assert resp.headers["Retry-After"] == "30" and "no such table" not in resp.get_data(as_text=True)
    assert body["detail"]
    assert client.get("/readyz").status_code == 503
    ready = client.get("/api/v1/readyz")
    assert_problem(ready, 503, "service-unavailable")
    assert ready.headers["Retry-After"] == "30" and ready.get_json()["schema"] == "outdated"
    app.extensions["tsunagu.engine"].dispose()


@pytest.mark.parametrize("url", ["sqlite:///{folder}",  # a folder where the file should be: cannot open
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/tsunagu_no_such_database"])
def test_readiness_with_the_database_unreachable_is_503(url, tmp_path):
    from web import create_app

    app = create_app({"DATABASE_URL": url.format(folder=tmp_path), "SECRET_KEY": "test", "TESTING": True})
    resp = app.test_client().get("/api/v1/readyz")
    body = assert_problem(resp, 503, "service-unavailable")
    assert resp.headers["Retry-After"] == "30"
    assert body["database"] == "unreachable" and body["cause"] and "データベースに接続できません" in body["detail"]
    app.extensions["tsunagu.engine"].dispose()


def test_tokens_never_reach_the_logs(client, partner, caplog):
    with caplog.at_level(logging.DEBUG):
        post_referral(client, partner)
        post_referral(client, partner, body={"bad": 1}, key="k2")
        client.get("/api/v1/referrals/424242", headers=auth(partner))
        client.get("/api/v1/referrals", headers=auth(partner + "x"))
    assert partner not in caplog.text and partner[4:20] not in caplog.text


def test_bench_baseline_endpoint_exists_only_when_asked_for(client, monkeypatch, database_url, db_engine):
    assert client.post("/api/bench/bare-referrals", json={}).status_code == 404
    from web import create_app

    monkeypatch.setenv("TSUNAGU_BENCH_BARE", "1")
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True})
    assert "bench_bare.bare_referral" in app.view_functions
    assert "/api/bench/bare-referrals" not in json.dumps(app.extensions["tsunagu.api"].spec.to_dict())
    app.extensions["tsunagu.engine"].dispose()


def test_a_read_only_database_answers_503_and_readiness_says_so(database_url, partner):
    """A PostgreSQL standby after a failover answers reads but refuses every write (each request writes an
    audit row): the API says it cannot serve, as GET /readyz does, rather than failing with 500."""
    from sqlalchemy.engine import make_url

    from web import create_app

    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("a read-only server is PostgreSQL's (a standby)")
    url = make_url(database_url).update_query_dict({"options": "-c default_transaction_read_only=on"})
    app = create_app({"DATABASE_URL": url.render_as_string(hide_password=False), "SECRET_KEY": "test",
                      "TESTING": True})
    try:
        client = app.test_client()
        resp = client.get("/api/v1/referrals", headers=auth(partner))
        assert_problem(resp, 503, "service-unavailable")
        ready = client.get("/api/v1/readyz")
        assert_problem(ready, 503, "service-unavailable")
        assert ready.get_json()["database"] == "read_only"
    finally:
        app.extensions["tsunagu.engine"].dispose()
