"""The engine's promises beyond the state table: distinct refusals that write nothing, optimistic
versioning between two sessions, one transaction per action, case numbers, the audit chain."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from engine import access
from engine.audit import trail
from engine.cases import intake, joins
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.errors import (
    EventNotAllowed,
    GuardRefused,
    MissingField,
    PermissionDenied,
    StaleVersion,
    UnknownEvent,
    ValidationFailed,
)
from engine.models import AuditEvent, Case, CaseHistory, Handoff, Meeting, MeetingMember
from tests.conftest import NOW


def _snapshot(sessions, case_id):
    with sessions() as s:
        case = s.get(Case, case_id)
        return (case.state, case.version,
                s.scalar(select(func.count()).select_from(CaseHistory)),
                s.scalar(select(func.count()).select_from(AuditEvent)),
                s.scalar(select(func.count()).select_from(Handoff)))


def test_four_refusals_are_distinct_and_write_nothing(open_case, sessions, actors):
    case_id = open_case(categories=["other"])  # intake, unrouted
    before = _snapshot(sessions, case_id)
    v = before[1]
    attempts = {
        "unknown_event": ("teleport", v, {}),
        "stale_version": ("send_handoff", v + 5, {"to_department": "elderly", "reason": "r", "summary": "s"}),
        "missing_field": ("send_handoff", v, {"to_department": "elderly"}),
        "forbidden": ("convene_support_meeting", v, {"members": [{"user": "elderly", "acknowledged": True}]}),
    }
    codes = {}
    for expected, (event, version, fields) in attempts.items():
        with pytest.raises(Exception) as err, unit_of_work(sessions) as s:
            firing.fire_event(s, actors.window, case_id, event, version=version, fields=fields, now=NOW)
        codes[expected] = err.value.code
        assert err.value.message  # a Japanese sentence a person can act on
        assert _snapshot(sessions, case_id) == before
    assert codes == {k: k for k in attempts}
    with pytest.raises(GuardRefused) as err, unit_of_work(sessions) as s:
        firing.fire_event(s, actors.fm, case_id, "convene_support_meeting", version=v,
                            fields={"members": [{"user": "elderly", "acknowledged": False}]}, now=NOW)
    assert err.value.code == "guard_refused"
    assert _snapshot(sessions, case_id) == before


def test_missing_fields_are_named(open_case, sessions, actors):
    case_id = open_case(categories=["other"])
    v = _snapshot(sessions, case_id)[1]
    with pytest.raises(MissingField) as err, unit_of_work(sessions) as s:
        firing.fire_event(s, actors.window, case_id, "send_handoff", version=v, fields={}, now=NOW)
    assert set(err.value.errors) == {"to_department", "reason", "summary"}


def test_unknown_event_lists_what_is_allowed(open_case, sessions, actors):
    case_id = open_case(categories=["other"])
    with pytest.raises(UnknownEvent) as err, unit_of_work(sessions) as s:
        firing.fire_event(s, actors.window, case_id, "teleport", version=None, now=NOW)
    assert err.value.allowed_events == ["send_handoff", "convene_support_meeting", "close"]


def test_two_sessions_one_wins_the_other_is_stale(open_case, sessions, actors):
    case_id = open_case()  # handoff to 生活福祉課
    s1, s2 = sessions(), sessions()
    try:
        v1 = s1.get(Case, case_id).version
        v2 = s2.get(Case, case_id).version
        assert v1 == v2
        firing.fire_event(s1, actors.livelihood, case_id, "accept_handoff", version=v1, now=NOW)
        s1.commit()
        history_before = s1.scalar(select(func.count()).select_from(CaseHistory))
        with pytest.raises(StaleVersion) as err:
            firing.fire_event(s2, actors.window, case_id, "close", version=v2,
                                fields={"close_reason": "consultation_ended"}, now=NOW)
        s2.rollback()
        assert err.value.code == "stale_version"
        assert err.value.current_version == v1 + 1
    finally:
        s1.close()
        s2.close()
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.state == "assigned" and case.close_reason is None
        assert s.scalar(select(func.count()).select_from(CaseHistory)) == history_before
        assert not s.scalar(select(func.count()).select_from(CaseHistory).where(CaseHistory.event == "close"))


def test_a_colleague_who_answered_first_makes_the_second_answer_stale_not_forbidden(open_case, sessions, actors):
    """Two staff of the receiving department accept one sheet at once. The second read the case while the
    sheet still waited, and its sheet after the first had committed: no sheet waits for it any more, but
    what it must hear is that the case changed (409 stale), not that it may not answer (403)."""
    case_id = open_case()  # handoff to 生活福祉課
    s1, s2 = sessions(), sessions()
    try:
        case = s2.get(Case, case_id)
        version = case.version
        s2.expire(case, ["handoffs"])  # the case row was read before the first answer, its sheets after
        firing.fire_event(s1, actors.livelihood, case_id, "accept_handoff", version=version, now=NOW)
        s1.commit()
        with pytest.raises(StaleVersion) as err:
            firing.fire_event(s2, actors.livelihood, case_id, "accept_handoff", version=version, now=NOW)
        s2.rollback()
        assert err.value.current_version == version + 1
    finally:
        s1.close()
        s2.close()


def test_stale_version_given_by_the_caller_is_refused_before_anything(open_case, fire, sessions, actors):
    case_id = open_case()
    old = _snapshot(sessions, case_id)[1]
    fire(actors.livelihood, case_id, "accept_handoff")
    with pytest.raises(StaleVersion) as err, unit_of_work(sessions) as s:
        firing.fire_event(s, actors.livelihood, case_id, "close", version=old,
                            fields={"close_reason": "goal_met"}, now=NOW)
    assert err.value.extra["current_version"] == old + 1


@pytest.fixture
def failing_audit_insert(db_engine):
    """A real failure of the last step: the database refuses audit rows while this is in place."""
    dialect = db_engine.dialect.name
    with db_engine.begin() as conn:
        if dialect == "sqlite":
            conn.execute(text("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                              "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN "
                              "RAISE EXCEPTION 'audit store unavailable'; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                              "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"))
    yield
    with db_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_audit" + ("" if dialect == "sqlite" else " ON audit_events")))
        if dialect != "sqlite":
            conn.execute(text("DROP FUNCTION refuse_audit()"))


def test_failing_audit_insert_leaves_no_state_change(open_case, sessions, actors, request):
    case_id = open_case()
    before = _snapshot(sessions, case_id)
    request.getfixturevalue("failing_audit_insert")
    with pytest.raises(Exception, match="audit store unavailable"), unit_of_work(sessions) as s:
        firing.fire_event(s, actors.livelihood, case_id, "accept_handoff", version=before[1], now=NOW)
    after = _snapshot(sessions, case_id)
    assert after == before
    with sessions() as s:
        assert s.scalar(select(Handoff.state).where(Handoff.case_id == case_id)) == "sent"


def test_case_numbers_follow_the_fiscal_year(open_case, sessions):
    from datetime import datetime, timezone

    a = open_case(categories=["other"], now=datetime(2027, 3, 31, 5, tzinfo=timezone.utc))  # 令和8年度
    b = open_case(categories=["other"], now=datetime(2027, 4, 1, 5, tzinfo=timezone.utc))   # 令和9年度
    c = open_case(categories=["other"], now=datetime(2027, 4, 2, 5, tzinfo=timezone.utc))
    with sessions() as s:
        assert [s.get(Case, i).case_number for i in (a, b, c)] == ["R8-000001", "R9-000001", "R9-000002"]


def test_intake_validation_names_each_field(sessions, actors):
    bad = {"person": {"name": "", "area": "東京", "birth_date": "2999-01-01", "sex": "xyz"}, "categories": ["nope"],
           "summary": "", "source": "fax", "urgency": "soon"}
    with pytest.raises(ValidationFailed) as err, unit_of_work(sessions) as s:
        intake.open_case(s, actors.window, bad, now=NOW)
    assert set(err.value.errors) == {"person.name", "person.area", "person.birth_date", "person.sex", "categories",
                                     "summary", "source", "urgency"}
    assert err.value.errors["person.sex"] == ["性別「xyz」はコード表にありません。"]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0


def test_audit_chain_holds_and_tampering_is_found(open_case, fire, sessions, actors, db_engine):
    case_id = open_case()
    fire(actors.livelihood, case_id, "accept_handoff")
    with sessions() as s:
        result = trail.verify(s)
        assert result.ok and result.checked >= 3
        victim = s.scalars(select(AuditEvent).order_by(AuditEvent.seq).offset(1)).first()
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor_label = 'someone-else' WHERE id = :id"), {"id": victim.id})
    with sessions() as s:
        result = trail.verify(s)
    assert not result.ok and result.broken_id == victim.id


def test_sqlite_runs_in_wal_with_foreign_keys(db_engine):
    if db_engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with db_engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


# --- who may do what, by role and by record ---------------------------------------------------------


def test_an_administrator_never_answers_a_sheet_sent_to_their_department(open_case, fire, actors, sessions):
    """The administrator belongs to 地域福祉課 like its staff, but reads no case content and drives no case."""
    case_id = open_case(categories=["other"])
    fire(actors.window, case_id, "send_handoff", to_department="community_welfare", reason="地域の見守り", summary="s")
    with sessions() as s:
        assert firing.allowed_events(s, s.merge(actors.admin), s.get(Case, case_id)) == []
    before = _snapshot(sessions, case_id)
    for event in ("accept_handoff", "decline_handoff"):
        with pytest.raises(PermissionDenied) as err, unit_of_work(sessions) as s:
            firing.fire_event(s, actors.admin, case_id, event, version=before[1], fields={"reason": "r"}, now=NOW)
        assert "管理者は除く" in err.value.message
    assert _snapshot(sessions, case_id) == before
    assert fire(actors.fm, case_id, "accept_handoff") == "assigned"  # an FM of the department may


def test_an_administrator_cannot_be_made_a_meeting_member(open_case, actors, sessions):
    case_id = open_case(categories=["other"])
    before = _snapshot(sessions, case_id)
    with pytest.raises(ValidationFailed) as err, unit_of_work(sessions) as s:
        firing.fire_event(s, actors.fm, case_id, "convene_support_meeting", version=before[1], now=NOW,
                            fields={"members": [{"user": "elderly", "acknowledged": True},
                                                {"user": "admin", "acknowledged": True}]})
    assert err.value.errors == {"members.1.user": ["「admin」は管理者のため、会議の構成員にできません。"]}
    assert _snapshot(sessions, case_id) == before


def test_an_administrator_listed_as_member_reads_no_minutes(open_case, fire, actors, sessions):
    """A membership written before the rule (or by hand) gives the administrator nothing."""
    case_id = open_case(categories=["other"])
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "elderly", "acknowledged": True}],
         minutes="本人に知られずに共有した事実")
    with unit_of_work(sessions) as s:
        meeting = s.scalar(select(Meeting).where(Meeting.case_id == case_id))
        s.add(MeetingMember(meeting_id=meeting.id, user_id=actors.admin.id, department_id=actors.admin.department_id,
                            acknowledged_at=NOW))
    with sessions() as s:
        meeting = s.scalar(select(Meeting).where(Meeting.case_id == case_id))
        assert access.meeting_relations(s.merge(actors.admin), meeting) == frozenset()


def test_an_evaluation_dated_before_its_plan_is_refused(open_case, fire, actors, sessions):
    from datetime import timedelta

    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="oral", agencies=["livelihood"])
    fire(actors.livelihood, case_id, "adopt_plan", goals="g", main_department="livelihood",
         next_evaluation_date="2027-03-01", roles=[{"department": "livelihood", "role": "r"}])
    before = _snapshot(sessions, case_id)
    with pytest.raises(ValidationFailed) as err, unit_of_work(sessions) as s:
        firing.fire_event(s, actors.livelihood, case_id, "evaluate", version=before[1], now=NOW + timedelta(days=5),
                            fields={"goals_met": "met", "decision": "close", "close_reason": "goal_met",
                                    "evaluated_on": "2000-01-01"})
    assert err.value.errors == {"evaluated_on": ["評価日はプランを決定した日（令和8年11月30日）以降の日付にしてください。"]}
    assert _snapshot(sessions, case_id) == before


def test_a_refused_sheet_action_offers_only_what_a_person_can_ask_for(open_case, fire, actors, sessions):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    with unit_of_work(sessions) as s:
        sheet = joins.request_join(s, actors.livelihood, case_id, to_department="elderly", reason="r", summary="s",
                                      now=NOW)
    with unit_of_work(sessions) as s:
        joins.answer_join(s, actors.elderly, sheet.id, "accept", now=NOW)
    with pytest.raises(EventNotAllowed) as err, unit_of_work(sessions) as s:  # the sender takes it back, too late
        joins.answer_join(s, actors.livelihood, sheet.id, "withdraw", now=NOW)
    assert err.value.allowed_events == [] and "同意の撤回" not in err.value.message
