import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone
from oauth2_provider.models import RefreshToken, get_application_model

from ropc_provider import tokens
from ropc_provider.models import SecurityEvent, Session
from tests.factories import PASSWORD, AccountFactory
from tests.helpers import assert_error, me


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
    ("command", "action"),
    [("ropc_client", "list"), ("ropc_realm", "list"), ("ropc_user", "create"), ("ropc_audit", "purge")],
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


# -- ropc_sessions, ropc_audit, and the operator on the audit trail ----------------------------------


def call(command, *args):
    """Run a command as an operator would; its stdout parsed, and both streams as printed."""
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), out.getvalue() + err.getvalue()


def sign_in(api, app, **extra):
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_id": app.client_id}
    response = api.token(data, **extra)
    assert response.status_code == 200, response.content
    return response.data


def assert_no_token_in(printed, *bodies):
    for body in bodies:
        for name in ("access_token", "refresh_token", "id_token"):
            if body.get(name):
                assert body[name] not in printed, name


def test_sessions_list_shows_a_sign_ins_session(db, api, employees_app):
    realm, app = employees_app
    body = sign_in(api, app, REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="ExampleApp/2.1 (iPhone)")
    result, printed = call("ropc_sessions", "list", "--realm", "employees", "--username", "ALICE")
    assert (result["realm"], result["username"]) == ("employees", "alice")
    [shown] = result["sessions"]
    session = Session.objects.get()
    # Last used: its newest refresh token's issue, the sign-in's own here.
    last_used = datetime.fromisoformat(shown.pop("last_used_at"))
    assert session.started_at <= last_used <= timezone.now()
    assert shown == {
        "id": str(session.pk),
        "client": "Staff",
        "client_id": app.client_id,
        "realm": "employees",
        "started_at": session.started_at.isoformat(),
        "ip_address": "198.51.100.7",
        "user_agent": "ExampleApp/2.1 (iPhone)",
    }
    assert_no_token_in(printed, body)


def test_sessions_list_leaves_out_ended_sessions_and_other_accounts(db, api, employees_app):
    realm, app = employees_app
    AccountFactory(realm=realm, login_name="bob", password=PASSWORD)
    sign_in(api, app)
    ended = sign_in(api, app)
    api.token({"grant_type": "password", "username": "bob", "password": PASSWORD, "client_id": app.client_id})
    api.post("/o/revoke_token/", {"token": ended["refresh_token"], "client_id": app.client_id})
    result, _ = call("ropc_sessions", "list", "--realm", "employees", "--username", "alice")
    assert len(result["sessions"]) == 1
    assert result["sessions"][0]["id"] != str(tokens.find_refresh_token(ended["refresh_token"]).token_family)
    assert call("ropc_sessions", "list", "--realm", "employees", "--username", "bob")[0]["username"] == "bob"


@pytest.mark.parametrize(
    ("realm", "username", "message"), [("nowhere", "alice", "No realm"), ("employees", "nobody", "no account")]
)
def test_sessions_list_of_an_unknown_realm_or_account_is_an_error(db, employees_app, realm, username, message):
    with pytest.raises(CommandError, match=message):
        call_command("ropc_sessions", "list", "--realm", realm, "--username", username, stdout=io.StringIO())


def test_sessions_end_ends_that_session_only(db, api, employees_app):
    realm, app = employees_app
    phone = sign_in(api, app, REMOTE_ADDR="198.51.100.7")
    laptop = sign_in(api, app, REMOTE_ADDR="203.0.113.5")
    listed, printed_list = call("ropc_sessions", "list", "--realm", "employees", "--username", "alice")
    [laptop_id] = [s["id"] for s in listed["sessions"] if s["ip_address"] == "203.0.113.5"]

    result, printed_end = call("ropc_sessions", "end", laptop_id)
    assert result == {
        "ended": laptop_id,
        "realm": "employees",
        "username": "alice",
        "client_id": app.client_id,
        "reason": "operator",
    }
    assert_error(api.refresh(app, laptop["refresh_token"]), 400, "invalid_grant")
    assert me(api, laptop).status_code == 401
    assert me(api, phone).status_code == 200
    assert api.refresh(app, phone["refresh_token"]).status_code == 200
    after, printed_after = call("ropc_sessions", "list", "--realm", "employees", "--username", "alice")
    assert [s["ip_address"] for s in after["sessions"]] == ["198.51.100.7"]

    session = Session.objects.get(pk=laptop_id)
    assert (session.end_reason, session.ended_at is not None) == (Session.OPERATOR, True)
    [event] = SecurityEvent.objects.filter(type=SecurityEvent.SESSION_ENDED)
    assert (str(event.session_id), event.reason, event.realm, event.client_id) == (
        laptop_id,
        "operator",
        "employees",
        app.client_id,
    )
    assert event.actor.startswith("command line")
    assert_no_token_in(printed_list + printed_end + printed_after, phone, laptop)


