"""`make demo` as a newcomer runs it: seeds idempotently, serves on loopback, and the curl line it
prints gets a token from the running server."""

import base64
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import readme_block, require_program
from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def start_demo(port, env):
    process = subprocess.Popen(
        ["make", "--no-print-directory", "demo", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    curl_line, seen = None, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("curl "):
            curl_line = line.strip()
        if curl_line and "Quit the server with" in line:
            return process, curl_line, "".join(seen)
    stop(process)
    pytest.fail("make demo did not start serving:\n" + "".join(seen))


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    process.wait(timeout=20)


def test_make_demo_twice_seeds_once_and_its_curl_line_works(tmp_path):
    require_program("curl")
    database = tmp_path / "demo.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    port = free_port()

    first, _, _ = start_demo(port, env)
    stop(first)
    second, curl_line, printed = start_demo(port, env)
    try:
        wait_for_port(port)
        assert f"http://127.0.0.1:{port}/o/token/" in curl_line
        result = subprocess.run(shlex.split(curl_line), capture_output=True, text=True, timeout=30, check=True)
        token = json.loads(result.stdout)
        assert token["token_type"] == "Bearer" and token["refresh_token"]
        me = subprocess.run(
            [
                "curl",
                "-s",
                "-H",
                f"Authorization: Bearer {token['access_token']}",
                f"http://127.0.0.1:{port}/api/me/",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert json.loads(me.stdout) == {"username": "demo", "realm": "demo", "scopes": ["read"]}
        # The admin's address and how to make an operator; OpenID Connect works on the demo.
        assert f"http://127.0.0.1:{port}/admin/" in printed and "createsuperuser" in printed
        with_openid = subprocess.run([*shlex.split(curl_line), "--data-urlencode", "scope=openid"],
                                     capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
        id_token = json.loads(with_openid.stdout)["id_token"]
        claims = json.loads(base64.urlsafe_b64decode(id_token.split(".")[1] + "=="))
        assert claims["iss"] == f"http://127.0.0.1:{port}/o" and claims["preferred_username"] == "demo"
        follow_the_readme_walkthrough(port, curl_line)
        assert_the_cli_unlocks_what_the_server_locked(port, curl_line, env)
    finally:
        stop(second)

    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from auth_user").fetchone() == (1,)
        assert db.execute("select slug from ropc_provider_realm").fetchall() == [("demo",)]
        assert db.execute("select count(*) from ropc_provider_realmaccount").fetchone() == (1,)
        assert db.execute("select count(*) from oauth2_provider_application").fetchone() == (1,)
        assert db.execute("select count(*) from ropc_provider_clientpolicy").fetchone() == (1,)


def assert_the_cli_unlocks_what_the_server_locked(port, curl_line, env):
    """The demo's server and `manage.py ropc_unlock` are two processes: they must share counters."""
    arguments = shlex.split(curl_line)
    wrong = [arg if not arg.startswith("password=") else "password=not-the-password" for arg in arguments]
    for _ in range(10):
        subprocess.run(wrong, capture_output=True, timeout=30, check=True)
    locked = json.loads(subprocess.run(arguments, capture_output=True, text=True, timeout=30, check=True).stdout)
    assert locked["error"] == "too_many_attempts"
    unlock = subprocess.run(
        [".venv/bin/python", "manage.py", "ropc_unlock", "--realm", "demo", "--username", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(unlock.stdout)["was_locked"] is True
    token = json.loads(subprocess.run(arguments, capture_output=True, text=True, timeout=30, check=True).stdout)
    assert token["token_type"] == "Bearer"


def follow_the_readme_walkthrough(port, curl_line):
    """The README's walkthrough as written, its placeholders filled in as a reader would: each
    command's answer has the keys (and, where the README shows them, the values) it promises."""

    client_id = dict(part.split("=", 1) for part in shlex.split(curl_line) if "=" in part)["client_id"]
    known = {"CLIENT_ID": client_id}
    commands, expected = [], {}
    for line in readme_block("# 1. Get a token").replace("\\\n", " ").splitlines():
        if line.startswith("# {"):
            expected[len(commands) - 1] = json.loads(line[2:].replace('"…"', '"..."'))
        elif line.startswith("curl"):
            commands.append(line.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    assert len(commands) == 4
    for number, command in enumerate(commands):
        for name, value in known.items():
            command = command.replace(name, value)
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True)
        answer = json.loads(done.stdout) if done.stdout else {}
        for key, value in expected.get(number, {}).items():
            assert key in answer and value in ("...", answer[key]), (command, answer)
        if "access_token" in answer:
            known.update(ACCESS_TOKEN=answer["access_token"], REFRESH_TOKEN=answer["refresh_token"])
    # Step 3 rotated the pair and step 4 revoked the new refresh token: neither refreshes now.
    refresh = ["curl", "-s", f"http://127.0.0.1:{port}/o/token/", "-d", "grant_type=refresh_token",
               "-d", f"refresh_token={known['REFRESH_TOKEN']}", "-d", f"client_id={client_id}"]  # fmt: skip
    refused = subprocess.run(refresh, capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(refused.stdout)["error"] == "invalid_grant"
