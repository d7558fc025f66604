"""Signing in and out, sessions that end after inactivity, cookies, CSRF, security headers."""
from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest
from flask import Blueprint

from engine.db import unit_of_work
from engine.models import AuditEvent, Case, ContactNote
from engine.users import accounts as users
from tests.conftest import PASSWORD
from tests.pages_support import app, case_in, count, form_token, text_of, web  # noqa: F401  (fixtures)


def _login(client, login, password, next_url=None):
    page = client.get("/login")
    assert page.status_code == 200
    url = "/login" + (f"?next={quote(next_url, safe='/')}" if next_url else "")
    return client.post(url, {"login": login, "password": password})


def test_sign_in_with_the_password_goes_to_the_page_asked_for(web, actors, sessions):
    client = web()
    first = client.get("/cases")
    assert first.status_code == 302 and "/login" in first.headers["Location"]
    r = _login(client, "window", PASSWORD, next_url="/cases")
    assert r.status_code == 302 and r.headers["Location"].endswith("/cases")
    page = client.get("/cases")
    assert page.status_code == 200 and "ケース一覧" in text_of(page)
    assert count(sessions, AuditEvent, AuditEvent.action == "login") == 1


@pytest.mark.parametrize("target", [
    "//evil.example/", "/\t/evil.example", "/\n/evil.example", "/\\evil.example",
    "https://evil.example/", "/ /evil.example", "/\x7f/evil.example",
])
def test_sign_in_never_redirects_off_site(web, actors, target):
    """Browsers drop tabs and line breaks in a URL: '/<tab>/evil.example' would be '//evil.example'."""
    r = _login(web(), "window", PASSWORD, next_url=target)
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_a_wrong_password_is_refused_and_recorded(web, actors, sessions):
    r = _login(web(), "window", "wrong password")
    assert r.status_code == 401
    assert users.SIGN_IN_REFUSED in text_of(r)
    assert count(sessions, AuditEvent, AuditEvent.action == "login.failed") == 1


def test_repeated_failures_lock_the_account_and_answer_as_an_unknown_login_does(web, actors, sessions):
    client = web()
    for _ in range(5):
        assert _login(client, "window", "wrong password").status_code == 401
    r = _login(client, "window", PASSWORD)  # even the right password waits now
    assert r.status_code == 401
    assert count(sessions, AuditEvent, AuditEvent.action == "login.locked") == 1
    # The same page as for a login that does not exist: the answer does not tell which logins exist.
    unknown = _login(client, "no-such-login", PASSWORD)
    assert unknown.status_code == 401
    page = lambda resp: re.sub(r'value="[^"]*"', "", resp.get_data(as_text=True))  # noqa: E731
    assert page(r) == page(unknown)
    assert users.SIGN_IN_REFUSED in text_of(r)


def test_a_session_ends_after_the_configured_inactivity(web, actors, app):
    client = web(actors.window)
    assert client.get("/cases").status_code == 200
    limit = int(app.config["SESSION_MINUTES"]) * 60
    with client.c.session_transaction() as sess:
        sess["last_seen"] = int(time.time()) - limit - 5
    r = client.get("/cases")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    page = client.get(r.headers["Location"])
    assert "一定時間操作がなかったため、ログアウトしました" in text_of(page)
    # Signed out for good: the next request is not let in either.
    again = client.get("/cases")
    assert again.status_code == 302 and "/login" in again.headers["Location"]


