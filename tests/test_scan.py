"""The stall scan (engine/alerts/scan.py) on the business calendar: what it raises, when, to whom, exactly once —
also with two processes scanning at once and with a row that cannot be written."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select, text, update

from engine.alerts import alerts, scan
from engine.calendar import JST
from engine.cases import intake, joins, notes
from engine.db import unit_of_work
from engine.models import Alert, Case, Department, Handoff, Plan
from engine.rules import parser as rules_file
from tests.conftest import CONFIG_DIR, NOW, PROJECT_ROOT, intake_fields


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=JST).astimezone(timezone.utc)


def open_alerts(session, kind: str | None = None) -> list[Alert]:
    q = select(Alert).where(Alert.status != "resolved").order_by(Alert.id)
    if kind:
        q = q.where(Alert.kind == kind)
    return list(session.scalars(q))


def dept_id(session, code: str) -> int:
    return session.scalar(select(Department.id).where(Department.code == code))


# --- handoffs on the business calendar -----------------------------------------------------------


def test_year_end_handoff_is_stalled_only_after_two_business_days(open_case, sessions):
    # Sent Monday 2026-12-28 10:00; 12/29–1/3 closed: 1/4 and 1/5 are the two business days.
    case_id = open_case(now=jst(2026, 12, 28, 10, 0), categories=["poverty"])
    result = scan.scan(sessions, jst(2027, 1, 4, 17, 0))
    assert result.raised == [] and result.failed == 0
    result = scan.scan(sessions, jst(2027, 1, 6, 17, 0))
    assert result.by_kind == {"handoff_stalled": 1, "handoff_escalated": 0, "evaluation_overdue": 0,
                              "no_contact": 0, "notice_unseen": 0}
    with sessions() as s:
        [alert] = open_alerts(s)
        handoff = s.get(Case, case_id).handoffs[0]
        assert (alert.kind, alert.case_id, alert.handoff_id) == ("handoff_stalled", case_id, handoff.id)
        assert alert.department_id == dept_id(s, "livelihood")
        assert alert.due_at == handoff.due_at == jst(2027, 1, 5, 17, 15)
        assert alert.raised_at == jst(2027, 1, 6, 17, 0)
        assert "生活福祉課" in alert.message


def test_escalation_to_the_fm_after_five_business_days(open_case, sessions):
    open_case(now=jst(2026, 12, 28, 10, 0), categories=["poverty"])
    # 1/4 … 1/8 are the five business days; 1/11 is 成人の日.
    assert scan.scan(sessions, jst(2027, 1, 8, 17, 0)).by_kind["handoff_escalated"] == 0
    result = scan.scan(sessions, jst(2027, 1, 11, 12, 0))
    assert result.by_kind["handoff_escalated"] == 1
    with sessions() as s:
        [alert] = open_alerts(s, "handoff_escalated")
        assert alert.department_id is None  # the FM dashboard
        assert alert.due_at == jst(2027, 1, 8, 17, 15)
        assert len(open_alerts(s, "handoff_stalled")) == 1


def test_city_closure_day_moves_the_deadline(open_case, sessions, tmp_path, monkeypatch):
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    (config / "calendar.yaml").write_text(
        'office_hours: {start: "08:30", end: "17:15"}\ncity_closures: [2026-12-01]\n', encoding="utf-8")
    monkeypatch.setenv("TSUNAGU_CONFIG_DIR", str(config))
    open_case(now=NOW, categories=["poverty"])  # Monday 11-30; Tuesday 12-01 is closed
    assert scan.scan(sessions, jst(2026, 12, 3, 9, 0)).raised == []  # without the closure: stalled
    assert scan.scan(sessions, jst(2026, 12, 3, 17, 30)).count("handoff_stalled") == 1


def test_accepting_resolves_the_stall_alerts_by_itself(open_case, fire, actors, sessions):
    case_id = open_case(categories=["poverty"])
    later = NOW + timedelta(days=10)
    assert len(scan.scan(sessions, later).raised) == 2
    fire(actors.livelihood, case_id, "accept_handoff", now=later)
    with sessions() as s:
        assert open_alerts(s) == []
        assert {(a.note, a.resolution_note) for a in s.scalars(select(Alert))} == {(None, "受理により解決")}
    assert scan.scan(sessions, later + timedelta(days=30)).raised == []


def test_scanning_again_raises_nothing_new(open_case, sessions, actors):
    ids = [open_case(categories=["poverty"]), open_case(categories=["hikikomori"])]
    with unit_of_work(sessions) as s:  # a join request has the same timers
        joins.request_join(s, actors.window, ids[0], to_department="health", reason="居場所", summary="s",
                              now=NOW)
    later = NOW + timedelta(days=3)
    first = scan.scan(sessions, later)
    assert first.by_kind["handoff_stalled"] == 3
    again = scan.scan(sessions, later)
    assert (again.raised, again.failed) == ([], 0)
    even_later = scan.scan(sessions, later + timedelta(days=7))
    assert even_later.by_kind == {"handoff_stalled": 0, "handoff_escalated": 3, "evaluation_overdue": 0,
                                  "no_contact": 0, "notice_unseen": 0}
    with sessions() as s:
        keys = [a.open_key for a in open_alerts(s)]
        assert len(keys) == len(set(keys)) == 6
        join = s.scalar(select(Handoff).where(Handoff.primary.is_(False)))
        assert {(a.department_id, a.kind) for a in s.scalars(select(Alert).where(Alert.handoff_id == join.id))} \
            == {(dept_id(s, "health"), "handoff_stalled"), (None, "handoff_escalated")}


def test_scan_resolves_alerts_whose_handoff_moved_on_meanwhile(open_case, sessions):
    case_id = open_case(categories=["poverty"])
    later = NOW + timedelta(days=3)
    scan.scan(sessions, later)
    # As if the acceptance committed while a scan was writing its alert: the row says accepted,
    # the alert is still open.
    with unit_of_work(sessions) as s:
        s.execute(update(Handoff).where(Handoff.case_id == case_id)
                  .values(state="accepted", accepted_at=later))
    result = scan.scan(sessions, later)
    assert (result.resolved, result.raised) == (1, [])
    with sessions() as s:
        assert open_alerts(s) == []


def _resolve_by_hand(sessions, actor, kind: str, note: str) -> Alert:

    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.kind == kind, Alert.status == "open"))
        return alerts.resolve(s, s.merge(actor), alert_id, note=note)


def test_an_alert_a_person_resolved_is_not_raised_again_while_its_sheet_still_waits(open_case, fire, actors,
                                                                                   sessions):
    case_id = open_case(categories=["poverty"])
    later = NOW + timedelta(days=10)
    assert scan.scan(sessions, later).by_kind["handoff_escalated"] == 1
    _resolve_by_hand(sessions, actors.fm, "handoff_escalated", "生活福祉課に電話で督促した")
    for days in (0, 1, 30):
        assert scan.scan(sessions, later + timedelta(days=days)).raised == []
    with sessions() as s:
        held = s.scalar(select(Alert).where(Alert.kind == "handoff_escalated"))
        assert (held.status, held.resolution_note) == ("resolved", "生活福祉課に電話で督促した")
        assert held.open_key is not None
    # The sheet answered, the next scan lets the key go (and a later sheet of the case has its own alerts).
    fire(actors.livelihood, case_id, "accept_handoff", now=later)
    scan.scan(sessions, later + timedelta(days=31))
    with sessions() as s:
        assert s.scalar(select(Alert.open_key).where(Alert.kind == "handoff_escalated")) is None


# --- cases in accompaniment ----------------------------------------------------------------------

PLAN_DATE = (NOW + timedelta(days=60)).astimezone(JST).date()


@pytest.fixture
def accompanied(open_case, fire, actors):
    """A case in 伴走支援 whose plan was adopted at NOW, evaluation due in 60 days."""
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    fire(actors.livelihood, case_id, "adopt_plan", goals="「働きたい」", main_department="livelihood",
         next_evaluation_date=PLAN_DATE.isoformat(), roles=[{"department": "livelihood", "role": "就労支援"}])
    return case_id


def day(n: int) -> datetime:
    """NOW + n days."""
    return NOW + timedelta(days=n)


def test_overdue_evaluation_and_silence(accompanied, sessions, actors, fire):
    assert scan.scan(sessions, day(60)).raised == []  # the evaluation day itself; 60 silent days
    result = scan.scan(sessions, day(61))
    assert result.by_kind == {"handoff_stalled": 0, "handoff_escalated": 0, "evaluation_overdue": 1,
                              "no_contact": 1, "notice_unseen": 0}
    with sessions() as s:
        assert {(a.kind, a.department_id) for a in open_alerts(s)} == {
            ("evaluation_overdue", dept_id(s, "livelihood")), ("no_contact", dept_id(s, "livelihood"))}
    with unit_of_work(sessions) as s:
        notes.add_contact_note(s, actors.livelihood, accompanied, {"method": "phone", "body": "電話で近況確認"},
                                  now=day(61))
    fire(actors.livelihood, accompanied, "evaluate", now=day(61), goals_met="partly", decision="continue",
         next_evaluation_date=(PLAN_DATE + timedelta(days=90)).isoformat())
    with sessions() as s:
        assert open_alerts(s) == []
    assert scan.scan(sessions, day(62)).raised == []
    # Silence counts from the last contact (day 61): 60 days later nothing, the day after an alert.
    assert scan.scan(sessions, day(121)).raised == []
    assert [a.kind for a in scan.scan(sessions, day(122)).raised] == ["no_contact"]


def test_an_overdue_evaluation_resolved_by_hand_comes_back_only_for_the_next_evaluation(accompanied, sessions,
                                                                                        actors, fire):
    assert scan.scan(sessions, day(61), kinds=("evaluation_overdue",)).by_kind["evaluation_overdue"] == 1
    _resolve_by_hand(sessions, actors.livelihood, "evaluation_overdue", "来週の会議で評価する")
    assert scan.scan(sessions, day(70), kinds=("evaluation_overdue",)).raised == []
    fire(actors.livelihood, accompanied, "evaluate", now=day(71), goals_met="partly", decision="continue",
         next_evaluation_date=(PLAN_DATE + timedelta(days=30)).isoformat())
    assert scan.scan(sessions, day(80), kinds=("evaluation_overdue",)).raised == []
    again = scan.scan(sessions, day(91), kinds=("evaluation_overdue",))
    assert [a.kind for a in again.raised] == ["evaluation_overdue"]


def test_a_plan_adopted_after_an_alert_resolved_by_hand_has_alerts_of_its_own(accompanied, sessions, actors, fire):
    """The key a person's 解決 holds is about the plan it was raised for: after a replan, the new plan's
    own lateness and silence are new alerts."""
    scan.scan(sessions, day(61))
    _resolve_by_hand(sessions, actors.livelihood, "evaluation_overdue", "来週の会議で評価する")
    _resolve_by_hand(sessions, actors.livelihood, "no_contact", "来週訪問する")
    fire(actors.livelihood, accompanied, "evaluate", now=day(62), goals_met="not_met", decision="replan")
    fire(actors.livelihood, accompanied, "adopt_plan", now=day(63), goals="「続けて働きたい」", main_department="livelihood",
         next_evaluation_date=(PLAN_DATE + timedelta(days=30)).isoformat(),
         roles=[{"department": "livelihood", "role": "就労支援"}])
    assert scan.scan(sessions, day(90)).raised == []  # the new plan is not late yet
    again = scan.scan(sessions, day(124))
    assert sorted(a.kind for a in again.raised) == ["evaluation_overdue", "no_contact"]


def test_a_held_key_is_let_go_by_what_changed_not_by_the_clock(accompanied, sessions, actors, fire):
    """A scan back-filled or run ahead with --now stamps its alerts with that time; the people who act on
    the case meanwhile stamp theirs with the real one. Whether the plan or the silence an alert was raised
    for has moved on is read from the rows (which plan, which evaluation date, which start of silence),
    never by comparing those times."""
    scan.scan(sessions, day(61))
    _resolve_by_hand(sessions, actors.livelihood, "evaluation_overdue", "来週の会議で評価する")
    _resolve_by_hand(sessions, actors.livelihood, "no_contact", "来週訪問する")
    with unit_of_work(sessions) as s:  # recorded at a time before the scan's --now
        notes.add_contact_note(s, actors.livelihood, accompanied, {"method": "home_visit", "body": "訪問"},
                                  now=day(10))
    fire(actors.livelihood, accompanied, "evaluate", now=day(11), goals_met="partly", decision="continue",
         next_evaluation_date=(PLAN_DATE + timedelta(days=30)).isoformat())
    assert scan.scan(sessions, day(62)).raised == []  # both moved on: nothing is due yet
    with sessions() as s:
        assert s.scalars(select(Alert.open_key).where(Alert.open_key.is_not(None))).all() == []
    assert [a.kind for a in scan.scan(sessions, day(72)).raised] == ["no_contact"]  # 61 days after day 10
    assert [a.kind for a in scan.scan(sessions, day(91)).raised] == ["evaluation_overdue"]


def test_a_replan_before_the_scans_now_still_gets_alerts_of_its_own(accompanied, sessions, actors, fire):
    scan.scan(sessions, day(61))
    _resolve_by_hand(sessions, actors.livelihood, "evaluation_overdue", "来週の会議で評価する")
    _resolve_by_hand(sessions, actors.livelihood, "no_contact", "来週訪問する")
    fire(actors.livelihood, accompanied, "evaluate", now=day(5), goals_met="not_met", decision="replan")
    fire(actors.livelihood, accompanied, "adopt_plan", now=day(6), goals="「続けて働きたい」", main_department="livelihood",
         next_evaluation_date=(PLAN_DATE + timedelta(days=30)).isoformat(),
         roles=[{"department": "livelihood", "role": "就労支援"}])
    again = scan.scan(sessions, day(124))
    assert sorted(a.kind for a in again.raised) == ["evaluation_overdue", "no_contact"]
    with sessions() as s:
        plan_id = s.scalar(select(Plan.id).where(Plan.case_id == accompanied, Plan.status == "active"))
        assert {a.plan_id for a in open_alerts(s)} == {plan_id}


def test_silence_counts_from_the_later_of_adoption_and_last_contact(accompanied, sessions, actors):
    with unit_of_work(sessions) as s:  # a contact dated before the plan does not move the clock
        notes.add_contact_note(s, actors.livelihood, accompanied,
                                  {"method": "office", "body": "来所", "contact_on": (NOW - timedelta(days=5)).date()},
                                  now=day(1))
        notes.add_contact_note(s, actors.livelihood, accompanied, {"method": "home_visit", "body": "訪問"},
                                  now=day(30))
    assert scan.scan(sessions, day(61), kinds=("no_contact",)).raised == []
    assert scan.scan(sessions, day(90), kinds=("no_contact",)).raised == []
    assert len(scan.scan(sessions, day(91), kinds=("no_contact",)).raised) == 1


def test_only_cases_in_accompaniment_are_watched(accompanied, sessions, actors, fire):
    scan.scan(sessions, day(61))
    fire(actors.livelihood, accompanied, "evaluate", now=day(61), goals_met="not_met", decision="suspend")
    result = scan.scan(sessions, day(200))
    assert (result.raised, result.resolved) == ([], 1)  # evaluate resolved its own; the silence alert ends
    with sessions() as s:
        assert open_alerts(s) == []


# --- the reads, the failures, the concurrency ----------------------------------------------------


def _plan_text(engine, statement) -> str:
    """The database's plan for `statement` (PostgreSQL: with sequential scans priced out)."""
    captured = {}

    def capture(conn, cursor, sql, params, context, executemany):
        captured.setdefault("sql", (sql, params))

    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", capture)
        conn.execute(statement).all()
        event.remove(conn, "before_cursor_execute", capture)
        sql, params = captured["sql"]
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql("EXPLAIN " + sql, params).all()
            conn.exec_driver_sql("RESET enable_seqscan")
        else:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
        conn.rollback()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize("kind,index", [
    ("handoff_stalled", "ix_handoffs_open_due"),
    ("handoff_escalated", "ix_handoffs_open_escalate"),
    ("evaluation_overdue", "ix_plans_status_next_evaluation"),
    ("no_contact", "ix_plans_status_no_contact"),
])
def test_candidates_are_read_through_their_index(db_engine, kind, index):

    policy = rules_file.parse_rules_file(CONFIG_DIR / "routing.yaml", CONFIG_DIR).stall_policy
    plan = _plan_text(db_engine, scan.candidates_statement(kind, NOW, policy))
    assert index in plan, plan
    # The open-alert check is an index lookup too (SQLite names the unique index sqlite_autoindex_…).
    assert "uq_alerts_open_key" in plan or re.search(
        r"alerts USING (COVERING )?INDEX sqlite_autoindex_alerts_1 \(open_key=\?\)", plan), plan


