"""An action that meets a concurrent one in the database is rolled back whole and answered 409, on the pages
and in the API, never 500: a version check the ORM saw fail, a unique key another transaction took first,
and (PostgreSQL) a deadlock or serialization failure. The errors here are the databases' own."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from engine.db import lost_race, unit_of_work
from engine.models import Case, Meeting, MeetingMember
from tests.conftest import PASSWORD


@pytest.fixture
def meeting_case(open_case, fire, actors, sessions):
    case_id = open_case(categories=["other"])
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "elderly", "acknowledged": True}])
    with sessions() as s:
        return case_id, s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))


def _unique_violation(sessions, actors, meeting_id) -> IntegrityError:
    with pytest.raises(IntegrityError) as err, unit_of_work(sessions) as s:
        s.add(MeetingMember(meeting_id=meeting_id, user_id=actors.elderly.id, department_id=actors.elderly.department_id))
    return err.value


def _stale_flush(sessions, case_id) -> StaleDataError:
    with pytest.raises(StaleDataError) as err, unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        with unit_of_work(sessions) as other:  # another transaction moves the case on and commits first
            other.execute(update(Case).where(Case.id == case_id).values(version=Case.version + 1))
        case.summary = "同時に書き換え"
        s.flush()
    return err.value


def test_what_counts_as_a_lost_race(meeting_case, sessions, actors):
    case_id, meeting_id = meeting_case
    assert lost_race(_unique_violation(sessions, actors, meeting_id))
    assert lost_race(_stale_flush(sessions, case_id))
    with pytest.raises(IntegrityError) as err, unit_of_work(sessions) as s:  # a broken rule, not a race
        s.execute(update(Case).where(Case.id == case_id).values(state="nowhere"))
    assert not lost_race(err.value)
    assert not lost_race(ValueError("x"))


def test_a_postgresql_deadlock_is_a_lost_race(db_engine, meeting_case):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no deadlock between writers")
    case_id, meeting_id = meeting_case
    barrier, errors = threading.Barrier(2), []

    def lock(first: str, second: str) -> None:
        try:
            with db_engine.begin() as conn:
                conn.execute(text(f"SELECT id FROM {first} FOR UPDATE"))
                barrier.wait(10)
                conn.execute(text(f"SELECT id FROM {second} FOR UPDATE"))
        except DBAPIError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lock, args=pair) for pair in (("cases", "meetings"), ("meetings", "cases"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 1 and lost_race(errors[0])


def test_the_pages_and_the_api_answer_409(meeting_case, sessions, actors, app):
    from web.api.problems import handle_unexpected

    case_id, meeting_id = meeting_case
    raced = [_unique_violation(sessions, actors, meeting_id), _stale_flush(sessions, case_id)]
    for exc in raced:
        with app.test_request_context(f"/api/v1/cases/{case_id}/events", method="POST"):
            answer = handle_unexpected(exc)
            assert answer.status_code == 409 and answer.mimetype == "application/problem+json"
            assert answer.get_json()["type"].endswith("/conflict")
            assert "同時に行われた" in answer.get_json()["detail"]

    @app.get("/_test/race/<int:n>")
    def race(n):
        raise raced[n]

    client = app.test_client()
    client.post("/login", data={"login": actors.fm.login, "password": PASSWORD})
    for n in range(len(raced)):
        page = client.get(f"/_test/race/{n}")
        assert page.status_code == 409
        assert "ほかの職員の操作と同時に行われたため、処理しませんでした" in page.get_data(as_text=True)
