"""The app as a person and an operator first meet it: health, readiness, sign-in, the start page."""
from __future__ import annotations

from sqlalchemy import text

from engine import migrate
from engine.models import AuditEvent, User
from tests.conftest import NOW


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in resp.headers  # a load balancer's probe gets no session
    assert "Set-Cookie" not in client.get("/readyz").headers


def test_readyz_reports_schema_at_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["schema"] == "head"


def test_readyz_refuses_when_schema_is_behind(client, db_engine):
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'behind'"))
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["schema"] == "outdated"
    finally:
        with db_engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": migrate.head_revision()})


def test_start_page_needs_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_wrong_password_is_refused_and_recorded(client, actors, sessions):
    response = client.post("/login", data={"login": actors.window.login, "password": "wrong"})
    assert response.status_code == 401
    assert "ログインIDまたはパスワードが違うか" in response.get_data(as_text=True)
    with sessions() as s:
        assert s.get(User, actors.window.id).failed_logins == 1
        assert s.query(AuditEvent).filter_by(action="login.failed").count() == 1


def test_start_page_lists_visible_cases_by_state_in_wareki(client, login, actors, open_case):
    open_case(categories=["poverty"], now=NOW)  # routed to 生活福祉課, opened 令和8年11月30日
    login(actors.livelihood)
    page = client.get("/").get_data(as_text=True)
    assert "つなぐシート送付中" in page
    assert "令和8年11月30日" in page
    assert "R8-000001" in page
    client.post("/logout")
    login(actors.children)  # another department: not its case
    assert "R8-000001" not in client.get("/").get_data(as_text=True)


def test_pages_carry_security_headers(client):
    response = client.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_health_answers_under_the_api_prefix_too(client, db_engine):
    assert client.get("/api/v1/healthz").get_json() == {"status": "ok"}
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 200 and ready.get_json()["schema"] == "head"
    spec = client.get("/api/v1/openapi.json").get_json()
    assert {"/api/v1/healthz", "/api/v1/readyz"} <= set(spec["paths"])
    assert "security" not in spec["paths"]["/api/v1/healthz"]["get"]


def test_api_readiness_refusal_is_a_problem(client, db_engine):
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'behind'"))
    try:
        response = client.get("/api/v1/readyz")
        assert response.status_code == 503
        assert response.content_type == "application/problem+json"
        assert response.get_json()["schema"] == "outdated"
    finally:
        with db_engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": migrate.head_revision()})



def test_processes_starting_together_on_a_new_instance_folder_share_one_key(tmp_path):
    """A server and a scan started at once with no SECRET_KEY: neither fails, and both sign with one key.

    Threads stand in for the processes (the file system is shared alike), with the interpreter switching
    between them as often as it can, so that the gap between "is there a key" and "write one" is hit."""
    import sys
    import threading

    from flask import Flask

    from web import _instance_secret

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_ in range(60):
            folder = tmp_path / f"instance{round_}"
            app = Flask(__name__, instance_path=str(folder))
            start = threading.Barrier(8)
            results: list[object] = []

            def start_up():
                start.wait()
                try:
                    results.append(_instance_secret(app))
                except Exception as exc:  # the failure itself is what the test reports
                    results.append(exc)

            threads = [threading.Thread(target=start_up) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            key = (folder / "secret_key").read_text().strip()
            assert results == [key] * 8 and len(key) == 64, (round_, results)
            assert [p.name for p in folder.iterdir()] == ["secret_key"]  # no drafts left behind
    finally:
        sys.setswitchinterval(interval)
