"""The audit trail: every security event is produced by its flow, kept as a row an operator can
list in the admin, logged as one JSON object on ``ropc_provider.audit``, and never holds a secret."""

import json
import logging
import subprocess
import sys
import warnings
from datetime import timedelta

import pyotp
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection
from django.db.models.signals import post_save
from django.test import override_settings
from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider.models import AccessToken, get_application_model

from ropc_provider import audit, clients, mfa, protection, sessions, signin, tokens
from ropc_provider.models import SecurityEvent, Session, SessionCutoff
from tests.factories import PASSWORD, AccountFactory, ClientFactory, RealmFactory, UserFactory
from tests.helpers import assert_error, readme_block

CHALLENGE_URL = "/o/authorize-challenge/"


@pytest.fixture
def audit_log(caplog):
    """Every audit record logged, as the JSON objects a SIEM receives."""
    caplog.set_level(logging.INFO, logger="ropc_provider.audit")

    def logged():
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "ropc_provider.audit"]

    return logged


def events(event_type=None):
    found = SecurityEvent.objects.order_by("time", "id")
    return list(found.filter(type=event_type) if event_type else found)


def run_every_flow(api, settings):
    """One of each flow that leaves an event. Returns every secret value the flows used or got."""
    settings.ROPC_PROVIDER = {
        **settings.ROPC_PROVIDER,
        "LOCKOUT_THRESHOLD": 3,
        "IP_FAILURE_LIMIT": 8,
        "REFRESH_TOKEN_REUSE_TOLERANCE": 0,
    }
    staff = RealmFactory(slug="staff")
    old = RealmFactory(slug="old")
    alice, bob, carol = (AccountFactory(realm=staff, login_name=name) for name in ("alice", "bob", "carol"))
    AccountFactory(realm=old, login_name="dave")
    registered = ClientFactory(
        name="Server app", realms=[staff, old], default_realm="staff", confidential=True, scopes=["openid", "read"]
    )
    app, secret = registered.application, registered.client_secret
    used = [alice.password, bob.password, carol.password, secret]

    def grant(login, password, **fields):
        return api.password_grant(app, login, password, secret=secret, **fields)

    assert_error(api.password_grant(app, "alice", alice.password, secret="not-the-secret"), 401, "invalid_client")
    used.append("not-the-secret")  # client authentication failed
    body = grant("alice", alice.password).data  # sign-in succeeded
    used += [body["access_token"], body["refresh_token"]]
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "AUDIT_REFRESH_SUCCEEDED": True}
    refreshed = api.refresh(app, body["refresh_token"], secret=secret).data  # refresh succeeded
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "AUDIT_REFRESH_SUCCEEDED": False}
    used += [refreshed["access_token"], refreshed["refresh_token"]]
    assert_error(api.refresh(app, body["refresh_token"], secret=secret), 400, "invalid_grant")  # reuse detected
    assert_error(api.refresh(app, "not-a-token", secret=secret), 400, "invalid_grant")  # refresh refused

    carol.user.is_active = False
    carol.user.save()  # account changed
    assert_error(grant("carol", carol.password), 400, "invalid_grant")  # inactive
    old.is_active = False
    old.save()  # realm changed
    assert_error(grant("dave", "whatever it is", realm="old"), 400, "invalid_grant")  # realm disabled
    for _ in range(3):
        assert_error(grant("bob", "wrong password"), 400, "invalid_grant")  # lockout started
    assert grant("bob", bob.password).status_code == 429  # locked
    # Wrong credentials, until the address's failures are over its limit: address throttled. (A
    # confidential client would be refused at its own authentication, before any sign-in.)
    native = ClientFactory(name="Native app", realms=[staff], default_realm="staff").application
    answers = [api.password_grant(native, f"nobody{number}", "a guess").status_code for number in range(8)]
    assert 400 in answers and answers[-1] == 429, answers
    used += ["wrong password", "whatever it is", "a guess"]

    # Protection forgets, as time passes, for the two-step sign-in to go on.
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 1000, "LOCKOUT_THRESHOLD": 1000}
    enrolment = mfa.enroll(alice.user)  # second factor enrolled
    used += [enrolment.secret, *enrolment.recovery_codes]
    asked = grant("alice", alice.password, scope="openid read")
    assert asked.status_code == 403, asked.content
    auth_session = asked.data["auth_session"]
    used.append(auth_session)
    right = pyotp.TOTP(enrolment.secret).now()
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    challenge = {"response_type": "code", "auth_session": auth_session}
    refused = api.post(CHALLENGE_URL, {**challenge, "otp": wrong}, basic=(app.client_id, secret))
    assert refused.status_code == 400  # second factor failed
    code = api.post(CHALLENGE_URL, {**challenge, "otp": right}, basic=(app.client_id, secret)).data[
        "authorization_code"
    ]
    two_step = api.token({"grant_type": "authorization_code", "code": code}, basic=(app.client_id, secret)).data
    used += [right, wrong, code, two_step["access_token"], two_step["refresh_token"], two_step["id_token"]]

    # A session DOT's endpoint began, taken over at its first refresh here: session adopted.
    legacy = get_application_model().objects.create(
        name="Legacy", client_type="public", authorization_grant_type="password"
    )
    UserFactory(username="erin")
    dot_grant = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    with override_settings(OAUTH2_PROVIDER=dot_grant), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # DOT's, on every password grant it serves
        at_dot = {"grant_type": "password", "username": "erin", "password": PASSWORD, "client_id": legacy.client_id}
        begun = api.post("/dot/token/", at_dot).data
    taken_over = api.refresh(legacy, begun["refresh_token"]).data
    used += [
        PASSWORD,
        begun["access_token"],
        begun["refresh_token"],
        taken_over["access_token"],
        taken_over["refresh_token"],
    ]

    ended = api.client.delete(
        f"/o/sessions/{tokens.find_refresh_token(two_step['refresh_token']).token_family}/",
        HTTP_AUTHORIZATION=f"Bearer {two_step['access_token']}",
    )
    assert ended.status_code == 204  # session ended
    used += mfa.regenerate_recovery_codes(alice.user)  # recovery codes regenerated, cutoff moved
    mfa.remove(alice.user)  # second factor removed

    with audit.context(actor="ops@example.com"):
        used.append(clients.rotate_secret(app))  # client secret rotated
        policy = app.ropc_policy
        clients.update_client(
            policy,
            name="Server app, renamed",
            scopes=["read"],
            realms=[staff],
            default_realm="staff",
            access_token_lifetime=None,
            refresh_token_lifetime=None,
            issue_refresh_tokens=True,
            refresh_grace_seconds=0,
            may_forward_user_ip=False,
        )  # client changed
        clients.set_active(policy, False)  # client deactivated
    return used


