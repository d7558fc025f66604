"""Referral intake under the production server: POST /api/v1/referrals against a bare endpoint that writes the
same rows with plain Core, in the same run.

Starts the app under gunicorn (`tsunagu serve`) on a fresh SQLite file, or on the PostgreSQL database given
(its public schema is reset). Two measurements:

1. Throughput, closed loop: C clients post distinct referrals as fast as answers come, to the API (one client)
   and to the bare endpoint (another client), taking turns in rounds; the ratio is the median of the rounds'.
   The bare endpoint (web/api/bench.py, registered only because TSUNAGU_BENCH_BARE=1 is set for this server)
   parses the JSON and writes the rows the API writes for the same referral, with Core; at the end the
   program checks that both sides made the same number of rows in every table. The referrals posted again
   under their keys (replays) show what the stack costs before a case is written.
2. Latency, open loop: referrals sent at a fixed offered rate (default 20 a second) whatever the answers, each
   timed from the moment it was due to be sent, so that a slow answer delays no measurement.

    python bench/intake.py [--referrals 3000] [--rounds 3] [--clients 16] [--rate 20] [--seconds 30]
                           [--workers 2] [--threads 4] [--database-url URL]

Targets: throughput at least 0.5 of the bare endpoint's; p99 at most 100 ms at 20 referrals a second.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from main_path import fresh_database
from referral_data import referral, same_rows

from engine import demo
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.referrals import clients as api_clients
from engine.rules import store as rules

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(database_url: str) -> dict:
    """Load the departments and the demo rules; make the API's client (with a token) and the bare one's."""
    engine = make_engine(database_url)
    with unit_of_work(make_session_factory(engine)) as s:
        demo.load_departments(s, ROOT / "config")
        rules.install_rules(s, ROOT / "config" / "routing.yaml", loaded_by="bench")
        client, token = api_clients.create_token(s, client_name="bench", scopes=["referrals:write"])
        core, _ = api_clients.create_token(s, client_name="bench-core", scopes=["referrals:write"])
        ids = {"token": token, "engine_client": client.id, "core_client": core.id}
    engine.dispose()
    return ids


class Target:
    """Where posts go: the API with its token, or the bare endpoint for the other client."""

    def __init__(self, path: str, headers: dict, side: int):
        self.path, self.headers, self.side = path, headers, side

    def send(self, conn: http.client.HTTPConnection, i: int, run: str) -> str:
        body = json.dumps(referral(i, run, self.side), ensure_ascii=False).encode()
        h = {**self.headers, "Content-Type": "application/json", "Idempotency-Key": f"{run}-{i}"}
        conn.request("POST", self.path, body=body, headers=h)
        resp = conn.getresponse()
        resp.read()
        return str(resp.status)


def _summary(latencies: list[float], elapsed: float, failures: list[str]) -> dict:
    latencies = sorted(latencies)
    return {"rate": len(latencies) / elapsed, "failures": failures, "n": len(latencies),
            "p50": statistics.median(latencies) * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


def _posting(port: int, target: Target, run: str, next_job, clients: int) -> tuple[list[float], list[str]]:
    """`clients` threads on kept-alive connections take jobs (i, due time or None) until none is left."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        gate.wait()
        while (job := next_job()) is not None:
            i, due = job
            t0 = time.perf_counter() if due is None else due
            try:
                status = target.send(conn, i, run)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = repr(exc)
            mine.append(time.perf_counter() - t0)
            if status != "201":
                with lock:
                    failures.append(status)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures


def closed_loop(port: int, target: Target, run: str, first: int, total: int, clients: int) -> dict:
    """`total` distinct posts from `clients` threads, each sending the next as soon as it has an answer."""
    lock = threading.Lock()
    numbers = iter(range(first, first + total))

    def next_job():
        with lock:
            i = next(numbers, None)
        return None if i is None else (i, None)

    t0 = time.perf_counter()
    latencies, failures = _posting(port, target, run, next_job, clients)
    return _summary(latencies, time.perf_counter() - t0, failures)


def open_loop(port: int, target: Target, run: str, rate: float, seconds: float, clients: int = 32) -> dict:
    """Posts due at a fixed rate whatever the answers; each timed from when it was due."""
    jobs: queue.Queue = queue.Queue()
    count = int(rate * seconds)

    def schedule() -> None:
        start = time.perf_counter() + 0.05
        for k in range(count):
            due = start + k / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            jobs.put((k, due))
        for _ in range(clients):
            jobs.put(None)

    scheduler = threading.Thread(target=schedule)
    scheduler.start()
    latencies, failures = _posting(port, target, run, jobs.get, clients)
    scheduler.join()
    return _summary(latencies, seconds, failures)


