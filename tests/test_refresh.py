from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider.models import AccessToken, RefreshToken

from ropc_provider import clients, tokens
from tests.helpers import Api, assert_error


@pytest.fixture
def signed_in(api, user, public_app):
    return api.password_grant(public_app, "alice", scope="read write").data


def me(api, access_token):
    return api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {access_token}")


def test_refresh_rotates_both_tokens(api, public_app, signed_in):
    response = api.refresh(public_app, signed_in["refresh_token"])
    assert response.status_code == 200, response.content
    new = response.data
    assert new["refresh_token"] != signed_in["refresh_token"]
    assert new["access_token"] != signed_in["access_token"]
    assert new["scope"] == "read write"
    assert response["Cache-Control"] == "no-store"
    assert me(api, new["access_token"]).status_code == 200
    # The rotated-away pair is dead.
    assert me(api, signed_in["access_token"]).status_code == 401


def test_refresh_for_a_confidential_client(api, user, confidential):
    application, secret = confidential
    first = api.password_grant(application, "alice", secret=secret, basic=True).data
    response = api.refresh(application, first["refresh_token"], secret=secret)
    assert response.status_code == 200, response.content


def test_confidential_refresh_without_client_auth_is_401(api, user, confidential):
    application, secret = confidential
    first = api.password_grant(application, "alice", secret=secret, basic=True).data
    assert_error(api.refresh(application, first["refresh_token"]), 401, "invalid_client")


def test_reuse_of_a_rotated_token_revokes_the_family(api, public_app, signed_in):
    start = timezone.now()
    with freeze_time(start):
        second = api.refresh(public_app, signed_in["refresh_token"]).data
    with freeze_time(start + timedelta(seconds=1.5)):
        reuse = api.refresh(public_app, signed_in["refresh_token"])
    assert_error(reuse, 400, "invalid_grant")
    # The family is gone: the newest refresh token and its access token no longer work.
    assert_error(api.refresh(public_app, second["refresh_token"]), 400, "invalid_grant")
    assert me(api, second["access_token"]).status_code == 401
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


def test_duplicate_within_the_tolerance_is_refused_but_keeps_the_family(api, public_app, signed_in):
    start = timezone.now()
    with freeze_time(start):
        second = api.refresh(public_app, signed_in["refresh_token"]).data
    with freeze_time(start + timedelta(seconds=0.9)):
        assert_error(api.refresh(public_app, signed_in["refresh_token"]), 400, "invalid_grant")
    assert api.refresh(public_app, second["refresh_token"]).status_code == 200


