"""Every way of ending a user's sessions refuses older refresh tokens, revokes older access tokens
at once, and leaves tokens obtained afterwards working."""

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, models, transaction
from django.test import override_settings
from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider import oauth2_validators as dot_validators
from oauth2_provider.models import AccessToken, RefreshToken, get_application_model

from ropc_provider import accounts, clients, realms, sessions, signals, tokens
from ropc_provider.exceptions import InvalidInput
from ropc_provider.models import SecurityEvent, Session, SessionCutoff
from tests.factories import PASSWORD, AccountFactory, ClientFactory, RealmFactory, UserFactory
from tests.helpers import INTROSPECT, assert_error, assert_no_store, me, verify
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


def test_each_session_end_is_heard_once_it_is_committed(api, user, public_app, django_capture_on_commit_callbacks):
    heard = []

    def listener(sender, signal, **kwargs):
        heard.append(kwargs)

    signals.session_ended.connect(listener)
    try:
        signed_in = [api.password_grant(public_app, "alice").data for _ in range(3)]
        mine, other, third = (tokens.find_refresh_token(body["refresh_token"]).token_family for body in signed_in)
        with django_capture_on_commit_callbacks(execute=True):
            signed_out = api.client.delete(
                f"/o/sessions/{mine}/", HTTP_AUTHORIZATION=f"Bearer {signed_in[0]['access_token']}"
            )
            assert signed_out.status_code == 204 and heard == []  # not before the commit
        assert heard == [
            {
                "session_id": mine,
                "user_id": user.pk,
                "realm": "project",
                "login": "alice",
                "client_id": public_app.client_id,
                "reason": Session.SIGNED_OUT,
            }
        ]
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(RuntimeError), transaction.atomic():
                sessions.end_session(Session.objects.get(pk=third), reason=Session.OPERATOR)
                raise RuntimeError("the caller's transaction fails")
        assert len(heard) == 1  # an end that was rolled back is not announced
        with django_capture_on_commit_callbacks(execute=True):
            sessions.revoke_sessions(user, reason=SessionCutoff.OPERATOR)
    finally:
        signals.session_ended.disconnect(listener)
    assert sorted((event["session_id"], event["reason"]) for event in heard[1:]) == sorted(
        [(other, Session.OPERATOR), (third, Session.OPERATOR)]
    )


def _hearing_session_ends():
    heard = []

    def listener(sender, signal, **kwargs):
        heard.append(kwargs)

    signals.session_ended.connect(listener, weak=False, dispatch_uid="test.heard")
    return heard


@pytest.fixture
def heard():
    try:
        yield _hearing_session_ends()
    finally:
        signals.session_ended.disconnect(dispatch_uid="test.heard")


def test_deleting_a_user_ends_their_sessions_on_record_and_heard(
    api, user, public_app, heard, django_capture_on_commit_callbacks
):
    session_id = session_id_of(api.password_grant(public_app, "alice").data)
    with django_capture_on_commit_callbacks(execute=True):
        user.delete()
    assert not Session.objects.exists()  # gone with the user
    assert [(str(event["session_id"]), event["reason"]) for event in heard] == [(session_id, Session.USER_DELETED)]
    ended = SecurityEvent.objects.get(type=SecurityEvent.SESSION_ENDED)
    assert (str(ended.session_id), ended.reason, ended.login_name) == (session_id, Session.USER_DELETED, "alice")


def test_a_receiver_that_fails_neither_changes_the_answer_nor_silences_the_others(
    api, user, public_app, django_capture_on_commit_callbacks, caplog
):
    bodies = [api.password_grant(public_app, "alice").data for _ in range(3)]
    heard = []

    def failing(sender, signal, **kwargs):
        heard.append(kwargs["session_id"])
        raise RuntimeError("a host's receiver fails")

    signals.session_ended.connect(failing, weak=False, dispatch_uid="test.failing")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert end(api, bodies[0], session_id_of(bodies[0])).status_code == 204  # ended, and said so
        with django_capture_on_commit_callbacks(execute=True):
            sessions.revoke_sessions(user, reason=SessionCutoff.OPERATOR)
    finally:
        signals.session_ended.disconnect(dispatch_uid="test.failing")
    assert sorted(map(str, heard)) == sorted(session_id_of(body) for body in bodies)  # each heard
    assert "RuntimeError" in caplog.text


