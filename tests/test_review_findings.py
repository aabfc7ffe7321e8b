"""Defects a review found, each pinned by a test that failed before its fix."""

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from ropc_provider import accounts, client_secrets, clients, realms, signin, tokens
from ropc_provider.exceptions import RefreshTokenAlreadyUsed
from ropc_provider.models import SessionCutoff
from tests.factories import PASSWORD
from tests.helpers import Api, RacingHasher, assert_error

INTROSPECT = "/o/introspect/"


def me(api, body):
    return api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")


@pytest.mark.parametrize("field", ["client", "user", "scopes", "_ropc_basic", "django_request", "headers"])
def test_body_fields_named_like_request_attributes_are_ignored(api, user, confidential, field):
    application, secret = confidential
    response = api.password_grant(application, "alice", secret=secret, basic=True, **{field: "x"})
    assert response.status_code == 200, response.content
    assert response.data["scope"] == "read"


def test_error_reports_do_not_show_passwords_or_secrets(user, confidential, monkeypatch):
    """What Django mails to ADMINS (and shows any reporter) after a crash mid-grant, with
    DEBUG off as in production."""
    import sys

    from django.core.signals import got_request_exception
    from django.views.debug import ExceptionReporter

    application, secret = confidential

    def broken(request, **credentials):
        raise RuntimeError("backend exploded")

    monkeypatch.setattr(signin, "django_authenticate", broken)
    reports = []

    def report(sender, request, **kwargs):
        reporter = ExceptionReporter(request, *sys.exc_info())
        reports.append(reporter.get_traceback_html() + reporter.get_traceback_text())

    got_request_exception.connect(report)
    try:
        api = Api(Client(raise_request_exception=False))
        response = api.password_grant(application, "nobody", password="my-secret-password-42", secret=secret)
    finally:
        got_request_exception.disconnect(report)
    assert response.status_code == 500
    (page,) = reports
    assert "backend exploded" in page and "Local vars" in page  # the report with every frame
    assert "my-secret-password-42" not in page
    assert secret not in page


@pytest.mark.parametrize("client_id", ["ab\x00c", "abc%00"])
def test_nul_in_basic_credentials_is_invalid_client(api, user, confidential, client_id):
    _application, secret = confidential
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    assert_error(api.token(data, basic=(client_id, secret)), 401, "invalid_client")


def test_refresh_after_refresh_tokens_are_switched_off(api, user, public_app):
    issued = api.password_grant(public_app, "alice").data
    public_app.ropc_policy.issue_refresh_tokens = False
    public_app.ropc_policy.save()
    assert_error(api.refresh(public_app, issued["refresh_token"]), 400, "invalid_grant")


def test_refresh_follows_the_clients_current_scopes(api, user, public_app):
    issued = api.password_grant(public_app, "alice", scope="read write").data
    public_app.ropc_policy.allowed_scopes = "read"
    public_app.ropc_policy.save()
    assert_error(api.refresh(public_app, issued["refresh_token"], scope="read write"), 400, "invalid_scope")
    narrowed = api.refresh(public_app, issued["refresh_token"])
    assert narrowed.status_code == 200 and narrowed.data["scope"] == "read"


def _change_password(user_id):
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.get(pk=user_id)
    other.set_password("changed meanwhile 1")
    other.save()


def _deactivate(user_id):
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.get(pk=user_id)
    other.is_active = False
    other.save()


@pytest.mark.parametrize("change", [_change_password, _deactivate])
def test_a_change_committed_during_the_hash_wins_over_the_sign_in(api, racing, public_app, change):
    RacingHasher.during_verify = lambda: change(racing.pk)
    assert_error(api.password_grant(public_app, "racer"), 400, "invalid_grant")
    assert not AccessToken.objects.exists() and not RefreshToken.objects.exists()


def test_rotation_refused_when_a_cutoff_lands_after_validation(api, user, public_app):
    issued = api.password_grant(public_app, "alice").data
    found = tokens.find_refresh_token(issued["refresh_token"])
    SessionCutoff.objects.create(user=user, refresh_tokens_valid_from=timezone.now(), reason="operator")
    with pytest.raises(RefreshTokenAlreadyUsed):
        tokens.rotate(
            found, application=public_app, scope="read", access_token="a" * 30, expires_in=60, refresh_token="r" * 30
        )