@pytest.fixture
def failing_alert_insert(db_engine):
    """install(handoff_id): make the database refuse any alert about that handoff (a real error, no mock)."""
    installed = []

    def install(handoff_id: int) -> None:
        with db_engine.begin() as conn:
            if db_engine.dialect.name == "postgresql":
                conn.exec_driver_sql(
                    "CREATE FUNCTION test_refuse_alert() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.handoff_id = {int(handoff_id)} THEN RAISE EXCEPTION 'refused for the test'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql")
                conn.exec_driver_sql("CREATE TRIGGER test_refuse_alert BEFORE INSERT ON alerts "
                                     "FOR EACH ROW EXECUTE FUNCTION test_refuse_alert()")
            else:
                conn.exec_driver_sql(
                    f"CREATE TRIGGER test_refuse_alert BEFORE INSERT ON alerts WHEN NEW.handoff_id = {int(handoff_id)} "
                    "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END")
        installed.append(True)

    yield install
    if installed:
        with db_engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER test_refuse_alert" +
                                 (" ON alerts" if db_engine.dialect.name == "postgresql" else ""))
            if db_engine.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP FUNCTION test_refuse_alert()")


def test_one_bad_row_does_not_stop_the_batch(open_case, sessions, failing_alert_insert):
    ids = [open_case(categories=["poverty"]) for _ in range(3)]
    with sessions() as s:
        bad = s.get(Case, ids[1]).handoffs[0].id
    failing_alert_insert(bad)
    result = scan.scan(sessions, NOW + timedelta(days=3))
    assert (result.count("handoff_stalled"), result.failed) == (2, 1)
    with sessions() as s:
        assert sorted(a.case_id for a in open_alerts(s)) == [ids[0], ids[2]]


