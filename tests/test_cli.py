import io
import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from oauth2_provider.models import get_application_model

from tests.factories import PASSWORD


def run(*args):
    out = io.StringIO()
    call_command("ropc_client", *args, stdout=out)
    return json.loads(out.getvalue())


def test_create_public_client(db, api, user):
    result = run("create", "--name", "Mobile", "--public", "--scope", "read")
    assert result["client_type"] == "public"
    assert "client_secret" not in result
    application = get_application_model().objects.get(client_id=result["client_id"])
    assert api.password_grant(application, "alice", password=PASSWORD).status_code == 200


def test_create_confidential_client_shows_the_secret_once(db, api, user):
    result = run("create", "--name", "Backend", "--confidential", "--scope", "read", "--scope", "write")
    assert result["client_type"] == "confidential" and result["scopes"] == ["read", "write"]
    application = get_application_model().objects.get(client_id=result["client_id"])
    response = api.password_grant(application, "alice", secret=result["client_secret"], basic=True)
    assert response.status_code == 200
    listed = run("list")
    assert result["client_secret"] not in json.dumps(listed)
    assert [c["client_id"] for c in listed["clients"]] == [result["client_id"]]


def test_create_resource_server(db):
    result = run("create", "--name", "API", "--resource-server")
    assert result["resource_server"] is True and result["client_type"] == "confidential"
    assert "client_secret" in result


@pytest.mark.parametrize(
    "args,message",
    [
        (["--name", "X", "--public", "--scope", "admin"], "Unknown scope"),
        (["--name", "   ", "--public"], "needs a name"),
        (["--name", "x" * 300, "--public"], "at most 255"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("ropc_client", "create", *args)
    assert not get_application_model().objects.exists()


def test_command_line_errors_exit_non_zero():
    for args in (
        ["create", "--name", "X"],
        ["create", "--name", "X", "--public", "--access-token-lifetime", "0"],
    ):
        result = subprocess.run(
            [sys.executable, "manage.py", "ropc_client", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        )
        assert result.returncode != 0
        assert result.stdout == ""
        assert "error" in result.stderr.lower()


@pytest.mark.parametrize(
    ("command", "action"), [("ropc_client", "list"), ("ropc_realm", "list"), ("ropc_user", "create")]
)
def test_djangos_options_are_taken_after_the_sub_command_too(command, action):

    parser = load_command_class("ropc_provider", command).create_parser("manage.py", command)
    args = [action] + (["--realm", "staff", "alice", "--password-stdin"] if action == "create" else [])
    after = parser.parse_args([*args, "--settings=host.settings", "-v", "2", "--traceback"])
    assert (after.settings, after.verbosity, after.traceback) == ("host.settings", 2, True)
    before = parser.parse_args(["--settings=host.settings", "--verbosity", "0", *args])
    assert (before.settings, before.verbosity) == ("host.settings", 0)  # not reset by the sub-command


def test_a_client_without_scopes_is_shown_with_every_scope_it_may_ask_for(db, settings):
    everything = run("create", "--name", "Any scope", "--public")
    assert everything["scopes"] == sorted(settings.OAUTH2_PROVIDER["SCOPES"]) and everything["all_scopes"] is True
    narrow = run("create", "--name", "Reader", "--public", "--scope", "read")
    assert narrow["scopes"] == ["read"] and narrow["all_scopes"] is False
