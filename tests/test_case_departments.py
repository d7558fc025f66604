"""case_departments, the table behind lists and counts, always equals a rebuild from the records: after each
kind of event, after a refused one, after a bulk rebuild, and after revision 0008 fills it from existing data."""
from __future__ import annotations

import uuid
from collections import Counter

import pytest
from alembic import command
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import make_url

from engine import access, case_departments, demo, migrate
from engine.alerts import notices
from engine.cases import joins, meetings
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.errors import MissingField, PermissionDenied
from engine.models import Case, CaseDepartment, Department, Meeting, User
from tests.conftest import CONFIG_DIR, NOW

CONSENT = {"given_by": "本人", "method": "written", "agencies": ["livelihood", "shakyo"]}


def _rows(sessions) -> dict[tuple[str, int], tuple[bool, str]]:
    with sessions() as s:
        code = dict(s.execute(select(Department.id, Department.code)).all())
        return {(code[r.department_id], r.case_id): (bool(r.content), r.state)
                for r in s.scalars(select(CaseDepartment))}


def _no_drift(sessions) -> None:
    with sessions() as s:
        assert case_departments.drift(s) == []


def test_each_step_of_a_case_keeps_the_table(sessions, actors, open_case, fire):
    unrouted = open_case(categories=["other"])
    _no_drift(sessions)
    rows = _rows(sessions)
    # Unowned: the recording desk reads it (it is also the desk).
    assert rows[("desk", unrouted)] == (True, "intake")

    fire(actors.window, unrouted, "send_handoff", to_department="livelihood", reason="r", summary="s")
    _no_drift(sessions)
    rows = _rows(sessions)
    assert rows[("livelihood", unrouted)] == (True, "handoff")

    fire(actors.livelihood, unrouted, "accept_handoff")
    _no_drift(sessions)
    rows = _rows(sessions)
    # Owned now: the desk keeps metadata only (it recorded the case and sent the sheet).
    assert rows[("desk", unrouted)] == (False, "assigned")
    assert rows[("livelihood", unrouted)] == (True, "assigned")

    fire(actors.fm, unrouted, "convene_support_meeting",
         members=[{"user": "hikikomori", "acknowledged": True}])
    _no_drift(sessions)
    fire(actors.livelihood, unrouted, "record_consent", **CONSENT)
    _no_drift(sessions)
    assert _rows(sessions)[("shakyo", unrouted)][0] is True
    fire(actors.livelihood, unrouted, "withdraw_consent", given_by="本人")
    _no_drift(sessions)
    assert ("shakyo", unrouted) not in _rows(sessions)
    fire(actors.livelihood, unrouted, "close", close_reason="goal_met")
    _no_drift(sessions)
    assert {v[1] for (d, c), v in _rows(sessions).items() if c == unrouted} == {"closed"}
    # Reopened by its last owner: that department holds it in 受付 (content), beside the desk.
    fire(actors.livelihood, unrouted, "reopen", reason="再相談")
    _no_drift(sessions)
    rows = _rows(sessions)
    assert rows[("livelihood", unrouted)] == (True, "intake")
    assert rows[("desk", unrouted)] == (True, "intake")


def test_declined_and_joined_sheets_keep_the_table(sessions, actors, open_case, fire):
    declined = open_case(categories=["poverty"])
    assert _rows(sessions)[("livelihood", declined)] == (True, "handoff")
    fire(actors.livelihood, declined, "decline_handoff", reason="所管外")
    _no_drift(sessions)
    assert ("livelihood", declined) not in _rows(sessions)

    joined = open_case(categories=["poverty"])
    fire(actors.livelihood, joined, "accept_handoff")
    with unit_of_work(sessions) as s:
        joins.request_join(s, s.get(User, actors.livelihood.id), joined, to_department="children",
                              reason="r", summary="s")
    _no_drift(sessions)
    rows = _rows(sessions)
    assert rows[("children", joined)] == (True, "assigned")
    assert rows[("livelihood", joined)] == (True, "assigned")  # owner; also the sender of the join request