def test_a_replay_within_the_tolerance_after_the_successor_was_used_revokes_the_family(api, public_app, signed_in):
    start = timezone.now()
    with freeze_time(start) as clock:
        second = api.refresh(public_app, signed_in["refresh_token"]).data
        clock.tick(timedelta(seconds=0.3))
        third = api.refresh(public_app, second["refresh_token"]).data  # the owner carries on
        clock.tick(timedelta(seconds=0.3))
        # The first token again, within a second of its rotation: no double-fired refresh can
        # come after its successor's own use, so this is a stolen copy.
        assert_error(api.refresh(public_app, signed_in["refresh_token"]), 400, "invalid_grant")
    assert_error(api.refresh(public_app, third["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize(
    "elsewhere", [{"REMOTE_ADDR": "203.0.113.66"}, {"HTTP_USER_AGENT": "curl/8.0"}], ids=["address", "user-agent"]
)
def test_a_replay_within_the_tolerance_from_another_client_revokes_the_family(api, public_app, signed_in, elsewhere):
    start = timezone.now()
    data = {"grant_type": "refresh_token", "refresh_token": signed_in["refresh_token"]}
    data["client_id"] = public_app.client_id
    with freeze_time(start) as clock:
        second = api.token(data, HTTP_USER_AGENT="App/1.0").data
        clock.tick(timedelta(seconds=0.5))
        assert_error(api.token(data, **{"HTTP_USER_AGENT": "App/1.0", **elsewhere}), 400, "invalid_grant")
    assert_error(api.refresh(public_app, second["refresh_token"]), 400, "invalid_grant")


def test_zero_tolerance_revokes_on_any_reuse(api, public_app, signed_in, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "REFRESH_TOKEN_REUSE_TOLERANCE": 0}
    second = api.refresh(public_app, signed_in["refresh_token"]).data
    api.refresh(public_app, signed_in["refresh_token"])
    assert_error(api.refresh(public_app, second["refresh_token"]), 400, "invalid_grant")


def test_reuse_does_not_touch_other_sessions(api, user, public_app, signed_in, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "REFRESH_TOKEN_REUSE_TOLERANCE": 0}
    other = api.password_grant(public_app, "alice").data
    api.refresh(public_app, signed_in["refresh_token"])
    api.refresh(public_app, signed_in["refresh_token"])
    assert api.refresh(public_app, other["refresh_token"]).status_code == 200


def test_another_clients_token_is_refused_and_left_alone(api, public_app, signed_in, db):
    other = clients.register_client(name="Other", confidential=False).application
    assert_error(api.refresh(other, signed_in["refresh_token"]), 400, "invalid_grant")
    assert api.refresh(public_app, signed_in["refresh_token"]).status_code == 200


def test_refresh_may_narrow_but_not_widen_scope(api, user, public_app):
    first = api.password_grant(public_app, "alice", scope="read").data
    assert_error(api.refresh(public_app, first["refresh_token"], scope="read write"), 400, "invalid_scope")
    narrowed = api.refresh(public_app, first["refresh_token"], scope="read")
    assert narrowed.status_code == 200 and narrowed.data["scope"] == "read"


def test_refresh_after_user_deactivated(api, user, public_app, signed_in):
    user.is_active = False
    user.save()
    assert_error(api.refresh(public_app, signed_in["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("value", ["", "x" * 4000, "abc\x00", "unknown-token"])
def test_bad_refresh_token_values(api, public_app, signed_in, value):
    response = api.refresh(public_app, value)
    assert response.status_code == 400
    assert response.data["error"] in {"invalid_request", "invalid_grant"}


def test_refresh_token_expires_after_its_lifetime(api, user, db):
    app = clients.register_client(name="Short", confidential=False, refresh_token_lifetime=600).application
    start = timezone.now()
    with freeze_time(start):
        first = api.password_grant(app, "alice").data
    with freeze_time(start + timedelta(seconds=599)):
        second = api.refresh(app, first["refresh_token"])
        assert second.status_code == 200
    with freeze_time(start + timedelta(seconds=599 + 600)):
        assert_error(api.refresh(app, second.data["refresh_token"]), 400, "invalid_grant")


def test_failed_rotation_leaves_no_partial_write(transactional_db, api, public_app, signed_in, monkeypatch):
    """A crash after the old pair is claimed and the new access token written must undo both."""

    def crash(**kwargs):
        raise RuntimeError("disk full")

    before = (set(AccessToken.objects.values_list("pk", flat=True)), RefreshToken.objects.get().revoked)
    monkeypatch.setattr(tokens, "_new_refresh_token", crash)
    response = Api(Client(raise_request_exception=False)).refresh(public_app, signed_in["refresh_token"])
    assert response.status_code == 500
    monkeypatch.undo()
    assert (set(AccessToken.objects.values_list("pk", flat=True)), RefreshToken.objects.get().revoked) == before
    assert api.refresh(public_app, signed_in["refresh_token"]).status_code == 200


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed-at-rest", "plaintext"])
def test_rotation_with_either_token_storage(api, user, public_app, settings, hashed):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": hashed}
    first = api.password_grant(public_app, "alice").data
    stored = RefreshToken.objects.get()
    assert (stored.token == "") is hashed
    second = api.refresh(public_app, first["refresh_token"])
    assert second.status_code == 200, second.content
    assert_error(api.refresh(public_app, first["refresh_token"]), 400, "invalid_grant")


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