@pytest.mark.slow
def test_two_processes_scanning_at_once_raise_each_alert_once(sessions, actors, database_url, db_engine,
                                                             tmp_path):
    count = 40
    with unit_of_work(sessions) as s:
        for i in range(count):
            intake.open_case(s, actors.window, intake_fields(categories=["poverty"]), now=NOW)
    now = (NOW + timedelta(days=14)).isoformat()  # stalled and escalated: 80 alerts
    env = {**os.environ, "DATABASE_URL": database_url, "TSUNAGU_INSTANCE_DIR": str(tmp_path)}
    command = [sys.executable, "-c", "from web.cli import main; main()", "alerts", "scan", "--now", now,
               "--batch-size", "3"]
    barrier = None
    if db_engine.dialect.name == "postgresql":
        # Hold both scanners at their first write, so that they then race through the same candidates.
        barrier = db_engine.connect()
        barrier.exec_driver_sql("LOCK TABLE alerts IN SHARE ROW EXCLUSIVE MODE")
    procs = [subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    if barrier is not None:
        with db_engine.connect() as watch:
            for _ in range(600):
                waiting = watch.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")).scalar()
                watch.rollback()  # activity is a per-transaction snapshot
                if waiting >= 2 or any(p.poll() is not None for p in procs):
                    break
                time.sleep(0.05)
        barrier.rollback()
        barrier.close()
    outputs = [p.communicate(timeout=120) for p in procs]
    for (out, err), p in zip(outputs, procs):
        assert p.returncode == 0, err
    printed = sum(len(out.strip().splitlines()) - 1 for out, _ in outputs)  # one line per alert + summary
    assert printed == 2 * count
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 2 * count
        assert s.scalar(select(func.count(func.distinct(Alert.open_key)))) == 2 * count

