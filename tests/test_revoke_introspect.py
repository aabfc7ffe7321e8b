import time
from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from ropc_provider import clients
from ropc_provider.claims import subject_of
from tests.helpers import INTROSPECT, assert_error, assert_no_store, me

REVOKE = "/o/revoke_token/"


@pytest.fixture
def tokens(api, user, public_app):
    return api.password_grant(public_app, "alice", scope="read write").data


def introspect(api, resource_server, token, **fields):
    application, secret = resource_server
    return api.post(INTROSPECT, {"token": token, **fields}, basic=(application.client_id, secret))


# -- RFC 7009 ---------------------------------------------------------------------------------


def test_revoking_a_refresh_token_ends_the_session(api, public_app, tokens, resource_server):
    response = api.post(REVOKE, {"token": tokens["refresh_token"], "client_id": public_app.client_id})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert_error(api.refresh(public_app, tokens["refresh_token"]), 400, "invalid_grant")
    assert introspect(api, resource_server, tokens["refresh_token"]).data == {"active": False}
    assert introspect(api, resource_server, tokens["access_token"]).data == {"active": False}


def test_revoking_an_access_token_also_revokes_its_refresh_token(api, public_app, tokens):
    hint = {"token_type_hint": "access_token"}
    assert (
        api.post(REVOKE, {"token": tokens["access_token"], "client_id": public_app.client_id, **hint}).status_code
        == 200
    )
    assert api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code == 401
    assert_error(api.refresh(public_app, tokens["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("fields", [{"token": "unknown"}, {"token": "unknown", "token_type_hint": "bogus"}])
def test_revoking_unknown_tokens_is_200(api, public_app, tokens, fields):
    assert api.post(REVOKE, {**fields, "client_id": public_app.client_id}).status_code == 200


def test_another_client_cannot_revoke(api, public_app, tokens, db):
    other = clients.register_client(name="Other", confidential=False).application
    assert api.post(REVOKE, {"token": tokens["refresh_token"], "client_id": other.client_id}).status_code == 200
    assert api.refresh(public_app, tokens["refresh_token"]).status_code == 200


def test_revoke_requires_post_and_client_auth(api, client, user, confidential):
    application, secret = confidential
    issued = api.password_grant(application, "alice", secret=secret, basic=True).data
    assert client.get(REVOKE).status_code == 405
    response = api.post(REVOKE, {"token": issued["refresh_token"], "client_id": application.client_id})
    assert_error(response, 401, "invalid_client")
    ok = api.post(REVOKE, {"token": issued["refresh_token"]}, basic=(application.client_id, secret))
    assert ok.status_code == 200
    assert_error(api.refresh(application, issued["refresh_token"], secret=secret), 400, "invalid_grant")


# -- RFC 7662 ---------------------------------------------------------------------------------


def test_introspecting_a_live_access_token(api, tokens, public_app, resource_server, user):
    response = introspect(api, resource_server, tokens["access_token"])
    assert response.status_code == 200
    assert_no_store(response)
    body = response.data
    assert body["active"] is True
    assert body["scope"] == "read write"
    assert body["client_id"] == public_app.client_id
    assert body["username"] == "alice"
    assert body["token_type"] == "Bearer"
    assert body["exp"] - body["iat"] == 3600
    assert abs(body["iat"] - time.time()) < 60
    # RFC 7662 §2.2: who, for whom and by whom.
    assert body["aud"] == public_app.client_id and body["iss"] == "http://testserver/o"
    assert body["sub"] == subject_of(user) and body["realm"] == "project"


def test_introspecting_a_refresh_token(api, tokens, resource_server, user):
    body = introspect(api, resource_server, tokens["refresh_token"], token_type_hint="refresh_token").data
    assert body["active"] is True and body["sub"] == subject_of(user)
    assert "token_type" not in body  # no registered type for a refresh token
    assert body["exp"] - body["iat"] == 14 * 24 * 3600


def test_expired_and_unknown_tokens_are_inactive(api, tokens, resource_server):
    assert introspect(api, resource_server, "nope").data == {"active": False}
    with freeze_time(timezone.now() + timedelta(seconds=3601)):
        assert introspect(api, resource_server, tokens["access_token"]).data == {"active": False}


def test_inactive_user_tokens_are_inactive(api, user, tokens, resource_server):
    user.is_active = False
    user.save()
    assert introspect(api, resource_server, tokens["access_token"]).data == {"active": False}


def test_introspection_needs_a_resource_server(api, client, tokens, public_app, confidential):
    assert_error(api.post(INTROSPECT, {"token": tokens["access_token"]}), 401, "invalid_client")
    public = api.post(INTROSPECT, {"token": tokens["access_token"], "client_id": public_app.client_id})
    assert_error(public, 403, "unauthorized_client")
    application, secret = confidential
    password_client = api.post(INTROSPECT, {"token": tokens["access_token"]}, basic=(application.client_id, secret))
    assert_error(password_client, 403, "unauthorized_client")
    assert client.get(INTROSPECT, {"token": tokens["access_token"]}).status_code == 405


def test_revocation_answers_an_empty_200_without_a_json_content_type(api, tokens, public_app):
    response = api.post(REVOKE, {"token": tokens["access_token"], "client_id": public_app.client_id})
    assert response.status_code == 200 and response.content == b""
    assert "Content-Type" not in response
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/o/token/", "/o/revoke_token/", "/o/introspect/", "/o/userinfo/"])
def test_every_answer_says_nosniff(api, path):
    assert api.post(path, {})["X-Content-Type-Options"] == "nosniff"


def test_another_clients_token_is_left_alone_and_the_answer_does_not_tell(api, tokens, public_app, db):
    other = clients.register_client(name="Other", confidential=False).application
    theirs = api.post(REVOKE, {"token": tokens["refresh_token"], "client_id": other.client_id})
    unknown = api.post(REVOKE, {"token": "no-such-token", "client_id": other.client_id})
    assert theirs.status_code == unknown.status_code == 200 and theirs.content == unknown.content == b""
    assert api.refresh(public_app, tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize("path", ["/o/revoke_token/", INTROSPECT])
def test_repeated_parameters_at_revoke_and_introspect(api, user, public_app, resource_server, path):
    issued = api.password_grant(public_app, "alice").data
    rs, secret = resource_server
    pairs = [("token", issued["access_token"]), ("token", issued["refresh_token"])]
    assert_error(api.post(path, pairs, basic=(rs.client_id, secret)), 400, "invalid_request")
    assert me(api, issued).status_code == 200
