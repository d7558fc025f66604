"""Events per second for the whole main path, against a plain-SQL baseline measured in the same run.

Each case goes intake → handoff → assigned → support_meeting → consent → layered_meeting → accompaniment
→ closed, one committed transaction per event, through engine.cases on a fresh SQLite file. The
baseline writes the same rows for the same steps with SQLAlchemy Core and no state machine, no guards,
no access checks, no ORM, into the same database. The figure that matters is the ratio.

The two take turns in rounds (engine first in one round, baseline first in the next), so that a machine
that slows down or speeds up during the run weighs on both alike; the ratio printed is the median of the
rounds' ratios, beside the overall rates.

    python bench/main_path.py [--cases 200] [--rounds 10] [--database-url URL]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, insert, select, text, update

from engine import case_departments, demo, migrate
from engine.cases import intake
from engine.cases.events import firing
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.models import (
    AuditEvent,
    AuditHead,
    Case,
    CaseCategory,
    CaseDepartment,
    CaseHistory,
    CaseNumberCounter,
    Consent,
    ConsentAgency,
    Handoff,
    Meeting,
    MeetingCase,
    MeetingMember,
    Person,
    Plan,
    PlanRole,
    User,
)
from engine.rules import store as rules
from engine.settings import PROJECT_ROOT

EVENTS_PER_CASE = 7  # send_handoff (by routing on open), accept, convene, seek, consent, plan, close
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)


def fresh_database(url: str | None, name: str, tmp: Path) -> str:
    if url is None:
        url = f"sqlite:///{tmp / name}"
    else:
        eng = make_engine(url)
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        eng.dispose()
    migrate.upgrade(url)
    return url


def setup_world(factory):
    with unit_of_work(factory) as s:
        demo.load_departments(s, PROJECT_ROOT / "config")
        rules.install_rules(s, PROJECT_ROOT / "config" / "routing.yaml", loaded_by="bench")
        hashed = "bench-no-login"
        ids = {}
        for login, role, dept in [("window", "staff", "desk"), ("livelihood", "staff", "livelihood"),
                                  ("fm", "fm", "community_welfare")]:
            dept_id = s.scalar(text("SELECT id FROM departments WHERE code = :c"), {"c": dept})
            u = User(login=login, display_name=login, role=role, department_id=dept_id, password_hash=hashed)
            s.add(u)
            s.flush()
            ids[login] = u.id
    with factory() as s:
        return {k: s.get(User, v) for k, v in ids.items()}, {
            code: s.scalar(text("SELECT id FROM departments WHERE code = :c"), {"c": code})
            for code in ("desk", "livelihood", "shakyo", "community_welfare")}


def run_engine(factory, users, n: int) -> float:
    window, livelihood, fm = users["window"], users["livelihood"], users["fm"]
    plan = {"goals": "「家賃を払えるようになりたい」", "main_department": "livelihood",
            "next_evaluation_date": (NOW + timedelta(days=90)).date().isoformat(),
            "roles": [{"department": "livelihood", "role": "家計相談"}, {"department": "shakyo", "role": "居場所"}]}
    steps = [
        (livelihood, "accept_handoff", {}),
        (fm, "convene_support_meeting", {"members": [{"user": "livelihood", "acknowledged": True}]}),
        (fm, "seek_consent", {}),
        (fm, "record_consent", {"given_by": "本人", "method": "written", "agencies": ["livelihood", "shakyo"]}),
        (livelihood, "adopt_plan", plan),
        (livelihood, "close", {"close_reason": "goal_met"}),
    ]
    consultation = {"person": {"name": "廿日 太郎", "name_kana": "ハツカ タロウ", "birth_date": "1960-05-01",
                         "area": "廿日市"}, "categories": ["poverty"], "summary": "家賃の滞納", "source": "window"}
    start = time.perf_counter()
    for _ in range(n):
        with unit_of_work(factory) as s:
            case = intake.open_case(s, window, consultation, now=NOW)  # routes: intake → handoff
            case_id, version = case.id, case.version
        for actor, event, fields in steps:
            with unit_of_work(factory) as s:
                version = firing.fire_event(s, actor, case_id, event, version=version, fields=fields,
                                              now=NOW).version
    return time.perf_counter() - start


class CoreWriter:
    """The same rows, written with plain Core statements: no machine, no guards, no ORM."""

    def __init__(self, engine, users, depts):
        self.engine, self.users, self.depts = engine, users, depts

    def audit(self, conn, action, case_id):
        seq, prev = conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq)
                                 .returning(AuditHead.seq, AuditHead.hash)).one()
        digest = hashlib.sha256(json.dumps([seq + 1, action, case_id, prev]).encode()).hexdigest()
        conn.execute(insert(AuditEvent).values(seq=seq + 1, at=NOW, actor_label="bench", action=action,
                                               object_type="case", object_id=str(case_id), case_id=case_id,
                                               outcome="ok", detail={}, prev_hash=prev, hash=digest))
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq + 1, hash=digest))

    def move(self, conn, case_id, version, event, src, dest, **case_values):
        conn.execute(update(Case).where(Case.id == case_id, Case.version == version)
                     .values(state=dest, version=version + 1, updated_at=NOW, **case_values))
        conn.execute(insert(CaseHistory).values(case_id=case_id, event=event, from_state=src, to_state=dest,
                                                actor_id=self.users["fm"].id, at=NOW, detail={}))
        conn.execute(update(CaseDepartment).where(CaseDepartment.case_id == case_id).values(state=dest))
        self.audit(conn, f"case.{event}", case_id)
        return version + 1

    @staticmethod
    def relate(conn, case_id, department_id, content, state):
        """A department's relation to the case (case_departments), as the engine keeps it."""
        conn.execute(insert(CaseDepartment).values(case_id=case_id, department_id=department_id, content=content,
                                                   state=state))

    def one_case(self):
        d, u = self.depts, self.users
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO case_number_counters (fiscal_year, last_number) VALUES (2026, 0) "
                              "ON CONFLICT DO NOTHING"))
            number = conn.execute(update(CaseNumberCounter).where(CaseNumberCounter.fiscal_year == 2026)
                                  .values(last_number=CaseNumberCounter.last_number + 1)
                                  .returning(CaseNumberCounter.last_number)).scalar_one()
            person_id = conn.execute(insert(Person).values(name="廿日 太郎", name_kana="ハツカ タロウ",
                                                           search_key="はつかたろう", name_key="廿日太郎",
                                                           kana_key="はつかたろう", birth_date=date(1960, 5, 1),
                                                           area="廿日市").returning(Person.id)).scalar_one()
            case_id = conn.execute(insert(Case).values(
                case_number=f"R8-{number:06d}", person_id=person_id, summary="家賃の滞納", source="window",
                urgency="normal", state="intake", version=1, created_department_id=d["desk"],
                created_by_id=u["window"].id, business_categories=["comprehensive"], opened_at=NOW, updated_at=NOW,
            ).returning(Case.id)).scalar_one()
            conn.execute(insert(CaseCategory).values(case_id=case_id, code="poverty", primary=True, position=0))
            conn.execute(insert(CaseHistory).values(case_id=case_id, event="open", to_state="intake", at=NOW,
                                                    detail={}))
            self.audit(conn, "case.open", case_id)
            self.relate(conn, case_id, d["desk"], True, "intake")
            conn.execute(update(Case).where(Case.id == case_id, Case.version == 1).values(
                version=2, routing_rule_version=1, routing_rule_name="生活困窮", routing_reason="理由",
                proposed_department_id=d["livelihood"]))
            handoff_id = conn.execute(insert(Handoff).values(
                case_id=case_id, primary=True, state="sent", version=1, to_department_id=d["livelihood"],
                reason="理由", summary="家賃の滞納", urgency="normal", sent_at=NOW, due_at=NOW, escalate_at=NOW,
            ).returning(Handoff.id)).scalar_one()
            self.relate(conn, case_id, d["livelihood"], True, "intake")
            v = self.move(conn, case_id, 2, "send_handoff", "intake", "handoff")
        with self.engine.begin() as conn:
            conn.execute(update(Handoff).where(Handoff.id == handoff_id, Handoff.version == 1).values(
                state="accepted", version=2, accepted_at=NOW, accepted_by_id=u["livelihood"].id))
            conn.execute(insert(CaseHistory).values(case_id=case_id, event="handoff.accept", from_state="sent",
                                                    to_state="accepted", at=NOW, detail={}))
            conn.execute(update(CaseDepartment).where(CaseDepartment.case_id == case_id,
                                                      CaseDepartment.department_id == d["desk"])
                         .values(content=False))  # the desk keeps metadata once the case is owned
            v = self.move(conn, case_id, v, "accept_handoff", "handoff", "assigned",
                          owning_department_id=d["livelihood"], accepted_at=NOW)
        with self.engine.begin() as conn:
            meeting_id = conn.execute(insert(Meeting).values(
                kind="support_meeting", case_id=case_id, held_at=NOW, convenor_id=u["fm"].id,
                secretariat_department_id=d["community_welfare"], created_at=NOW).returning(Meeting.id)).scalar_one()
            conn.execute(insert(MeetingMember), [
                {"meeting_id": meeting_id, "user_id": u["fm"].id, "department_id": d["community_welfare"],
                 "secretariat": True, "acknowledged_at": NOW},
                {"meeting_id": meeting_id, "user_id": u["livelihood"].id, "department_id": d["livelihood"],
                 "secretariat": False, "acknowledged_at": NOW}])
            conn.execute(insert(MeetingCase).values(meeting_id=meeting_id, case_id=case_id))
            v = self.move(conn, case_id, v, "convene_support_meeting", "assigned", "support_meeting",
                          fm_id=u["fm"].id, business_categories=["comprehensive", "multi_agency"])
        with self.engine.begin() as conn:
            v = self.move(conn, case_id, v, "seek_consent", "support_meeting", "consent")
        with self.engine.begin() as conn:
            consent_id = conn.execute(insert(Consent).values(
                case_id=case_id, status="given", given_by="本人", method="written", obtained_on=NOW.date(),
                recorded_by_id=u["fm"].id, recorded_at=NOW).returning(Consent.id)).scalar_one()
            conn.execute(insert(ConsentAgency), [{"consent_id": consent_id, "department_id": d["livelihood"]},
                                                 {"consent_id": consent_id, "department_id": d["shakyo"]}])
            self.relate(conn, case_id, d["shakyo"], True, "consent")
            v = self.move(conn, case_id, v, "record_consent", "consent", "layered_meeting", consent_to_share=True)
        with self.engine.begin() as conn:
            layered = conn.execute(insert(Meeting).values(
                kind="layered_meeting", case_id=case_id, held_at=NOW, convenor_id=u["livelihood"].id,
                secretariat_department_id=d["livelihood"], created_at=NOW).returning(Meeting.id)).scalar_one()
            conn.execute(insert(MeetingMember).values(meeting_id=layered, user_id=u["livelihood"].id,
                                                      department_id=d["livelihood"], secretariat=True,
                                                      acknowledged_at=NOW))
            conn.execute(insert(MeetingCase).values(meeting_id=layered, case_id=case_id))
            plan_id = conn.execute(insert(Plan).values(
                case_id=case_id, number=1, status="active", goals="「家賃を払えるようになりたい」",
                main_department_id=d["livelihood"], next_evaluation_date=NOW.date() + timedelta(days=90),
                business_categories=[], meeting_id=layered, created_by_id=u["livelihood"].id, created_at=NOW,
            ).returning(Plan.id)).scalar_one()
            conn.execute(insert(PlanRole), [{"plan_id": plan_id, "department_id": d["livelihood"], "role": "家計相談"},
                                            {"plan_id": plan_id, "department_id": d["shakyo"], "role": "居場所"}])
            v = self.move(conn, case_id, v, "adopt_plan", "layered_meeting", "accompaniment",
                          support_decision_date=NOW.date())
        with self.engine.begin() as conn:
            conn.execute(update(Plan).where(Plan.id == plan_id).values(status="ended"))
            self.move(conn, case_id, v, "close", "accompaniment", "closed", closed_at=NOW,
                      close_reason="goal_met")