def test_a_refused_event_changes_nothing(sessions, actors, open_case, fire):
    case_id = open_case(categories=["poverty"])
    before = _rows(sessions)
    with pytest.raises(PermissionDenied):
        fire(actors.livelihood, case_id, "close", close_reason="goal_met")  # not theirs until accepted
    with pytest.raises(MissingField):
        fire(actors.livelihood, case_id, "decline_handoff", reason="")  # a decline needs its reason
    assert _rows(sessions) == before
    _no_drift(sessions)


def test_a_bulk_rebuild_gives_the_same_rows(sessions, actors, open_case, fire):
    for cats in (["other"], ["poverty"], ["poverty"]):
        open_case(categories=cats)
    before = _rows(sessions)
    assert before
    with unit_of_work(sessions) as s:
        s.execute(delete(CaseDepartment))
        assert case_departments.drift(s) != []
        case_departments.rebuild(s)
    assert _rows(sessions) == before


def test_counts_by_state_match_the_visible_cases(sessions, actors, open_case, fire):
    open_case(categories=["other"])
    owned = open_case(categories=["poverty"])
    fire(actors.livelihood, owned, "accept_handoff")
    fire(actors.fm, owned, "convene_support_meeting", members=[{"user": "hikikomori", "acknowledged": True}])
    with unit_of_work(sessions) as s:  # a member who has not yet acknowledged the 守秘義務 knows of it
        meeting_id = s.scalar(select(Meeting.id).where(Meeting.case_id == owned))
        meetings.add_meeting_member(s, s.get(User, actors.fm.id), meeting_id, "elderly")
    open_case(categories=["poverty"], urgency="urgent")
    with sessions() as s:
        for actor in (actors.window, actors.livelihood, actors.elderly, actors.fm, actors.admin, actors.shakyo):
            person = s.get(User, actor.id)
            visible = s.scalars(select(Case.state).where(access.visible_cases_filter(s, person))).all()
            assert access.visible_state_counts(s, person) == dict(Counter(visible)), person.login
        assert access.visible_state_counts(s, s.get(User, actors.elderly.id)) == {"support_meeting": 1}


@pytest.fixture
def fresh_url(database_url, tmp_path):
    """An empty database of the suite's kind: a new SQLite file, or a schema of its own on PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'fill.db'}"
        return
    schema = f"fill_{uuid.uuid4().hex[:8]}"
    admin = make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.mark.slow
def test_revision_0008_fills_the_table_from_existing_records(fresh_url):
    migrate.upgrade(fresh_url)
    engine = make_engine(fresh_url)
    sessions = make_session_factory(engine)
    try:
        with unit_of_work(sessions) as s:
            assert demo.load(s, CONFIG_DIR)["cases"] > 0
        before = _rows(sessions)
        command.downgrade(migrate.alembic_config(fresh_url), "0007")
        migrate.upgrade(fresh_url)
        assert _rows(sessions) == before
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(CaseDepartment)) == len(before) > 10
            assert {content for content, _ in before.values()} == {True, False}
    finally:
        engine.dispose()


def test_two_transactions_changing_one_case_leave_its_rows_right(sessions, actors, open_case, fire):
    """One transaction rebuilds a case's rows and has not committed; another changes the case's state. The
    second waits for the first (an advisory lock per case on PostgreSQL, the write gate on SQLite) and then
    sees its rows, so neither the state nor the relations are lost."""
    import threading

    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    first = sessions()
    first.begin()
    case = first.get(Case, case_id)
    shakyo = first.scalar(select(Department).where(Department.code == "shakyo"))
    notices.notify(first, first.get(User, actors.window.id), case, [shakyo], reason="通知", now=NOW)
    first.flush()
    case_departments.settle(first)  # its rows are rewritten, not yet committed

    outcome = {}

    def second():
        try:
            outcome["state"] = fire(actors.fm, case_id, "convene_support_meeting",
                                    members=[{"user": "livelihood", "acknowledged": True}])
        except Exception as exc:  # reported below, in the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=second)
    worker.start()
    worker.join(0.5)
    assert worker.is_alive(), f"the second transaction did not wait: {outcome}"
    first.commit()
    first.close()
    worker.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["state"] == "support_meeting"
    with sessions() as s:
        assert case_departments.drift(s) == []
        assert {d: st for (d, c), (_, st) in _rows(sessions).items() if c == case_id} == {
            "desk": "support_meeting", "livelihood": "support_meeting", "shakyo": "support_meeting"}
