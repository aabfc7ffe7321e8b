"""The production profile for real: a PostgreSQL server, a Redis server and two gunicorn
instances of example_project on loopback ports, started here and stopped after."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from benchmarks.load import run_load
from tests.servers import example_environment, gunicorn, manage, production_stack

PASSWORD = "production pass phrase 1"
pytestmark = pytest.mark.production


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with production_stack(
        tmp_path_factory.mktemp("stack"), realm="employees", logins=["alice", "bob", "carol", "dave"], password=PASSWORD
    ) as running:
        yield running


def post_token(base, data):
    return requests.post(f"{base}/o/token/", data=data, timeout=30)


def password_grant(stack, base, login="alice", password=PASSWORD):
    return post_token(
        base, {"grant_type": "password", "username": login, "password": password, "client_id": stack.client_id}
    )


def sql(stack, query, *params):

    with psycopg.connect(stack.pg.url()) as connection:
        return connection.execute(query, params).fetchall()


def test_concurrent_refreshes_across_two_instances_have_one_winner(stack):
    issued = password_grant(stack, stack.instances[0]).json()
    # No more requests than the two instances have threads (2 workers x 4 each): one queued behind
    # the others would start after the tolerance and be, rightly, a replay that ends the session.
    barrier = threading.Barrier(8)

    def refresh(index):
        barrier.wait()
        return post_token(
            stack.instances[index % 2],
            {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"], "client_id": stack.client_id},
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(refresh, range(8)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * 7, [r.text for r in responses if r.status_code != 400]
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
    winner = next(r for r in responses if r.status_code == 200).json()
    # One live family afterwards: the winner's pair, and it keeps working on either instance.
    (family,) = sql(
        stack,
        "SELECT token_family FROM oauth2_provider_refreshtoken WHERE token_checksum = encode(sha256(%s), 'hex')",
        winner["refresh_token"].encode(),
    )[0]
    live = sql(
        stack, "SELECT count(*) FROM oauth2_provider_refreshtoken WHERE token_family = %s AND revoked IS NULL", family
    )
    assert live == [(1,)]
    again = post_token(
        stack.instances[1],
        {"grant_type": "refresh_token", "refresh_token": winner["refresh_token"], "client_id": stack.client_id},
    )
    assert again.status_code == 200


def test_lockout_counters_are_shared_between_instances(stack):
    for attempt in range(10):
        response = password_grant(stack, stack.instances[attempt % 2], login="bob", password="wrong")
        assert response.status_code == 400
    for base in stack.instances:
        locked = password_grant(stack, base, login="bob")
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


def test_realm_deactivation_takes_effect_on_every_instance(stack):
    issued = password_grant(stack, stack.instances[0], login="carol").json()
    me = requests.get(
        f"{stack.instances[1]}/api/me/", headers={"Authorization": f"Bearer {issued['access_token']}"}, timeout=30
    )
    assert me.status_code == 200
    shell = "from ropc_provider import realms as r; r.set_realm_active(r.get_realm('employees'), {})"
    manage("shell", "-c", shell.format(False), env=stack.env)
    try:
        for base in stack.instances:
            assert (
                requests.get(
                    f"{base}/api/me/", headers={"Authorization": f"Bearer {issued['access_token']}"}, timeout=30
                ).status_code
                == 401
            )
            assert password_grant(stack, base, login="carol").status_code == 400
    finally:
        manage("shell", "-c", shell.format(True), env=stack.env)
    assert password_grant(stack, stack.instances[1], login="carol").status_code == 200


def test_sign_out_and_client_deactivation_take_effect_on_every_instance(stack):
    mine = password_grant(stack, stack.instances[0], login="alice").json()
    manage("ropc_revoke", "--realm", "employees", "--username", "alice", env=stack.env)
    stale = post_token(
        stack.instances[1],
        {"grant_type": "refresh_token", "refresh_token": mine["refresh_token"], "client_id": stack.client_id},
    )
    assert stale.status_code == 400 and stale.json()["error_description"] == "The session was ended; sign in again."
    other = json.loads(
        manage("ropc_client", "create", "--name", "Doomed", "--public", "--realm", "employees", env=stack.env).stdout
    )
    grant = {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_id": other["client_id"]}
    assert post_token(stack.instances[0], grant).status_code == 200
    shell = (
        "from ropc_provider import clients; from ropc_provider.models import ClientPolicy; "
        f"clients.set_active(ClientPolicy.objects.get(application__client_id={other['client_id']!r}), False)"
    )
    manage("shell", "-c", shell, env=stack.env)
    for base in stack.instances:
        assert post_token(base, grant).status_code == 401


def test_redis_killed_and_restarted(stack):
    stack.redis.kill()
    try:
        for base in stack.instances:
            # Fail-open, as documented: sign-in goes on without attack protection.
            assert password_grant(stack, base, login="dave").status_code == 200
            wrong = password_grant(stack, base, login="dave", password="wrong")
            assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    finally:
        stack.redis.start()
    # Back without restarting anything: counting works again and the next sign-in succeeds.
    for attempt in range(10):
        assert password_grant(stack, stack.instances[attempt % 2], login="dave", password="wrong").status_code == 400
    assert password_grant(stack, stack.instances[0], login="dave").status_code == 429


def test_load_run_has_no_server_errors(stack):

    report = run_load(stack.instances, stack.client_id, ["alice"], PASSWORD, seconds=5, concurrency=16)
    assert report["requests"] > 50
    assert report["server_errors"] == 0, report
    assert report["statuses"].get("200", 0) > 0


CHATTY_APPLICATION = """
import sys

