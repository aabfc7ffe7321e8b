"""A bounded load run against the production profile: PostgreSQL, Redis and two gunicorn
instances of example_project, all started on loopback by this script and stopped after.
Mixed password and refresh grants from concurrent clients; prints throughput and latency
percentiles and writes benchmarks/results/load.json.

    make bench      # or: .venv/bin/python benchmarks/load.py [--seconds 30] [--concurrency 32]
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "load test pass phrase 1"
REFRESHES_PER_SIGN_IN = 3


def run_load(instances, client_id, logins, password, *, seconds, concurrency):
    """Each client signs in, refreshes a few times, and again, until time is up; requests
    alternate between the instances. Only loopback addresses are targeted."""
    assert all(url.startswith("http://127.0.0.1:") for url in instances)
    deadline = time.monotonic() + seconds
    latencies, statuses, lock = {"password": [], "refresh": []}, Counter(), threading.Lock()

    def client(number):
        session, turn = requests.Session(), number
        while time.monotonic() < deadline:
            login = logins[number % len(logins)]
            data = {"grant_type": "password", "username": login, "password": password, "client_id": client_id}
            kind = "password"
            for _ in range(1 + REFRESHES_PER_SIGN_IN):
                if time.monotonic() >= deadline:
                    break
                turn += 1
                started = time.perf_counter()
                try:
                    response = session.post(f"{instances[turn % len(instances)]}/o/token/", data=data, timeout=30)
                except requests.ConnectionError:
                    # Counted, not fatal: a reset kept-alive connection must not end this client unseen.
                    with lock:
                        statuses["connection error"] += 1
                    session = requests.Session()
                    break
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies[kind].append(elapsed)
                    statuses[str(response.status_code)] += 1
                if response.status_code != 200:
                    break
                data = {
                    "grant_type": "refresh_token",
                    "refresh_token": response.json()["refresh_token"],
                    "client_id": client_id,
                }
                kind = "refresh"

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = time.monotonic() - started

    def percentiles(values):
        if len(values) < 2:
            return {}
        cuts = statistics.quantiles(values, n=100)
        return {"p50": round(cuts[49], 2), "p90": round(cuts[89], 2), "p99": round(cuts[98], 2)}

    total = sum(statuses.values())
    return {
        "seconds": round(elapsed, 2),
        "concurrency": concurrency,
        "requests": total,
        "throughput_per_second": round(total / elapsed, 1),
        "statuses": dict(statuses),
        "server_errors": sum(count for status, count in statuses.items() if status.startswith("5")),
        "latency_ms": {kind: percentiles(values) for kind, values in latencies.items()},
    }


def main():
    from tests.servers import production_stack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    logins = [f"user{n}" for n in range(args.concurrency)]

    with tempfile.TemporaryDirectory() as directory:
        with production_stack(
            directory, realm="load", logins=logins, password=PASSWORD, DATABASE_CONN_MAX_AGE="60"
        ) as stack:
            report = run_load(
                stack.instances, stack.client_id, logins, PASSWORD, seconds=args.seconds, concurrency=args.concurrency
            )

    print(f"{'requests':>9} {'per s':>7} {'5xx':>5}  {'grant':<9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for kind, cuts in report["latency_ms"].items():
        print(
            f"{report['requests']:>9} {report['throughput_per_second']:>7} {report['server_errors']:>5}  "
            f"{kind:<9} {cuts.get('p50', 0):>8} {cuts.get('p90', 0):>8} {cuts.get('p99', 0):>8}"
        )
    print(f"statuses: {report['statuses']}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(report, indent=2))
    print(f"JSON: {out / 'load.json'}")


if __name__ == "__main__":
    main()