def test_every_event_type_is_recorded_logged_and_listed(api, db, settings, audit_log, client):
    run_every_flow(api, settings)
    recorded = {event.type for event in events()}
    assert recorded == {event_type for event_type, _ in SecurityEvent.TYPES}
    assert [event["type"] for event in audit_log()] == [event.type for event in events()]

    failures = {event.reason for event in events(SecurityEvent.SIGN_IN_FAILED)}
    assert failures == {"invalid_credentials", "inactive", "realm_disabled", "locked", "throttled"}
    [succeeded, *_] = events(SecurityEvent.SIGN_IN_SUCCEEDED)
    assert (succeeded.realm, succeeded.login_name, succeeded.client_name, succeeded.ip_address) == (
        "staff",
        "alice",
        "Server app",
        "127.0.0.1",
    )
    assert Session.objects.filter(pk=succeeded.session_id).exists()
    assert {event.actor for event in events(SecurityEvent.CLIENT_DEACTIVATED)} == {"ops@example.com"}
    assert events(SecurityEvent.LOCKOUT_STARTED)[0].login_name == "bob"
    assert events(SecurityEvent.REUSE_DETECTED)[0].session_id == succeeded.session_id

    admin = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client.force_login(admin)
    for event_type, _ in SecurityEvent.TYPES:
        page = client.get("/admin/ropc_provider/securityevent/", {"type__exact": event_type})
        assert page.status_code == 200
        assert page.context["cl"].result_count == len(events(event_type)) > 0, event_type


def test_no_event_holds_a_secret(api, db, settings, audit_log):
    used = run_every_flow(api, settings)
    rows = [
        json.dumps({field.name: str(getattr(e, field.attname)) for field in SecurityEvent._meta.fields})
        for e in events()
    ]
    logged = [json.dumps(event) for event in audit_log()]
    for secret in used:
        assert len(secret) >= 6, secret  # nothing so short it matches by chance
        for text in rows + logged:
            assert secret not in text


