"""Staff pages under load: 100,000 cases in a fresh SQLite database, each page's server-side time.

Fills the database with bulk Core inserts (people, cases, categories, handoffs, history, alerts,
consents, plans, meetings), then times each page through the Flask test client: the median of N
requests per page, printed beside a baseline measured in the same run (GET /healthz) as a ratio.
Target: every page ≤ 150 ms.

    python bench/pages.py [--cases 100000] [--repeat 15] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, select, text

from engine import case_departments, demo, migrate
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.models import (
    Alert,
    Case,
    CaseCategory,
    CaseHistory,
    Consent,
    ConsentAgency,
    Department,
    Handoff,
    Household,
    HouseholdMember,
    Meeting,
    MeetingCase,
    MeetingMember,
    Person,
    Plan,
    PlanRole,
    User,
)
from engine.people.names import fold_for_search, match_key
from engine.rules import store as rules
from engine.settings import PROJECT_ROOT
from engine.users.accounts import hash_password

TARGET_MS = 150.0
CONFIG = PROJECT_ROOT / "config"
SURNAMES = [("廿日", "ハツカ"), ("佐伯", "サエキ"), ("吉和", "ヨシワ"), ("大野", "オオノ"), ("宮島", "ミヤジマ"),
            ("山田", "ヤマダ"), ("田中", "タナカ"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
            ("吉田", "ヨシダ"), ("山本", "ヤマモト"), ("松本", "マツモト"), ("井上", "イノウエ"), ("木村", "キムラ"),
            ("林", "ハヤシ"), ("清水", "シミズ"), ("山口", "ヤマグチ"), ("森", "モリ"), ("池田", "イケダ")]
GIVEN = [("太郎", "タロウ"), ("花子", "ハナコ"), ("一郎", "イチロウ"), ("幸子", "サチコ"), ("健", "ケン"),
         ("陽菜", "ヒナ"), ("正", "タダシ"), ("清", "キヨシ"), ("文子", "フミコ"), ("翔", "ショウ"),
         ("美咲", "ミサキ"), ("大輔", "ダイスケ"), ("恵", "メグミ"), ("誠", "マコト"), ("和子", "カズコ")]
AREAS = ["廿日市", "佐伯", "吉和", "大野", "宮島"]
CATEGORIES = ["medical", "mental_health", "elder_care", "disability", "child_rearing", "income_work", "poverty",
              "debt", "housing", "abuse_dv", "hikikomori", "carer", "young_carer", "isolation", "school_refusal",
              "other"]
STATES = [("intake", 5), ("handoff", 10), ("assigned", 30), ("support_meeting", 4), ("consent", 3),
          ("layered_meeting", 3), ("accompaniment", 15), ("suspended", 2), ("closed", 28)]
OWNED = {"assigned", "support_meeting", "consent", "layered_meeting", "accompaniment", "suspended", "closed"}


def _batched(rows, size=20000):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def fill(url: str, n_cases: int, seed: int = 8050) -> dict:
    """Migrate a fresh database at `url` and fill it; return ids the timings use."""
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    password = hash_password("bench-password")
    with unit_of_work(sessions) as s:
        demo.load_departments(s, CONFIG)
        rules.install_rules(s, CONFIG / "routing.yaml", loaded_by="bench")
        depts = {d.code: d.id for d in s.scalars(select(Department))}
        for code, dept_id in depts.items():
            s.add(User(login=f"{code}-staff", display_name=f"{code} 職員", role="staff", department_id=dept_id,
                       password_hash=password))
        for k in range(1, 6):  # several 係長級 FMs share the meetings
            s.add(User(login="fm" if k == 1 else f"fm{k}", display_name=f"FM {k}", role="fm",
                       department_id=depts["community_welfare"], password_hash=password))
        s.add(User(login="admin", display_name="管理者", role="admin", department_id=depts["community_welfare"],
                   password_hash=password))
        s.flush()
        users = {u.login: u.id for u in s.scalars(select(User))}

    rnd = random.Random(seed)
    now = datetime.now(timezone.utc)
    dept_codes = [c for c in depts if c not in ("desk", "community_welfare")]
    weights = [w for _, w in STATES]
    people, cases, cats, handoffs, history, alerts, household = [], [], [], [], [], [], []
    households = []
    consents, consent_agencies, plans, roles, meetings, members, meeting_cases = [], [], [], [], [], [], []
    fm_ids = [users["fm"]] + [users[f"fm{k}"] for k in range(2, 6)]
    for i in range(1, n_cases + 1):
        fm_id = fm_ids[i % len(fm_ids)]
        (sur, sur_k), (giv, giv_k) = rnd.choice(SURNAMES), rnd.choice(GIVEN)
        name, kana = f"{sur} {giv}", f"{sur_k} {giv_k}"
        people.append({"id": i, "name": name, "name_kana": kana, "search_key": fold_for_search(name, kana),
                       "name_key": match_key(name), "kana_key": match_key(kana),
                       "area": rnd.choice(AREAS), "birth_date": date(1930, 1, 1) + timedelta(days=rnd.randrange(30000))})
        state = rnd.choices([s for s, _ in STATES], weights)[0]
        opened = now - timedelta(days=rnd.randrange(1, 900), minutes=rnd.randrange(600))
        owner = depts[rnd.choice(dept_codes)] if state in OWNED else None
        created = depts["desk"] if rnd.random() < 0.7 else depts[rnd.choice(dept_codes)]
        closed = state == "closed"
        cases.append({
            "id": i, "case_number": f"B{i:07d}", "person_id": i, "summary": "家計と介護の相談。", "source": "window",
            "urgency": "urgent" if rnd.random() < 0.05 else "normal", "state": state, "version": 3,
            "owning_department_id": owner, "created_department_id": created, "created_by_id": None,
            "fm_id": fm_id if state in ("support_meeting", "consent", "layered_meeting") and rnd.random() < 0.5 else None,
            "consent_to_share": state in ("layered_meeting", "accompaniment", "suspended"),
            "multi_agency_candidate": rnd.random() < 0.05, "business_categories": ["comprehensive"],
            "opened_at": opened, "accepted_at": opened + timedelta(days=1) if owner else None,
            "closed_at": opened + timedelta(days=60) if closed else None,
            "close_reason": "goal_met" if closed else None,
            "updated_at": opened + timedelta(days=rnd.randrange(0, 60)),
        })
        chosen = rnd.sample(CATEGORIES, rnd.choice((1, 1, 2, 2, 3)))
        cats += [{"case_id": i, "code": c, "primary": k == 0, "position": k} for k, c in enumerate(chosen)]
        if rnd.random() < 0.3:
            households.append({"id": i, "created_at": opened})
            household.append({"household_id": i, "person_id": i, "relationship_label": "本人", "relative_to_id": None,
                              "birth_year": None, "recorded_with_case_id": None, "created_at": opened})
            household.append({"household_id": i, "person_id": None, "relationship_label": "長男", "relative_to_id": i,
                              "birth_year": 1970 + rnd.randrange(30), "recorded_with_case_id": i, "created_at": opened})
        history.append({"case_id": i, "event": "open", "from_state": None, "to_state": "intake", "at": opened,
                        "detail": {}})
        if state != "intake":
            to = owner or depts[rnd.choice(dept_codes)]
            sent = opened + timedelta(minutes=5)
            waiting = state == "handoff"
            handoffs.append({"id": len(handoffs) + 1, "case_id": i, "primary": True,
                             "state": "sent" if waiting else "accepted", "version": 1,
                             "from_department_id": created, "to_department_id": to, "reason": "ルールによる振り分け",
                             "summary": "家計と介護の相談。", "urgency": "normal", "sent_at": sent,
                             "due_at": sent + timedelta(days=2), "escalate_at": sent + timedelta(days=7),
                             "accepted_at": None if waiting else sent + timedelta(days=1)})
            history.append({"case_id": i, "event": "send_handoff", "from_state": "intake", "to_state": "handoff",
                            "at": sent, "detail": {}})
            if waiting and sent + timedelta(days=2) < now and rnd.random() < 0.3:
                alerts.append({"kind": "handoff_stalled", "status": "open", "open_key": f"handoff_stalled:h{len(handoffs)}",
                               "case_id": i, "handoff_id": len(handoffs), "department_id": to, "message": "期限超過",
                               "raised_at": sent + timedelta(days=3), "due_at": sent + timedelta(days=2)})
        if state == "intake" and rnd.random() < 0.5:
            alerts.append({"kind": "unrouted", "status": "open", "open_key": f"unrouted:c{i}", "case_id": i,
                           "department_id": depts["desk"], "message": "担当未決定", "raised_at": opened})
        if cases[-1]["multi_agency_candidate"] and not closed:
            alerts.append({"kind": "multi_agency_candidate", "status": "open", "open_key": f"multi_agency_candidate:c{i}",
                           "case_id": i, "message": "多機関協働の候補です（8050）", "raised_at": opened})
        if state in ("support_meeting", "consent", "layered_meeting", "accompaniment"):
            mid = len(meetings) + 1
            meetings.append({"id": mid, "kind": "support_meeting", "case_id": i, "held_at": opened + timedelta(days=10),
                             "convenor_id": fm_id, "secretariat_department_id": depts["community_welfare"],
                             "minutes": "各機関の把握内容を共有した。", "decisions": "同意取得を目指す。"})
            members.append({"meeting_id": mid, "user_id": fm_id, "department_id": depts["community_welfare"],
                            "secretariat": True, "acknowledged_at": opened + timedelta(days=10)})
            if owner:
                members.append({"meeting_id": mid, "user_id": users[f"{next(c for c, v in depts.items() if v == owner)}-staff"],
                                "department_id": owner, "secretariat": False, "acknowledged_at": opened + timedelta(days=10)})
            meeting_cases.append({"meeting_id": mid, "case_id": i})
        if state in ("layered_meeting", "accompaniment", "suspended"):
            cid = len(consents) + 1
            consents.append({"id": cid, "case_id": i, "status": "given", "given_by": "本人", "method": "written",
                             "obtained_on": (opened + timedelta(days=20)).date(), "recorded_by_id": fm_id,
                             "recorded_at": opened + timedelta(days=20)})
            consent_agencies += [{"consent_id": cid, "department_id": owner},
                                 {"consent_id": cid, "department_id": depts["shakyo"]}] if owner != depts["shakyo"] else \
                [{"consent_id": cid, "department_id": owner}]
        if state in ("accompaniment", "suspended"):
            pid = len(plans) + 1
            review = (now + timedelta(days=rnd.randrange(-60, 120))).date()
            plans.append({"id": pid, "case_id": i, "number": 1, "status": "active", "goals": "「少しずつ外に出たい」",
                          "main_department_id": owner, "next_evaluation_date": review, "business_categories": [],
                          "created_by_id": fm_id, "created_at": opened + timedelta(days=30)})
            roles.append({"plan_id": pid, "department_id": owner, "role": "相談支援"})
            if review < now.date() and state == "accompaniment" and rnd.random() < 0.5:
                alerts.append({"kind": "evaluation_overdue", "status": "open", "open_key": f"evaluation_overdue:c{i}",
                               "case_id": i, "message": "評価期限を過ぎています", "raised_at": now - timedelta(days=1)})

    engine_conn = engine.connect()
    with engine_conn.begin():
        for table, rows in ((Person, people), (Case, cases), (CaseCategory, cats), (Household, households),
                            (HouseholdMember, household),
                            (Handoff, handoffs), (CaseHistory, history), (Alert, alerts), (Meeting, meetings),
                            (MeetingMember, members), (MeetingCase, meeting_cases), (Consent, consents),
                            (ConsentAgency, consent_agencies), (Plan, plans), (PlanRole, roles)):
            for batch in _batched(rows):
                engine_conn.execute(insert(table.__table__), batch)
    engine_conn.close()
    # The rows went in past the ORM: the departments' relations are built from them in one pass, as a
    # bulk load must (engine.case_departments).
    with unit_of_work(sessions) as s:
        case_departments.rebuild(s)
        s.execute(text("ANALYZE"))
    engine.dispose()
    return {"cases": len(cases), "handoffs": len(handoffs), "history": len(history), "alerts": len(alerts),
            "meetings": len(meetings), "plans": len(plans)}


def lookup(url: str) -> dict:
    """The users, and the ids the timed pages open: a case of 生活福祉課 with a plan, its sheet, a meeting."""
    engine = make_engine(url)
    with unit_of_work(make_session_factory(engine)) as s:
        users = {u.login: u.id for u in s.scalars(select(User))}
        liv = s.scalar(select(Department.id).where(Department.code == "livelihood"))
        case_id = s.scalar(select(Case.id).join(Plan, Plan.case_id == Case.id).join(Meeting, Meeting.case_id == Case.id)
                           .where(Case.owning_department_id == liv).limit(1))
        handoff_id = s.scalar(select(Handoff.id).where(Handoff.case_id == case_id))
        meeting_id = s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))
        case_number = s.get(Case, case_id).case_number
    engine.dispose()
    return {"users": users, "case_id": case_id, "handoff_id": handoff_id, "meeting_id": meeting_id,
            "case_number": case_number}


def time_pages(url: str, ids: dict, repeat: int) -> list[tuple[str, str, float]]:
    """Median server-side time of each page, through the Flask test client."""
    from web import create_app

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "TESTING": True})
    users = ids["users"]

    def client_for(login):
        c = app.test_client()
        with c.session_transaction() as sess:
            with app.app_context():
                from web import db

                user = db.session().get(User, users[login])
                sess["_user_id"] = user.get_id()
                sess["last_seen"] = int(time.time())
                sess["signed_in_at"] = int(time.time())
        return c

    desk, liv, fm = client_for("desk-staff"), client_for("livelihood-staff"), client_for("fm")
    admin = client_for("admin")

    def refresh(c):
        with c.session_transaction() as sess:
            sess["last_seen"] = int(time.time())

    token_page = liv.get("/intake").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', token_page).group(1)
    preview = {"action": "preview", "person.name": "廿日 太郎", "person.name_kana": "ハツカ タロウ",
               "person.birth_date": "昭和35年5月1日", "person.area": "廿日市", "categories": ["poverty", "debt"],
               "summary": "失職して家賃を滞納している。", "source": "window", "urgency": "normal", "csrf_token": token}
    pages = [
        ("baseline", "GET /healthz", lambda: desk.get("/healthz")),
        ("start (desk)", "GET /", lambda: desk.get("/")),
        ("case list (desk)", "GET /cases", lambda: desk.get("/cases")),
        ("case list page 200 (desk)", "GET /cases?page=200", lambda: desk.get("/cases?page=200")),
        ("search by kana (desk)", "GET /cases?q=はつか たろう", lambda: desk.get("/cases", query_string={"q": "はつか たろう"})),
        ("case list (生活福祉課)", "GET /cases", lambda: liv.get("/cases")),
        ("filters (生活福祉課)", "GET /cases?state=assigned&area=大野&category=poverty",
         lambda: liv.get("/cases", query_string={"state": "assigned", "area": "大野", "category": "poverty"})),
        ("case list (FM)", "GET /cases?state=handoff&overdue=1",
         lambda: fm.get("/cases", query_string={"state": "handoff", "overdue": "1"})),
        ("search (FM)", "GET /cases?q=さえき", lambda: fm.get("/cases", query_string={"q": "さえき"})),
        ("inbox (生活福祉課)", "GET /inbox", lambda: liv.get("/inbox")),
        ("FM dashboard", "GET /dashboard", lambda: fm.get("/dashboard")),
        ("case detail (owner)", f"GET /cases/{ids['case_id']}", lambda: liv.get(f"/cases/{ids['case_id']}")),
        ("つなぐシート print", f"GET /handoffs/{ids['handoff_id']}/sheet",
         lambda: liv.get(f"/handoffs/{ids['handoff_id']}/sheet")),
        ("meeting", f"GET /meetings/{ids['meeting_id']}", lambda: liv.get(f"/meetings/{ids['meeting_id']}")),
        ("相談受付 form", "GET /intake", lambda: liv.get("/intake")),
        ("相談受付 preview", "POST /intake (preview)", lambda: liv.post("/intake", data=preview)),
        ("管理 (admin)", "GET /admin/", lambda: admin.get("/admin/")),
        ("閲覧記録 (admin)", f"GET /admin/disclosure?case={ids['case_number']}",
         lambda: admin.get("/admin/disclosure", query_string={"case": ids["case_number"]})),
    ]
    results = []
    for name, what, call in pages:
        for c in (desk, liv, fm, admin):
            refresh(c)
        for _ in range(2):
            assert call().status_code == 200, name
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            r = call()
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (name, r.status_code)
        results.append((name, what, statistics.median(times)))
    app.extensions["tsunagu.engine"].dispose()
    return results


def main() -> int:
    """Fill (or reuse) the database, time the pages, print the table; exit 1 over the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", help="build the database in this folder and keep it")
    parser.add_argument("--reuse", action="store_true", help="time the database kept in --keep without refilling")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tsunagu-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'bench.db'}"
    if not (args.reuse and args.keep and (folder / "bench.db").exists()):
        for f in folder.glob("bench.db*"):
            os.remove(f)
        t = time.perf_counter()
        counts = fill(url, args.cases)
        print(f"filled {url} in {time.perf_counter() - t:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    ids = lookup(url)
    results = time_pages(url, ids, args.repeat)
    base = results[0][2]
    print(f"\nmedian of {args.repeat} requests per page (server side, Flask test client), target ≤ {TARGET_MS:.0f} ms")
    print(f"{'page':34} {'request':48} {'ms':>8} {'× /healthz':>11}")
    worst = 0.0
    for name, what, ms in results:
        print(f"{name:34} {what:48} {ms:8.1f} {ms / base:11.1f}")
        if name != "baseline":
            worst = max(worst, ms)
    print(f"\nslowest page {worst:.1f} ms — {'within' if worst <= TARGET_MS else 'OVER'} the {TARGET_MS:.0f} ms target")
    if not args.keep:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