def application(environ, start_response):
    sys.stderr.write("a line a library logs on every request\\n" * 1000)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_a_server_that_logs_on_every_request_keeps_answering(tmp_path):
    # DOT logs a warning on each of its password grants: the load run's servers must not stall
    # once their log outgrows what a pipe holds.
    (tmp_path / "chatty.py").write_text(CHATTY_APPLICATION)
    env = example_environment(PYTHONPATH=str(tmp_path))
    with gunicorn(env, workers=1, threads=1, application="chatty:application") as base:
        for _ in range(5):
            assert requests.get(base, timeout=10).text == "ok"


def test_postgresql_stopped_and_started(stack):
    before = password_grant(stack, stack.instances[0]).json()
    assert "refresh_token" in before, before
    # Sign-ins keep arriving while the server goes down, so some die mid-transaction.
    stop_traffic, seen = threading.Event(), []

    def traffic(base):
        while not stop_traffic.is_set():
            try:
                seen.append(password_grant(stack, base).status_code)
            except requests.RequestException:
                seen.append(None)

    senders = [threading.Thread(target=traffic, args=(base,)) for base in stack.instances * 2]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 30
    while 200 not in seen and time.monotonic() < deadline:  # traffic flows before the server goes
        time.sleep(0.05)
    stack.pg.stop("fast")
    try:
        for base in stack.instances:
            down = password_grant(stack, base)
            assert down.status_code == 503, down.text
            assert down.headers["Content-Type"] == "application/json"
            assert down.json()["error"] == "temporarily_unavailable"
            refresh = post_token(
                base,
                {"grant_type": "refresh_token", "refresh_token": before["refresh_token"], "client_id": stack.client_id},
            )
            assert refresh.status_code == 503
    finally:
        stop_traffic.set()
        for sender in senders:
            sender.join(timeout=60)
        stack.pg.start()
    assert 200 in seen and 503 in seen and not {status for status in seen} - {200, 503}, set(seen)
    deadline = time.monotonic() + 30
    while True:  # resumes by itself, no restart of the app servers
        response = password_grant(stack, stack.instances[1])
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 200
    after = post_token(
        stack.instances[0],
        {"grant_type": "refresh_token", "refresh_token": before["refresh_token"], "client_id": stack.client_id},
    )
    assert after.status_code == 200
    # No half-written pair: every access token of a refresh-token client has its refresh token.
    orphans = sql(
        stack,
        "SELECT count(*) FROM oauth2_provider_accesstoken a WHERE NOT EXISTS "
        "(SELECT 1 FROM oauth2_provider_refreshtoken r WHERE r.access_token_id = a.id)",
    )
    assert orphans == [(0,)]
