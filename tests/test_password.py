"""Passwords after the first: a user changes their own on a page, an operator sets a forgotten one or lets a
disabled user back in from the command line. Each ends the user's other sessions and is audited."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.db import lost_race, unit_of_work
from engine.errors import Conflict, PermissionDenied, ValidationFailed
from engine.models import AuditEvent, User, utcnow
from engine.users import accounts as users
from tests.conftest import PASSWORD
from tests.pages_support import app, count, error_beside, text_of, web  # noqa: F401  (fixtures)

NEW = "a new passphrase"


def _user(sessions, login) -> User:
    with sessions() as s:
        return s.scalar(select(User).where(User.login == login))


def _signs_in(sessions, login, password) -> bool:
    with unit_of_work(sessions) as s:
        return users.authenticate(s, login, password) is not None


def _change(sessions, user, current, new, confirm=None):
    """Change as the page does: one transaction, committed even when refused (the failure count stays)."""
    with sessions() as s:
        try:
            return users.change_password(s, user, current=current, new=new,
                                         confirm=new if confirm is None else confirm)
        finally:
            s.commit()


def test_a_user_changes_their_password_and_their_other_sessions_end(sessions, actors):
    before = _user(sessions, "window")
    _change(sessions, actors.window, PASSWORD, NEW)
    after = _user(sessions, "window")
    assert after.session_epoch == before.session_epoch + 1
    assert not _signs_in(sessions, "window", PASSWORD)
    assert _signs_in(sessions, "window", NEW)
    changes = count(sessions, AuditEvent, AuditEvent.action == "password.change", AuditEvent.outcome == "ok")
    assert changes == 1


@pytest.mark.parametrize("current, new, confirm, field, says", [
    ("wrong password", NEW, NEW, "current_password", "いまのパスワードが違います。"),
    (PASSWORD, "short", "short", "new_password", "パスワードは10文字以上にしてください。"),
    (PASSWORD, "x" * 257, "x" * 257, "new_password", "パスワードは256文字以内にしてください。"),
    (PASSWORD, PASSWORD, PASSWORD, "new_password", "いまと同じパスワードには変更できません。"),
    (PASSWORD, NEW, NEW + " ", "confirm_password", "確認のために入力したパスワードが一致しません。"),
])
def test_a_refused_change_names_the_field_and_keeps_the_password(sessions, actors, current, new, confirm,
                                                                 field, says):
    with pytest.raises(ValidationFailed) as err:
        _change(sessions, actors.window, current, new, confirm)
    assert err.value.errors[field] == [says]
    assert _signs_in(sessions, "window", PASSWORD)
    assert _user(sessions, "window").session_epoch == actors.window.session_epoch


def test_the_login_itself_is_not_a_password(sessions, make_user):
    user = make_user("staff", "desk", login="long-login-name")
    with pytest.raises(ValidationFailed) as err:
        _change(sessions, user, PASSWORD, "LONG-LOGIN-NAME")
    assert err.value.errors == {"new_password": ["ログインIDと同じパスワードは使えません。"]}


def test_a_wrong_current_password_counts_as_a_failed_sign_in_and_the_lock_ends_the_session(sessions,
                                                                                             actors):
    for n in range(1, users.FREE_ATTEMPTS):
        with pytest.raises(ValidationFailed):
            _change(sessions, actors.window, "wrong password", NEW)
        assert _user(sessions, "window").failed_logins == n
    with pytest.raises(users.SessionEnded):
        _change(sessions, actors.window, "wrong password", NEW)
    locked = _user(sessions, "window")
    assert locked.locked_until is not None and locked.session_epoch == actors.window.session_epoch + 1
    refused = count(sessions, AuditEvent, AuditEvent.action == "password.change",
                    AuditEvent.outcome == "refused")
    assert refused == users.FREE_ATTEMPTS
    # Locked: even the right password changes nothing until the lock lifts.
    with pytest.raises(PermissionDenied):
        _change(sessions, locked, PASSWORD, NEW)
    assert _user(sessions, "window").password_hash == locked.password_hash


def test_an_operator_sets_a_forgotten_password_lifting_the_lock(sessions, actors):
    with unit_of_work(sessions) as s:
        user = s.get(User, actors.window.id)
        user.failed_logins, user.locked_until = 7, utcnow() + timedelta(minutes=10)
    with unit_of_work(sessions) as s:
        users.reset_password(s, None, "window", NEW)
    user = _user(sessions, "window")
    assert (user.failed_logins, user.locked_until) == (0, None)
    assert user.session_epoch == actors.window.session_epoch + 1
    assert _signs_in(sessions, "window", NEW)
    assert count(sessions, AuditEvent, AuditEvent.action == "password.reset") == 1


def test_a_reset_is_refused_for_an_unknown_login_or_a_short_password(sessions, actors):
    with unit_of_work(sessions) as s, pytest.raises(ValidationFailed) as err:
        users.reset_password(s, None, "nobody", NEW)
    assert err.value.errors == {"login": ["「nobody」という利用者はいません。"]}
    with unit_of_work(sessions) as s, pytest.raises(ValidationFailed) as err:
        users.reset_password(s, None, "window", "short")
    assert list(err.value.errors) == ["password"]
    assert _signs_in(sessions, "window", PASSWORD)


def test_a_disabled_user_is_let_back_in(sessions, actors):
    with unit_of_work(sessions) as s:
        users.disable_user(s, None, "window")
    assert not _signs_in(sessions, "window", PASSWORD)
    with unit_of_work(sessions) as s:
        users.enable_user(s, None, "window")
    assert _signs_in(sessions, "window", PASSWORD)
    with unit_of_work(sessions) as s, pytest.raises(Conflict):
        users.enable_user(s, None, "window")
    assert count(sessions, AuditEvent, AuditEvent.action == "user.enable") == 1


# --- the page ------------------------------------------------------------------------------------


def _form(current, new, confirm=None):
    return {"current_password": current, "new_password": new,
            "confirm_password": new if confirm is None else confirm}


def test_the_page_asks_for_a_sign_in(web):
    r = web().get("/account/password")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_the_page_changes_the_password_and_keeps_only_this_session(web, actors, sessions):
    elsewhere = web(actors.window)
    assert elsewhere.get("/cases").status_code == 200
    here = web(actors.window)
    page = here.get("/account/password")
    assert page.status_code == 200 and "パスワードの変更" in text_of(page)
    r = here.post("/account/password", _form(PASSWORD, NEW))
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert "パスワードを変更しました" in text_of(here.get("/"))
    assert here.get("/cases").status_code == 200
    gone = elsewhere.get("/cases")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]
    assert _signs_in(sessions, "window", NEW)


def test_a_refusal_on_the_page_names_the_field_and_never_echoes_a_password(web, actors, sessions):
    client = web(actors.window)
    r = client.post("/account/password", _form("wrong password", NEW, "something else"))
    assert r.status_code == 422
    assert error_beside(r, "pw", "current_password") == "いまのパスワードが違います。"
    assert error_beside(r, "pw", "confirm_password") == "確認のために入力したパスワードが一致しません。"
    body = r.get_data(as_text=True)
    assert "wrong password" not in body and NEW not in body and "something else" not in body
    # The failure is kept (a refused form is otherwise not written): it counts towards the lock.
    assert _user(sessions, "window").failed_logins == 1
    assert _signs_in(sessions, "window", PASSWORD)


def test_guessing_the_current_password_on_the_page_ends_the_session(web, actors, sessions):
    client = web(actors.window)
    for _ in range(users.FREE_ATTEMPTS - 1):
        assert client.post("/account/password", _form("wrong password", NEW)).status_code == 422
    r = client.post("/account/password", _form("wrong password", NEW))
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert "ログアウトしました" in text_of(client.get("/login"))
    after = client.get("/account/password")
    assert after.status_code == 302 and "/login" in after.headers["Location"]


def test_a_change_without_the_forms_token_is_refused(web, actors, sessions):
    r = web(actors.window).post("/account/password", _form(PASSWORD, NEW), csrf=False)
    assert r.status_code == 400
    assert _signs_in(sessions, "window", PASSWORD)


# --- the commands --------------------------------------------------------------------------------


def test_user_password_sets_it_from_stdin(cli, actors, sessions):
    result = cli("user", "password", "window", input=NEW + "\n")
    assert result.exit_code == 0, result.output
    assert "window" in result.output
    assert _signs_in(sessions, "window", NEW)
    assert _user(sessions, "window").must_change_password  # the operator knows it: the user changes it
    _change(sessions, actors.window, NEW, NEW + " of mine")
    assert not _user(sessions, "window").must_change_password


def test_user_password_refuses_a_short_one_and_an_unknown_login(cli, actors, sessions):
    short = cli("user", "password", "window", input="short\n")
    assert short.exit_code == 1 and "パスワードは10文字以上" in short.output
    unknown = cli("user", "password", "nobody", input=NEW + "\n")
    assert unknown.exit_code == 1 and "「nobody」という利用者はいません" in unknown.output
    assert _signs_in(sessions, "window", PASSWORD)


def test_user_enable_lets_a_disabled_user_back_in(cli, actors, sessions):
    assert cli("user", "disable", "window").exit_code == 0
    again = cli("user", "enable", "window")
    assert again.exit_code == 0, again.output
    assert _signs_in(sessions, "window", PASSWORD)
    twice = cli("user", "enable", "window")
    assert twice.exit_code == 1 and "停止されていません" in twice.output


def test_a_change_sent_after_the_session_ended_shows_no_password(web, actors, app):
    """A refused form shows back what was typed, to copy: never a password."""
    client = web(actors.window)
    client.get("/account/password")
    with client.c.session_transaction() as sess:
        sess["last_seen"] -= int(app.config["SESSION_MINUTES"]) * 60 + 5
    long_one = "a passphrase longer than twenty characters"
    for csrf in (True, False):
        r = client.post("/account/password", _form(long_one, long_one + "!"), csrf=csrf)
        assert r.status_code in (400, 401)
        assert "passphrase" not in r.get_data(as_text=True)


def test_a_change_committed_meanwhile_is_not_overwritten(sessions, actors):
    """The request loaded the signed-in user before another browser of theirs changed the password: the
    change is checked against the row as it is now, not as it was loaded."""
    with sessions() as s:
        loaded = s.get(User, actors.window.id)
        assert loaded.password_hash  # read, as the page's request had read it
        _change(sessions, actors.window, PASSWORD, NEW)  # the other browser, committed
        try:
            users.change_password(s, loaded, current=PASSWORD, new="a third passphrase",
                                  confirm="a third passphrase")
            s.commit()
        except ValidationFailed as exc:
            assert exc.errors == {"current_password": ["いまのパスワードが違います。"]}
        except Exception as exc:  # SQLite: the stale read cannot write (a lost race, answered 409)
            assert lost_race(exc), exc
    assert _signs_in(sessions, "window", NEW)


def test_user_list_says_who_cannot_sign_in_and_why(cli, actors, sessions):
    assert cli("user", "disable", "elderly").exit_code == 0
    assert cli("user", "password", "livelihood", input=NEW + "\n").exit_code == 0
    with unit_of_work(sessions) as s:
        for _ in range(users.FREE_ATTEMPTS):
            users.authenticate(s, "window", "wrong password")
    result = cli("user", "list")
    assert result.exit_code == 0, result.output
    lines = {line.split("\t")[0]: line.split("\t") for line in result.output.splitlines()}
    assert lines["elderly"][1:3] == ["staff", "elderly"] and lines["elderly"][-1] == "停止中"
    assert lines["livelihood"][-1] == "発行したパスワードの変更待ち"
    assert lines["window"][-1].startswith("ロック中（令和")
    assert lines["fm"][1:3] == ["fm", "community_welfare"] and lines["fm"][-1] == "有効"


def test_the_hashing_cost_is_a_setting_and_refused_out_of_range():
    from engine.settings import SettingError, Settings

    s = Settings.from_env({"TSUNAGU_PASSWORD_TIME_COST": "4", "TSUNAGU_PASSWORD_MEMORY_KIB": "131072"})
    assert (s.password_time_cost, s.password_memory_kib) == (4, 131072)
    assert (Settings.from_env({}).password_time_cost, Settings.from_env({}).password_memory_kib) == (3, 65536)
    with pytest.raises(SettingError, match="TSUNAGU_PASSWORD_MEMORY_KIB"):
        Settings.from_env({"TSUNAGU_PASSWORD_MEMORY_KIB": "512"})


def test_a_password_hashed_at_another_cost_still_signs_in_and_is_hashed_again_at_this_one(sessions, actors):
    from argon2 import extract_parameters

    before = _user(sessions, "window").password_hash
    cost = extract_parameters(before)
    users.use_hash_cost(cost.time_cost + 1, 2048)
    try:
        assert _signs_in(sessions, "window", PASSWORD)
        after = _user(sessions, "window").password_hash
        assert after != before
        made = extract_parameters(after)
        assert (made.time_cost, made.memory_cost) == (cost.time_cost + 1, 2048)
        assert _signs_in(sessions, "window", PASSWORD)
        assert _user(sessions, "window").password_hash == after  # at this cost already: left as it is
    finally:
        users.use_hash_cost(cost.time_cost, cost.memory_cost)
