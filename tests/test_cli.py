"""The `tsunagu` command: migrate, load the demo twice without doubling, add a user."""
from __future__ import annotations

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
