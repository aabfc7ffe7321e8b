"""A bounded load run against the production profile: PostgreSQL, Redis and two gunicorn
instances of example_project, all started on loopback by this script and stopped after.
Mixed password and refresh grants from concurrent clients, first at our endpoint, then at DOT's
stock one on the same servers (its password grant let through its gate, the same users); prints
throughput and latency percentiles of both and writes benchmarks/results/load.json.

    make bench [QUICK=1]    # or: .venv/bin/python benchmarks/load.py [--seconds 30] [--concurrency 32]
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
WARM_UP_SECONDS = 2
REFRESHES_PER_SIGN_IN = 3


def run_load(instances, client_id, logins, password, *, seconds, concurrency, endpoint="/o/token/"):
    """Each client signs in, refreshes a few times, and again, until time is up; requests
    alternate between the instances. Only loopback addresses are targeted."""
    return summarize(
        [drive(instances, client_id, logins, password, seconds=seconds, concurrency=concurrency, endpoint=endpoint)],
        concurrency,
    )


def drive(instances, client_id, logins, password, *, seconds, concurrency, endpoint):
    """One bounded run: ``(latencies by grant, statuses, elapsed seconds)``."""
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
                    response = session.post(f"{instances[turn % len(instances)]}{endpoint}", data=data, timeout=30)
                except (requests.ConnectionError, requests.Timeout) as failure:
                    # Counted, not fatal: a reset kept-alive connection or an answer that never came
                    # must not end this client unseen.
                    with lock:
                        statuses["timeout" if isinstance(failure, requests.Timeout) else "connection error"] += 1
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
    return latencies, statuses, time.monotonic() - started


def summarize(runs, concurrency):
    """One report of several runs of one side: their requests, latencies and time added up."""
    latencies, statuses, elapsed = {"password": [], "refresh": []}, Counter(), 0.0
    for run_latencies, run_statuses, run_elapsed in runs:
        for kind, values in run_latencies.items():
            latencies[kind] += values
        statuses.update(run_statuses)
        elapsed += run_elapsed

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
        # Only answers that gave tokens: a side that refused fast must not look faster.
        "throughput_per_second": round(statuses["200"] / elapsed, 1),
        "statuses": dict(statuses),
        # A 5xx, or no answer at all: either is a request the server failed.
        "server_errors": sum(count for status, count in statuses.items() if status[0] not in "1234"),
        "latency_ms": {kind: percentiles(values) for kind, values in latencies.items()},
    }


# Each side's users: ours signs in by login name in the realm; DOT's stock endpoint knows Django
# users only, so it signs in the same accounts by their Django username (login@realm).
SIDES = {"ours": ("/o/token/", "{login}"), "dot": ("/dot/token/", "{login}@load")}


# Django's default hasher makes the run a measure of PBKDF2 on two cores, the same for both sides;
# a cheap one leaves the endpoints themselves to bound it.
HASHERS = ("default", "cheap")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="per side and hasher")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--hasher", choices=HASHERS, action="append", help="only this one (default: both)")
    parser.add_argument("--quick", action="store_true", help="a quick look: the cheap hasher, 5 seconds per side")
    args = parser.parse_args()
    if args.quick:
        # Five seconds of PBKDF2-bound load is a handful of sign-ins: no figure at all.
        args.seconds, args.hasher = 5, args.hasher or ["cheap"]
    result = {}
    for hasher in args.hasher or HASHERS:
        reports = compare(hasher, seconds=args.seconds, concurrency=args.concurrency)
        for side, report in reports.items():
            if not report["throughput_per_second"]:
                # No ratio to give: say what the side answered instead.
                raise SystemExit(f"{side}'s endpoint gave no tokens ({hasher} hasher): {report['statuses']}")
        ratio = reports["ours"]["throughput_per_second"] / reports["dot"]["throughput_per_second"]
        print_reports(hasher, reports, ratio)
        result[f"{hasher}_hasher"] = {**reports, "throughput_ours_vs_dot": round(ratio, 4)}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(result, indent=2))
    print(f"JSON: {out / 'load.json'}")


def compare(hasher, *, seconds, concurrency):
    """Both sides on one fresh stack whose password hasher is ``hasher``: a report per side."""
    from tests.servers import production_stack

    logins = [f"user{n}" for n in range(concurrency)]
    with tempfile.TemporaryDirectory() as directory:
        with production_stack(
            directory,
            realm="load",
            logins=logins,
            password=PASSWORD,
            DATABASE_CONN_MAX_AGE="60",
            DJANGO_SETTINGS_MODULE="benchmarks.load_settings",
            LOAD_HASHER=hasher,
            PYTHONWARNINGS="ignore::DeprecationWarning",  # DOT's nag about the password grant
        ) as stack:

            def side_run(side, seconds):
                endpoint, username = SIDES[side]
                users = [username.format(login=login) for login in logins]
                return drive(
                    stack.instances,
                    stack.client_id,
                    users,
                    PASSWORD,
                    seconds=seconds,
                    concurrency=concurrency,
                    endpoint=endpoint,
                )

            # Uncounted: the workers' first requests import and prepare what every later one reuses.
            for side in SIDES:
                side_run(side, WARM_UP_SECONDS)
            # Half the time each, in the order ours, DOT, DOT, ours: a slow spell of the machine
            # falls on both sides alike.
            runs = {side: [] for side in SIDES}
            for side in ("ours", "dot", "dot", "ours"):
                runs[side].append(side_run(side, seconds / 2))
    return {side: summarize(side_runs, concurrency) for side, side_runs in runs.items()}


def print_reports(hasher, reports, ratio):
    print(f"{hasher} hasher")
    header = f"{'side':<5} {'requests':>9} {'per s':>7} {'errors':>6}  {'grant':<9}"
    print(header + f" {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for side, report in reports.items():
        for kind, cuts in report["latency_ms"].items():
            print(
                f"{side:<5} {report['requests']:>9} {report['throughput_per_second']:>7} {report['server_errors']:>6}  "
                f"{kind:<9} {cuts.get('p50', 0):>8} {cuts.get('p90', 0):>8} {cuts.get('p99', 0):>8}"
            )
        print(f"{side:<5} statuses: {report['statuses']}")
    print(f"throughput, ours ÷ DOT stock ({hasher} hasher): {ratio:.3f}\n")


if __name__ == "__main__":
    main()