def test_a_sign_out_racing_a_first_refresh_here_leaves_no_session_open(api, user, settings, recwarn, monkeypatch):
    Application = get_application_model()
    legacy = Application.objects.create(
        name="Legacy", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_PASSWORD
    )
    dot_grant = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    with override_settings(OAUTH2_PROVIDER=dot_grant), freeze_time(timezone.now() - timedelta(days=1)):
        begun = api.post("/dot/token/", grant_of(legacy, "alice")).data
    adopt = sessions.adopt

    def signed_out_meanwhile(found, **kwargs):
        # "Sign out everywhere" commits after the refresh read its token, before it takes it over.
        sessions.revoke_sessions(user, reason=SessionCutoff.SIGNED_OUT)
        return adopt(found, **kwargs)

    monkeypatch.setattr(sessions, "adopt", signed_out_meanwhile)
    assert_error(api.refresh(legacy, begun["refresh_token"]), 400, "invalid_grant")
    assert not Session.objects.filter(ended_at__isnull=True).exists()


def test_a_replay_of_our_token_at_dots_endpoint_changes_nothing_of_ours(api, user, public_app, heard):
    first = api.password_grant(public_app, "alice").data
    second = api.refresh(public_app, first["refresh_token"]).data
    with freeze_time(timezone.now() + timedelta(seconds=30)):
        replay = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        assert_error(api.post("/dot/token/", {**replay, "client_id": public_app.client_id}), 400, "invalid_grant")
        # Our endpoint keeps our sessions' rules: the session, its tokens and its limits are ours.
        assert api.refresh(public_app, second["refresh_token"]).status_code == 200
    assert Session.objects.get().ended_at is None and heard == []


class ProxiedUser(get_user_model()):
    """A proxy of the user model, as a project's own user screens often edit (their signals name it)."""

    class Meta:
        proxy = True
        app_label = "tests"


def test_a_user_changed_or_deleted_through_a_proxy_of_the_user_model_ends_their_sessions(api, user, public_app):
    issued = api.password_grant(public_app, "alice").data
    proxied = ProxiedUser.objects.get(pk=user.pk)
    proxied.set_password("a new pass phrase 9")
    proxied.save()
    assert_session_ended(api, public_app, issued)
    session_id = session_id_of(api.password_grant(public_app, "alice", password="a new pass phrase 9").data)
    ProxiedUser.objects.filter(pk=user.pk).delete()
    ended = SecurityEvent.objects.get(type=SecurityEvent.SESSION_ENDED, reason=Session.USER_DELETED)
    assert str(ended.session_id) == session_id


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed-at-rest", "plaintext"])
def test_dots_endpoint_cannot_rotate_a_token_ours_takes_over_while_dot_answers(
    api, user, settings, monkeypatch, recwarn, hashed
):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": hashed}
    Application = get_application_model()
    legacy = Application.objects.create(
        name="Legacy", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_PASSWORD
    )
    with override_settings(OAUTH2_PROVIDER={**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}):
        begun = api.post("/dot/token/", grant_of(legacy, "alice")).data
    refresh = {"grant_type": "refresh_token", "refresh_token": begun["refresh_token"], "client_id": legacy.client_id}
    ours = []
    dots_validation = dot_validators.OAuth2Validator.validate_refresh_token

    def ours_lands_meanwhile(self, *args, **kwargs):
        valid = dots_validation(self, *args, **kwargs)
        # DOT has validated the token (its family still DOT's); our endpoint's refresh of it lands
        # before DOT writes the new pair.
        if not ours:
            ours.append(api.token(refresh))
        return valid

    monkeypatch.setattr(dot_validators.OAuth2Validator, "validate_refresh_token", ours_lands_meanwhile)
    at_dot = api.post("/dot/token/", refresh)
    assert ours[0].status_code == 200, ours[0].content
    # Not a 500, not our new pair handed to another: DOT's own answer to an error while it saves.
    assert (at_dot.status_code, json.loads(at_dot.content)) == (400, {"error": "invalid_grant"})
    assert api.refresh(legacy, ours[0].data["refresh_token"]).status_code == 200


