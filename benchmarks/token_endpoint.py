"""Token endpoint cost, side by side in one process: ropc_provider vs DOT's stock TokenView, and
vs the floor of a password grant (one password-hash verification).

Requests go through Django's full request stack (test client, no network). Scenarios alternate
request by request so machine noise hits both sides alike; medians and their ratios are reported.
Prints a table and writes JSON to benchmarks/results/token_endpoint.json.

    make bench              # or: .venv/bin/python benchmarks/token_endpoint.py [--rounds N]
"""

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
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
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from oauth2_provider.models import get_application_model  # noqa: E402

from ropc_provider import clients  # noqa: E402

PASSWORD = "correct horse battery staple"
CHEAP = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def form(client, url, data, **extra):
    return client.generic("POST", url, urlencode(data), content_type="application/x-www-form-urlencoded", **extra)


class Setup:
    def __init__(self, hashers):
        self.client = Client()
        with override_settings(PASSWORD_HASHERS=hashers):
            User = get_user_model()
            self.user = User.objects.create(username=f"bench-{hashers[0].rsplit('.', 1)[-1]}")
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

    def refresh(self, url, application, refresh_token):
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": application.client_id}
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


def refresher(setup, url, application):
    state = {"token": setup.password(url, application)["refresh_token"]}

    def run():
        state["token"] = setup.refresh(url, application, state["token"])["refresh_token"]

    return run


def failure_paths(rounds):
    """What a refused sign-in costs, against the floor: unknown account, wrong password and
    inactive account must each cost one password hash (no timing oracle); a locked identity or a
    throttled address must cost next to nothing (no CPU for the attacker to burn)."""
    from django.core.cache import cache

    from ropc_provider import accounts, protection, realms

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
    rows = [
        ("default hasher", f"refused: {name}", medians[name], floor, "floor")
        for name in ("unknown", "wrong", "inactive", "locked", "throttled")
    ]
    # What an attacker could time: each refusal against a wrong password (should be 0.95-1.05).
    rows += [
        ("default hasher", f"refused: {name}", medians[name], medians["wrong"], "wrong")
        for name in ("unknown", "inactive")
    ]
    return rows


def second_step(rounds):
    """What the second step of a two-step sign-in costs: the challenge endpoint checking a TOTP code
    (no password hash), and the code then redeemed for tokens, each against a refresh."""
    import pyotp

    from ropc_provider import accounts, mfa, realms

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
        ("cheap hasher", "second step: challenge, otp", medians["step"], medians["refresh"], "refresh"),
        ("cheap hasher", "second step: code for tokens", medians["redeem"], medians["refresh"], "refresh"),
        ("cheap hasher", "second step: challenge, otp", medians["step"], floor, "floor"),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="rounds with the cheap hasher")
    parser.add_argument("--hash-rounds", type=int, default=15, help="rounds with Django's default hasher")
    args = parser.parse_args()

    setup_test_environment()
    call_command("migrate", verbosity=0)
    # DOT's per-request nag about the password grant on its own endpoint.
    warnings.simplefilter("ignore", DeprecationWarning)
    logging.getLogger("oauth2_provider").setLevel(logging.ERROR)
    dot_gate_off = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    ours, dot = "/o/token/", "/dot/token/"
    rows = []

    with override_settings(PASSWORD_HASHERS=CHEAP, OAUTH2_PROVIDER=dot_gate_off):
        s = Setup(CHEAP)
        medians = race(
            {
                "ours password": lambda: s.password(ours, s.public),
                "ours password, no records": without_records(lambda: s.password(ours, s.public)),
                "dot password": lambda: s.password(dot, s.public),
                "ours refresh": refresher(s, ours, s.public),
                "dot refresh": refresher(s, dot, s.public),
            },
            args.rounds,
        )
        rows += [
            ("cheap hasher", "password grant, public", medians["ours password"], medians["dot password"], "DOT"),
            (
                "cheap hasher",
                "password grant: session + event",
                medians["ours password"],
                medians["ours password, no records"],
                "bare",
            ),
            ("cheap hasher", "refresh grant, public", medians["ours refresh"], medians["dot refresh"], "DOT"),
        ]

    with override_settings(PASSWORD_HASHERS=DEFAULT, OAUTH2_PROVIDER=dot_gate_off):
        s = Setup(DEFAULT)
        encoded = get_user_model().objects.get(pk=s.user.pk).password
        medians = race(
            {
                "floor": lambda: check_password(PASSWORD, encoded),
                "ours public": lambda: s.password(ours, s.public),
                "ours confidential": lambda: s.password(ours, s.confidential, s.secret),
                "dot public": lambda: s.password(dot, s.public),
                "dot confidential": lambda: s.password(dot, s.dot_confidential, s.dot_secret),
            },
            args.hash_rounds,
        )
        floor = medians["floor"]
        rows += [
            ("default hasher", "password grant, public", medians["ours public"], floor, "floor"),
            ("default hasher", "password grant, confidential", medians["ours confidential"], floor, "floor"),
            ("default hasher", "DOT password grant, public", medians["dot public"], floor, "floor"),
            ("default hasher", "DOT password grant, confidential", medians["dot confidential"], floor, "floor"),
        ]

    rows += failure_paths(args.hash_rounds)
    rows += second_step(args.rounds)

    print(f"{'hasher':<15} {'request':<34} {'median ms':>10} {'vs':>6} {'its ms':>9} {'ratio':>7}")
    results = []
    for hasher, name, value, baseline, against in rows:
        ratio = value / baseline
        print(f"{hasher:<15} {name:<34} {value:>10.2f} {against:>6} {baseline:>9.2f} {ratio:>7.3f}")
        results.append(
            {
                "hasher": hasher,
                "request": name,
                "median_ms": round(value, 3),
                "baseline": against,
                "baseline_ms": round(baseline, 3),
                "ratio": round(ratio, 4),
            }
        )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "token_endpoint.json").write_text(json.dumps({"rounds": vars(args), "results": results}, indent=2))
    print(f"\nJSON: {out / 'token_endpoint.json'}")


if __name__ == "__main__":
    main()
