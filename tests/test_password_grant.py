import unicodedata

import pytest
from django.test import override_settings
from oauth2_provider.models import AccessToken, RefreshToken, get_application_model

from ropc_provider import clients
from tests.factories import PASSWORD, UserFactory
from tests.helpers import assert_error, assert_no_store


def assert_token_response(response, scope="read", refresh=True):
    assert response.status_code == 200, response.content
    assert_no_store(response)
    body = response.data
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == scope
    assert len(body["access_token"]) >= 30
    assert ("refresh_token" in body) is refresh
    return body


def test_public_client_gets_tokens_with_client_id_alone(api, user, public_app):
    body = assert_token_response(api.password_grant(public_app, "alice"))
    me = api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert me.json() == {"username": "alice", "realm": "project", "scopes": ["read"]}


@pytest.mark.parametrize("basic", [True, False], ids=["basic", "body"])
def test_confidential_client_authenticates_either_way(api, user, confidential, basic):
    application, secret = confidential
    assert_token_response(api.password_grant(application, "alice", secret=secret, basic=basic))


def test_requested_scope_is_granted(api, user, public_app):
    assert_token_response(api.password_grant(public_app, "alice", scope="read write"), scope="read write")


def test_empty_scope_means_default_scope(api, user, public_app):
    assert_token_response(api.password_grant(public_app, "alice", scope=""), scope="read")


def test_scope_outside_client_policy_is_invalid_scope(api, user, db):
    app = clients.register_client(name="Reader", confidential=False, scopes=["read"]).application
    assert_error(api.password_grant(app, "alice", scope="write"), 400, "invalid_scope")
    assert not AccessToken.objects.exists()


def test_unknown_extra_parameter_is_ignored(api, user, public_app):
    assert_token_response(api.password_grant(public_app, "alice", colour="blue"))


def test_client_without_refresh_tokens_gets_none(api, user, db):
    app = clients.register_client(name="No refresh", confidential=False, issue_refresh_tokens=False).application
    assert_token_response(api.password_grant(app, "alice"), refresh=False)
    assert not RefreshToken.objects.exists()


def test_client_access_token_lifetime(api, user, db):
    app = clients.register_client(name="Short", confidential=False, access_token_lifetime=60).application
    response = api.password_grant(app, "alice")
    assert response.data["expires_in"] == 60


def test_sign_in_updates_last_login(api, user, public_app):
    assert user.last_login is None
    assert_token_response(api.password_grant(public_app, "alice"))
    user.refresh_from_db()
    assert user.last_login is not None


def test_failed_credentials_are_indistinguishable(api, user, public_app):
    UserFactory(username="bob", is_active=False)
    wrong_password = api.password_grant(public_app, "alice", password="not it")
    unknown_user = api.password_grant(public_app, "nobody")
    inactive_user = api.password_grant(public_app, "bob")
    for response in (wrong_password, unknown_user, inactive_user):
        assert_error(response, 400, "invalid_grant")
    assert wrong_password.content == unknown_user.content == inactive_user.content
    assert not AccessToken.objects.exists()
    user.refresh_from_db()
    assert user.last_login is None


def test_dot_password_gate_does_not_turn_our_endpoint_off(api, user, public_app, settings):
    # example_project sets the gate; DOT's own /dot/token/ refuses the grant, ours serves it.
    assert settings.OAUTH2_PROVIDER["COMPLIANT_BCP_RFC9700_PASSWORD_GRANT"] is True
    assert_token_response(api.password_grant(public_app, "alice"))
    dot = api.post(
        "/dot/token/",
        {
            "grant_type": "password",
            "username": "alice",
            "password": "correct horse battery staple",
            "client_id": public_app.client_id,
        },
    )
    assert dot.status_code == 400 and dot.data["error"] == "unauthorized_client"


def test_our_endpoint_emits_no_dot_deprecation_warning(api, user, public_app, settings, recwarn):
    gate_off = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    with override_settings(OAUTH2_PROVIDER=gate_off):
        assert_token_response(api.password_grant(public_app, "alice"))
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_existing_dot_password_client_without_policy_is_served(api, user, db):

    Application = get_application_model()
    app = Application.objects.create(
        name="Legacy",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_PASSWORD,
    )
    assert_token_response(api.password_grant(app, "alice"))


def test_passwords_are_compared_exactly_as_django_stores_them(api, public_app, db):
    """Documented policy (checklist row 19): no Unicode normalisation of passwords, as Django's
    hashers do none; a password set in NFC does not match its NFD spelling."""

    nfc = unicodedata.normalize("NFC", "café crème brûlée")
    UserFactory(username="zoe", password=nfc)
    assert api.password_grant(public_app, "zoe", password=nfc).status_code == 200
    nfd = api.password_grant(public_app, "zoe", password=unicodedata.normalize("NFD", nfc))
    assert_error(nfd, 400, "invalid_grant")


def test_moving_from_dots_endpoint_keeps_clients_and_sessions(api, user, db, settings, recwarn):
    """The README's migration guide: a client of DOT's stock password grant points at our token
    endpoint and keeps its client_id, and the sessions DOT's endpoint began refresh at ours."""

    Application = get_application_model()
    legacy = Application.objects.create(
        name="Legacy", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_PASSWORD
    )
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    before = api.post("/dot/token/", {"grant_type": "password", "username": "alice", "password": PASSWORD,
                                      "client_id": legacy.client_id})  # fmt: skip
    assert before.status_code == 200, before.content
    refreshed = api.refresh(legacy, before.data["refresh_token"])
    assert_token_response(refreshed)
    me = api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {refreshed.data['access_token']}")
    assert me.json()["username"] == "alice"
    assert api.refresh(legacy, before.data["refresh_token"]).status_code == 400  # rotated away