def test_a_form_sent_after_the_session_ended_saves_nothing_and_shows_what_was_typed(web, actors, app, case_in,
                                                                                     sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    token = form_token(page)
    with client.c.session_transaction() as sess:
        sess["last_seen"] = int(time.time()) - int(app.config["SESSION_MINUTES"]) * 60 - 5
    body = "自宅を訪問し、長男と30分ほど話した。次回は来週火曜日に訪問する予定。"
    r = client.post(f"/cases/{case_id}/notes", {"submission_token": token, "contact_on": "令和8年11月27日",
                                                "method": "home_visit", "body": body})
    assert r.status_code == 401
    text = text_of(r)
    assert "ログアウトしました" in text and "内容は保存されていません" in text
    assert body in text  # to copy: the browser's 戻る would land on the sign-in page
    assert count(sessions, ContactNote) == 0
    assert client.get("/cases").status_code == 302  # signed out for good


def test_activity_keeps_the_session_alive(web, actors, app):
    client = web(actors.window)
    limit = int(app.config["SESSION_MINUTES"]) * 60
    with client.c.session_transaction() as sess:
        sess["last_seen"] = int(time.time()) - limit + 60
    assert client.get("/cases").status_code == 200
    with client.c.session_transaction() as sess:
        assert sess["last_seen"] >= int(time.time()) - 5


def test_a_sign_in_ends_after_the_configured_hours_however_busy(web, actors, app):
    client = web(actors.window)
    hours = int(app.config["SESSION_MAX_HOURS"])
    with client.c.session_transaction() as sess:
        sess["signed_in_at"] = int(time.time()) - hours * 3600 + 60  # a minute to go: still in
    assert client.get("/cases").status_code == 200
    with client.c.session_transaction() as sess:
        sess["signed_in_at"] = int(time.time()) - hours * 3600 - 5  # active a moment ago, but past the cap
        sess["last_seen"] = int(time.time())
    r = client.get("/cases")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert f"ログインから{hours}時間が経ったため、ログアウトしました" in text_of(client.get(r.headers["Location"]))
    assert client.get("/cases").status_code == 302


def test_signing_in_starts_the_clock_of_the_cap(web, actors):
    client = web()
    before = int(time.time())
    assert _login(client, "window", PASSWORD).status_code == 302
    with client.c.session_transaction() as sess:
        assert before <= sess["signed_in_at"] <= int(time.time())


def test_a_post_after_the_session_expired_applies_nothing(web, actors, open_case, sessions, app):
    case_id = open_case(categories=["poverty"])
    client = web(actors.livelihood)
    client.get(f"/cases/{case_id}")
    with client.c.session_transaction() as sess:
        sess["last_seen"] = int(time.time()) - int(app.config["SESSION_MINUTES"]) * 60 - 5
    r = client.post(f"/cases/{case_id}/events/accept_handoff", {"version": 2})
    assert r.status_code == 401 and "ログアウトしました" in text_of(r)
    with sessions() as s:
        assert s.get(Case, case_id).state == "handoff"


def test_a_disabled_user_is_signed_out_at_once(web, actors, sessions):
    client = web(actors.window)
    assert client.get("/cases").status_code == 200
    with unit_of_work(sessions) as s:
        users.disable_user(s, None, "window")
    r = client.get("/cases")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_session_cookie_is_httponly_and_lax(web, actors):
    r = _login(web(), "window", PASSWORD)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_the_cookie_outlives_the_inactivity_limit_so_the_server_can_say_why_you_were_signed_out(web, actors, app):
    """The browser keeps the cookie for the day's limit; the server ends the sign-in after the inactivity
    limit and says so. A cookie dropped by the browser at that moment would only lead to the sign-in page."""
    from email.utils import parsedate_to_datetime

    cookie = _login(web(), "window", PASSWORD).headers["Set-Cookie"]
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))
    lasts = expires.timestamp() - time.time()
    assert lasts > int(app.config["SESSION_MINUTES"]) * 60 + 60
    assert lasts <= int(app.config["SESSION_MAX_HOURS"]) * 3600 + 5


