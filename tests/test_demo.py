"""`make demo` as a newcomer runs it: seeds idempotently, serves on loopback, and the curl line it
prints gets a token from the running server."""

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require_program
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
            return process, curl_line
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

    first, _ = start_demo(port, env)
    stop(first)
    second, curl_line = start_demo(port, env)
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
