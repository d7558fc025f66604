"""Benchmark of the stall scan: does its cost follow the number of due rows, not the size of the tables?

Builds a database of 100,000 and one of 1,000,000 cases with plain bulk inserts (not the services: this
measures the scan, not intake), then times one scan of each and prints both times and their ratio.

Shape of each database (every share is of the row count above it):
- every case has one つなぐシート: 10 % of cases wait on theirs (`sent`), 1 % of those past their due time;
  the other 90 % were accepted long ago, with due times in the past (so the index must tell them apart);
- 2 % of cases are in 伴走支援 with an active plan; 1 % of those are past their evaluation date and
  another 1 % have had no contact for longer than the policy allows;
- the other cases are assigned or closed.

Usage:
    python bench/scan.py                          # fresh SQLite files in a temporary folder
    python bench/scan.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
        (the database's public schema is DROPPED and rebuilt for each size)

Each size is scanned twice: the first scan raises every due alert (its work grows with the number of
due rows, ten times more in the bigger database), the second finds nothing new (the steady state of a
scan every five minutes). Both are timed over five rounds (the alerts deleted in between) and the
median is printed. After loading, the tables are analysed (PostgreSQL: VACUUM ANALYZE), as a live
database's would be.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from sqlalchemy import event, insert, select, text, update

from engine import demo, migrate
from engine.alerts import scan
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.models import Case, Department, Handoff, Person, Plan, User
from engine.rules import store as rules

CONFIG = ROOT / "config"
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)  # Monday 10:00 JST
TODAY = date(2026, 11, 30)
CHUNK = 20_000
ROUNDS = 5


def reset(url: str) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate.upgrade(url)


def rows_of(n: int, departments: list[int], user_id: int):
    """Yield (table, rows) chunks for `n` cases."""
    long_ago = NOW - timedelta(days=400)
    for start in range(1, n + 1, CHUNK):
        ids = range(start, min(start + CHUNK, n + 1))
        people, cases, handoffs, plans = [], [], [], []
        for i in ids:
            dept = departments[i % len(departments)]
            people.append({"id": i, "name": f"利用者{i}", "search_key": f"りようしゃ{i}"})
            bucket = i % 100
            if bucket < 10:
                state = "handoff"
            elif bucket < 12:
                state = "accompaniment"
            elif bucket < 40:
                state = "assigned"
            else:
                state = "closed"
            closed = state == "closed"
            cases.append({
                "id": i, "case_number": f"B-{i:08d}", "person_id": i, "summary": "ベンチマーク", "source": "window",
                "urgency": "normal", "state": state, "version": 1,
                "owning_department_id": None if state == "handoff" else dept, "created_department_id": dept,
                "consent_to_share": False, "multi_agency_candidate": False, "business_categories": [],
                "opened_at": long_ago, "updated_at": long_ago, "closed_at": long_ago if closed else None,
                "close_reason": "goal_met" if closed else None,
            })
            if state == "handoff":
                overdue = (i // 100) % 100 == 0  # 1 % of the waiting handoffs
                due = NOW - timedelta(hours=1) if overdue else NOW + timedelta(days=1 + i % 3)
                handoffs.append({"id": i, "case_id": i, "primary": True, "state": "sent", "version": 1,
                                 "to_department_id": dept, "reason": "r", "summary": "s", "urgency": "normal",
                                 "sent_at": due - timedelta(days=2), "due_at": due,
                                 "escalate_at": due + timedelta(days=5), "accepted_at": None})
            else:
                handoffs.append({"id": i, "case_id": i, "primary": True, "state": "accepted", "version": 2,
                                 "to_department_id": dept, "reason": "r", "summary": "s", "urgency": "normal",
                                 "sent_at": long_ago, "due_at": long_ago + timedelta(days=2),
                                 "escalate_at": long_ago + timedelta(days=7), "accepted_at": long_ago})
            if state == "accompaniment":
                k = (i // 100) % 100  # 1 % past evaluation, another 1 % silent
                plans.append({"id": i, "case_id": i, "number": 1, "status": "active", "goals": "g",
                              "main_department_id": dept, "business_categories": [], "created_by_id": user_id,
                              "created_at": NOW - timedelta(days=30),
                              "next_evaluation_date": TODAY - timedelta(days=3) if k == 0 else TODAY + timedelta(days=60),
                              "no_contact_since": TODAY - timedelta(days=90) if k == 1 else TODAY - timedelta(days=10)})
        yield Person.__table__, people
        yield Case.__table__, cases
        yield Handoff.__table__, handoffs
        if plans:
            yield Plan.__table__, plans


def build(url: str, n: int) -> float:
    """Create the schema and fill it with `n` cases; return the seconds it took."""
    started = time.perf_counter()
    reset(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as s:
        demo.load_departments(s, CONFIG)
        rules.install_rules(s, CONFIG / "routing.yaml", loaded_by="bench", config_dir=CONFIG)
        departments = [d.id for d in s.query(Department).order_by(Department.id)]
        user = User(login="bench", display_name="bench", role="staff", department_id=departments[0])
        s.add(user)
        s.flush()
        user_id = user.id
    for table, rows in rows_of(n, departments, user_id):
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for table in ("people", "cases", "handoffs", "plans"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})"))
    # A live database is vacuumed and analysed by autovacuum; a freshly bulk-loaded one is not yet. The
    # checkpoint keeps the load's writes from landing in the timed scans.
    if engine.dialect.name == "postgresql":
        maintain(engine, "VACUUM ANALYZE")
        maintain(engine, "CHECKPOINT")
    else:
        maintain(engine, "ANALYZE")
        maintain(engine, "PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return time.perf_counter() - started


def maintain(engine, sql: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(sql)


def clear_alerts(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alerts"))
    if engine.dialect.name == "postgresql":
        maintain(engine, "VACUUM ANALYZE alerts")


def timed_scan(sessions) -> tuple[float, scan.ScanResult]:
    started = time.perf_counter()
    result = scan.scan(sessions, NOW)
    return time.perf_counter() - started, result


def plan_of(engine, kind: str, policy) -> str:
    captured = {}

    def capture(conn, cursor, sql, params, context, executemany):
        captured.setdefault("sql", (sql, params))

    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET jit = off")  # as the scan runs it
        event.listen(conn, "before_cursor_execute", capture)
        conn.execute(scan.candidates_statement(kind, NOW, policy)).all()
        event.remove(conn, "before_cursor_execute", capture)
        sql, params = captured["sql"]
        prefix = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
        lines = [str(r[-1]) for r in conn.exec_driver_sql(prefix + sql, params)]
    return "\n      ".join(lines)


def time_rounds(engine) -> dict:
    """Median times of a raising scan (alerts deleted first) and of the repeat scan that follows it."""
    sessions = make_session_factory(engine)
    firsts, seconds, failed = [], [], 0
    for _ in range(ROUNDS):  # median of a few rounds: one disk flush more or less is noise here
        clear_alerts(engine)
        first_s, first = timed_scan(sessions)
        second_s, second = timed_scan(sessions)
        firsts.append(first_s)
        seconds.append(second_s)
        failed += first.failed + second.failed
    return {"first": statistics.median(firsts), "second": statistics.median(seconds), "raised": first.by_kind,
            "failed": failed, "again": len(second.raised)}


def thin_out(engine, keep: dict[str, int], policy) -> None:
    """Leave only as many due rows of each kind as `keep` says; the others fall due next month."""
    later, later_day = NOW + timedelta(days=30), TODAY + timedelta(days=30)

    def beyond(q, kind):
        return q.order_by(q.selected_columns[0]).offset(keep[kind])

    with engine.begin() as conn:
        due = beyond(select(Handoff.id).where(Handoff.state == "sent", Handoff.due_at <= NOW), "handoff_stalled")
        conn.execute(update(Handoff).where(Handoff.id.in_(due))
                     .values(due_at=later, escalate_at=later + timedelta(days=7)))
        overdue = beyond(select(Plan.id).where(Plan.status == "active", Plan.next_evaluation_date < TODAY),
                         "evaluation_overdue")
        conn.execute(update(Plan).where(Plan.id.in_(overdue)).values(next_evaluation_date=later_day))
        silent = beyond(select(Plan.id).where(Plan.status == "active", Plan.no_contact_since
                                              < TODAY - timedelta(days=policy.no_contact_days)), "no_contact")
        conn.execute(update(Plan).where(Plan.id.in_(silent)).values(no_contact_since=TODAY))
    maintain(engine, "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (its public schema is dropped); default SQLite")
    parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000], metavar=("SMALL", "LARGE"))
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url else "SQLite"
    tmp = tempfile.TemporaryDirectory(prefix="tsunagu-bench-")
    results = []
    for n in args.sizes:
        url = args.database_url or f"sqlite:///{Path(tmp.name) / f'scan-{n}.db'}"
        build_s = build(url, n)
        engine = make_engine(url)
        with make_session_factory(engine)() as s:
            policy = rules.stall_policy(s)  # parse and cache the rules outside the timing
        r = time_rounds(engine)
        results.append(r)
        print(f"{backend} {n:>9,} cases: built in {build_s:5.1f} s; scan raising {sum(r['raised'].values())} alerts "
              f"{r['raised']}: {r['first'] * 1000:6.1f} ms; repeat scan ({r['again']} new): "
              f"{r['second'] * 1000:5.1f} ms; failures {r['failed']}", flush=True)
        print(f"   handoff_stalled candidates plan:\n      {plan_of(engine, 'handoff_stalled', policy)}", flush=True)
        if len(results) == 2:
            small, large = results
            thin_out(engine, small["raised"], policy)
            same = time_rounds(engine)
            print(f"{backend} {n:>9,} cases, only as many due rows as the smaller database "
                  f"({sum(same['raised'].values())}): scan raising them {same['first'] * 1000:6.1f} ms; "
                  f"repeat scan {same['second'] * 1000:5.1f} ms; failures {same['failed']}", flush=True)
        engine.dispose()
    times = args.sizes[1] // args.sizes[0]
    due_times = sum(large["raised"].values()) // max(1, sum(small["raised"].values()))
    print(f"{backend}: ×{times} cases and ×{due_times} due rows: raising scan ratio "
          f"{large['first'] / small['first']:.2f}, repeat scan ratio {large['second'] / small['second']:.2f}; "
          f"×{times} cases and the same due rows: raising scan ratio {same['first'] / small['first']:.2f}, "
          f"repeat scan ratio {same['second'] / small['second']:.2f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