def test_session_cookie_is_secure_when_configured(monkeypatch, database_url, db_engine, actors):
    from web import create_app

    monkeypatch.setenv("TSUNAGU_SECURE_COOKIES", "1")
    secure_app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "s"})
    try:
        client = secure_app.test_client()
        page = client.get("/login")
        token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        r = client.post("/login", data={"login": "window", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 302
        assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    finally:
        secure_app.extensions["tsunagu.engine"].dispose()


def test_a_form_without_its_csrf_token_is_refused_and_applies_nothing(web, actors, sessions):
    client = web(actors.window)
    r = client.post("/intake", {"action": "confirm", "mode": "route", "person.name": "廿日 太郎",
                                "categories": "poverty", "summary": "相談", "source": "window", "urgency": "normal"},
                    csrf=False)
    assert r.status_code == 400
    assert "送信できませんでした" in text_of(r)
    assert count(sessions, Case) == 0
    forged = client.post("/logout", {"csrf_token": "not-a-token"}, csrf=False)
    assert forged.status_code == 400


def test_the_api_prefix_is_exempt_from_csrf(database_url, db_engine):
    from web import create_app

    api_app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "s"})
    bp = Blueprint("api_probe", __name__, url_prefix="/api/v1")
    bp.add_url_rule("/probe", "probe", lambda: {"ok": True}, methods=["POST"])
    api_app.register_blueprint(bp)
    try:
        r = api_app.test_client().post("/api/v1/probe", json={})
        assert r.status_code == 200 and r.get_json() == {"ok": True}
        assert api_app.test_client().post("/intake", data={}).status_code == 400
    finally:
        api_app.extensions["tsunagu.engine"].dispose()


def test_sign_out_needs_a_post_with_the_token(web, actors):
    client = web(actors.window)
    assert client.get("/logout").status_code == 303  # to the start page: a GET signs no one out
    assert client.get("/cases").status_code == 200
    r = client.post("/logout")
    assert r.status_code == 302
    assert client.get("/cases").status_code == 302


def test_a_cookie_kept_from_before_sign_out_opens_nothing(web, actors, sessions):
    """The session is a signed cookie: a copy taken before signing out must not work after it."""
    client = web()
    _login(client, "window", PASSWORD)
    assert client.get("/cases").status_code == 200
    kept = client.c.get_cookie("session").value
    assert client.post("/logout").status_code == 302
    replay = web()
    replay.c.set_cookie("session", kept)
    r = replay.get("/cases")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert count(sessions, AuditEvent, AuditEvent.action == "logout") == 1
    again = web()  # signing in again works as before
    assert _login(again, "window", PASSWORD).status_code == 302 and again.get("/cases").status_code == 200


def test_pages_carry_the_security_headers_and_no_inline_script(web, actors):
    r = web(actors.window).get("/intake")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
    body = r.get_data(as_text=True)
    assert "<script" not in body and "style=" not in body and "<style" not in body


def test_unknown_pages_answer_a_japanese_404(web, actors):
    r = web(actors.window).get("/no-such-page")
    assert r.status_code == 404 and "見つかりません" in text_of(r)


@pytest.mark.parametrize("url,status,location", [
    ("/cases/1", 302, "/login?next=%2Fcases%2F1"),  # signed out: to the sign-in page
    ("/admin", 308, "http://localhost/admin/"),      # the canonical address of a page
])
def test_a_redirect_carries_a_short_japanese_page_linking_to_its_target(web, url, status, location):
    r = web().get(url)
    assert r.status_code == status and r.headers["Location"] == location
    body = r.get_data(as_text=True)
    assert r.mimetype == "text/html" and '<html lang="ja">' in body
    assert f'<a href="{location}">' in body and "ページを移動します" in body
    assert "Redirecting" not in body and "lang=en" not in body


def test_the_redirect_after_a_form_keeps_its_status_and_location(web, actors):
    r = _login(web(), "window", PASSWORD, next_url="/cases")
    assert r.status_code == 302 and r.headers["Location"] == "/cases"
    assert '<html lang="ja">' in r.get_data(as_text=True) and '<a href="/cases">' in r.get_data(as_text=True)