def test_a_client_that_fails_to_authenticate_is_on_record_once_a_minute_per_address(api, db, confidential):
    application, secret = confidential
    with freeze_time(timezone.now()) as clock:
        for guess in ("guess-1", "guess-2", "guess-3"):
            assert_error(api.password_grant(application, "alice", secret=guess, basic=True), 401, "invalid_client")
        assert_error(api.password_grant(application, "alice"), 401, "invalid_client")  # no secret at all
        api.token(_grant_fields("alice", "unknown-client-id"), REMOTE_ADDR="192.0.2.7")
        api.token(_grant_fields("alice", "unknown-client-id"), REMOTE_ADDR="192.0.2.7")
        api.password_grant(application, "alice", secret=secret, basic=True)  # the right one: no event
        clock.tick(61)
        api.password_grant(application, "alice", secret="guess-4", basic=True)
    recorded = [
        (e.reason, e.client_id, e.client_name, e.ip_address) for e in events(SecurityEvent.CLIENT_AUTHENTICATION_FAILED)
    ]
    assert recorded == [
        ("wrong_secret", application.client_id, "Server app", "127.0.0.1"),
        # Whatever was sent as the id of no client is not kept: it may be a secret pasted there.
        ("unknown_client", "", "", "192.0.2.7"),
        ("wrong_secret", application.client_id, "Server app", "127.0.0.1"),
    ]


def _grant_fields(login, client_id):
    return {"grant_type": "password", "username": login, "password": PASSWORD, "client_id": client_id}


def test_unknown_account_and_wrong_password_are_one_category(api, user, public_app):
    api.password_grant(public_app, "alice", "not her password")
    api.password_grant(public_app, "nobody", "not his password")
    assert [(e.login_name, e.reason) for e in events(SecurityEvent.SIGN_IN_FAILED)] == [
        ("alice", "invalid_credentials"),
        ("nobody", "invalid_credentials"),
    ]


def test_the_login_name_is_recorded_as_typed_after_normalisation(api, user, public_app):
    api.password_grant(public_app, "ALICE", "not her password")
    assert events(SecurityEvent.SIGN_IN_FAILED)[0].login_name == "alice"


def test_a_refused_address_is_on_record_once_a_minute(api, db, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 2}
    with freeze_time(timezone.now()) as clock:
        for number in range(6):
            api.password_grant(public_app, f"nobody{number}", "a guess")
        assert len(events(SecurityEvent.ADDRESS_THROTTLED)) == 1
        assert [e.reason for e in events(SecurityEvent.SIGN_IN_FAILED)].count("throttled") == 1
        clock.tick(61)
        api.password_grant(public_app, "nobody", "a guess")
    assert len(events(SecurityEvent.ADDRESS_THROTTLED)) == 2


def test_a_successful_refresh_is_not_recorded_by_default(api, user, public_app, audit_log):
    body = api.password_grant(public_app, "alice").data
    assert api.refresh(public_app, body["refresh_token"]).status_code == 200
    assert [e.type for e in events()][-1:] == [SecurityEvent.SIGN_IN_SUCCEEDED]
    assert [e["type"] for e in audit_log()][-1:] == [SecurityEvent.SIGN_IN_SUCCEEDED]


@pytest.mark.parametrize("atomic_requests", [False, True], ids=["autocommit", "ATOMIC_REQUESTS"])
@pytest.mark.django_db(transaction=True)
def test_a_sign_in_whose_transaction_rolls_back_is_still_recorded(api, public_app, monkeypatch, atomic_requests):
    UserFactory(username="alice")
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)

    def database_gives_way(sender, **kwargs):
        # A receiver of the host's, or the database itself, failing after the tokens were written.
        raise OperationalError("could not serialize access")

    post_save.connect(database_gives_way, sender=AccessToken, dispatch_uid="test.rollback")
    try:
        response = api.password_grant(public_app, "alice")
    finally:
        post_save.disconnect(dispatch_uid="test.rollback", sender=AccessToken)
    assert_error(response, 503, "temporarily_unavailable")
    assert not AccessToken.objects.exists() and not Session.objects.exists()
    [failed] = events(SecurityEvent.SIGN_IN_FAILED)
    assert (failed.reason, failed.login_name, failed.client_id) == ("error", "alice", public_app.client_id)


