"""Token endpoint and API cost, side by side in one process: ropc_provider against DOT's stock
endpoint and djangorestframework-simplejwt for a password grant, a refresh and an authenticated API
call; then our paths against their floors (one password-hash verification, a refresh).

Requests go through Django's full request stack (test client, no network). Scenarios alternate
request by request so machine noise hits every side alike; medians and their ratios are reported,
and each request's SQL statements are counted once. Prints two tables and writes JSON with a stable
key per figure to benchmarks/results/token_endpoint.json (benchmarks/README.md explains each).

    make bench [QUICK=1]    # or: .venv/bin/python benchmarks/token_endpoint.py [--quick] [--rounds N]
"""

import argparse
import itertools
import json
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = Path(tempfile.mkdtemp(prefix="ropc-bench-")) / "bench.sqlite3"
os.environ["DATABASE_URL"] = f"sqlite:///{DATABASE}"
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import check_password, make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from oauth2_provider.models import get_application_model  # noqa: E402

from ropc_provider import accounts, clients, realms  # noqa: E402

PASSWORD = "correct horse battery staple"
CHEAP = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def form(client, url, data, **extra):
    return client.generic("POST", url, urlencode(data), content_type="application/x-www-form-urlencoded", **extra)


SETUPS = itertools.count()


class Setup:
    def __init__(self, hashers):
        self.client = Client()
        with override_settings(PASSWORD_HASHERS=hashers):
            User = get_user_model()
            self.user = User.objects.create(username=f"bench-{next(SETUPS)}")
            self.user.set_password(PASSWORD)
            self.user.save()
        self.public = clients.register_client(name="bench public", confidential=False).application
        confidential = clients.register_client(name="bench confidential", confidential=True)
        self.confidential, self.secret = confidential.application, confidential.client_secret
        Application = get_application_model()
        # DOT's own way: a confidential client's secret hashed by DOT's default hasher.
        self.dot_secret = "dot-confidential-secret"
        self.dot_confidential = Application.objects.create(
            name="bench dot confidential",
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_PASSWORD,
            client_secret=self.dot_secret,
        )

    def password(self, url, application, secret=None):
        data = {"grant_type": "password", "username": self.user.username, "password": PASSWORD}
        data["client_id"] = application.client_id
        if secret:
            data["client_secret"] = secret
        response = form(self.client, url, data)
        assert response.status_code == 200, response.content
        return response.json()

    def refresh(self, url, application, refresh_token, secret=None):
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": application.client_id}
        if secret:
            data["client_secret"] = secret
        response = form(self.client, url, data)
        assert response.status_code == 200, response.content
        return response.json()


def without_records(run):
    """``run`` with the session row and the audit event of a sign-in not written (patched out here,
    in the benchmark only): what those two records cost a grant, measured side by side."""
    from ropc_provider import audit, sessions

    def bare():
        start, record = sessions.start, audit.record
        sessions.start, audit.record = (lambda **fields: None), (lambda *args, **fields: None)
        try:
            run()
        finally:
            sessions.start, audit.record = start, record

    return bare


def race(scenarios, rounds):
    """Run each scenario once per round, in alternating order; return medians in milliseconds."""
    samples = {name: [] for name in scenarios}
    names = list(scenarios)
    for round_number in range(rounds):
        order = names if round_number % 2 == 0 else list(reversed(names))
        for name in order:
            started = time.perf_counter()
            scenarios[name]()
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def refresher(setup, url, application, secret=None):
    state = {"token": setup.password(url, application, secret)["refresh_token"]}

    def run():
        state["token"] = setup.refresh(url, application, state["token"], secret)["refresh_token"]

    return run


