"""Fixtures and helpers for the staff pages' tests: the app on the test database, a signed-in client,
posting forms with their CSRF token, and reading what a page shows."""
from __future__ import annotations

import html
import re
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from engine.db import unit_of_work
from engine.models import Case

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(pages_app):
    """The pages' app: with the forms' CSRF check on, as staff meet it (tests/conftest.py)."""
    return pages_app


class Client:
    """A test client that signs in as a user and sends forms with the page's CSRF token."""

    def __init__(self, flask_client):
        self.c = flask_client
        self._token = None

    def login_as(self, user) -> "Client":
        # A signed-in session as flask-login writes it (no password hashing per test).
        with self.c.session_transaction() as sess:
            sess["_user_id"] = user.get_id()
            sess["_fresh"] = True
            sess["last_seen"] = int(time.time())
            sess["signed_in_at"] = int(time.time())
        self._token = None
        return self

    def get(self, url, **kw):
        r = self.c.get(url, **kw)
        m = TOKEN.search(r.get_data(as_text=True)) if r.mimetype == "text/html" else None  # not a download
        if m:
            self._token = m.group(1)
        return r

    def token(self) -> str:
        if self._token is None:
            self.get("/cases?state=closed")
        assert self._token, "no CSRF token found on the page"
        return self._token

    def post(self, url, data=None, *, csrf=True, **kw):
        data = dict(data or {}) if not isinstance(data, list) else data
        if csrf:
            if isinstance(data, list):
                data = data + [("csrf_token", self.token())]
            else:
                data.setdefault("csrf_token", self.token())
        r = self.c.post(url, data=_multi(data), **kw)
        m = TOKEN.search(r.get_data(as_text=True))
        if m:
            self._token = m.group(1)
        return r


def _multi(data):
    from werkzeug.datastructures import MultiDict

    return MultiDict(data) if isinstance(data, list) else MultiDict(
        [(k, x) for k, v in data.items() for x in (v if isinstance(v, (list, tuple)) else [v])])


@pytest.fixture
def web(app):
    """web() → a fresh Client; web(user) → signed in as `user`."""
    def make(user=None) -> Client:
        client = Client(app.test_client())
        return client.login_as(user) if user is not None else client

    return make


def text_of(response) -> str:
    """The page's (or an HTML fragment's) visible text, roughly: tags removed, entities decoded, spaces
    collapsed."""
    body = response if isinstance(response, str) else response.get_data(as_text=True)
    body = re.sub(r"<(script|style|svg)[^>]*>.*?</\1>", " ", body, flags=re.S)
    body = re.sub(r"<[^>]+>", " ", body)
    return re.sub(r"\s+", " ", html.unescape(body))


def error_beside(response, prefix: str, name: str) -> str | None:
    """The message shown beside the input `name` of the form whose ids start with `prefix`, or None."""
    fid = f"{prefix}-{name.replace('.', '-')}"
    body = response.get_data(as_text=True)
    m = re.search(rf'<span class="field-error" id="{re.escape(fid)}-error">(.*?)</span>', body, flags=re.S)
    if m is None:
        return None
    # The input must point at it, so that a screen reader reads it with the field.
    assert f'aria-describedby="{fid}-error"' in body, f"{fid} is not described by its error"
    return html.unescape(m.group(1))


def input_value(response, prefix: str, name: str) -> str | None:
    fid = f"{prefix}-{name.replace('.', '-')}"
    body = response.get_data(as_text=True)
    m = re.search(rf'<input id="{re.escape(fid)}"[^>]*value="([^"]*)"', body)
    if m:
        return html.unescape(m.group(1))
    m = re.search(rf'<textarea id="{re.escape(fid)}"[^>]*>(.*?)</textarea>', body, flags=re.S)
    return html.unescape(m.group(1)) if m else None


_KEY = r'<select name="submission_token"[^>]*>\s*<option value="([^"]+)" selected>'


def form_token(page, action: str | None = None) -> str:
    """The one-time key a page's form is sent with: of the form posting to `action`, else of the first."""
    body = page if isinstance(page, str) else page.get_data(as_text=True)
    if action is not None:
        body = body[body.index(f'action="{action}"'):]
    return html.unescape(re.search(_KEY, body).group(1))


def used_keys(page, action: str) -> list[str]:
    """The keys the form posting to `action` offers beside its own (the person's keys used on the record)."""
    body = page if isinstance(page, str) else page.get_data(as_text=True)
    body = body[body.index(f'action="{action}"'):]
    select = body[:body.index("</select>")]
    return re.findall(r'<option value="([^"]+)">', select)


def count(sessions, model, *where) -> int:
    with unit_of_work(sessions) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def case_state(sessions, case_id: int) -> str:
    with unit_of_work(sessions) as s:
        return s.get(Case, case_id).state


def case_version(sessions, case_id: int) -> int:
    with unit_of_work(sessions) as s:
        return s.get(Case, case_id).version


# After both the fixtures' fixed NOW and the real today (pages act at the real time).
FUTURE = (max(date.today(), date(2026, 11, 30)) + timedelta(days=60)).isoformat()
CONSENT = {"given_by": "本人", "method": "written", "agencies": ["livelihood", "shakyo"]}
PLAN = {"goals": "「家賃を払えるようになりたい」", "main_department": "livelihood", "next_evaluation_date": FUTURE,
        "roles": [{"department": "livelihood", "role": "家計相談"}, {"department": "shakyo", "role": "居場所の紹介"}]}


@pytest.fixture
def case_in(open_case, fire, actors):
    """case_in(state) → the id of a 生活困窮 case brought to `state` by the real events (owner: 生活福祉課)."""
    members = {"members": [{"user": "livelihood", "acknowledged": True}]}
    paths = {
        "intake": [],
        "handoff": [],
        "assigned": [("livelihood", "accept_handoff", {})],
        "support_meeting": [("livelihood", "accept_handoff", {}), ("fm", "convene_support_meeting", members)],
        "consent": [("livelihood", "accept_handoff", {}), ("fm", "convene_support_meeting", members),
                    ("fm", "seek_consent", {})],
        "layered_meeting": [("livelihood", "accept_handoff", {}), ("livelihood", "record_consent", CONSENT)],
        "accompaniment": [("livelihood", "accept_handoff", {}), ("livelihood", "record_consent", CONSENT),
                          ("livelihood", "adopt_plan", PLAN)],
        "closed": [("livelihood", "accept_handoff", {}), ("livelihood", "close", {"close_reason": "goal_met"})],
    }

    def make(state: str, **over) -> int:
        case_id = open_case(**({"categories": ["other"]} if state == "intake" else {"categories": ["poverty"]}),
                            **over)
        for who, event, fields in paths[state]:
            fire(getattr(actors, who), case_id, event, **fields)
        return case_id

    return make