def test_purge_keeps_what_the_retention_keeps(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "AUDIT_RETENTION_DAYS": 30}
    with freeze_time(timezone.now() - timedelta(days=31)):
        old = api.password_grant(public_app, "alice").data
        api.post("/o/revoke_token/", {"token": old["refresh_token"], "client_id": public_app.client_id})
    recent = api.password_grant(public_app, "alice").data
    assert audit.purge() == {"events": 2, "sessions": 0}  # its revoked refresh token is still stored
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "REFRESH_TOKEN_EXPIRE_SECONDS": 30 * 24 * 3600}
    call_command("cleartokens")
    assert audit.purge() == {"events": 0, "sessions": 1}
    assert not SecurityEvent.objects.filter(time__lt=timezone.now() - timedelta(days=30)).exists()
    assert len(events(SecurityEvent.SIGN_IN_SUCCEEDED)) == 1
    assert list(Session.objects.values_list("pk", flat=True)) == [
        tokens.find_refresh_token(recent["refresh_token"]).token_family
    ]


def test_purge_refuses_a_cutoff_before_the_calendar_begins(db):
    with pytest.raises(CommandError, match="at most 36500 days"):
        call_command("ropc_audit", "purge", "--days", "1000000")


def test_a_signed_out_token_presented_after_the_purge_is_no_false_alarm(api, user, public_app, settings):
    # Its session is kept while the token is, so it still answers "session ended", not "reused".
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "AUDIT_RETENTION_DAYS": 30}
    with freeze_time(timezone.now() - timedelta(days=31)):
        old = api.password_grant(public_app, "alice").data
        api.post("/o/revoke_token/", {"token": old["refresh_token"], "client_id": public_app.client_id})
    assert audit.purge()["sessions"] == 0
    refused = api.refresh(public_app, old["refresh_token"])
    assert_error(refused, 400, "invalid_grant")
    assert "ended" in refused.data["error_description"]
    assert events(SecurityEvent.REUSE_DETECTED) == []


def test_the_readmes_logging_block_sends_one_json_object_per_event():
    script = "\n".join(
        [
            "import os, django",
            'os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"',
            "import tests.settings",
            readme_block("LOGGING = {"),
            "tests.settings.LOGGING = LOGGING",
            "django.setup()",
            "from ropc_provider import audit",
            "event = audit._event('sign_in_failed', realm='staff', login_name='alice', reason='invalid_credentials')",
            "audit._log(event)",
        ]
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    event = json.loads(done.stdout.strip().splitlines()[-1])
    assert (event["type"], event["realm"], event["login_name"], event["reason"]) == (
        "sign_in_failed",
        "staff",
        "alice",
        "invalid_credentials",
    )


def test_a_failure_inside_a_callers_lost_transaction_is_logged_not_stored(api, public_app, audit_log, caplog):
    """Called inside a transaction of the caller's (here the test's own) that the failure dooms:
    a row would be lost with it and its attempt would hide the real error; the log keeps it."""
    UserFactory(username="alice")

    def database_gives_way(sender, **kwargs):
        raise OperationalError("could not serialize access")

    post_save.connect(database_gives_way, sender=AccessToken, dispatch_uid="test.doomed")
    try:
        response = api.password_grant(public_app, "alice")
    finally:
        post_save.disconnect(dispatch_uid="test.doomed", sender=AccessToken)
    assert_error(response, 503, "temporarily_unavailable")  # the database's error, not ours
    assert audit_log()[-1]["type"] == SecurityEvent.SIGN_IN_FAILED
    assert "Security event not stored, its transaction is rolling back: sign_in_failed" in caplog.text


def _grant_from(api, app, login, address, **fields):
    data = {"grant_type": "password", "username": login, "password": "a guess", "client_id": app.client_id}
    return api.token({**data, **fields}, REMOTE_ADDR=address)


def test_refusals_that_cost_no_hash_cannot_flood_the_trail(api, db, public_app, settings):
    # Each of these costs the sender nothing: one row a minute per subject, however they vary
    # what they may vary (the addresses of their own IPv6 prefix, their user agent, the token).
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 2}
    staff = RealmFactory(slug="staff", is_active=False)
    app = ClientFactory(realms=[staff, "project"], default_realm="project").application
    with freeze_time(timezone.now()):
        for number in range(8):
            address = f"2001:db8:0:{number:x}::{number + 1}"  # one /56
            _grant_from(api, public_app, f"nobody{number}", address)
            _grant_from(api, app, "dave", f"192.0.2.{number}" if number < 4 else "192.0.2.1", realm="staff")
            api.token(
                {"grant_type": "refresh_token", "refresh_token": f"guess-{number}", "client_id": app.client_id},
                HTTP_USER_AGENT=f"agent {number}",
            )
    reasons = [e.reason for e in events(SecurityEvent.SIGN_IN_FAILED)]
    assert reasons.count("throttled") == 1 and len(events(SecurityEvent.ADDRESS_THROTTLED)) == 1
    assert reasons.count("realm_disabled") == 4  # once for each of four addresses
    assert [e.reason for e in events(SecurityEvent.REFRESH_REFUSED)] == ["unknown_token"]


