"""The audit trail: tampering is detected and named (`tsunagu audit verify`); the 開示請求 answer
(`tsunagu audit case`) lists who touched every record of the person, and nothing of the records."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select, text

from engine.audit import trail
from engine.cases import intake, reading
from engine.db import unit_of_work
from engine.models import AuditEvent, Case, User
from tests import access_matrix as M
from tests.conftest import NOW, intake_fields


@pytest.fixture
def run_cli(app):
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from web.cli import main

    def run(*args):
        return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))

    return run


@pytest.fixture
def world(sessions, make_user):
    return M.build_world(sessions, make_user, NOW)


def _rows(sessions):
    with sessions() as s:
        return s.execute(select(AuditEvent.id, AuditEvent.seq).order_by(AuditEvent.seq)).all()


def test_every_write_of_the_world_left_an_audit_row(world, sessions):
    with sessions() as s:
        actions = [a for (a,) in s.execute(select(AuditEvent.action).order_by(AuditEvent.seq))
                   if a not in ("user.add", "rules.load")]
    assert actions == [
        "case.open", "case.send_handoff",  # routing sends the つなぐシート as the case opens
        "case.accept_handoff",
        # The 支援会議's records reach the ひきこもり支援ステーション (outside the city) on its membership.
        "provision.meeting", "case.convene_support_meeting",
        "contact_note.add", "contact_note.add", "meeting.add_member",
        "case.seek_consent", "case.record_consent",
        "shared_fact.carry", "provision.fact",  # the fact reaches 社協, which the consent names
        # The 重層的支援会議 that decides the plan: 社協 attends and has its part in the plan, each on that
        # consent, and the meeting's record names its time, its agencies and the plan.
        "provision.meeting", "meeting.record_layered", "provision.plan_role", "case.adopt_plan",
        "contact_note.add",
    ]


def test_verify_passes_on_an_untouched_trail(world, run_cli, sessions):
    result = run_cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert f"監査ログ {len(_rows(sessions))} 行を確認しました" in result.output


@pytest.mark.parametrize("column", ["detail", "actor_label", "at", "remote_addr"])
def test_changing_one_row_names_that_row(world, run_cli, sessions, db_engine, column):
    rows = _rows(sessions)
    row_id, seq = rows[len(rows) // 2]
    sql = {
        "detail": "UPDATE audit_events SET detail = '{\"parts\": []}' WHERE id = :id",
        "actor_label": "UPDATE audit_events SET actor_label = 'someone-else' WHERE id = :id",
        "remote_addr": "UPDATE audit_events SET remote_addr = '192.0.2.1' WHERE id = :id",
        "at": ("UPDATE audit_events SET at = at + interval '1 second' WHERE id = :id"
               if db_engine.dialect.name == "postgresql" else
               "UPDATE audit_events SET at = datetime(at, '-1 day') WHERE id = :id"),
    }[column]
    with db_engine.begin() as conn:
        assert conn.execute(text(sql), {"id": row_id}).rowcount == 1
    result = run_cli("audit", "verify")
    assert result.exit_code == 1
    assert f"行 id={row_id} seq={seq}:" in result.output and "改ざん" in result.output
    with sessions() as s:
        assert (trail.verify(s).broken_id, trail.verify(s).checked) == (row_id, seq - 1)


def test_deleting_a_middle_row_names_the_gap(world, run_cli, db_engine, sessions):
    rows = _rows(sessions)
    gone_id, gone_seq = rows[3]
    next_id, next_seq = rows[4]
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": gone_id})
    result = run_cli("audit", "verify")
    assert result.exit_code == 1
    assert f"行 id={next_id} seq={next_seq}:" in result.output and f"{gone_seq} の行がありません" in result.output


def test_truncating_the_tail_is_detected_through_the_head(world, run_cli, db_engine, sessions):
    rows = _rows(sessions)
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq > :seq"), {"seq": rows[-3][1]})
    result = run_cli("audit", "verify")
    assert result.exit_code == 1
    assert f"seq={rows[-1][1]}" in result.output and "末尾の行が失われています" in result.output


def test_verify_while_the_app_goes_on_writing_finds_nothing_wrong(world, sessions):
    """Rows committed during a run (reads are audited: any served page writes one) are the next run's to
    check; they are not a lost tail, and a cron job must not report tampering for them."""
    import threading

    stop = threading.Event()
    written = []

    def keep_writing():
        while not stop.is_set():
            with unit_of_work(sessions) as s:
                trail.record(s, actor=None, actor_label="reader", action="case.read", object_type="case",
                             object_id=1, case_id=1)
            written.append(1)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        results = []
        while len(written) < 40 and len(results) < 5000:
            with sessions() as s:
                results.append(trail.verify(s, batch=3))
    finally:
        stop.set()
        writer.join()
    assert len(written) >= 40 and len(results) > 5  # the writer did run alongside
    assert [(r.ok, r.reason) for r in results if not r.ok] == []
    assert all(r.head_seq == r.checked > 0 for r in results)


def test_a_row_put_past_the_head_by_hand_is_reported(world, run_cli, sessions, db_engine):
    last_id, last_seq = _rows(sessions)[-1]
    columns = ("at, actor_id, actor_label, client_id, action, object_type, object_id, case_id, remote_addr, "
               "outcome, detail, prev_hash, hash")
    with db_engine.begin() as conn:
        conn.execute(text(f"INSERT INTO audit_events (seq, {columns}) SELECT seq + 1, {columns} FROM audit_events "
                          "WHERE id = :id"), {"id": last_id})
    result = run_cli("audit", "verify")
    assert result.exit_code == 1
    assert f"seq={last_seq + 1}:" in result.output and "末尾の情報より後に行があります" in result.output


def test_a_deleted_head_is_reported_not_taken_for_an_empty_trail(world, run_cli, db_engine):
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_head"))
    result = run_cli("audit", "verify")
    assert result.exit_code == 1
    assert "audit_head の行）がありません" in result.output and "改ざんは見つかりません" not in result.output


@pytest.mark.parametrize("column,value", [("detail", '{"a": 1'), ("at", "2026-13-01 00:00:00"), ("at", 12345)])
def test_a_value_that_no_longer_reads_names_its_row(world, run_cli, sessions, db_engine, column, value):
    if db_engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's own types refuse such a value")
    row_id, seq = _rows(sessions)[4]
    with db_engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_events SET {column} = :v WHERE id = :id"), {"v": value, "id": row_id})
    result = run_cli("audit", "verify")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"行 id={row_id} seq={seq}: 行の値が読めません" in result.output


def test_rewriting_a_row_with_its_own_hash_still_breaks_the_next_link(world, sessions, db_engine):
    """Recomputing one row's hash after changing it is caught by the following row's link."""
    rows = _rows(sessions)
    row_id, seq = rows[5]
    with sessions() as s:
        row = s.get(AuditEvent, row_id)
        row.actor_label = "someone-else"
        new_hash = trail.row_digest(row)
        s.rollback()
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor_label = 'someone-else', hash = :h WHERE id = :id"),
                     {"h": new_hash, "id": row_id})
    with sessions() as s:
        result = trail.verify(s)
        assert (result.ok, result.broken_seq) == (False, seq + 1)
        assert "前の行" in result.reason


def _rewrite_from(sessions, db_engine, seq: int) -> None:
    """Change the row at `seq` and recompute every hash after it, head included: a careful forger."""
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)).all()
        prev = rows[0].prev_hash
        changes = []
        for row in rows:
            if row.seq == seq:
                row.actor_label = "someone-else"
            row.prev_hash = prev
            row.hash = prev = trail.row_digest(row)
            changes.append({"id": row.id, "label": row.actor_label, "prev": row.prev_hash, "hash": row.hash})
        s.rollback()
    with db_engine.begin() as conn:
        for c in changes:
            conn.execute(text("UPDATE audit_events SET actor_label = :label, prev_hash = :prev, hash = :hash "
                              "WHERE id = :id"), c)
        conn.execute(text("UPDATE audit_head SET hash = :hash"), {"hash": changes[-1]["hash"]})


def test_a_rewritten_tail_is_found_through_a_head_kept_elsewhere(world, run_cli, sessions, db_engine):
    kept = run_cli("audit", "verify").output.strip().splitlines()[-1]  # 末尾: seq=N hash=H
    assert kept.startswith("末尾: seq=")
    seq = int(kept.split("seq=")[1].split()[0])
    _rewrite_from(sessions, db_engine, seq - 2)
    assert run_cli("audit", "verify").exit_code == 0  # the chain alone holds
    result = run_cli("audit", "verify", "--known-head", kept.removeprefix("末尾: "))
    assert result.exit_code == 1
    assert f"seq={seq}:" in result.output and "以前に控えた末尾" in result.output
    with sessions() as s:
        head_hash = kept.split("hash=")[1]
        assert trail.verify(s, known={seq - 3: s.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq - 3))}).ok
        assert not trail.verify(s, known={seq: head_hash}).ok


def test_a_kept_head_beyond_the_trail_means_rows_were_lost(world, run_cli, sessions, db_engine):
    kept = run_cli("audit", "verify").output.strip().splitlines()[-1].removeprefix("末尾: ")
    seq = int(kept.split("seq=")[1].split()[0])
    _rewrite_from(sessions, db_engine, seq - 1)
    with db_engine.begin() as conn:  # drop the last row and make the head agree
        conn.execute(text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": seq})
        last = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :seq"), {"seq": seq - 1}).scalar_one()
        conn.execute(text("UPDATE audit_head SET seq = :seq, hash = :hash"), {"seq": seq - 1, "hash": last})
    assert run_cli("audit", "verify").exit_code == 0
    result = run_cli("audit", "verify", "--known-head", kept)
    assert result.exit_code == 1 and f"seq={seq}" in result.output and "行が失われた" in result.output


@pytest.mark.parametrize("value", ["12", "x:" + "a" * 64, "3:" + "g" * 64, "3:abc"])
def test_a_malformed_kept_head_is_refused(world, run_cli, value):
    result = run_cli("audit", "verify", "--known-head", value)
    assert result.exit_code == 2 and "SEQ:HASH" in result.output


def test_disclosure_lists_every_case_of_the_person_and_no_content(world, sessions, run_cli, open_case):
    # A second consultation of the same person (same 宛名番号), and one of somebody else.
    other_id = open_case(person={"name": "宮島 花子", "birth_date": "1970-01-01", "area": "宮島"})
    with unit_of_work(sessions) as s:
        window = s.scalar(select(User).where(User.login == world.logins["window"]))
        second = intake.open_case(s, window, intake_fields(
            categories=["other"], person={"name": "廿日　太郎", "resident_id": "0001234567"}), now=NOW)
        second_number = second.case_number
    with unit_of_work(sessions) as s:
        trail.bind(s, remote_addr="10.1.2.3")
        receiving = s.scalar(select(User).where(User.login == world.logins["receiving"]))
        reading.read_case(s, receiving, world.case_id)
        reading.read_case(s, s.scalar(select(User).where(User.login == "window")), other_id)
    with sessions() as s:
        first_number = s.get(Case, world.case_id).case_number
        other_number = s.get(Case, other_id).case_number
    result = run_cli("audit", "case", second_number, "--format", "csv")
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0][:3] == ["日時", "ケース番号", "操作者"]
    body = table[1:]
    assert {r[1] for r in body} == {first_number, second_number}
    assert other_number not in result.stdout
    reads = [r for r in body if r[6] == "case.read"]
    assert ["m-receiving", "10.1.2.3"] == [reads[-1][2], reads[-1][8]]
    assert any(r[6] == "meeting.read" or r[6] == "shared_fact.carry" for r in body)
    for word in [*M.MARKERS.values(), world.person_name, "0001234567"]:
        assert word not in result.stdout
    # The answer itself is in the trail; the text form names the cases and the readers.
    text_out = run_cli("audit", "case", str(world.case_id)).output
    assert f"{first_number}、{second_number}" in text_out and "ケース記録の閲覧" in text_out
    with sessions() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == "audit.person_trail")) == 2
        assert trail.verify(s).ok


def test_unknown_case_is_an_error(world, run_cli):
    result = run_cli("audit", "case", "R8-999999")
    assert result.exit_code == 1 and "見つかりません" in result.output
