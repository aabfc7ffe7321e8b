"""Every way of ending a user's sessions refuses older refresh tokens, revokes older access tokens
at once, and leaves tokens obtained afterwards working."""

import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider.models import AccessToken, RefreshToken

from ropc_provider import accounts, clients, realms, sessions, signals
from ropc_provider.exceptions import InvalidInput
from ropc_provider.models import SessionCutoff
from tests.factories import PASSWORD, ClientFactory, UserFactory
from tests.helpers import assert_error, me
from tests.test_query_counts import REFRESH_GRANT_QUERIES

NEW_PASSWORD = "a brand new pass phrase 7"


def assert_session_ended(api, app, old):
    assert me(api, old).status_code == 401
    response = api.refresh(app, old["refresh_token"])
    assert_error(response, 400, "invalid_grant")
    return response


def change_with_set_password(user, api):
    user.set_password(NEW_PASSWORD)
    user.save()


def change_with_password_change_form(user, api):
    form = PasswordChangeForm(
        user, {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert form.is_valid(), form.errors
    form.save()


def change_with_set_password_form(user, api):
    form = SetPasswordForm(user, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert form.is_valid(), form.errors
    form.save()


def change_in_the_admin(user, api):

    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    api.client.force_login(admin)
    response = api.client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    api.client.logout()


@pytest.mark.parametrize(
    "change",
    [change_with_set_password, change_with_password_change_form, change_with_set_password_form, change_in_the_admin],
)
def test_password_change_ends_sessions(api, user, public_app, change):
    old = api.password_grant(public_app, "alice").data
    change(user, api)
    response = assert_session_ended(api, public_app, old)
    assert response.data["error_description"] == sessions.SESSION_ENDED
    assert SessionCutoff.objects.get(user=user).reason == SessionCutoff.PASSWORD_CHANGED
    new = api.password_grant(public_app, "alice", password=NEW_PASSWORD).data
    assert me(api, new).status_code == 200
    assert api.refresh(public_app, new["refresh_token"]).status_code == 200


def test_sign_out_everywhere(api, user, public_app):
    first = api.password_grant(public_app, "alice").data
    second = api.password_grant(public_app, "alice").data
    response = api.client.post("/o/revoke_sessions/", HTTP_AUTHORIZATION=f"Bearer {second['access_token']}")
    assert response.status_code == 204
    assert response["Cache-Control"] == "no-store"
    for old in (first, second):
        assert_session_ended(api, public_app, old)
    assert SessionCutoff.objects.get(user=user).reason == SessionCutoff.SIGNED_OUT
    assert me(api, api.password_grant(public_app, "alice").data).status_code == 200


@pytest.mark.parametrize(
    ("header", "error"),
    [(None, "unauthorized"), ("Basic Zm9vOmJhcg==", "unauthorized"), ("Bearer nope", "invalid_token")],
)
def test_sign_out_everywhere_needs_a_valid_bearer_token(api, user, public_app, header, error):
    tokens = api.password_grant(public_app, "alice").data
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = api.client.post("/o/revoke_sessions/", **extra)
    assert_error(response, 401, error)
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="oauth"')
    # RFC 6750 §3.1: an error code only when a token was sent.
    assert ("error=" in challenge) is (error == "invalid_token")
    assert me(api, tokens).status_code == 200


def test_sign_out_everywhere_ignores_a_token_in_the_url(api, user, public_app):
    tokens = api.password_grant(public_app, "alice").data
    assert api.client.post(f"/o/revoke_sessions/?access_token={tokens['access_token']}").status_code == 401


def test_operator_command(api, db):
    realm = realms.create_realm(slug="employees")
    accounts.create_account(realm, "Alice", PASSWORD)
    app = clients.register_client(name="Staff", confidential=False, realms=["employees"]).application
    old = api.password_grant(app, "alice").data
    out = io.StringIO()
    call_command("ropc_revoke", "--realm", "employees", "--username", "ALICE", stdout=out)
    result = json.loads(out.getvalue())
    assert result["realm"] == "employees" and result["username"] == "Alice" and result["reason"] == "operator"
    assert timezone.datetime.fromisoformat(result["refresh_tokens_valid_from"]) <= timezone.now()
    assert_session_ended(api, app, old)


def test_operator_command_errors(db):
    realms.create_realm(slug="employees")

    with pytest.raises(CommandError, match="no account"):
        call_command("ropc_revoke", "--realm", "employees", "--username", "nobody")
    with pytest.raises(CommandError, match="No realm"):
        call_command("ropc_revoke", "--realm", "nowhere", "--username", "nobody")


def test_service_function(api, user, public_app):
    old = api.password_grant(public_app, "alice").data
    cutoff = sessions.revoke_sessions(user, reason=SessionCutoff.OPERATOR)
    assert cutoff.refresh_tokens_valid_from <= timezone.now()
    assert_session_ended(api, public_app, old)


def test_deactivation_ends_sessions(api, user, public_app, resource_server):
    old = api.password_grant(public_app, "alice").data
    user.is_active = False
    user.save()
    assert me(api, old).status_code == 401
    assert not AccessToken.objects.filter(user=user).exists()
    assert SessionCutoff.objects.get(user=user).reason == SessionCutoff.ACCOUNT_DEACTIVATED


def test_refused_refresh_token_is_revoked_not_just_refused(api, user, public_app):
    with freeze_time(timezone.now() - timedelta(minutes=5)):
        old = api.password_grant(public_app, "alice").data
    SessionCutoff.objects.create(
        user=user, refresh_tokens_valid_from=timezone.now(), reason=SessionCutoff.OPERATOR
    )  # written directly: the token itself was never touched
    assert_error(api.refresh(public_app, old["refresh_token"]), 400, "invalid_grant")
    assert not RefreshToken.objects.filter(user=user, revoked__isnull=True).exists()


def test_expiry_and_cutoff_are_told_apart(api, db, user):
    app = clients.register_client(name="Short", confidential=False, refresh_token_lifetime=60).application
    start = timezone.now()
    with freeze_time(start):
        tokens = api.password_grant(app, "alice").data
    with freeze_time(start + timedelta(seconds=61)):
        expired = api.refresh(app, tokens["refresh_token"])
    assert expired.data["error_description"] == sessions.REFRESH_TOKEN_EXPIRED != sessions.SESSION_ENDED


def test_cutoff_boundary_in_the_same_second(api, user, public_app):
    cutoff_at = timezone.now().replace(microsecond=400_000)
    with freeze_time(cutoff_at - timedelta(milliseconds=100)):
        before = api.password_grant(public_app, "alice").data
    with freeze_time(cutoff_at):
        sessions.revoke_sessions(user, reason=SessionCutoff.OPERATOR)
        at_the_instant = api.password_grant(public_app, "alice").data
    with freeze_time(cutoff_at + timedelta(milliseconds=100)):
        after = api.password_grant(public_app, "alice").data
        assert_error(api.refresh(public_app, before["refresh_token"]), 400, "invalid_grant")
        assert api.refresh(public_app, at_the_instant["refresh_token"]).status_code == 200
        assert api.refresh(public_app, after["refresh_token"]).status_code == 200


def test_cutoff_never_moves_backwards(user):
    now = timezone.now()
    sessions.revoke_sessions(user, reason=SessionCutoff.OPERATOR, now=now)
    sessions.revoke_sessions(user, reason=SessionCutoff.SIGNED_OUT, now=now - timedelta(seconds=5))
    assert SessionCutoff.objects.get(user=user).refresh_tokens_valid_from == now


def test_one_identity_signs_out_the_same_name_in_another_realm_stays(api, db):
    employees = realms.create_realm(slug="employees")
    customers = realms.create_realm(slug="customers")
    employee = accounts.create_account(employees, "alice", "employee pass phrase 1")
    accounts.create_account(customers, "alice", "customer pass phrase 2")
    app = clients.register_client(name="Both", confidential=False, realms=["employees", "customers"]).application
    as_employee = api.password_grant(app, "alice", password="employee pass phrase 1", realm="employees").data
    as_customer = api.password_grant(app, "alice", password="customer pass phrase 2", realm="customers").data
    response = api.client.post("/o/revoke_sessions/", HTTP_AUTHORIZATION=f"Bearer {as_employee['access_token']}")
    assert response.status_code == 204
    assert_session_ended(api, app, as_employee)
    assert me(api, as_customer).status_code == 200
    assert api.refresh(app, as_customer["refresh_token"]).status_code == 200
    assert SessionCutoff.objects.get().user == employee.user


def test_hash_upgrade_on_login_is_not_a_password_change(api, user, public_app, settings):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    old = api.password_grant(public_app, "alice").data  # upgrades alice's MD5 hash to PBKDF2
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_")
    assert not SessionCutoff.objects.exists()
    assert me(api, old).status_code == 200


def change_with_make_password(user, api):

    user.password = make_password(NEW_PASSWORD)
    user.save()


def change_with_make_password_saving_the_field(user, api):

    user.password = make_password(NEW_PASSWORD)
    user.save(update_fields=["password"])


@pytest.mark.parametrize("change", [change_with_make_password, change_with_make_password_saving_the_field])
def test_a_hash_written_directly_is_a_password_change(api, user, public_app, change):
    old = api.password_grant(public_app, "alice").data
    change(user, api)
    assert_session_ended(api, public_app, old)
    assert SessionCutoff.objects.get(user=user).reason == SessionCutoff.PASSWORD_CHANGED


def test_hash_upgrade_through_djangos_own_login_is_not_a_password_change(api, user, public_app, settings):

    old = api.password_grant(public_app, "alice").data  # while MD5 is the preferred hasher
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert authenticate(username="alice", password=PASSWORD) is not None  # e.g. the admin's login
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_")
    assert not SessionCutoff.objects.exists()
    assert me(api, old).status_code == 200


def test_signal_names_user_realm_and_reason(user):
    received = []

    def listener(**kwargs):
        received.append(kwargs)

    signals.sessions_revoked.connect(listener)
    try:
        sessions.revoke_sessions(user, reason=SessionCutoff.OPERATOR)
    finally:
        signals.sessions_revoked.disconnect(listener)
    (event,) = received
    assert (event["user"], event["realm"].slug, event["reason"]) == (user, "project", "operator")


def test_refresh_queries_stay_within_dot_plus_one(api, user, public_app, django_assert_max_num_queries):
    SessionCutoff.objects.create(
        user=user, refresh_tokens_valid_from=timezone.now() - timedelta(days=1), reason="operator"
    )
    tokens = api.password_grant(public_app, "alice").data

    # The cutoff is read with the refresh token: it costs no query (DOT's refresh takes 13).
    with django_assert_max_num_queries(REFRESH_GRANT_QUERIES):
        assert api.refresh(public_app, tokens["refresh_token"]).status_code == 200


def test_sign_out_everywhere_with_a_token_of_no_user(api, token_of_no_user):
    response = api.client.post("/o/revoke_sessions/", HTTP_AUTHORIZATION=f"Bearer {token_of_no_user}")
    assert_error(response, 401, "invalid_token")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert "issued to a user" in response.json()["error_description"]


def test_unusable_password_ends_sessions(api, user, public_app):
    issued = api.password_grant(public_app, "alice").data
    user.set_unusable_password()
    user.save()
    assert me(api, issued).status_code == 401
    assert_error(api.refresh(public_app, issued["refresh_token"]), 400, "invalid_grant")


def test_saving_an_unchanged_user_without_a_usable_password_ends_nothing(api, db, authorization_code_app):

    sso = UserFactory(username="sso-user")
    sso.set_unusable_password()
    sso.save()
    token = AccessToken.objects.create(
        user=sso,
        application=authorization_code_app,
        token="t" * 30,
        expires=timezone.now() + timezone.timedelta(hours=1),
    )
    cutoff = SessionCutoff.objects.get(user=sso).refresh_tokens_valid_from  # from disabling the password
    sso = type(sso).objects.get(pk=sso.pk)  # loaded afresh, as a profile view would
    sso.first_name = "Sam"
    sso.save()
    assert AccessToken.objects.filter(pk=token.pk).exists()
    assert SessionCutoff.objects.get(user=sso).refresh_tokens_valid_from == cutoff


# -- session limits --------------------------------------------------------------------------------


def _signed_in_at(tokens_body):
    from ropc_provider import tokens

    return tokens.family_started(tokens.find_refresh_token(tokens_body["refresh_token"]))


def test_no_refresh_extends_a_session_past_its_maximum_lifetime(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SESSION_MAX_LIFETIME": 3600}
    with freeze_time(timezone.now()) as clock:
        issued = api.password_grant(public_app, "alice").data
        limit = _signed_in_at(issued) + timedelta(seconds=3600)
        clock.move_to(limit - timedelta(minutes=30))
        refreshed = api.refresh(public_app, issued["refresh_token"]).data
        clock.move_to(limit)  # at the limit itself: still
        refreshed = api.refresh(public_app, refreshed["refresh_token"]).data
        assert "refresh_token" in refreshed
        clock.move_to(limit + timedelta(microseconds=1))
        refused = api.refresh(public_app, refreshed["refresh_token"])
    assert_error(refused, 400, "invalid_grant")
    assert refused.data["error_description"] == "The session has reached its maximum lifetime; sign in again."


def test_a_refresh_after_the_idle_timeout_is_refused(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SESSION_IDLE_TIMEOUT": 600}
    with freeze_time(timezone.now()) as clock:
        issued = api.password_grant(public_app, "alice").data
        clock.tick(600)  # at the timeout itself: still
        refreshed = api.refresh(public_app, issued["refresh_token"]).data
        clock.tick(timedelta(seconds=600, microseconds=1))
        refused = api.refresh(public_app, refreshed["refresh_token"])
    assert_error(refused, 400, "invalid_grant")
    assert refused.data["error_description"] == "The session was idle too long; sign in again."


def test_a_clients_own_limits_win_over_the_settings(api, db, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SESSION_MAX_LIFETIME": 10 * 3600}
    UserFactory(username="alice")
    strict = ClientFactory(session_max_lifetime=100, session_idle_timeout=30).application
    lenient = ClientFactory().application
    # A start on a whole second: the sign-in's time is kept to the millisecond.
    with freeze_time("2026-12-03 12:00:00+00:00") as clock:
        strict_tokens = api.password_grant(strict, "alice").data
        lenient_tokens = api.password_grant(lenient, "alice").data
        clock.tick(31)
        idle = api.refresh(strict, strict_tokens["refresh_token"])
        assert idle.data["error_description"] == "The session was idle too long; sign in again."
        strict_tokens = api.password_grant(strict, "alice").data
        for _ in range(4):  # never idle, up to the maximum itself
            clock.tick(25)
            strict_tokens = api.refresh(strict, strict_tokens["refresh_token"]).data
        assert "refresh_token" in strict_tokens
        clock.tick(25)
        too_old = api.refresh(strict, strict_tokens["refresh_token"])
        assert too_old.data["error_description"] == "The session has reached its maximum lifetime; sign in again."
        assert api.refresh(lenient, lenient_tokens["refresh_token"]).status_code == 200


def test_session_limits_from_the_cli_and_their_rules(db):
    out = io.StringIO()
    call_command(
        "ropc_client", "create", "--name", "Kiosk", "--public",
        "--session-max-lifetime", "3600", "--session-idle-timeout", "300", stdout=out,
    )  # fmt: skip
    described = json.loads(out.getvalue())
    assert (described["session_max_lifetime"], described["session_idle_timeout"]) == (3600, 300)
    with pytest.raises(InvalidInput, match="session idle timeout must be a positive"):
        clients.register_client(name="Broken", confidential=False, session_idle_timeout=0)