def run_baseline(engine, users, depts, n: int) -> float:
    writer = CoreWriter(engine, users, depts)
    start = time.perf_counter()
    for _ in range(n):
        writer.one_case()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200, help="cases per side, over all rounds")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (its public schema is reset)")
    args = parser.parse_args()
    per_round = max(1, args.cases // args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(args.database_url, "bench.db", Path(tmp))
        engine = make_engine(url)
        factory = make_session_factory(engine)
        users, depts = setup_world(factory)
        # Warm both paths (imports, caches, the rules' first parse) outside the timing.
        run_engine(factory, users, 2)
        run_baseline(engine, users, depts, 2)
        totals = {"engine": 0.0, "baseline": 0.0}
        ratios = []
        for r in range(args.rounds):
            took = {}
            for name in (("engine", "baseline") if r % 2 == 0 else ("baseline", "engine")):
                took[name] = (run_engine(factory, users, per_round) if name == "engine"
                              else run_baseline(engine, users, depts, per_round))
                totals[name] += took[name]
            ratios.append(took["baseline"] / took["engine"])
        with factory() as s:
            closed = s.scalar(select(func.count()).select_from(Case).where(Case.state == "closed"))
            assert closed >= per_round * args.rounds, "the engine run did not reach closed"
            # Both sides kept the departments' relations as the records give them.
            assert case_departments.drift(s) == [], "case_departments differs from the records"
        engine.dispose()
    cases = per_round * args.rounds
    events = cases * EVENTS_PER_CASE
    eng_rate, base_rate = events / totals["engine"], events / totals["baseline"]
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"main path, {cases} cases × {EVENTS_PER_CASE} events per side, one transaction per event ({backend}), "
          f"{args.rounds} rounds taking turns")
    print(f"  engine (services + state machine): {eng_rate:8.1f} events/s  ({totals['engine']:.2f} s)")
    print(f"  baseline (plain Core, same rows):  {base_rate:8.1f} events/s  ({totals['baseline']:.2f} s)")
    print(f"  rounds' ratios: {min(ratios):.2f} – {max(ratios):.2f}")
    print(f"  ratio engine/baseline (median of rounds): {statistics.median(ratios):.2f}  (target ≥ 0.50)")


if __name__ == "__main__":
    main()
