"""A file of referrals through `tsunagu referrals import`, against plain Core writing the same rows, in the same run.

Makes two CSV files of N referrals each (the columns of docs/api.md "Referrals in a file"; the same referrals
as bench/intake.py, each file with its own people). The first is imported by the command as a city runs it (a
process of its own, one transaction per row); the second is written by the baseline: read with the csv module,
each row's rows written with Core (web/api/bench.py, the same rows the API writes), one transaction per row, in
this process. The baseline writes half its file before the import and half after, so that a machine that slows
down or speeds up weighs on both. At the end the program checks that both made the same rows in every table.

    python bench/import.py [--rows 10000] [--database-url URL]

Targets: at least 0.5 of the baseline's rows per second, and the import of 10,000 rows in under 60 s.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from intake import ROOT, prepare
from main_path import fresh_database
from referral_data import referral, same_rows

from engine.db import make_engine
from web.api.bench import plan_for, write_referral_rows

COLUMNS = ["external_ref", "referrer.organization", "referrer.contact_name", "referrer.contact_phone",
           "person.name", "person.name_kana", "person.birth_date", "person.area", "categories", "summary",
           "urgency", "household.1.relationship", "household.1.birth_year", "household.1.note"]


def write_file(path: Path, rows: int, side: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for i in range(rows):
            r = referral(i, "file", side)
            member = (r.get("household") or [{}])[0]
            flat = {"external_ref": r["external_ref"], "categories": " ".join(r["categories"]),
                    "summary": r["summary"], "urgency": r["urgency"],
                    **{f"referrer.{k}": v for k, v in r["referrer"].items()},
                    **{f"person.{k}": v for k, v in r["person"].items()},
                    **{f"household.1.{k}": v for k, v in member.items()}}
            out.writerow([flat.get(c, "") for c in COLUMNS])


def read_file(path: Path) -> list[dict]:
    """The baseline's reading: each row as the body it stands for, without any checking."""
    bodies = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            body: dict = {"external_ref": row["external_ref"], "summary": row["summary"], "urgency": row["urgency"],
                          "categories": row["categories"].split()}
            for section in ("referrer", "person"):
                body[section] = {k.split(".", 1)[1]: v for k, v in row.items() if k.startswith(section + ".") and v}
            if row["household.1.relationship"]:
                body["household"] = [{"relationship": row["household.1.relationship"],
                                      "birth_year": int(row["household.1.birth_year"]),
                                      "note": row["household.1.note"] or None}]
            bodies.append(body)
    return bodies


def core_rows(engine, client_id: int, bodies: list[dict]) -> float:
    """Write each body's rows with Core, one transaction each; return the seconds taken."""
    start = time.perf_counter()
    for body in bodies:
        now = datetime.now(timezone.utc)
        plan = plan_for(engine, body, "api", now)  # worked out once per routing facts, then kept
        with engine.begin() as conn:
            write_referral_rows(conn, client_id=client_id, key=f"file:{body['external_ref']}", payload=body,
                                plan=plan, now=now)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (its public schema is reset)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp:
        database_url = fresh_database(args.database_url, "bench.db", Path(tmp))
        ids = prepare(database_url)
        imported, baseline = Path(tmp) / "referrals.csv", Path(tmp) / "baseline.csv"
        write_file(imported, args.rows, side=0)
        write_file(baseline, args.rows, side=1)
        engine = make_engine(database_url)
        bodies = read_file(baseline)
        half = len(bodies) // 2
        core_seconds = core_rows(engine, ids["core_client"], bodies[:half])
        env = {**os.environ, "DATABASE_URL": database_url, "TSUNAGU_INSTANCE_DIR": tmp, "SECRET_KEY": "bench",
               "TSUNAGU_CONFIG_DIR": str(ROOT / "config")}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", "from web.cli import main; main()", "referrals", "import", str(imported),
             "--client", "bench"], env=env, cwd=tmp, capture_output=True, text=True)
        import_seconds = time.perf_counter() - start
        core_seconds += core_rows(engine, ids["core_client"], bodies[half:])
        with engine.connect() as conn:
            differs = same_rows(conn, ids["engine_client"], ids["core_client"])
        engine.dispose()

    backend = "PostgreSQL" if args.database_url else "SQLite (WAL, synchronous=FULL)"
    if done.returncode != 0:
        print("the import failed:\n" + done.stdout[-2000:] + done.stderr[-2000:])
        return 1
    print(f"a file of {args.rows:,} referrals, one transaction per row, {backend}")
    print(f"  tsunagu referrals import: {import_seconds:8.1f} s  {args.rows / import_seconds:8.1f} rows/s"
          "  (the command as run, its start included)")
    print(f"  plain Core, same rows:    {core_seconds:8.1f} s  {args.rows / core_seconds:8.1f} rows/s"
          "  (half before the import, half after)")
    print(f"  ratio import / Core: {core_seconds / import_seconds:.2f}   (target >= 0.50)")
    print(f"  the import under 60 s: {'yes' if import_seconds < 60 else 'no'} ({import_seconds:.1f} s)")
    print("  last line of the command: " + done.stdout.strip().splitlines()[-1])
    print("same rows on both sides: " + ("yes, in every table" if not differs else "NO: " + "; ".join(differs)))
    return 1 if differs else 0


if __name__ == "__main__":
    raise SystemExit(main())
