"""名寄せ at 100,000 people: how long `engine.people.matching.find` takes to match a new consultation.

Fills a database with N known people by bulk Core inserts (names and kana from small lists, 異体字 among
them; birth dates over some 90 years; 70 % with a 宛名番号; 1 % of the records merged into another, keeping
its 宛名番号, as the migration to one record per person left them), with their keys made by
engine.people.names.match_key. Then matches new consultations with `find`, four kinds taking turns:

- a known 宛名番号: matched at once (one indexed read);
- a candidate by name: the same birth date and the same name in another form (異体字, widths), no kana and
  no 宛名番号 (one read of that day's records);
- a candidate by kana: the same birth date and kana, the name written otherwise, and a 宛名番号 the city
  has not seen (the 宛名番号 read finds nothing, then that day's records);
- a new person with a new 宛名番号 (both reads, nothing found).

Each match is timed alone, in one open session as inside a request (no pool checkout in the timing), and
every answer is checked. The baseline, timed in the same turns: a plain indexed look-up of one 宛名番号,
`select Person where resident_id = ? and merged_into_id is null` (the only index on the 宛名番号 is partial:
one live record per number); the same look-up without the live condition is timed too, in one turn of ten,
to show what a 宛名番号 read that cannot use that index costs. Prints the median and p95 of each, the ratio
to the baseline, whether the median is under the target, and the plans (EXPLAIN) of the reads.

    python bench/matching.py [--people 100000] [--runs 1000] [--keep DIR] [--reuse]
    python bench/matching.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench [--schema S]

Without --database-url the database is an SQLite file in a temporary folder (or in DIR with --keep). With a
PostgreSQL URL the program creates its own schema in that database (`bench_matching` unless --schema says
otherwise; it refuses one that already exists unless --reuse), migrates it and fills it, and drops it at the
end unless --keep is given. It touches nothing else in that database.
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
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import event, func, insert, select, text
from sqlalchemy.engine import make_url

from engine import migrate
from engine.db import make_engine, make_session_factory
from engine.models import Person
from engine.people import matching
from engine.people.names import fold_for_search, match_key

TARGET_MS = 20.0
CHUNK = 20_000
SEED = 20261207
UNINDEXED_EVERY = 10  # the look-up that cannot use the index runs in one turn of ten
# Family names with their kana; the 異体字 pairs (髙橋/高橋 …) fold to one key.
SURNAMES = [("廿日", "ハツカ"), ("佐伯", "サエキ"), ("吉和", "ヨシワ"), ("大野", "オオノ"), ("宮島", "ミヤジマ"),
            ("山田", "ヤマダ"), ("田中", "タナカ"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
            ("吉田", "ヨシダ"), ("山本", "ヤマモト"), ("松本", "マツモト"), ("井上", "イノウエ"), ("木村", "キムラ"),
            ("林", "ハヤシ"), ("清水", "シミズ"), ("山口", "ヤマグチ"), ("森", "モリ"), ("池田", "イケダ"),
            ("高橋", "タカハシ"), ("髙橋", "タカハシ"), ("斎藤", "サイトウ"), ("齋藤", "サイトウ"), ("渡辺", "ワタナベ"),
            ("渡邊", "ワタナベ"), ("山崎", "ヤマサキ"), ("山﨑", "ヤマザキ"), ("沢田", "サワダ"), ("澤田", "サワダ"),
            ("藤原", "フジワラ"), ("岡本", "オカモト"), ("桜井", "サクライ"), ("広田", "ヒロタ"), ("浜田", "ハマダ")]
GIVEN = [("太郎", "タロウ"), ("花子", "ハナコ"), ("一郎", "イチロウ"), ("幸子", "サチコ"), ("健", "ケン"),
         ("謙", "ケン"), ("陽菜", "ヒナ"), ("正", "タダシ"), ("清", "キヨシ"), ("文子", "フミコ"), ("翔", "ショウ"),
         ("美咲", "ミサキ"), ("大輔", "ダイスケ"), ("恵", "メグミ"), ("誠", "マコト"), ("和子", "カズコ"),
         ("真由美", "マユミ"), ("博", "ヒロシ"), ("節子", "セツコ"), ("蓮", "レン"), ("結衣", "ユイ"), ("茂", "シゲル")]
# Names no known person has, for the new people.
NEW_SURNAMES = [("宇佐美", "ウサミ"), ("東海林", "ショウジ"), ("勅使河原", "テシガワラ"), ("四十物", "アイモノ")]
# The form a window may type instead (異体字 either way; NFKC folds the widths).
OTHER_FORM = str.maketrans({"高": "髙", "髙": "高", "斎": "齋", "齋": "斎", "辺": "邊", "邊": "辺", "崎": "﨑",
                            "﨑": "崎", "沢": "澤", "澤": "沢", "桜": "櫻", "広": "廣", "浜": "濱"})
AREAS = ["廿日市", "佐伯", "吉和", "大野", "宮島"]
FIRST_BIRTH = date(1932, 1, 1)
BIRTH_DAYS = 90 * 365
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)
KINDS = [("resident", "known 宛名番号 (matched)"), ("name", "candidate by name"),
         ("kana", "candidate by kana (new 宛名番号)"), ("new", "new person (new 宛名番号)")]


def resident_id_of(i: int) -> str:
    """The i-th known 宛名番号 (ten digits, scattered); new ones start with 9."""
    return f"{1_000_000_000 + (i * 7919) % 1_000_000_000:010d}"


def fullwidth_space(name: str) -> str:
    return name.replace(" ", "\u3000")


def people_rows(n: int, rnd: random.Random):
    """Yield chunks of `people` rows: 70 % with a 宛名番号, 10 % without kana, 1 % merged into the record
    before them (the same person recorded twice, keeping the number)."""
    for start in range(1, n + 1, CHUNK):
        rows = []
        for i in range(start, min(start + CHUNK, n + 1)):
            if i % 100 == 50 and rows:
                twin = dict(rows[-1], id=i, merged_into_id=rows[-1]["id"])
                rows.append(twin)
                continue
            (sur, sur_k), (giv, giv_k) = rnd.choice(SURNAMES), rnd.choice(GIVEN)
            name = f"{sur} {giv}"
            kana = f"{sur_k} {giv_k}" if rnd.random() < 0.9 else None
            born = FIRST_BIRTH + timedelta(days=rnd.randrange(BIRTH_DAYS))
            rows.append({
                "id": i, "name": name, "name_kana": kana, "search_key": fold_for_search(name, kana),
                "name_key": match_key(name), "kana_key": match_key(kana), "sex": rnd.choice(("female", "male")),
                "birth_date": born, "birth_year": born.year, "area": rnd.choice(AREAS),
                "resident_id": resident_id_of(i) if rnd.random() < 0.7 else None,
                "created_at": NOW - timedelta(days=rnd.randrange(3650)), "merged_into_id": None,
            })
        yield rows


def fill(url: str, n: int) -> dict:
    """Migrate the database at `url`, insert `n` people past the ORM, analyse; return what went in."""
    migrate.upgrade(url)
    engine = make_engine(url)
    rnd = random.Random(SEED)
    for rows in people_rows(n, rnd):
        with engine.begin() as conn:
            conn.execute(insert(Person.__table__), rows)
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if pg:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('people', 'id'), {n})"))
        counts = conn.execute(select(func.count(), func.count(Person.resident_id),
                                     func.count(Person.merged_into_id))).one()
    # A live database is analysed by autovacuum or ANALYZE; a freshly bulk-loaded one not yet.
    maintain(engine, "VACUUM ANALYZE people" if pg else "ANALYZE")
    maintain(engine, "CHECKPOINT" if pg else "PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return {"people": counts[0], "with 宛名番号": counts[1], "merged away": counts[2]}


def maintain(engine, sql: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(sql)


@dataclass
class Probe:
    """One new consultation to match, and what `find` must answer for it."""

    name: str
    kana: str | None
    birth_date: date
    resident_id: str | None
    expect: str  # matching.MATCHED / CANDIDATE / NEW
    person_id: int | None = None  # the known person it must find
    reason: str | None = None  # and why (name / kana)


def probes(session, runs: int, rnd: random.Random) -> dict[str, list[Probe]]:
    """`runs` consultations of each kind, drawn from the live records (so a kept database serves too), and
    the 宛名番号 the baseline looks up."""
    live = Person.merged_into_id.is_(None)
    cols = (Person.id, Person.name, Person.name_kana, Person.birth_date, Person.resident_id)

    def sample(*where):
        rows = session.execute(select(*cols).where(live, *where).order_by(Person.id)).all()
        return rnd.sample(rows, min(runs, len(rows)))

    with_number = sample(Person.resident_id.is_not(None))
    out = {
        "resident": [Probe(r.name, r.name_kana, r.birth_date, r.resident_id, matching.MATCHED, r.id)
                     for r in with_number],
        # The name in the other form a window may type (異体字, a full-width space), no kana, no number.
        "name": [Probe(fullwidth_space(r.name.translate(OTHER_FORM)), None, r.birth_date, None, matching.CANDIDATE,
                       r.id, "name") for r in sample()],
        # The kana as known, the given name written in hiragana (another name key), a number not yet known.
        "kana": [Probe(r.name.split(" ")[0] + " " + match_key(r.name_kana.split(" ")[1]), r.name_kana,
                       r.birth_date, f"9{k:09d}", matching.CANDIDATE, r.id, "kana")
                 for k, r in enumerate(sample(Person.name_kana.is_not(None), Person.resident_id.is_(None)))],
    }
    new = []
    for k in range(runs):
        (sur, sur_k), (giv, giv_k) = rnd.choice(NEW_SURNAMES), rnd.choice(GIVEN)
        new.append(Probe(f"{sur} {giv}", f"{sur_k} {giv_k}",
                         FIRST_BIRTH + timedelta(days=rnd.randrange(BIRTH_DAYS)), f"9{runs + k:09d}", matching.NEW))
    out["new"] = new
    out["baseline"] = [r.resident_id for r in sample(Person.resident_id.is_not(None))]
    return out


def check(found: matching.Match, probe: Probe) -> None:
    """The answer `find` must give: else the benchmark measures the wrong thing."""
    assert found.kind == probe.expect, (probe, found.kind)
    if probe.expect == matching.MATCHED:
        assert found.person.id == probe.person_id, probe
    elif probe.expect == matching.CANDIDATE:
        assert (probe.person_id, probe.reason) in {(p.id, why) for p, why in found.candidates}, \
            (probe, [(p.id, why) for p, why in found.candidates])


def find(session, p: Probe) -> matching.Match:
    return matching.find(session, name=p.name, kana=p.kana, birth_date=p.birth_date, resident_id=p.resident_id)


def baseline(session, resident_id: str) -> Person | None:
    """One 宛名番号, read through its index (the partial one: live records only)."""
    return session.scalar(select(Person).where(Person.resident_id == resident_id, Person.merged_into_id.is_(None)))


def without_live(session, resident_id: str) -> list[Person]:
    """The same 宛名番号 read without the live condition, which the partial index does not serve."""
    return list(session.scalars(select(Person).where(Person.resident_id == resident_id)))


def time_matches(url: str, runs: int, rnd: random.Random) -> dict[str, list[float]]:
    """Milliseconds of each match, by kind, the kinds and the baseline taking turns in a shuffled order."""
    engine = make_engine(url)
    times: dict[str, list[float]] = {k: [] for k, _ in KINDS} | {"baseline": [], "unindexed": []}
    with make_session_factory(engine)() as s:
        todo = probes(s, runs, rnd)
        runs = min(len(v) for v in todo.values())
        for k in range(min(runs, 20)):  # warm the statement caches outside the timing
            for kind, _ in KINDS:
                check(find(s, todo[kind][k]), todo[kind][k])
            baseline(s, todo["baseline"][k])
            s.expunge_all()
        for r in range(runs):
            order = [k for k, _ in KINDS] + ["baseline"] + (["unindexed"] if r % UNINDEXED_EVERY == 0 else [])
            rnd.shuffle(order)
            for kind in order:
                if kind == "baseline" or kind == "unindexed":
                    rid = todo["baseline"][r]
                    read = baseline if kind == "baseline" else without_live
                    t = time.perf_counter()
                    got = read(s, rid)
                    times[kind].append((time.perf_counter() - t) * 1000)
                    assert got, rid
                else:
                    probe = todo[kind][r]
                    t = time.perf_counter()
                    found = find(s, probe)
                    times[kind].append((time.perf_counter() - t) * 1000)
                    check(found, probe)
                s.expunge_all()
    engine.dispose()
    return times


def plans(url: str, probe: Probe) -> list[tuple[str, list[str]]]:
    """EXPLAIN of each read `find` makes for a consultation with a new 宛名番号 (both reads), and of the
    look-up without the live condition. PostgreSQL: EXPLAIN ANALYZE (the server's own time)."""
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    captured = []

    def capture(conn, cursor, sql, params, context, executemany):
        captured.append((sql, params))

    out = []
    with make_session_factory(engine)() as s:
        resident_id = s.scalar(select(Person.resident_id).where(Person.resident_id.is_not(None)).limit(1))
        conn = s.connection()
        event.listen(conn, "before_cursor_execute", capture)
        find(s, probe)
        without_live(s, resident_id)
        event.remove(conn, "before_cursor_execute", capture)
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
        for (sql, params), what in zip(captured, ("宛名番号 (live)", "that day's records", "宛名番号 (any)")):
            lines = [str(row[-1]) for row in conn.exec_driver_sql(prefix + sql, params)]
            out.append((f"{what}: {' '.join(sql.split())}", lines))
    engine.dispose()
    return out


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def pad(label: str, width: int) -> str:
    """`label` padded to `width` terminal columns (wide characters take two)."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in label)
    return label + " " * max(0, width - used)


def report(times: dict[str, list[float]], backend: str, n_people: int) -> bool:
    """Print the table; True when the median match is under the target."""
    base = statistics.median(times["baseline"])
    matches = [t for k, _ in KINDS for t in times[k]]
    runs = len(times["baseline"])
    print(f"\n{backend}, {n_people:,} people: {runs:,} matches of each kind and as many baseline look-ups, "
          f"taking turns; ms per match")
    print(f"{'':52} {'median':>8} {'p95':>8} {'median × baseline':>18}")
    rows = [(label, times[k]) for k, label in KINDS] + [("all four kinds", matches),
                                                        ("baseline: one 宛名番号, indexed", times["baseline"]),
                                                        (f"one 宛名番号 without the live condition "
                                                         f"({len(times['unindexed'])} runs)", times["unindexed"])]
    for label, values in rows:
        median = statistics.median(values)
        print(f"{pad(label, 52)} {median:8.3f} {pct(values, 95):8.3f} {median / base:18.2f}")
    median = statistics.median(matches)
    within = median < TARGET_MS
    print(f"\nratio, median match / median baseline: {median / base:.2f}")
    print(f"median match {median:.3f} ms (p95 {pct(matches, 95):.3f} ms) — "
          f"{'under' if within else 'OVER'} the {TARGET_MS:.0f} ms target")
    return within


def schema_url(url: str, schema: str) -> str:
    """`url` with its connections' search_path set to `schema` alone."""
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def schema_exists(url: str, schema: str) -> bool:
    engine = make_engine(url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                             {"s": schema}).first()
    engine.dispose()
    return found is not None


def run_schema_ddl(url: str, sql: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
    engine.dispose()


def main() -> int:
    """Fill (or reuse) the database, time the matches, print the figures; exit 1 over the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1000, help="matches of each kind (and baseline look-ups)")
    parser.add_argument("--database-url", "--url", help="PostgreSQL URL (the program works in a schema of its "
                                                         "own there); default SQLite")
    parser.add_argument("--schema", default="bench_matching", help="PostgreSQL: the schema to create and fill")
    parser.add_argument("--keep", nargs="?", const="", metavar="DIR",
                        help="keep the database: SQLite builds it in DIR; PostgreSQL keeps its schema")
    parser.add_argument("--reuse", action="store_true", help="time the database kept earlier without refilling")
    args = parser.parse_args()
    pg = args.database_url is not None
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.schema):
        parser.error("--schema: lower-case letters, digits and _ only")
    if args.keep == "" and not pg:
        parser.error("--keep needs a folder for the SQLite file")
    if args.reuse and args.keep is None:
        parser.error("--reuse times what --keep kept: give --keep too")
    created, folder = False, None
    if pg:
        url = schema_url(args.database_url, args.schema)
        exists = schema_exists(args.database_url, args.schema)
        if exists and not args.reuse:
            print(f"schema {args.schema} already exists in that database: drop it, or time it with --keep --reuse",
                  file=sys.stderr)
            return 2
        refill = not exists
        where = f"schema {args.schema} of {make_url(args.database_url).render_as_string()}"
    else:
        folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tsunagu-bench-"))
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'matching.db'}"
        refill = not (args.reuse and (folder / "matching.db").exists())
        where = str(folder / "matching.db")
    try:
        if refill:
            if pg:
                run_schema_ddl(args.database_url, f"CREATE SCHEMA {args.schema}")
                created = True
            else:
                for f in folder.glob("matching.db*"):
                    os.remove(f)
            t = time.perf_counter()
            counts = fill(url, args.people)
            print(f"filled {where} in {time.perf_counter() - t:.1f} s: "
                  + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
        rnd = random.Random(SEED + 1)
        times = time_matches(url, args.runs, rnd)
        engine = make_engine(url)
        with engine.connect() as conn:
            n_people = conn.execute(select(func.count()).select_from(Person)).scalar_one()
        engine.dispose()
        within = report(times, "PostgreSQL" if pg else "SQLite", n_people)
        new = Probe("宇佐美 太郎", "ウサミ タロウ", FIRST_BIRTH + timedelta(days=BIRTH_DAYS // 2), "9999999999",
                    matching.NEW)
        print("\nplans of the reads (a new person with a new 宛名番号: both reads of find; then the look-up "
              "without the live condition):")
        for what, lines in plans(url, new):
            print(f"  {what}\n      " + "\n      ".join(lines))
    finally:
        if created and args.keep is None:
            run_schema_ddl(args.database_url, f"DROP SCHEMA {args.schema} CASCADE")
        if folder is not None and args.keep is None:
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
    if args.keep is not None:
        print(f"kept {where}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