def failure_paths(rounds):
    """What a refused sign-in costs, against the floor: unknown account, wrong password and
    inactive account must each cost one password hash (no timing oracle); a locked identity or a
    throttled address must cost next to nothing (no CPU for the attacker to burn)."""
    from django.core.cache import cache

    from ropc_provider import protection

    with override_settings(
        PASSWORD_HASHERS=DEFAULT, ROPC_PROVIDER={**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 10**9}
    ):
        realm = realms.create_realm(slug="bench-failures")
        wrong = [accounts.create_account(realm, f"wrong{i}", PASSWORD).user for i in range(rounds)]
        inactive = [accounts.create_account(realm, f"inactive{i}", PASSWORD).user for i in range(rounds)]
        get_user_model().objects.filter(pk__in=[u.pk for u in inactive]).update(is_active=False)
        app = clients.register_client(name="bench failures", confidential=False, realms=[realm.slug]).application
        client = Client()
        encoded = wrong[0].password

        def attempt(login, password="not the password", ip="10.0.0.1", expect=400):
            data = {"grant_type": "password", "username": login, "password": password, "client_id": app.client_id}
            response = form(client, "/o/token/", data, REMOTE_ADDR=ip)
            assert response.status_code == expect, response.content

        for _ in range(10):
            attempt("locked-one")
        throttled_ip = "10.0.0.2"
        # Fill the address's sliding window: it stays full for a whole window from now.
        window = protection._AddressWindow(protection._counted_address(throttled_ip), time.time())
        cache.set_many({key: 10**9 + 1 for key in window.keys}, 600)
        names = {"wrong": iter(wrong), "inactive": iter(inactive), "unknown": iter(range(rounds))}
        medians = race(
            {
                "floor": lambda: check_password(PASSWORD, encoded),
                "unknown": lambda: attempt(f"nobody{next(names['unknown'])}"),
                "wrong": lambda: attempt(next(names["wrong"]).realm_account.login_name),
                "inactive": lambda: attempt(next(names["inactive"]).realm_account.login_name, PASSWORD),
                "locked": lambda: attempt("locked-one", PASSWORD, expect=429),
                "throttled": lambda: attempt("anyone", ip=throttled_ip, expect=429),
            },
            rounds,
        )
    floor = medians["floor"]
    refusals = ("unknown", "wrong", "inactive", "locked", "throttled")
    rows = [
        (f"default.refused_{name}", "default", f"refused: {name}", medians[name], "floor", floor) for name in refusals
    ]
    # What an attacker could time: each refusal against a wrong password (should be 0.95-1.05).
    rows += [
        (f"default.refused_{name}_vs_wrong", "default", f"refused: {name}", medians[name], "wrong", medians["wrong"])
        for name in ("unknown", "inactive")
    ]
    return rows


def second_step(rounds):
    """What the second step of a two-step sign-in costs: the challenge endpoint checking a TOTP code
    (no password hash), and the code then redeemed for tokens, each against a refresh."""
    import pyotp

    from ropc_provider import mfa

    with override_settings(PASSWORD_HASHERS=CHEAP):
        realm = realms.create_realm(slug="bench-mfa")
        app = clients.register_client(
            name="bench mfa", confidential=False, realms=[realm.slug], default_realm=realm.slug
        ).application
        client = Client()
        pending = []
        for number in range(rounds + 1):
            # An account each: a TOTP code is accepted once, and each round needs a fresh one.
            account = accounts.create_account(realm, f"mfa{number}", PASSWORD)
            secret = mfa.enroll(account.user).secret
            data = {"grant_type": "password", "username": account.login_name, "password": PASSWORD}
            response = form(client, "/o/token/", {**data, "client_id": app.client_id})
            assert response.status_code == 403, response.content
            pending.append((response.json()["auth_session"], secret))
        sessions, codes = iter(pending), []

        def step():
            auth_session, secret = next(sessions)
            data = {"response_type": "code", "client_id": app.client_id, "auth_session": auth_session}
            response = form(client, "/o/authorize-challenge/", {**data, "otp": pyotp.TOTP(secret).now()})
            assert response.status_code == 200, response.content
            codes.append(response.json()["authorization_code"])

        def redeem():
            data = {"grant_type": "authorization_code", "code": codes.pop(), "client_id": app.client_id}
            response = form(client, "/o/token/", data)
            assert response.status_code == 200, response.content

        plain = accounts.create_account(realm, "no-factor", PASSWORD)
        grant = {"grant_type": "password", "username": plain.login_name, "password": PASSWORD}
        state = {"token": form(client, "/o/token/", {**grant, "client_id": app.client_id}).json()["refresh_token"]}

        def refresh():
            data = {"grant_type": "refresh_token", "refresh_token": state["token"], "client_id": app.client_id}
            state["token"] = form(client, "/o/token/", data).json()["refresh_token"]

        step()  # one code in hand, whichever of step and redeem a round runs first
        medians = race({"refresh": refresh, "step": step, "redeem": redeem}, rounds)
    with override_settings(PASSWORD_HASHERS=DEFAULT):
        encoded = make_password(PASSWORD)
        floor = race({"floor": lambda: check_password(PASSWORD, encoded)}, 5)["floor"]
    return [
        ("cheap.second_step", "cheap", "second step: challenge, otp", medians["step"], "refresh", medians["refresh"]),
        (
            "cheap.second_step_code",
            "cheap",
            "second step: code for tokens",
            medians["redeem"],
            "refresh",
            medians["refresh"],
        ),
        ("default.second_step", "default", "second step: challenge, otp", medians["step"], "floor", floor),
    ]


