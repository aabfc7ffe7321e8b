"""Real servers for the tests that need them, started on loopback in temporary directories and
stopped after: PostgreSQL (Debian's server programs), Redis, and gunicorn running example_project.

Without a program a test skips with the reason on a laptop, and fails under CI=true.
"""

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent


def require(program, found):
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{program} is not installed, and CI must run every test (.ci/run installs it)")
    pytest.skip(f"{program} is not installed")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, timeout=30, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with status {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgreSQL:
    """One PostgreSQL server in a temporary directory. initdb refuses to run as root, so as root
    the server runs as the unprivileged ``postgres`` (or ``nobody``) user."""

    def __init__(self):

        self.bin = require("PostgreSQL server programs (Debian: postgresql)", _postgres_bin())
        # Directly under the system's temporary directory: the server's user must reach it.
        self.directory = Path(tempfile.mkdtemp(prefix="ropc-pg-"))
        self.data = self.directory / "pgdata"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            os.chown(self.directory, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args, check=True):
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user.pw_name, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self):
        self._run("initdb", "-D", str(self.data), "-U", "ropc", "--auth=trust", "-E", "UTF8", "--no-instructions")
        return self

    def start(self):
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "log"), "-w", "start")
        return self

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def create_database(self, name):

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database="ropc"):
        return f"postgres://ropc@127.0.0.1:{self.port}/{database}"


@contextmanager
def postgresql():
    server = PostgreSQL().init().start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.directory, ignore_errors=True)


class Redis:
    def __init__(self, directory):
        self.program = require("redis-server (Debian: redis-server)", shutil.which("redis-server"))
        self.directory = Path(directory)
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [
                self.program,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def redis(directory):
    server = Redis(directory).start()
    try:
        yield server
    finally:
        server.kill()


def example_environment(**extra):
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_SETTINGS")}
    env.update({"DJANGO_SETTINGS_MODULE": "example_project.settings", "PYTHONUNBUFFERED": "1", **extra})
    return env


def manage(*args, env, stdin=None):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


class Stack:
    """PostgreSQL, Redis and two gunicorn instances of example_project, seeded with a realm,
    its accounts and a public client."""

    def __init__(self, **parts):
        self.__dict__.update(parts)


@contextmanager
def production_stack(directory, *, realm, logins, password, instances=2, **env_extra):
    with postgresql() as pg, redis(directory) as cache:
        env = example_environment(
            DATABASE_URL=pg.create_database("ropc"),
            REDIS_URL=cache.url,
            DJANGO_SECRET_KEY="a-secret-key-for-loopback-runs-only-a-secret-key-for-loopback",
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            **env_extra,
        )
        manage("migrate", "--noinput", env=env)
        manage("ropc_realm", "create", realm, env=env)
        seed = (
            "from ropc_provider import accounts, realms\n"
            f"realm = realms.get_realm({realm!r})\n"
            f"for login in {list(logins)!r}: accounts.create_account(realm, login, {password!r})\n"
        )
        manage("shell", "-c", seed, env=env)
        client = manage("ropc_client", "create", "--name", "App", "--public", "--realm", realm, env=env).stdout
        import json

        with ExitStack() as running:
            urls = [running.enter_context(gunicorn(env)) for _ in range(instances)]
            yield Stack(pg=pg, redis=cache, env=env, instances=urls, client_id=json.loads(client)["client_id"])


@contextmanager
def gunicorn(env, *, workers=2, threads=4, application="example_project.wsgi:application"):
    """example_project (or another WSGI ``application``) under gunicorn on a free loopback port;
    yields its base URL."""
    require("gunicorn", shutil.which("gunicorn", path=os.path.dirname(sys.executable)))
    port = free_port()
    # Its log goes to a file, not a pipe: a pipe nobody reads fills up, and then every worker
    # blocks on its next line and the whole server stalls.
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [
                os.path.join(os.path.dirname(sys.executable), "gunicorn"),
                application,
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            try:
                wait_for_port(port, process=process)
            except (RuntimeError, TimeoutError) as failure:
                log.seek(0)
                raise RuntimeError(f"{failure}; gunicorn said:\n{log.read()[-4000:]}") from None
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def start_test_postgresql():
    """For ROPC_TEST_DATABASE=postgresql: one server for the whole test run, its URL exported so
    that child processes (CLI tests) use it too, stopped when the run ends. Returns None when the
    server programs are missing (the run is then skipped, or failed under CI)."""

    if _postgres_bin() is None:
        if os.environ.get("CI") == "true":
            raise RuntimeError("ROPC_TEST_DATABASE=postgresql but PostgreSQL is not installed")
        return None
    server = PostgreSQL().init().start()
    atexit.register(shutil.rmtree, server.directory, True)
    atexit.register(server.stop, "immediate")
    url = server.create_database("ropc")
    os.environ["ROPC_TEST_DATABASE_URL"] = url
    return url
