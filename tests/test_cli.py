"""The `tsunagu` command: migrate, load the demo twice without doubling, add a user."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.models import Case, Department, RoutingRuleVersion, User


def test_demo_loads_every_state_once(cli, sessions):
    first = cli("demo")
    assert first.exit_code == 0, first.output
    second = cli("demo")
    assert second.exit_code == 0, second.output
    assert "サンプルケース 0 件追加" in second.output
    with sessions() as s:
        states = set(s.scalars(select(Case.state)))
        assert states == {"intake", "handoff", "assigned", "support_meeting", "consent", "layered_meeting",
                          "accompaniment", "suspended", "closed"}
        assert s.scalar(select(func.count()).select_from(Case)) == 12
        assert s.scalar(select(func.count()).select_from(Department)) == 14
        assert s.scalar(select(func.count()).select_from(RoutingRuleVersion)) == 1
        assert {"fm", "admin", "desk-staff"} <= set(s.scalars(select(User.login)))
        # Every sample case got there by its events: one history row per transition.
        for case in s.scalars(select(Case)):
            assert case.history[0].event == "open"
            moves = [h for h in case.history if not h.event.startswith("handoff.")]
            assert moves[-1].to_state == case.state
            assert all(a.to_state == b.from_state for a, b in zip(moves, moves[1:]))


def test_user_add_reads_the_password_from_stdin(cli, departments, sessions):
    result = cli("user", "add", "yamada", "--role", "staff", "--department", "elderly",
                 input="long enough pw\n")
    assert result.exit_code == 0, result.output
    with sessions() as s:
        user = s.scalar(select(User).where(User.login == "yamada"))
        assert user.role == "staff" and user.department.code == "elderly"
        assert user.password_hash.startswith("$argon2")


def test_user_add_refuses_unknown_department_and_short_password(cli, departments, sessions):
    result = cli("user", "add", "sato", "--role", "staff", "--department", "nowhere", input="short\nshort\n")
    assert result.exit_code == 1
    assert "nowhere" in result.output and "パスワード" in result.output
    with sessions() as s:
        assert s.scalar(select(User).where(User.login == "sato")) is None


def test_user_add_refuses_a_name_too_long_and_bytes_that_are_not_text(cli, departments, sessions):
    long_name = cli("user", "add", "sato", "--role", "staff", "--department", "desk", "--name", "佐" * 101,
                    input="password-12345678\npassword-12345678\n")
    assert long_name.exit_code == 1 and "氏名は1文字以上100文字以内" in long_name.output
    odd = b"\xff\xfe\xfdabcdefghijkl"
    not_text = cli("user", "add", "suzuki", "--role", "staff", "--department", "desk",
                   input=odd + b"\n" + odd + b"\n")
    assert not_text.exit_code == 1 and "パスワードに使えない文字" in not_text.output
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(User).where(User.login.in_(("sato", "suzuki")))) == 0


def test_serve_refuses_a_port_out_of_range(cli):
    result = cli("serve", "--port", "70000")
    assert result.exit_code == 2 and "70000" in result.output


def test_db_upgrade_is_idempotent(cli):
    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output


def test_diagram_lists_every_state_and_event(cli):
    from engine import states

    result = cli("diagram")
    assert result.exit_code == 0
    for state in states.CASE_STATE_LABELS:
        assert f'"{state}"' in result.output
    for event in states.CASE_EVENTS:
        assert event in result.output


def _tsunagu(tmp_path, *args, **env):
    """Run the installed `tsunagu` command in a process of its own, with `env` added to a clean setting."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TSUNAGU_", "DATABASE_URL"))}
    clean.update({"SECRET_KEY": "test", "TSUNAGU_INSTANCE_DIR": str(tmp_path), **env})
    command = Path(sys.executable).parent / "tsunagu"
    return subprocess.run([str(command), *args], env=clean, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("alerts", "scan"), ("demo",), ("audit", "verify"), ("webhooks", "deliver")])
def test_a_database_not_yet_created_asks_for_db_upgrade(tmp_path, args):
    result = _tsunagu(tmp_path, *args, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 1
    assert "先に tsunagu db upgrade を実行してください" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("url,says", [("garbage", "DATABASE_URL を使えません"),
                                      ("mysql://x/y", "DATABASE_URL を使えません"),
                                      ("postgresql+psycopg://postgres@127.0.0.1:5432/tsunagu_no_such_db",
                                       "データベースに接続できません")])
def test_a_database_url_that_cannot_be_used_is_a_message(tmp_path, url, says):
    result = _tsunagu(tmp_path, "db", "upgrade", DATABASE_URL=url)
    assert result.returncode == 1 and says in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name,value", [("TSUNAGU_RETENTION_YEARS", "abc"), ("TSUNAGU_RETENTION_YEARS", "100000"),
                                        ("TSUNAGU_SESSION_MINUTES", "1.5"), ("TSUNAGU_SESSION_MAX_HOURS", "0")])
def test_a_setting_that_cannot_be_used_is_named(tmp_path, name, value):
    result = _tsunagu(tmp_path, "alerts", "scan", **{name: value, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"環境変数 {name} は" in result.stderr and repr(value) in result.stderr


@pytest.mark.parametrize("args", [
    ("user", "add", "yamada", "--role", "staff", "--role", "fm", "--department", "desk"),
    ("token", "create", "--client", "partner", "--scopes", "referrals:read", "--scopes", "referrals:write"),
    ("token", "create", "--client", "a", "--client", "b", "--scopes", "referrals:read"),
    ("alerts", "scan", "--now", "2026-12-01T10:00:00+09:00", "--now", "2026-12-02T10:00:00+09:00"),
])
def test_an_option_given_twice_is_refused_not_silently_replaced(cli, departments, sessions, args):
    """`--role staff --role fm` made an FM and `--scopes a --scopes b` dropped a scope: refused instead."""
    from engine.models import Alert, ApiClient

    def rows():
        with sessions() as s:
            return [s.scalar(select(func.count()).select_from(m)) for m in (User, ApiClient, Alert)]

    before = rows()
    result = cli(*args, input="a-long-enough-password\n")
    assert result.exit_code == 2 and "は1回だけ指定してください" in result.output, result.output
    assert rows() == before
