"""The `tsunagu` command: migrate, load the demo twice without doubling, add a user."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine import states
from engine.models import Alert, ApiClient, Case, Department, PersonCandidate, RoutingRuleVersion, User


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
        assert s.scalar(select(func.count()).select_from(Case)) == 15
        assert s.scalar(select(func.count()).select_from(Department)) == 14
        assert s.scalar(select(func.count()).select_from(RoutingRuleVersion)) == 1
        assert {"fm", "admin", "desk-staff"} <= set(s.scalars(select(User.login)))
        # Every sample case got there by its events: one history row per transition.
        for case in s.scalars(select(Case)):
            assert case.history[0].event == "open"
            moves = [h for h in case.history if not h.event.startswith("handoff.")]
            assert moves[-1].to_state == case.state
            assert all(a.to_state == b.from_state for a, b in zip(moves, moves[1:]))
        # The 8050 son with a case of his own is the person his mother's household lists; 高橋 is a candidate.
        assert sorted(s.scalars(select(Case.person_match))) == ["candidate"] + ["matched"] + ["new"] * 13
        assert s.scalar(select(func.count()).select_from(PersonCandidate)) == 1


def test_user_add_reads_the_password_from_stdin(cli, departments, sessions):
    result = cli("user", "add", "yamada", "--role", "staff", "--department", "elderly",
                 input="long enough pw\n")
    assert result.exit_code == 0, result.output
    with sessions() as s:
        user = s.scalar(select(User).where(User.login == "yamada"))
        assert user.role == "staff" and user.department.code == "elderly"
        assert user.password_hash.startswith("$argon2")
        assert not user.must_change_password  # the person who typed it is the user (the first administrator)


def test_user_add_can_leave_the_password_for_the_user_to_change(cli, departments, sessions):
    result = cli("user", "add", "tanaka", "--role", "staff", "--department", "elderly", "--must-change-password",
                 input="long enough pw\n")
    assert result.exit_code == 0, result.output
    assert "最初のログインで本人がパスワードを変更します" in result.output
    with sessions() as s:
        assert s.scalar(select(User.must_change_password).where(User.login == "tanaka")) is True


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


@pytest.mark.slow
@pytest.mark.parametrize("args", [("alerts", "scan"), ("demo",), ("audit", "verify"), ("webhooks", "deliver")])
def test_a_database_not_yet_created_asks_for_db_upgrade(tmp_path, args):
    result = _tsunagu(tmp_path, *args, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 1
    assert "先に tsunagu db upgrade を実行してください" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("url,says", [("garbage", "DATABASE_URL を使えません"),
                                      ("mysql://x/y", "DATABASE_URL を使えません"),
                                      ("postgresql+psycopg://postgres@127.0.0.1:5432/tsunagu_no_such_db",
                                       "データベースに接続できません")])
def test_a_database_url_that_cannot_be_used_is_a_message(tmp_path, url, says):
    result = _tsunagu(tmp_path, "db", "upgrade", DATABASE_URL=url)
    assert result.returncode == 1 and says in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name,value", [("TSUNAGU_RETENTION_YEARS", "abc"), ("TSUNAGU_RETENTION_YEARS", "100000"),
                                        ("TSUNAGU_SESSION_MINUTES", "1.5"), ("TSUNAGU_SESSION_MAX_HOURS", "0"),
                                        ("TSUNAGU_TRUSTED_HOSTS", "tsunagu.city.example,,"),
                                        ("TSUNAGU_TRUSTED_HOSTS", "https://tsunagu.city.example/"),
                                        ("TSUNAGU_PROXY_HOPS", "6"), ("TSUNAGU_PROXY_HOPS", "one")])
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
    def rows():
        with sessions() as s:
            return [s.scalar(select(func.count()).select_from(m)) for m in (User, ApiClient, Alert)]

    before = rows()
    result = cli(*args, input="a-long-enough-password\n")
    assert result.exit_code == 2 and "は1回だけ指定してください" in result.output, result.output
    assert rows() == before


@pytest.mark.slow
def test_a_database_behind_the_newest_revision_stops_every_command_but_upgrade(tmp_path):
    old = f"sqlite:///{tmp_path / 'old.db'}"
    assert _tsunagu(tmp_path, "db", "upgrade", "--revision", "0009", DATABASE_URL=old).returncode == 0
    for args in (("token", "revoke", "partner"), ("alerts", "scan"), ("demo",), ("webhooks", "deliver")):
        result = _tsunagu(tmp_path, *args, DATABASE_URL=old)
        assert result.returncode == 1, (args, result.stdout)
        assert "最新の版ではありません（現在 0009" in result.stderr and "Traceback" not in result.stderr
    assert _tsunagu(tmp_path, "rules", "check", "config/routing.yaml", DATABASE_URL=old).returncode == 0
    assert _tsunagu(tmp_path, "db", "upgrade", DATABASE_URL=old).returncode == 0
    assert _tsunagu(tmp_path, "alerts", "scan", DATABASE_URL=old).returncode == 0


@pytest.mark.slow
def test_a_mistyped_database_path_is_said_and_leaves_nothing_behind(tmp_path):
    missing = tmp_path / "no-such-folder" / "tsunagu.db"
    url = f"sqlite:///{missing}"
    for args in (("audit", "verify"), ("alerts", "scan"), ("demo",)):
        result = _tsunagu(tmp_path, *args, DATABASE_URL=url)
        assert result.returncode == 1 and "Traceback" not in result.stderr, (args, result.stderr)
        assert f"データベースのファイル {missing} がありません" in result.stderr
    assert not missing.parent.exists()
    # Creating it is db upgrade's, folder included.
    assert _tsunagu(tmp_path, "db", "upgrade", DATABASE_URL=url).returncode == 0
    assert _tsunagu(tmp_path, "audit", "verify", DATABASE_URL=url).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("args,env,says", [
    (("db", "upgrade", "--revision", "bogus"), {}, "「bogus」という版はありません"),
    (("serve", "--host", "127.0.0.1:99"), {}, "ポートは --port で指定します"),
    (("serve", "--host", ""), {}, "ホスト名でも IP アドレスでもありません"),
    (("serve", "--workers", "0"), {}, "--workers"),
    (("demo",), {"TSUNAGU_CONFIG_DIR": "/nonexistent"}, "設定のフォルダ /nonexistent がありません"),
    (("audit", "verify"), {"TSUNAGU_INSTANCE_DIR": "/proc/no-such-dir"}, "秘密鍵を置けません"),
    (("audit", "verify"), {"DATABASE_URL": "sqlite:///config/routing.yaml"}, "データベースではありません"),
])
def test_what_an_operator_gets_wrong_is_a_message_not_a_trace(tmp_path, args, env, says):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", **env}
    if "SECRET_KEY" not in env and "TSUNAGU_INSTANCE_DIR" in env:
        env["SECRET_KEY"] = ""  # no secret given: the instance folder must hold one
    result = _tsunagu(tmp_path, *args, **env)
    assert result.returncode in (1, 2), result.stdout
    assert says in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_argument_not_in_utf8_is_refused_plainly(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    command = Path(sys.executable).parent / "tsunagu"
    env = {**os.environ, "SECRET_KEY": "test", "TSUNAGU_INSTANCE_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    env.pop("TSUNAGU_CONFIG_DIR", None)
    result = subprocess.run([os.fsencode(command), b"token", b"revoke", b"c\xff"], env=env, capture_output=True,
                            timeout=60)
    assert result.returncode == 2
    assert "UTF-8 でない文字があります".encode() in result.stderr and b"Traceback" not in result.stderr


@pytest.mark.slow
def test_help_needs_no_usable_setting(tmp_path):
    result = _tsunagu(tmp_path, "--help", TSUNAGU_SESSION_MINUTES="0")
    assert result.returncode == 0 and "Traceback" not in result.stderr + result.stdout and "alerts" in result.stdout


def test_audit_case_with_a_number_longer_than_any_id_is_not_found(cli, departments):
    for ref in ("9999999999", "999999999999999999999"):
        result = cli("audit", "case", ref)
        assert result.exit_code == 1 and "見つかりません" in result.output, result.output


def test_demo_again_leaves_the_operators_own_rules_in_force(cli, sessions, tmp_path):
    from pathlib import Path

    assert cli("demo").exit_code == 0
    own = tmp_path / "routing.yaml"
    text = Path("config/routing.yaml").read_text(encoding="utf-8")
    own.write_text(text.replace("ヤングケアラーの相談のため", "ヤングケアラー（市の独自ルール）のため"), encoding="utf-8")
    assert cli("rules", "load", str(own)).exit_code == 0
    again = cli("demo")
    assert again.exit_code == 0 and "ルールは変更なし" in again.output
    with sessions() as s:
        newest = s.scalars(select(RoutingRuleVersion).order_by(RoutingRuleVersion.number.desc())).first()
        assert newest.number == 2 and "市の独自ルール" in newest.source_text


@pytest.mark.slow
def test_db_heads_names_the_newest_revision_and_needs_no_setting(cli, tmp_path):
    from engine import migrate

    result = cli("db", "heads")
    assert result.exit_code == 0 and result.output == f"最新の版: {migrate.head_revision()}\n"
    alone = _tsunagu(tmp_path, "db", "heads", TSUNAGU_SESSION_MINUTES="0", DATABASE_URL="garbage")
    assert alone.returncode == 0 and alone.stdout == result.output, alone.stderr


def test_db_current_says_the_database_is_at_the_newest_revision(cli):
    from engine import migrate

    result = cli("db", "current")
    assert result.exit_code == 0, result.output
    assert result.output == f"データベースの版: {migrate.head_revision()}（最新の版です）\n"


@pytest.mark.slow
def test_db_current_says_how_far_behind_a_database_is_and_creates_none(tmp_path):
    from sqlalchemy import text

    from engine import migrate
    from engine.db import make_engine

    head = migrate.head_revision()
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    missing = _tsunagu(tmp_path, "db", "current", DATABASE_URL=url)
    assert missing.returncode == 1 and f"データベースのファイル {path} がありません" in missing.stderr
    assert not path.exists()

    path.touch()  # a database with no revision in it yet
    empty = _tsunagu(tmp_path, "db", "current", DATABASE_URL=url)
    assert empty.returncode == 0 and "データベースの版: なし" in empty.stdout and "tsunagu db upgrade" in empty.stdout

    assert _tsunagu(tmp_path, "db", "upgrade", "--revision", "0009", DATABASE_URL=url).returncode == 0
    behind = _tsunagu(tmp_path, "db", "current", DATABASE_URL=url)
    assert behind.returncode == 0
    assert behind.stdout == f"データベースの版: 0009（最新の版は {head} です。tsunagu db upgrade で更新してください）\n"

    assert _tsunagu(tmp_path, "db", "upgrade", DATABASE_URL=url).returncode == 0
    assert _tsunagu(tmp_path, "db", "current", DATABASE_URL=url).stdout == f"データベースの版: {head}（最新の版です）\n"

    engine = make_engine(url)  # as if a newer program had migrated it
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    newer = _tsunagu(tmp_path, "db", "current", DATABASE_URL=url)
    assert newer.returncode == 0 and "データベースの版: 9999（このプログラムにない版です" in newer.stdout
    assert f"最新の版は {head}" in newer.stdout


@pytest.mark.parametrize("host,address", [("127.0.0.1", "http://127.0.0.1:5000"), ("0.0.0.0", "http://127.0.0.1:5000"),
                                          ("::", "http://[::1]:5000"), ("::1", "http://[::1]:5000"),
                                          ("tsunagu.local", "http://tsunagu.local:5000")])
def test_serve_says_which_address_to_open_once_it_listens(cli, monkeypatch, host, address):
    """gunicorn calls when_ready in its master once the address is bound; the server is not started here."""
    from gunicorn.app.base import BaseApplication

    seen = {}

    def run(server):
        seen["bind"] = server.cfg.bind
        server.cfg.when_ready(None)

    monkeypatch.setattr(BaseApplication, "run", run)
    result = cli("serve", "--host", host, "--port", "5000")
    assert result.exit_code == 0, result.output
    assert result.output == f"つなぐを起動しました。ブラウザで {address} を開いてください（止めるときは Ctrl+C）。\n"
    assert seen["bind"] == [f"{'[' + host + ']' if ':' in host else host}:5000"]


@pytest.mark.slow
def test_serve_prints_the_address_it_answers_on(tmp_path, database_url, db_engine):
    import http.client
    import os
    import re
    import select
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TSUNAGU_", "DATABASE_URL"))}
    env.update({"SECRET_KEY": "test", "TSUNAGU_INSTANCE_DIR": str(tmp_path), "DATABASE_URL": database_url})
    command = Path(sys.executable).parent / "tsunagu"
    proc = subprocess.Popen([str(command), "serve", "--port", str(port), "--workers", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the server printed nothing within 60 s"
        line = proc.stdout.readline()  # the server's first line, once it listens
        found = re.search(r"(http://127\.0\.0\.1:(\d+)) を開いてください", line)
        assert found and int(found.group(2)) == port, line
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/v1/healthz")
        assert conn.getresponse().status == 200
    finally:
        proc.terminate()
        proc.wait(20)
        proc.stdout.close()
