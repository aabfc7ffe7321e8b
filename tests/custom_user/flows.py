"""The main flows with a custom user model. Not collected by the main run (no test_ prefix):
tests/test_custom_user_model.py runs it under tests.settings_custom_user, since AUTH_USER_MODEL
cannot change inside one test run."""

import pytest
from django.contrib.auth import get_user_model

from ropc_provider import accounts, clients, realms, sessions
from ropc_provider.models import SessionCutoff
from tests.helpers import Api, assert_error

PASSWORD = "custom user pass phrase 1"


@pytest.fixture
def api(client):
    return Api(client)


def test_project_users_sign_in_refresh_and_are_signed_out(api, db):
    user = get_user_model().objects.create_user("dora@example.com", PASSWORD)
    app = clients.register_client(name="App", confidential=False).application
    issued = api.password_grant(app, "dora@example.com", password=PASSWORD)
    assert issued.status_code == 200, issued.content
    me = api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {issued.data['access_token']}").json()
    assert me["username"] == "dora@example.com" and me["realm"] == "project"
    user.refresh_from_db()
    assert user.last_login is not None
    refreshed = api.refresh(app, issued.data["refresh_token"])
    assert refreshed.status_code == 200
    user.set_password("another pass phrase 2")
    user.save()
    assert SessionCutoff.objects.get(user=user).reason == SessionCutoff.PASSWORD_CHANGED
    assert_error(api.refresh(app, refreshed.data["refresh_token"]), 400, "invalid_grant")


def test_directory_accounts_with_a_custom_user_model(api, db):
    realm = realms.create_realm(slug="employees")
    account = accounts.create_account(realm, "alice", PASSWORD, email="alice@corp.example")
    assert isinstance(account.user.pk, type(get_user_model()().pk))
    app = clients.register_client(name="Staff", confidential=False, realms=["employees"]).application
    issued = api.password_grant(app, "Alice", password=PASSWORD)
    assert issued.status_code == 200, issued.content
    sessions.revoke_sessions(account.user, reason=SessionCutoff.OPERATOR)
    assert_error(api.refresh(app, issued.data["refresh_token"]), 400, "invalid_grant")
    # Its Django user is no project user, under its internal name or its email.
    legacy = clients.register_client(name="Legacy", confidential=False).application
    for name in (account.user.get_username(), "alice@corp.example"):
        assert_error(api.password_grant(legacy, name, password=PASSWORD), 400, "invalid_grant")


def test_wrong_and_unknown_are_one_answer(api, db):
    get_user_model().objects.create_user("erin@example.com", PASSWORD)
    app = clients.register_client(name="App", confidential=False).application
    wrong = api.password_grant(app, "erin@example.com", password="nope")
    unknown = api.password_grant(app, "nobody@example.com", password="nope")
    assert wrong.content == unknown.content