def test_dots_refresh_of_a_token_deleted_while_dot_answers_is_refused(api, user, settings, monkeypatch, recwarn):
    Application = get_application_model()
    legacy = Application.objects.create(
        name="Legacy", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_PASSWORD
    )
    with override_settings(OAUTH2_PROVIDER={**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}):
        begun = api.post("/dot/token/", grant_of(legacy, "alice")).data
    dots_validation = dot_validators.OAuth2Validator.validate_refresh_token

    def cleared_meanwhile(self, *args, **kwargs):
        valid = dots_validation(self, *args, **kwargs)
        RefreshToken.objects.all().delete()  # cleartokens, or its user or client deleted
        return valid

    monkeypatch.setattr(dot_validators.OAuth2Validator, "validate_refresh_token", cleared_meanwhile)
    refresh = {"grant_type": "refresh_token", "refresh_token": begun["refresh_token"], "client_id": legacy.client_id}
    at_dot = api.post("/dot/token/", refresh)
    assert (at_dot.status_code, json.loads(at_dot.content)) == (400, {"error": "invalid_grant"})


def test_revoking_a_token_of_ours_at_dots_revocation_endpoint_ends_its_session_on_record(
    api, user, public_app, heard, django_capture_on_commit_callbacks
):
    issued = api.post("/o/token/", grant_of(public_app, "alice")).data
    with django_capture_on_commit_callbacks(execute=True):
        revoked = api.post("/dot/revoke_token/", {"token": issued["refresh_token"], "client_id": public_app.client_id})
    assert revoked.status_code == 200
    assert _end_reason(issued) == Session.SIGNED_OUT
    assert [event["reason"] for event in heard] == [Session.SIGNED_OUT]


class Employee(get_user_model()):
    """A multi-table child of the user model, a common way to add fields to contrib.auth's User."""

    department = models.CharField(max_length=20, default="")

    class Meta:
        app_label = "tests"


@pytest.mark.django_db(transaction=True)
def test_a_user_changed_through_a_multi_table_child_of_the_user_model_ends_their_sessions(api, user, public_app):
    with connection.schema_editor() as editor:
        editor.create_model(Employee)
    try:
        issued = api.password_grant(public_app, "alice").data
        Employee(user_ptr=user, department="sales").save_base(raw=True)  # the child row of alice
        employee = Employee.objects.get(pk=user.pk)
        employee.is_active = False
        employee.save()
        assert me(api, issued).status_code == 401
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Employee)


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


# -- sessions one by one ---------------------------------------------------------------------------

SESSIONS = "/o/sessions/"


def bearer(body):
    return {"HTTP_AUTHORIZATION": f"Bearer {body['access_token']}"}


def listed(api, body):
    response = api.client.get(SESSIONS, **bearer(body))
    assert response.status_code == 200, response.content
    assert_no_store(response)
    return response.json()["sessions"]


def end(api, body, session_id, **extra):
    return api.client.delete(f"{SESSIONS}{session_id}/", **bearer(body), **extra)


def grant_of(app, username):
    return {"grant_type": "password", "username": username, "password": PASSWORD, "client_id": app.client_id}


def session_id_of(body):
    return str(tokens.find_refresh_token(body["refresh_token"]).token_family)


