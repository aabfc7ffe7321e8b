import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from oauth2_provider.models import get_application_model

from ropc_provider.models import Realm, RealmAccount


def run(command, *args, stdin=None):
    out = io.StringIO()
    kwargs = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(command, *args, stdout=out, **kwargs)
    return json.loads(out.getvalue())


def test_realm_create_and_list(db):
    assert run("ropc_realm", "create", "employees", "--name", "Employees")["source"] == "directory"
    assert run("ropc_realm", "create", "staff", "--source", "project")["source"] == "project"
    run("ropc_user", "create", "--realm", "employees", "alice", "--password-stdin", stdin="pass phrase 1234\n")
    listed = run("ropc_realm", "list")["realms"]
    assert [(r["slug"], r["accounts"]) for r in listed] == [("employees", 1), ("staff", 0)]


@pytest.mark.parametrize(
    "args,message",
    [
        (["create", "bad slug"], "Invalid realm slug"),
        (["create", "employees"], "exists already"),
        (["create", "other", "--source", "project"], "only one"),
    ],
)
def test_realm_errors(db, args, message):
    run("ropc_realm", "create", "employees")
    run("ropc_realm", "create", "project-users", "--source", "project")
    with pytest.raises(CommandError, match=message):
        call_command("ropc_realm", *args)
    assert Realm.objects.count() == 2


def test_user_create_reads_the_password_from_stdin(db, api):
    run("ropc_realm", "create", "employees")
    result = run("ropc_user", "create", "--realm", "employees", "Alice", "--password-stdin", stdin="pass phrase 1234\n")
    assert result == {"realm": "employees", "username": "Alice", "email": None}
    client = run("ropc_client", "create", "--name", "Staff", "--public", "--realm", "employees")
    assert client["realms"] == ["employees"] and client["default_realm"] == "employees"
    app = get_application_model().objects.get(client_id=client["client_id"])
    assert api.password_grant(app, "alice", password="pass phrase 1234").status_code == 200


@pytest.mark.parametrize(
    "realm,stdin,message",
    [
        ("employees", "123\n", "Password rejected"),
        ("employees", "\n", "No password"),
        ("nowhere", "pass phrase 1234\n", "No realm 'nowhere'"),
    ],
)
def test_user_create_errors_write_nothing(db, realm, stdin, message):
    run("ropc_realm", "create", "employees")
    with pytest.raises(CommandError, match=message):
        call_command("ropc_user", "create", "--realm", realm, "bob", "--password-stdin", stdin=io.StringIO(stdin))
    assert not RealmAccount.objects.exists()


def test_client_realm_options(db):
    run("ropc_realm", "create", "employees")
    run("ropc_realm", "create", "customers")
    both = run("ropc_client", "create", "--name", "A", "--public", "--realm", "employees", "--realm", "customers")
    assert both["default_realm"] is None
    with pytest.raises(CommandError, match="must be one of"):
        call_command(
            "ropc_client", "create", "--name", "B", "--public", "--realm", "employees", "--default-realm", "customers"
        )
    with pytest.raises(CommandError, match="No realm"):
        call_command("ropc_client", "create", "--name", "C", "--public", "--realm", "nowhere")
    no_realm = run("ropc_client", "create", "--name", "D", "--public")
    assert no_realm["realms"] == ["project"] and no_realm["default_realm"] == "project"
    assert get_application_model().objects.count() == 2