def statements(call):
    """How many SQL statements one call runs once warm, as tests/test_query_counts.py counts them:
    transaction control (BEGIN, COMMIT, savepoints) aside. The first call of a process also fills
    caches (the project realm, content types)."""
    call()
    with CaptureQueriesContext(connection) as captured:
        call()
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    return sum(not query["sql"].startswith(control) for query in captured.captured_queries)


PEERS = ("ours", "dot", "simplejwt")
PATHS = ("password_grant", "refresh", "api_call")


def dot_stock():
    """DOT's settings as it ships them: its validator, and the password grant let through its gate."""
    return {
        **settings.OAUTH2_PROVIDER,
        "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False,
        "OAUTH2_VALIDATOR_CLASS": "oauth2_provider.oauth2_validators.OAuth2Validator",
    }


def peers(rounds):
    """Each peer signs the same user in, refreshes, and has an API call authenticated, with its
    stock settings: DOT's ``TokenView`` and ``OAuth2Authentication`` (the password grant let
    through its gate), simplejwt's ``TokenObtainPairView``, ``TokenRefreshView`` and
    ``JWTAuthentication``. Returns ``{path: {peer: (median ms, statements)}}``."""
    dot_settings = dot_stock()
    with override_settings(PASSWORD_HASHERS=CHEAP, OAUTH2_PROVIDER=dot_settings, ROOT_URLCONF="benchmarks.urls"):
        s = Setup(CHEAP)
        credentials = {"username": s.user.username, "password": PASSWORD}

        def jwt_pair():
            response = form(s.client, "/jwt/token/", credentials)
            assert response.status_code == 200, response.content
            return response.json()

        def jwt_refresh(state):
            response = form(s.client, "/jwt/refresh/", {"refresh": state["refresh"]})
            assert response.status_code == 200, response.content

        def api(url, token):
            def call():
                response = s.client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
                assert response.status_code == 200, response.content

            return call

        ours_token = s.password("/o/token/", s.public)["access_token"]
        dot_token = s.password("/dot/token/", s.public)["access_token"]
        jwt = jwt_pair()
        scenarios = {
            ("password_grant", "ours"): lambda: s.password("/o/token/", s.public),
            ("password_grant", "dot"): lambda: s.password("/dot/token/", s.public),
            ("password_grant", "simplejwt"): jwt_pair,
            ("refresh", "ours"): refresher(s, "/o/token/", s.public),
            ("refresh", "dot"): refresher(s, "/dot/token/", s.public),
            ("refresh", "simplejwt"): lambda: jwt_refresh(jwt),
            ("api_call", "ours"): api("/bench/ours/", ours_token),
            ("api_call", "dot"): api("/bench/dot/", dot_token),
            ("api_call", "simplejwt"): api("/bench/jwt/", jwt["access"]),
        }
        counted = {key: statements(call) for key, call in scenarios.items()}
        medians = race(scenarios, rounds)
    return {path: {peer: (medians[path, peer], counted[path, peer]) for peer in PEERS} for path in PATHS}


def against_baselines(args):
    """Our paths against what bounds them: DOT's time where we do more, one password hash where a
    sign-in must cost one, a refresh for the second step. Rows: (key, hasher, label, ms, baseline
    name, baseline ms)."""
    dot_settings = dot_stock()
    ours, dot = "/o/token/", "/dot/token/"
    rows = []
    with override_settings(PASSWORD_HASHERS=CHEAP, OAUTH2_PROVIDER=dot_settings):
        s = Setup(CHEAP)
        realm = realms.create_realm(slug="bench-directory")
        account = accounts.create_account(realm, "alice", PASSWORD)
        directory = clients.register_client(name="bench directory", confidential=False, realms=[realm.slug])

        def directory_grant():
            data = {"grant_type": "password", "username": account.login_name, "password": PASSWORD}
            response = form(s.client, ours, {**data, "client_id": directory.application.client_id})
            assert response.status_code == 200, response.content

        medians = race(
            {
                "ours": lambda: s.password(ours, s.public),
                "bare": without_records(lambda: s.password(ours, s.public)),
                "directory": directory_grant,
                "dot": lambda: s.password(dot, s.public),
            },
            args.rounds,
        )
        rows.append(
            (
                "cheap.password_grant_directory",
                "cheap",
                "password grant, directory realm",
                medians["directory"],
                "DOT",
                medians["dot"],
            )
        )
        rows.append(
            (
                "cheap.session_and_event",
                "cheap",
                "password grant: session + event",
                medians["ours"],
                "bare",
                medians["bare"],
            )
        )

    with override_settings(PASSWORD_HASHERS=DEFAULT, OAUTH2_PROVIDER=dot_settings):
        s = Setup(DEFAULT)
        encoded = get_user_model().objects.get(pk=s.user.pk).password
        medians = race(
            {
                "floor": lambda: check_password(PASSWORD, encoded),
                "ours public": lambda: s.password(ours, s.public),
                "ours confidential": lambda: s.password(ours, s.confidential, s.secret),
                "ours confidential refresh": refresher(s, ours, s.confidential, s.secret),
                "dot public": lambda: s.password(dot, s.public),
                "dot confidential": lambda: s.password(dot, s.dot_confidential, s.dot_secret),
            },
            args.hash_rounds,
        )
        floor = medians["floor"]
        for key, label, name in (
            ("default.password_grant_public", "password grant, public", "ours public"),
            ("default.password_grant_confidential", "password grant, confidential", "ours confidential"),
            ("default.refresh_confidential", "refresh, confidential", "ours confidential refresh"),
            ("default.dot_password_grant_public", "DOT password grant, public", "dot public"),
            ("default.dot_password_grant_confidential", "DOT password grant, confidential", "dot confidential"),
        ):
            rows.append((key, "default", label, medians[name], "floor", floor))

    rows += failure_paths(args.hash_rounds)
    rows += second_step(args.rounds)
    return rows