def test_a_sign_in_is_a_session_with_its_client_address_and_agent(api, user, public_app):
    with freeze_time("2026-12-03 09:00:00.250+00:00"):
        body = api.token(
            {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_id": public_app.client_id},
            HTTP_USER_AGENT="ExampleApp/2.1 (iPhone)",
        ).data
    session = Session.objects.get()
    assert str(session.pk) == session_id_of(body)
    assert (session.user, session.application, session.realm.slug) == (user, public_app, "project")
    assert session.started_at.isoformat() == "2026-12-03T09:00:00.250000+00:00"
    assert (session.ip_address, session.user_agent, session.ended_at) == ("127.0.0.1", "ExampleApp/2.1 (iPhone)", None)


def test_the_user_lists_their_live_sessions_with_the_current_one_marked(api, user, public_app):
    other_client = ClientFactory(name="Desktop app").application
    with freeze_time("2026-12-03 09:00:00+00:00") as clock:
        phone = api.password_grant(public_app, "alice").data
        clock.tick(60)
        desktop = api.password_grant(other_client, "alice").data
        clock.tick(60)
        desktop = api.refresh(other_client, desktop["refresh_token"]).data
        UserFactory(username="bob")
        api.password_grant(public_app, "bob")  # someone else's
        found = listed(api, phone)
        # Frozen still: the tokens are an hour's, whatever the real time.
        assert listed(api, desktop)[0]["current"] is True
    assert [(s["client"], s["current"]) for s in found] == [("Desktop app", False), ("Native app", True)]
    newest = found[0]
    assert newest["id"] == session_id_of(desktop)
    assert (newest["started_at"], newest["last_used_at"]) == ("2026-12-03T09:01:00+00:00", "2026-12-03T09:02:00+00:00")
    assert (newest["realm"], newest["ip_address"], newest["client_id"]) == (
        "project",
        "127.0.0.1",
        other_client.client_id,
    )
    assert found[1]["last_used_at"] == found[1]["started_at"] == "2026-12-03T09:00:00+00:00"


def test_ending_one_session_leaves_the_others_working(api, user, public_app):
    phone = api.password_grant(public_app, "alice").data
    laptop = api.password_grant(public_app, "alice").data
    response = end(api, phone, session_id_of(laptop))
    assert response.status_code == 204
    refused = assert_session_ended(api, public_app, laptop)
    # Told as an ended session, not suspected as a replay.
    assert refused.data["error_description"] == "The session was ended; sign in again."
    assert not SecurityEvent.objects.filter(type=SecurityEvent.REUSE_DETECTED).exists()
    assert me(api, phone).status_code == 200
    assert [s["id"] for s in listed(api, phone)] == [session_id_of(phone)]
    assert api.refresh(public_app, phone["refresh_token"]).status_code == 200
    ended = Session.objects.get(pk=session_id_of(laptop))
    assert (ended.end_reason, ended.ended_at is not None) == (Session.SIGNED_OUT, True)


def test_a_user_may_end_the_session_they_call_from(api, user, public_app):
    phone = api.password_grant(public_app, "alice").data
    assert end(api, phone, session_id_of(phone)).status_code == 204
    assert_session_ended(api, public_app, phone)


@pytest.mark.parametrize("whose", ["another user's", "unknown", "malformed"])
def test_another_users_session_is_not_found(api, user, public_app, whose):
    mine = api.password_grant(public_app, "alice").data
    UserFactory(username="bob")
    bobs = api.password_grant(public_app, "bob").data
    session_id = {"another user's": session_id_of(bobs), "unknown": str(uuid.uuid4()), "malformed": "1 OR 1=1"}[whose]
    response = end(api, mine, session_id)
    assert_error(response, 404, "not_found")
    assert me(api, bobs).status_code == 200
    assert api.refresh(public_app, bobs["refresh_token"]).status_code == 200


@pytest.mark.parametrize("method", ["get", "delete"])
def test_sessions_need_a_bearer_token(api, user, public_app, method):
    session_id = session_id_of(api.password_grant(public_app, "alice").data)
    path = SESSIONS if method == "get" else f"{SESSIONS}{session_id}/"
    response = getattr(api.client, method)(path)
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == 'Bearer realm="oauth"'
    assert Session.objects.get().ended_at is None


def test_a_token_of_another_kind_of_client_may_not_see_sessions(api, token_of_no_user):
    response = api.client.get(SESSIONS, HTTP_AUTHORIZATION=f"Bearer {token_of_no_user}")
    assert_error(response, 401, "invalid_token")


def test_a_session_without_refresh_tokens_is_its_access_token(api, user, resource_server):
    app = ClientFactory(name="Script", issue_refresh_tokens=False).application
    body = api.password_grant(app, "alice").data
    [session] = listed(api, body)
    assert (session["client"], session["current"]) == ("Script", True)
    server, secret = resource_server
    assert (
        api.post(INTROSPECT, {"token": body["access_token"]}, basic=(server.client_id, secret)).data["sid"]
        == session["id"]
    )
    assert end(api, body, session["id"]).status_code == 204
    assert me(api, body).status_code == 401
    assert Session.objects.get().end_reason == Session.SIGNED_OUT


def test_the_session_id_is_sid_in_id_tokens_and_introspection(api, user, jwks, settings, resource_server):
    app = ClientFactory(scopes=["openid", "read"]).application
    body = api.password_grant(app, "alice", scope="openid read").data
    sid = session_id_of(body)
    assert verify(body["id_token"], jwks, app.client_id)["sid"] == sid
    refreshed = api.refresh(app, body["refresh_token"]).data
    assert verify(refreshed["id_token"], jwks, app.client_id)["sid"] == sid
    server, secret = resource_server
    for token in (refreshed["access_token"], refreshed["refresh_token"]):
        described = api.post(INTROSPECT, {"token": token}, basic=(server.client_id, secret)).data
        assert (described["active"], described["sid"]) == (True, sid)


def _end_reason(body):
    return Session.objects.get(pk=session_id_of(body)).end_reason


def test_every_way_of_ending_a_session_says_why(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SESSION_IDLE_TIMEOUT": 600, "REFRESH_TOKEN_REUSE_TOLERANCE": 0}
    signed_out = api.password_grant(public_app, "alice").data
    assert (
        api.post(
            "/o/revoke_token/", {"token": signed_out["refresh_token"], "client_id": public_app.client_id}
        ).status_code
        == 200
    )
    assert _end_reason(signed_out) == Session.SIGNED_OUT
    # Revoking the access token ends its session too: its refresh token would be refused anyway.
    revoked_access = api.password_grant(public_app, "alice").data
    api.post("/o/revoke_token/", {"token": revoked_access["access_token"], "client_id": public_app.client_id})
    assert _end_reason(revoked_access) == Session.SIGNED_OUT
    refused = assert_session_ended(api, public_app, revoked_access)
    assert refused.data["error_description"] == sessions.SESSION_ENDED

    reused = api.password_grant(public_app, "alice").data
    api.refresh(public_app, reused["refresh_token"])
    assert_error(api.refresh(public_app, reused["refresh_token"]), 400, "invalid_grant")
    assert _end_reason(reused) == Session.REUSE_DETECTED

    with freeze_time(timezone.now()) as clock:
        idle = api.password_grant(public_app, "alice").data
        clock.tick(601)
        assert_error(api.refresh(public_app, idle["refresh_token"]), 400, "invalid_grant")
    assert _end_reason(idle) == Session.IDLE

    cut_off = api.password_grant(public_app, "alice").data
    sessions.revoke_sessions(user, reason=SessionCutoff.PASSWORD_CHANGED)
    assert _end_reason(cut_off) == Session.CUT_OFF
    everywhere = api.password_grant(public_app, "alice").data
    assert api.post("/o/revoke_sessions/", **bearer(everywhere)).status_code == 204
    assert _end_reason(everywhere) == Session.SIGNED_OUT
    by_operator = api.password_grant(public_app, "alice").data
    sessions.revoke_sessions(user, reason=SessionCutoff.OPERATOR)
    assert _end_reason(by_operator) == Session.OPERATOR


def test_deactivating_the_client_or_the_realm_ends_its_sessions(api, db):
    realm = RealmFactory(slug="staff")
    alice = AccountFactory(realm=realm, login_name="alice")
    first, second = (ClientFactory(realms=[realm], default_realm="staff") for _ in range(2))
    on_first = api.password_grant(first.application, "alice", alice.password).data
    on_second = api.password_grant(second.application, "alice", alice.password).data
    clients.set_active(first.application.ropc_policy, False)
    assert _end_reason(on_first) == Session.CLIENT_DEACTIVATED
    assert _end_reason(on_second) == ""
    realm.is_active = False
    realm.save()
    assert _end_reason(on_second) == Session.REALM_DEACTIVATED


def test_the_client_page_count_is_of_live_sessions(api, user, public_app):
    live = [api.password_grant(public_app, "alice").data for _ in range(3)]
    api.post("/o/revoke_token/", {"token": live[0]["refresh_token"], "client_id": public_app.client_id})
    assert sessions.live_session_count(public_app) == 2
    with freeze_time(timezone.now() + timedelta(seconds=clients.refresh_token_lifetime(public_app) + 1)):
        assert sessions.live_session_count(public_app) == 0
        assert sessions.live_sessions(user) == []


def test_the_client_page_and_the_users_list_agree_on_idle_sessions(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SESSION_IDLE_TIMEOUT": 600}
    with freeze_time(timezone.now()) as clock:
        api.password_grant(public_app, "alice")
        clock.tick(601)
        assert (sessions.live_session_count(public_app), sessions.live_sessions(user)) == (0, [])


def test_a_third_party_apps_token_cannot_see_or_end_sessions(api, alice, authorization_code_app):
    token = AccessToken.objects.create(
        user=alice.user, application=authorization_code_app, token="third-party-token-2", scope="read",
        expires=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    assert_error(api.client.get(SESSIONS, HTTP_AUTHORIZATION=f"Bearer {token.token}"), 403, "insufficient_scope")
    response = api.client.delete(f"{SESSIONS}{uuid.uuid4()}/", HTTP_AUTHORIZATION=f"Bearer {token.token}")
    assert_error(response, 403, "insufficient_scope")


def test_the_sessions_paths_take_only_their_methods(api, user, public_app):
    body = api.password_grant(public_app, "alice").data
    response = api.client.post(SESSIONS, **bearer(body))
    assert_error(response, 405, "invalid_request")
    assert response["Allow"] == "GET"


def test_no_token_outlives_its_session(api, user, public_app, settings, resource_server):
    """The last access token of a session expires with it, and introspection says when a refresh
    token stops: its session's end, when that comes before its own."""
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SESSION_MAX_LIFETIME": 3600, "ACCESS_TOKEN_LIFETIME": 1800}
    server, secret = resource_server
    with freeze_time("2026-12-03 12:00:00+00:00") as clock:
        issued = api.password_grant(public_app, "alice").data
        clock.tick(3000)
        refreshed = api.refresh(public_app, issued["refresh_token"]).data
        assert refreshed["expires_in"] == 600  # not 1800: the session ends at 13:00
        described = api.post(INTROSPECT, {"token": refreshed["refresh_token"]}, basic=(server.client_id, secret)).data
        assert described["exp"] == int(timezone.now().timestamp()) + 600
        clock.tick(601)
        assert me(api, refreshed).status_code == 401
        described = api.post(INTROSPECT, {"token": refreshed["refresh_token"]}, basic=(server.client_id, secret)).data
        assert described == {"active": False}


def test_an_idle_sessions_refresh_token_is_not_active(api, user, public_app, settings, resource_server):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SESSION_IDLE_TIMEOUT": 600}
    server, secret = resource_server
    with freeze_time("2026-12-03 12:00:00+00:00") as clock:
        refresh_token = api.password_grant(public_app, "alice").data["refresh_token"]
        described = api.post(INTROSPECT, {"token": refresh_token}, basic=(server.client_id, secret)).data
        assert described["exp"] == int(timezone.now().timestamp()) + 600
        clock.tick(601)
        described = api.post(INTROSPECT, {"token": refresh_token}, basic=(server.client_id, secret)).data
    assert described == {"active": False}


def test_a_server_that_knows_no_address_still_signs_in_and_stores_none(api, user, public_app):
    # A unix socket (gunicorn --bind unix:) gives no peer address: it is counted as one unknown
    # address, never written where an address belongs (PostgreSQL's inet would refuse it).
    body = api.token(grant_of(public_app, "alice"), REMOTE_ADDR="").data
    assert "refresh_token" in body
    assert Session.objects.get().ip_address is None
    assert SecurityEvent.objects.get(type=SecurityEvent.SIGN_IN_SUCCEEDED).ip_address is None
    assert end(api, body, session_id_of(body), REMOTE_ADDR="unix:/run/gunicorn.sock").status_code == 204
    assert SecurityEvent.objects.get(type=SecurityEvent.SESSION_ENDED).ip_address is None


def test_behind_a_proxy_the_session_endpoints_record_the_users_address(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "TRUSTED_PROXY_COUNT": 1}
    proxied = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    body = api.token(grant_of(public_app, "alice"), **proxied).data
    assert end(api, body, session_id_of(body), **proxied).status_code == 204
    assert Session.objects.get().ip_address == "203.0.113.9"
    assert SecurityEvent.objects.get(type=SecurityEvent.SESSION_ENDED).ip_address == "203.0.113.9"


@pytest.mark.parametrize(
    "limit, expires_in",
    [
        ({}, 3600),
        ({"SESSION_IDLE_TIMEOUT": 600}, 600),
        ({"SESSION_MAX_LIFETIME": 300}, 300),
        ({"REFRESH_TOKEN_LIFETIME": 120}, 120),
    ],
    ids=["access-lifetime", "idle-timeout", "max-lifetime", "refresh-lifetime"],
)
def test_a_sign_ins_access_token_ends_no_later_than_its_session_could(
    api, user, public_app, settings, limit, expires_in
):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "ACCESS_TOKEN_LIFETIME": 3600, **limit}
    with freeze_time("2026-12-03 12:00:00+00:00"):
        issued = api.password_grant(public_app, "alice").data
        assert issued["expires_in"] == expires_in
        assert AccessToken.objects.get().expires == timezone.now() + timedelta(seconds=expires_in)
        refreshed = api.refresh(public_app, issued["refresh_token"]).data
    assert refreshed["expires_in"] == expires_in


def test_a_session_a_limit_ends_takes_its_access_tokens_with_it(api, user, public_app):
    with freeze_time("2026-12-03 12:00:00+00:00") as clock:
        issued = api.password_grant(public_app, "alice").data
        # The operator shortens the client's idle timeout while the session's access token lives.
        public_app.ropc_policy.session_idle_timeout = 300
        public_app.ropc_policy.save()
        clock.tick(301)
        refused = api.refresh(public_app, issued["refresh_token"])
        assert refused.data["error_description"] == sessions.SESSION_IDLE
        assert me(api, issued).status_code == 401
    assert Session.objects.get().end_reason == Session.IDLE


def test_dots_own_refresh_grant_cannot_renew_our_sessions(api, user, authorization_code_app):
    native = ClientFactory(name="Native", session_max_lifetime=60).application
    issued = api.password_grant(native, "alice").data
    with freeze_time(timezone.now() + timedelta(seconds=120)):
        # DOT's token endpoint, mounted by the host beside ours, knows nothing of the session's limits.
        at_dot = api.post(
            "/dot/token/",
            {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"], "client_id": native.client_id},
        )
        assert_error(at_dot, 400, "invalid_grant")
        assert me(api, issued).status_code == 401  # its limit ended it; DOT did not renew it
    # A refresh token DOT issued to a client of its own still refreshes there.
    access = AccessToken.objects.create(
        user=user, application=authorization_code_app, token="dot-access", expires=timezone.now() + timedelta(hours=1)
    )
    RefreshToken.objects.create(
        user=user,
        application=authorization_code_app,
        token="dot-refresh",
        access_token=access,
        token_family=uuid.uuid4(),
    )
    own = api.post(
        "/dot/token/",
        {"grant_type": "refresh_token", "refresh_token": "dot-refresh", "client_id": authorization_code_app.client_id},
    )
    assert own.status_code == 200, own.content


def test_a_project_without_time_zones_refreshes(api, user, public_app, settings):
    settings.USE_TZ = False
    issued = api.password_grant(public_app, "alice").data
    refreshed = api.refresh(public_app, issued["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content


@pytest.mark.parametrize("family", ["DOT's", "none (before DOT 3)"])
def test_a_session_dots_endpoint_began_becomes_one_of_ours_at_its_first_refresh_here(
    api, user, settings, recwarn, family
):
    Application = get_application_model()
    legacy = Application.objects.create(
        name="Legacy", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_PASSWORD
    )
    dot_grant = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    with override_settings(OAUTH2_PROVIDER=dot_grant), freeze_time(timezone.now() - timedelta(days=2)):
        begun = api.post(
            "/dot/token/",
            {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_id": legacy.client_id},
        ).data
    if family != "DOT's":
        RefreshToken.objects.update(token_family=None)

    refresh = {"grant_type": "refresh_token", "refresh_token": begun["refresh_token"], "client_id": legacy.client_id}
    refreshed = api.token(refresh, HTTP_USER_AGENT="Legacy/1.0")
    assert refreshed.status_code == 200, refreshed.content
    session = Session.objects.get()
    assert tokens.find_refresh_token(refreshed.data["refresh_token"]).token_family == session.pk
    assert (session.user, session.realm.slug, session.login_name, session.application) == (
        user,
        "project",
        "alice",
        legacy,
    )
    # Its limits count from when DOT's endpoint signed alice in, not from this refresh.
    assert timezone.now() - session.started_at > timedelta(days=2) - timedelta(minutes=1)
    assert (session.ip_address, session.user_agent) == ("127.0.0.1", "Legacy/1.0")  # first seen here
    assert [(shown["id"], shown["current"]) for shown in listed(api, refreshed.data)] == [(str(session.pk), True)]
    # Ours now: DOT's endpoint no longer renews it, and its user can end it alone.
    at_dot = api.post(
        "/dot/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": refreshed.data["refresh_token"],
            "client_id": legacy.client_id,
        },
    )
    assert_error(at_dot, 400, "invalid_grant")
    assert end(api, refreshed.data, session.pk).status_code == 204
    assert_session_ended(api, legacy, refreshed.data)
    assert Session.objects.count() == 1
