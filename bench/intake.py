"""Referral intake throughput: POST /api/v1/referrals against a bare baseline, in the same run.

Starts the app under gunicorn (`tsunagu serve`, 2 workers) on a fresh SQLite file, posts N distinct
referrals from C concurrent clients, then does the same against a bare endpoint of the same app that
parses the JSON and inserts one row with plain SQL (registered only because TSUNAGU_BENCH_BARE=1 is set
for this server). Prints referrals/s, p50 and p99 for both, and the ratio. Between the two, the same
referrals are posted again under their keys: replays, which pass authentication, validation, the key's
look-up and an audit row but write no case, show what the stack costs a referral before its case is written.

    python bench/intake.py [--referrals 5000] [--clients 16] [--workers 2] [--threads 4]

Targets: at least 0.4 of the bare throughput, p99 at most 100 ms.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from engine import demo, migrate
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.referrals import clients as api_clients
from engine.rules import store as rules

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(database_url: str) -> tuple[str, int]:
    """Migrate, load the departments and the demo rules, make a token; return it and its client id."""
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    with unit_of_work(make_session_factory(engine)) as s:
        demo.load_departments(s, ROOT / "config")
        rules.install_rules(s, ROOT / "config" / "routing.yaml", loaded_by="bench")
        client, token = api_clients.create_token(s, client_name="bench", scopes=["referrals:write"])
        client_id = client.id
    engine.dispose()
    return token, client_id


CATEGORY_SETS = [["elder_care", "hikikomori"], ["poverty"], ["child_rearing"], ["disability"], ["other"],
                 ["debt", "housing"]]
AREAS = ["廿日市", "佐伯", "吉和", "大野", "宮島"]


def _body(i: int, run: str) -> bytes:
    return json.dumps({
        "external_ref": f"{run}-{i:06d}",
        "referrer": {"organization": "大野地域包括支援センター", "contact_name": "山田 花子",
                     "contact_phone": "0829-00-0000"},
        "person": {"name": f"廿日 太郎{i}", "name_kana": "ハツカ タロウ", "birth_date": "1946-05-01",
                   "area": AREAS[i % len(AREAS)]},
        "household": [{"relationship": "長男", "birth_year": 1974, "note": "長期のひきこもり"}],
        "categories": CATEGORY_SETS[i % len(CATEGORY_SETS)],
        "summary": "80代の母と50代の長男の二人世帯。母の介護サービス導入時に長男の長期ひきこもりを把握。",
        "urgency": "normal", "consent_to_share": False,
    }, ensure_ascii=False).encode()


def _load(port: int, path: str, headers: dict, run: str, total: int, clients: int) -> dict:
    """Send `total` distinct posts from `clients` threads on kept-alive connections; time each."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))
    start_gate = threading.Barrier(clients + 1)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        start_gate.wait()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            h = {**headers, "Content-Type": "application/json", "Idempotency-Key": f"{run}-{i}"}
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=_body(i, run), headers=h)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = repr(exc)
            mine.append(time.perf_counter() - t0)
            if status != 201:
                with lock:
                    failures.append(str(status))
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "rate": total / elapsed, "elapsed": elapsed, "failures": failures,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (tsunagu serve --threads)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        token, client_id = _prepare(database_url)
        port = _free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "TSUNAGU_INSTANCE_DIR": tmp, "SECRET_KEY": "bench",
               "TSUNAGU_CONFIG_DIR": str(ROOT / "config"), "TSUNAGU_BENCH_BARE": "1"}
        # The server's log goes to a file: a pipe nobody reads would fill and stall the server.
        log_path = Path(tmp) / "server.log"
        log = open(log_path, "wb")
        server = subprocess.Popen(
            [sys.executable, "-c", "from web.cli import main; main()", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(args.workers), "--threads", str(args.threads)],
            env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=tmp)
        try:
            for _ in range(200):
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    c.request("GET", "/healthz")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the server did not start: " + log_path.read_text(errors="replace")[-2000:])
            auth = {"Authorization": f"Bearer {token}"}
            # Warm both paths in both workers (imports, rule cache, connection pools).
            _load(port, "/api/v1/referrals", auth, "warm", 64, args.clients)
            _load(port, f"/api/bench/bare-referrals?client_id={client_id}", {}, "warm-bare", 64, args.clients)
            api = _load(port, "/api/v1/referrals", auth, "api", args.referrals, args.clients)
            # The same posts again, same keys and bodies: each is authenticated, validated, looked up, audited
            # and answered with the first answer. What any intake costs before it writes a case.
            replay = _load(port, "/api/v1/referrals", auth, "api", args.referrals, args.clients)
            bare = _load(port, f"/api/bench/bare-referrals?client_id={client_id}", {}, "bare", args.referrals,
                         args.clients)
        finally:
            server.terminate()
            server.wait(20)
            log.close()

    print(f"POST /api/v1/referrals under gunicorn ({args.workers} workers), SQLite (WAL, synchronous=FULL), "
          f"{args.referrals} distinct referrals from {args.clients} concurrent clients")
    print(f"{'':14}{'per second':>12}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for name, r in (("referrals", api), ("replays", replay), ("bare insert", bare)):
        print(f"{name:14}{r['rate']:12.1f}{r['p50']:10.1f}{r['p99']:10.1f}{len(r['failures']):8d}")
    ratio = api["rate"] / bare["rate"]
    print(f"ratio (referrals / bare): {ratio:.2f}   target >= 0.40; p99 target <= 100 ms")
    print(f"ratio (replays / bare): {replay['rate'] / bare['rate']:.2f}   (the floor: no case written)")
    failures = api["failures"] + replay["failures"] + bare["failures"]
    if failures:
        print("failures:", sorted(set(failures))[:5])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