def test_a_dead_refresh_token_presented_again_and_again_is_on_record_once_a_minute(api, user, public_app):
    body = api.password_grant(public_app, "alice").data
    assert (
        api.client.delete(
            f"/o/sessions/{Session.objects.get().pk}/",
            HTTP_AUTHORIZATION=f"Bearer {body['access_token']}",
        ).status_code
        == 204
    )
    with freeze_time(timezone.now()) as clock:
        for _ in range(5):
            assert_error(api.refresh(public_app, body["refresh_token"]), 400, "invalid_grant")
        clock.tick(61)
        assert_error(api.refresh(public_app, body["refresh_token"]), 400, "invalid_grant")
    assert [e.reason for e in events(SecurityEvent.REFRESH_REFUSED)] == ["session_ended", "session_ended"]


def test_refresh_and_cutoff_events_name_the_realm_and_login(api, db, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "REFRESH_TOKEN_REUSE_TOLERANCE": 0}
    staff = RealmFactory(slug="staff")
    alice = AccountFactory(realm=staff, login_name="alice")
    app = ClientFactory(realms=[staff], default_realm="staff").application
    body = api.password_grant(app, "alice", alice.password).data
    assert api.refresh(app, body["refresh_token"]).status_code == 200
    assert_error(api.refresh(app, body["refresh_token"]), 400, "invalid_grant")  # a replay
    bob = AccountFactory(realm=staff, login_name="bob")
    sessions.revoke_sessions(bob.user, reason=SessionCutoff.OPERATOR)
    named = [
        (e.type, e.realm, e.login_name)
        for e in events()
        if e.type in (SecurityEvent.REFRESH_REFUSED, SecurityEvent.REUSE_DETECTED, SecurityEvent.CUTOFF_MOVED)
    ]
    assert named == [
        (SecurityEvent.REUSE_DETECTED, "staff", "alice"),
        (SecurityEvent.REFRESH_REFUSED, "staff", "alice"),
        (SecurityEvent.CUTOFF_MOVED, "staff", "bob"),
    ]


def test_more_checks_of_one_name_at_once_than_it_has_failures_left_is_its_own_reason(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "LOCKOUT_THRESHOLD": 1}
    # A check of alice's password is running (another request), and she has one failure left.
    protection.begin(realm_slug="project", login_key=signin.project_lockout_key("alice"), ip="192.0.2.7")
    assert api.password_grant(public_app, "alice").status_code == 429
    assert [e.reason for e in events(SecurityEvent.SIGN_IN_FAILED)] == ["too_many_at_once"]


def test_deleting_a_client_is_on_record_with_the_sessions_it_ends(api, db):
    staff = RealmFactory(slug="staff")
    AccountFactory(realm=staff, login_name="bob", password=PASSWORD)
    registered = ClientFactory(realms=[staff], default_realm="staff")
    assert api.password_grant(registered.application, "bob").status_code == 200
    registered.application.ropc_policy.delete()
    assert not Session.objects.exists()  # gone with their client, but not unrecorded:
    ended = SecurityEvent.objects.get(type=SecurityEvent.SESSION_ENDED)
    assert (ended.login_name, ended.realm, ended.reason) == ("bob", "staff", Session.CLIENT_DEACTIVATED)
    assert SecurityEvent.objects.filter(type=SecurityEvent.CLIENT_CHANGED, reason="deleted").count() == 1


def test_deleting_a_realm_is_on_record(db):
    # A realm with accounts, or some client's default, is protected: no session can go with one.
    RealmFactory(slug="retired").delete()
    assert SecurityEvent.objects.filter(type=SecurityEvent.REALM_CHANGED, reason="deleted").count() == 1