def test_ending_an_ended_session_again_is_an_error_and_records_nothing(db, api, employees_app):
    realm, app = employees_app
    body = sign_in(api, app)
    session_id = str(tokens.find_refresh_token(body["refresh_token"]).token_family)
    call("ropc_sessions", "end", session_id)
    with pytest.raises(CommandError, match="already ended"):
        call_command("ropc_sessions", "end", session_id, stdout=io.StringIO())
    assert SecurityEvent.objects.filter(type=SecurityEvent.SESSION_ENDED).count() == 1
    # A session the user signed out of is no operator's to end either.
    other = sign_in(api, app)
    api.post("/o/revoke_token/", {"token": other["refresh_token"], "client_id": app.client_id})
    other_id = str(tokens.find_refresh_token(other["refresh_token"]).token_family)
    with pytest.raises(CommandError, match="already ended"):
        call_command("ropc_sessions", "end", other_id, stdout=io.StringIO())
    assert Session.objects.get(pk=other_id).end_reason != Session.OPERATOR


@pytest.mark.parametrize(
    ("session_id", "message"),
    [
        ("0190a6b4-9f3e-7abc-8def-0123456789ab", "No session"),
        ("1 OR 1=1", "not a session id"),
        ("", "not a session id"),
        ("0190a6b4-9f3e-7abc-8def", "not a session id"),
    ],
)
def test_ending_an_unknown_or_malformed_session_is_an_error(db, api, employees_app, session_id, message):
    realm, app = employees_app
    body = sign_in(api, app)
    with pytest.raises(CommandError, match=message):
        call_command("ropc_sessions", "end", session_id, stdout=io.StringIO())
    assert api.refresh(app, body["refresh_token"]).status_code == 200
    assert not SecurityEvent.objects.filter(type=SecurityEvent.SESSION_ENDED).exists()


def test_a_malformed_session_id_on_the_command_line_exits_non_zero_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "manage.py", "ropc_sessions", "end", "not-a-uuid"],
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert "not a session id" in result.stderr and "Traceback" not in result.stderr


def old_event(days, event_type=SecurityEvent.SIGN_IN_FAILED):
    return SecurityEvent.objects.create(time=timezone.now() - timedelta(days=days), type=event_type, reason="old")


def test_audit_purge_deletes_what_is_past_the_retention(db, api, employees_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "AUDIT_RETENTION_DAYS": 30}
    realm, app = employees_app
    gone = [old_event(31), old_event(400, SecurityEvent.SESSION_ENDED)]
    kept = old_event(29)
    ended = sign_in(api, app)
    live = sign_in(api, app)
    ended_id = tokens.find_refresh_token(ended["refresh_token"]).token_family
    call("ropc_sessions", "end", str(ended_id))
    Session.objects.filter(pk=ended_id).update(ended_at=timezone.now() - timedelta(days=31))
    RefreshToken.objects.filter(token_family=ended_id).delete()  # as cleartokens does, by then
    recent = set(SecurityEvent.objects.filter(time__gt=timezone.now() - timedelta(days=1)).values_list("pk", flat=True))

    result, printed = call("ropc_audit", "purge")
    assert result == {"events": 2, "sessions": 1}
    remaining = set(SecurityEvent.objects.values_list("pk", flat=True))
    assert remaining == recent | {kept.pk} and not remaining & {event.pk for event in gone}
    assert list(Session.objects.values_list("pk", flat=True)) == [
        tokens.find_refresh_token(live["refresh_token"]).token_family
    ]
    assert api.refresh(app, live["refresh_token"]).status_code == 200
    assert call("ropc_audit", "purge")[0] == {"events": 0, "sessions": 0}
    assert_no_token_in(printed, ended, live)


def test_audit_purge_days_overrides_the_retention_for_one_run(db, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "AUDIT_RETENTION_DAYS": 90}
    older, newer = old_event(11), old_event(9)
    assert call("ropc_audit", "purge")[0] == {"events": 0, "sessions": 0}
    assert call("ropc_audit", "purge", "--days", "10")[0] == {"events": 1, "sessions": 0}
    assert list(SecurityEvent.objects.values_list("pk", flat=True)) == [newer.pk]
    assert not SecurityEvent.objects.filter(pk=older.pk).exists()
    for days in ("0", "-1", "ten"):
        with pytest.raises(CommandError, match="--days"):
            call_command("ropc_audit", "purge", "--days", days, stdout=io.StringIO())
    assert SecurityEvent.objects.count() == 1


def test_changes_made_on_the_command_line_name_the_operator(db, api, employees_app, monkeypatch):
    realm, app = employees_app
    sign_in(api, app)
    monkeypatch.setattr("getpass.getuser", lambda: "ops-anna")
    call("ropc_revoke", "--realm", "employees", "--username", "alice")
    [cutoff] = SecurityEvent.objects.filter(type=SecurityEvent.CUTOFF_MOVED)
    assert cutoff.actor == "command line (ops-anna)"
    assert {event.actor for event in SecurityEvent.objects.filter(type=SecurityEvent.SESSION_ENDED)} == {
        "command line (ops-anna)"
    }
    # Events of the sign-in, not made on the command line, name no operator.
    assert SecurityEvent.objects.get(type=SecurityEvent.SIGN_IN_SUCCEEDED).actor == ""


def test_the_operator_is_command_line_when_the_os_user_cannot_be_told(db, api, employees_app, monkeypatch):
    realm, app = employees_app
    body = sign_in(api, app)

    def no_user():
        raise OSError("No username set in the environment")

    monkeypatch.setattr("getpass.getuser", no_user)
    call("ropc_sessions", "end", str(tokens.find_refresh_token(body["refresh_token"]).token_family))
    assert SecurityEvent.objects.get(type=SecurityEvent.SESSION_ENDED).actor == "command line"