def environment():
    """What the figures were measured on, so two runs can be told apart."""
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "python": platform.python_version(),
        "packages": {
            name: version(name)
            for name in (
                "django",
                "django-oauth-toolkit",
                "oauthlib",
                "djangorestframework",
                "djangorestframework-simplejwt",
                "ropc-provider",
            )
        },
        "database": f"SQLite {sqlite3.sqlite_version} (a file in a temporary directory)",
        "hashers": {"cheap": CHEAP[0], "default": f"{DEFAULT[0]} (Django's default iterations)"},
        "machine": {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="rounds with the cheap hasher")
    parser.add_argument("--hash-rounds", type=int, default=15, help="rounds with Django's default hasher")
    parser.add_argument("--quick", action="store_true", help="a quick look: 40 and 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.hash_rounds = 40, 3

    setup_test_environment()
    call_command("migrate", verbosity=0)
    # DOT's per-request nag about the password grant on its own endpoint.
    warnings.simplefilter("ignore", DeprecationWarning)
    logging.getLogger("oauth2_provider").setLevel(logging.ERROR)

    compared = peers(args.rounds)
    print("Cheap hasher, SQLite: median ms, statements, and ours ÷ theirs (below 1: we are faster)")
    print(f"{'':<16} {'ours':>8} {'q':>3} | {'DOT stock':>9} {'q':>3} {'÷':>6} | {'simplejwt':>9} {'q':>3} {'÷':>6}")
    peer_results = {}
    for path in PATHS:
        (ours_ms, ours_q), (dot_ms, dot_q), (jwt_ms, jwt_q) = (compared[path][peer] for peer in PEERS)
        print(
            f"{path.replace('_', ' '):<16} {ours_ms:>8.2f} {ours_q:>3}"
            f" | {dot_ms:>9.2f} {dot_q:>3} {ours_ms / dot_ms:>6.3f}"
            f" | {jwt_ms:>9.2f} {jwt_q:>3} {ours_ms / jwt_ms:>6.3f}"
        )
        peer_results[path] = {
            **{peer: {"median_ms": round(ms, 3), "statements": q} for peer, (ms, q) in compared[path].items()},
            "ours_vs_dot": round(ours_ms / dot_ms, 4),
            "ours_vs_simplejwt": round(ours_ms / jwt_ms, 4),
        }
    print(
        "simplejwt keeps no state: a token it issued cannot be revoked or cut off by a password change,\n"
        "and it has no lockout, no realm, no session and no audit record, so its figures are a lower bound.\n"
    )

    print(f"{'hasher':<8} {'request':<36} {'median ms':>10} {'vs':>8} {'its ms':>9} {'ratio':>7}")
    ratios = {}
    for key, hasher, label, value, against, baseline in against_baselines(args):
        ratio = value / baseline
        print(f"{hasher:<8} {label:<36} {value:>10.2f} {against:>8} {baseline:>9.2f} {ratio:>7.3f}")
        ratios[key] = {
            "request": label,
            "hasher": hasher,
            "median_ms": round(value, 3),
            "baseline": against,
            "baseline_ms": round(baseline, 3),
            "ratio": round(ratio, 4),
        }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    result = {"rounds": vars(args), "environment": environment(), "peers": peer_results, "ratios": ratios}
    (out / "token_endpoint.json").write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {out / 'token_endpoint.json'}")


if __name__ == "__main__":
    main()