def serve(database_url: str, tmp: str, workers: int, threads: int) -> tuple[subprocess.Popen, int, Path]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "TSUNAGU_INSTANCE_DIR": tmp, "SECRET_KEY": "bench",
           "TSUNAGU_CONFIG_DIR": str(ROOT / "config"), "TSUNAGU_BENCH_BARE": "1"}
    # The server's log goes to a file: a pipe nobody reads would fill and stall the server.
    log_path = Path(tmp) / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", "from web.cli import main; main()", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--threads", str(threads)],
            env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=tmp)
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return server, port, log_path
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the server did not start: " + log_path.read_text(errors="replace")[-2000:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=3000, help="closed loop: referrals per side, all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16, help="closed loop: concurrent clients")
    parser.add_argument("--rate", type=float, default=20.0, help="open loop: referrals offered per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="open loop: how long")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (tsunagu serve --threads)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (its public schema is reset)")
    args = parser.parse_args(argv)
    per_round = max(1, args.referrals // args.rounds)

    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp:
        database_url = fresh_database(args.database_url, "bench.db", Path(tmp))
        ids = prepare(database_url)
        server, port, log_path = serve(database_url, tmp, args.workers, args.threads)
        api = Target("/api/v1/referrals", {"Authorization": f"Bearer {ids['token']}"}, side=0)
        bare = Target(f"/api/bench/bare-referrals?client_id={ids['core_client']}", {}, side=1)
        try:
            # Warm both paths in both workers (imports, the rules, the bare endpoint's routing, connections).
            for target in (api, bare):
                closed_loop(port, target, "warm", 0, 96, args.clients)
            rounds: list[dict] = []
            for r in range(args.rounds):
                took = {}
                for name in (("api", "bare") if r % 2 == 0 else ("bare", "api")):
                    target = api if name == "api" else bare
                    took[name] = closed_loop(port, target, "run", r * per_round, per_round, args.clients)
                rounds.append(took)
            # The same posts again, same keys and bodies: each is authenticated, validated, looked up, audited
            # and answered with the first answer. What any intake costs before it writes a case.
            replay = closed_loop(port, api, "run", 0, per_round, args.clients)
            offered = {name: open_loop(port, target, f"open-{name}", args.rate, args.seconds)
                       for name, target in (("api", api), ("bare", bare))}
        finally:
            server.terminate()
            server.wait(30)
            log_tail = log_path.read_text(errors="replace")[-3000:]
        engine = make_engine(database_url)
        with engine.connect() as conn:
            differs = same_rows(conn, ids["engine_client"], ids["core_client"])
        engine.dispose()

    backend = "PostgreSQL" if args.database_url else "SQLite (WAL, synchronous=FULL)"
    print(f"POST /api/v1/referrals under gunicorn ({args.workers} workers × {args.threads} threads), {backend}")
    print(f"closed loop: {per_round * args.rounds} distinct referrals per side from {args.clients} clients, "
          f"{args.rounds} rounds taking turns")
    print(f"{'':24}{'per second':>12}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")

    def line(name: str, r: dict) -> None:
        print(f"{name:24}{r['rate']:12.1f}{r['p50']:10.1f}{r['p99']:10.1f}{len(r['failures']):8d}")

    for k, took in enumerate(rounds, 1):
        line(f"  round {k} referrals", took["api"])
        line(f"  round {k} bare (Core)", took["bare"])
    line("  replays", replay)
    ratios = [took["api"]["rate"] / took["bare"]["rate"] for took in rounds]
    print(f"ratio referrals / bare, median of rounds: {statistics.median(ratios):.2f}   "
          f"(rounds {min(ratios):.2f}–{max(ratios):.2f}; target >= 0.50)")
    print(f"ratio replays / bare (last round): {replay['rate'] / rounds[-1]['bare']['rate']:.2f}   "
          "(the floor: no case written)")
    print(f"open loop: {args.rate:g} referrals offered per second for {args.seconds:g} s, "
          "each timed from when it was due")
    line("  referrals", offered["api"])
    line("  bare (Core)", offered["bare"])
    print(f"p99 at {args.rate:g}/s: {offered['api']['p99']:.1f} ms   (target <= 100 ms)")
    print("same rows on both sides: " + ("yes, in every table" if not differs else "NO: " + "; ".join(differs)))
    failures = [f for took in rounds for r in took.values() for f in r["failures"]]
    failures += replay["failures"] + offered["api"]["failures"] + offered["bare"]["failures"]
    if failures:
        print("failures:", sorted(set(failures))[:5])
        print("the server's log ends:\n" + log_tail)
    return 1 if failures or differs else 0


if __name__ == "__main__":
    raise SystemExit(main())
