"""Retention: closed cases past the period are anonymised, everything else is left alone, the dry run
changes nothing, and what was done is recorded (a run row, one audit row per case)."""
from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from engine.audit import trail
from engine.cases import kernel
from engine.cases import lists as caselist
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.errors import PermissionDenied
from engine.models import Alert, AuditEvent, Base, Case, Person, RetentionRun, User
from engine.privacy import retention
from engine.settings import Settings
from tests import access_matrix as M
from tests.conftest import NOW
from tests.test_audit_trail import run_cli  # noqa: F401,F811  (fixture)

LATER = NOW.replace(year=NOW.year + 6)  # six years after the world's case was closed


@pytest.fixture
def cases(sessions, make_user, actors, open_case, fire):
    """The matrix world closed at NOW, a case closed four years later, and an old case still open."""
    world = M.build_world(sessions, make_user, NOW)
    with unit_of_work(sessions) as s:
        owner = s.scalar(select(User).where(User.login == world.logins["receiving"]))
        firing.fire_event(s, owner, world.case_id, "close", version=s.get(Case, world.case_id).version,
                            fields={"close_reason": "goal_met", "note": "就職が決まった（終結メモ）"}, now=NOW)
    recent = open_case(categories=["poverty"], now=NOW,
                       person={"name": "大野 次郎", "birth_date": "1980-02-02", "area": "大野"})
    fire(actors.livelihood, recent, "accept_handoff", now=NOW)
    fire(actors.livelihood, recent, "close", close_reason="moved_out", now=NOW.replace(year=NOW.year + 4))
    still_open = open_case(categories=["poverty"], now=NOW - timedelta(days=2000),
                           person={"name": "佐伯 一郎", "birth_date": "1950-01-01", "area": "佐伯"})
    return world, recent, still_open


def _text_of_database(db_engine) -> str:
    """Every value of every table except the audit trail, as one text."""
    out = []
    with db_engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in ("audit_events", "routing_rule_versions"):
                continue
            for row in conn.execute(table.select()):
                out.append(repr(tuple(row)))
    return "\n".join(out)


def _snapshot(db_engine) -> str:
    return _text_of_database(db_engine) + repr(_audit_rows(db_engine))


def _audit_rows(db_engine):
    with db_engine.connect() as conn:
        return conn.execute(text("SELECT seq, action FROM audit_events ORDER BY seq")).all()


def test_dry_run_lists_the_due_case_and_changes_nothing(cases, run_cli, db_engine, sessions):  # noqa: F811
    world, recent, still_open = cases
    before = _snapshot(db_engine)
    result = run_cli("retention", "apply", "--dry-run", "--now", LATER.isoformat())
    assert result.exit_code == 0, result.output
    with sessions() as s:
        number = s.get(Case, world.case_id).case_number
        others = {s.get(Case, recent).case_number, s.get(Case, still_open).case_number}
    assert "1 件を匿名化します（試行" in result.output and number in result.output
    assert not any(n in result.output for n in others)
    assert _snapshot(db_engine) == before


def test_apply_anonymises_only_closed_cases_past_the_period(cases, run_cli, db_engine, sessions):  # noqa: F811
    world, recent, still_open = cases
    with unit_of_work(sessions) as s:  # a history text under any key but a code's (a routing override's reason)
        case = s.get(Case, world.case_id)
        kernel.record_history(s, case, None, "routing_override", NOW,
                                {"override_reason": "長男から暴力を受けていると本人が話した", "to_department": "elderly"},
                                from_state="closed", to_state="closed")

        s.add(Alert(kind="unrouted", status="resolved", case_id=world.case_id, message="m", raised_at=NOW,
                    note="確認時: 母親が入院中", resolution_note="解決時: 長男 090-1111-2222 と面談"))
    with sessions() as s:
        keep = {c: (s.get(Case, c).summary, s.get(Case, c).person.name) for c in (recent, still_open)}
        trail_before = s.scalar(select(func.count()).where(AuditEvent.case_id == world.case_id))
    result = run_cli("retention", "apply", "--now", LATER.isoformat())
    assert result.exit_code == 0, result.output
    everything = _text_of_database(db_engine)
    for word in [*M.MARKERS.values(), world.person_name, "ハツカ", "0001234567", "終結メモ", "1960-05-01",
                 "家計相談", "居場所", "長男から暴力", "母親が入院中", "090-1111-2222"]:
        assert word not in everything, word
    with sessions() as s:
        case = s.get(Case, world.case_id)
        assert case.anonymised_at == LATER and case.summary == retention.MARKER
        assert case.person.name == retention.PERSON_MARKER and case.person.birth_date is None
        assert (case.person.search_key, case.person.name_key, case.person.kana_key) == ("", "", "")
        assert case.person.birth_year == 1960 and case.person.area == "廿日市"  # still counts in the report
        assert case.state == "closed" and case.close_reason == "goal_met" and case.category_codes == ["poverty"]
        assert case.referrer is None or set(case.referrer) == {"organization"}
        for c, (summary, name) in keep.items():
            assert (s.get(Case, c).summary, s.get(Case, c).person.name, s.get(Case, c).anonymised_at) == \
                (summary, name, None)
        run = s.scalar(select(RetentionRun))
        assert (run.dry_run, run.case_ids, run.cutoff) == (False, [world.case_id], NOW.replace(year=NOW.year + 1))
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.anonymise")).all()
        assert [(r.case_id, r.detail) for r in rows] == [(world.case_id, {"retention_run": run.id})]
        # The trail is kept whole (one row more: the anonymisation), and still verifies.
        assert s.scalar(select(func.count()).where(AuditEvent.case_id == world.case_id)) == trail_before + 1
        assert trail.verify(s).ok
        # Nobody finds the person any more, and the case cannot be reopened.
        fm = s.scalar(select(User).where(User.login == world.logins["fm_member"]))
        for q in ("はつか", "廿日"):
            assert caselist.search_cases(s, fm, caselist.CaseFilters(q=q)).rows == [], q
        with pytest.raises(PermissionDenied):
            firing.fire_event(s, fm, world.case_id, "reopen", version=case.version, fields={"reason": "再相談"})
        s.rollback()
    again = run_cli("retention", "apply", "--now", LATER.isoformat())
    assert "0 件を匿名化しました" in again.output