def test_unusable_password_ends_sessions(api, user, public_app):
    issued = api.password_grant(public_app, "alice").data
    user.set_unusable_password()
    user.save()
    assert me(api, issued).status_code == 401
    assert_error(api.refresh(public_app, issued["refresh_token"]), 400, "invalid_grant")


@pytest.fixture
def employees_app(db):
    realm = realms.create_realm(slug="employees")
    accounts.create_account(realm, "alice", PASSWORD)
    app = clients.register_client(name="Staff", confidential=False, realms=["employees"]).application
    return realm, app


def test_realm_deactivation_ends_live_access_tokens(api, employees_app, resource_server):
    realm, app = employees_app
    issued = api.password_grant(app, "alice").data
    realm.is_active = False
    realm.save()
    assert me(api, issued).status_code == 401
    rs, secret = resource_server
    body = api.post(INTROSPECT, {"token": issued["refresh_token"]}, basic=(rs.client_id, secret)).data
    assert body == {"active": False}


def test_taking_a_realm_from_a_client_ends_that_clients_sessions_only(api, employees_app):
    realm, app = employees_app
    other = clients.register_client(name="Other", confidential=False, realms=["employees"]).application
    mine, theirs = api.password_grant(app, "alice").data, api.password_grant(other, "alice").data
    app.ropc_policy.realms.remove(realm)
    assert me(api, mine).status_code == 401
    assert me(api, theirs).status_code == 200
    other.ropc_policy.realms.clear()
    assert me(api, theirs).status_code == 401


def test_secret_matched_by_a_retired_key_is_restored_under_the_current_one(api, user, confidential, settings):
    application, secret = confidential
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-secret-key-the-new-secret-key-0123456789"
    assert api.password_grant(application, "alice", secret=secret, basic=True).status_code == 200
    application.ropc_policy.refresh_from_db()
    assert application.ropc_policy.client_secret_verifier == client_secrets.make_verifier(secret)
    settings.SECRET_KEY_FALLBACKS = []
    assert api.password_grant(application, "alice", secret=secret, basic=True).status_code == 200


@pytest.mark.parametrize("path", ["/o/revoke_token/", INTROSPECT])
def test_repeated_parameters_at_revoke_and_introspect(api, user, public_app, resource_server, path):
    issued = api.password_grant(public_app, "alice").data
    rs, secret = resource_server
    pairs = [("token", issued["access_token"]), ("token", issued["refresh_token"])]
    assert_error(api.post(path, pairs, basic=(rs.client_id, secret)), 400, "invalid_request")
    assert me(api, issued).status_code == 200


# -- second review -----------------------------------------------------------------------------


def test_deleting_an_account_deletes_its_user(api, employees_app):
    from django.contrib.auth import get_user_model

    realm, app = employees_app
    account = realm.accounts.get()
    internal, issued = account.user.get_username(), api.password_grant(app, "alice").data
    account.delete()
    assert not get_user_model().objects.filter(username=internal).exists()
    assert me(api, issued).status_code == 401
    legacy = clients.register_client(name="Legacy", confidential=False).application
    assert_error(api.password_grant(legacy, internal), 400, "invalid_grant")


def test_deleting_a_clients_policy_deletes_the_client(api, employees_app):
    from oauth2_provider.models import get_application_model

    _realm, app = employees_app
    clients.set_active(app.ropc_policy, False)
    app.ropc_policy.delete()
    assert not get_application_model().objects.filter(pk=app.pk).exists()
    assert_error(api.password_grant(app, "alice"), 401, "invalid_client")


def test_saving_an_unchanged_user_without_a_usable_password_ends_nothing(api, db, authorization_code_app):
    from oauth2_provider.models import AccessToken

    from tests.factories import UserFactory

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


def test_taking_a_client_from_the_realm_side(api, employees_app):
    realm, app = employees_app
    issued = api.password_grant(app, "alice").data
    realm.client_policies.remove(app.ropc_policy)
    assert me(api, issued).status_code == 401
    assert_error(api.password_grant(app, "alice"), 400, "invalid_request")


def test_a_removed_default_realm_is_no_longer_used(api, employees_app):
    realm, app = employees_app
    app.ropc_policy.realms.remove(realm)
    app.ropc_policy.refresh_from_db()
    assert app.ropc_policy.default_realm is None
    assert_error(api.password_grant(app, "alice"), 400, "invalid_request")
    assert_error(api.password_grant(app, "alice", realm="employees"), 400, "invalid_request")