def test_what_was_anonymised_is_not_left_in_the_files_bytes(cases, run_cli, db_engine, sessions):  # noqa: F811
    """Not only the rows: the SQLite file's free space and its WAL log keep no copy of the removed text."""
    from pathlib import Path

    if db_engine.dialect.name != "sqlite":
        pytest.skip("an SQLite file's bytes (PostgreSQL's old row versions are VACUUM's: see the README)")
    world, _, _ = cases
    words = [world.person_name, *M.MARKERS.values(), "終結メモ"]
    path = Path(db_engine.url.database)

    def file_bytes() -> bytes:
        # Read by another process: closing a file this process opened would drop every POSIX lock the
        # process holds on it, SQLite's included, and a later writer elsewhere would then take the open
        # database for unused and remove its log from under it.
        files = [str(p) for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
        return subprocess.run(["cat", *files], check=True, capture_output=True).stdout

    assert all(w.encode() in file_bytes() for w in words)  # the check can see them before the run
    result = run_cli("retention", "apply", "--now", LATER.isoformat())
    assert result.exit_code == 0 and "注意" not in result.output, result.output
    left = file_bytes()
    assert [w for w in words if w.encode() in left] == []


def test_the_period_comes_from_the_settings(cases, app, run_cli, sessions, monkeypatch):  # noqa: F811
    world, recent, still_open = cases
    assert Settings.from_env({"TSUNAGU_RETENTION_YEARS": "3"}).retention_years == 3
    assert Settings.from_env({}).retention_years == 5
    monkeypatch.setitem(app.config, "RETENTION_YEARS", 1)
    result = run_cli("retention", "apply", "--dry-run", "--now", LATER.isoformat())
    with sessions() as s:
        assert s.get(Case, recent).case_number in result.output  # closed two years before LATER
        assert s.get(Case, still_open).case_number not in result.output


def test_a_period_under_a_year_or_a_now_out_of_range_is_refused_plainly(cases, app, run_cli,  # noqa: F811
                                                                       monkeypatch):
    monkeypatch.setitem(app.config, "RETENTION_YEARS", 0)
    result = run_cli("retention", "apply", "--dry-run")
    assert result.exit_code == 1 and "TSUNAGU_RETENTION_YEARS は1以上" in result.output
    monkeypatch.setitem(app.config, "RETENTION_YEARS", 5)
    result = run_cli("retention", "apply", "--dry-run", "--now", "0001-01-01T00:00:00+09:00")
    assert result.exit_code == 2 and "1900年から2999年まで" in result.output


def test_a_person_with_another_open_case_keeps_their_details(sessions, actors, open_case, fire):
    first = open_case(categories=["poverty"])
    fire(actors.livelihood, first, "accept_handoff")
    fire(actors.livelihood, first, "close", close_reason="goal_met")
    with unit_of_work(sessions) as s:
        other = s.get(Case, open_case(categories=["other"]))
        other.person_id = s.get(Case, first).person_id  # the same person row, as a later import might link it
    with unit_of_work(sessions) as s:
        report = retention.apply(s, years=5, now=LATER)
        assert [c[0] for c in report.cases] == [first]
    with sessions() as s:
        assert s.get(Case, first).summary == retention.MARKER
        assert s.get(Person, s.get(Case, first).person_id).name == "廿日 太郎"
