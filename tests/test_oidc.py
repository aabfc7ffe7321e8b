import base64
import hashlib
import json
from datetime import timedelta

import jwt
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.management import call_command
from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider.models import AccessToken, RefreshToken

from example_project.keys import generate_rsa_key
from ropc_provider import accounts, clients, realms, sessions
from tests.factories import UserFactory
from tests.helpers import assert_error, verify

SECRET = "pass phrase for oidc 1"


@pytest.fixture
def oidc_app(db):
    return clients.register_client(
        name="App", confidential=False, scopes=["openid", "profile", "email", "read"]
    ).application


def expected_at_hash(access_token):
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_id_token_from_the_password_grant_verifies(api, user, oidc_app, jwks):
    response = api.password_grant(oidc_app, "alice", scope="openid read")
    assert response.status_code == 200, response.content
    body = response.data
    claims = verify(body["id_token"], jwks, oidc_app.client_id)
    assert claims["at_hash"] == expected_at_hash(body["access_token"])
    assert claims["realm"] == "project" and claims["preferred_username"] == "alice"
    assert claims["amr"] == ["pwd"]
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert abs(claims["auth_time"] - claims["iat"]) <= 1
    assert "email" not in claims and "name" not in claims


def test_tampered_id_token_fails(api, user, oidc_app, jwks):
    id_token = api.password_grant(oidc_app, "alice", scope="openid").data["id_token"]
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["preferred_username"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{header}.{forged}.{signature}", jwks, oidc_app.client_id)
    with pytest.raises(jwt.InvalidAudienceError):
        verify(id_token, jwks, "another-client")


def test_no_openid_no_id_token(api, user, oidc_app):
    assert "id_token" not in api.password_grant(oidc_app, "alice", scope="read").data


def test_refresh_gives_a_new_id_token_for_the_same_subject(api, user, oidc_app, jwks):
    first = api.password_grant(oidc_app, "alice", scope="openid read").data
    second = api.refresh(oidc_app, first["refresh_token"]).data
    before, after = (
        verify(first["id_token"], jwks, oidc_app.client_id),
        verify(second["id_token"], jwks, oidc_app.client_id),
    )
    assert second["id_token"] != first["id_token"]
    assert after["sub"] == before["sub"]
    assert after["auth_time"] == before["auth_time"]
    assert after["at_hash"] == expected_at_hash(second["access_token"])
    narrowed = api.refresh(oidc_app, second["refresh_token"], scope="read").data
    assert "id_token" not in narrowed


def test_profile_and_email_scopes_add_standard_claims(api, oidc_app, jwks, db):

    UserFactory(username="bea", first_name="Bea", last_name="Smith", email="bea@example.com")
    token = api.password_grant(oidc_app, "bea", scope="openid profile email").data["id_token"]
    claims = verify(token, jwks, oidc_app.client_id)
    assert (claims["name"], claims["given_name"], claims["family_name"]) == ("Bea Smith", "Bea", "Smith")
    assert claims["email"] == "bea@example.com"


def test_sub_is_stable_unique_across_realms_and_not_a_database_id(api, db, jwks):
    employees = realms.create_realm(slug="employees")
    customers = realms.create_realm(slug="customers")
    employee = accounts.create_account(employees, "alice", SECRET)
    accounts.create_account(customers, "alice", SECRET)
    app = clients.register_client(
        name="Both", confidential=False, realms=["employees", "customers"], scopes=["openid"]
    ).application

    def sub(realm):
        token = api.password_grant(app, "alice", password=SECRET, realm=realm, scope="openid").data["id_token"]
        return verify(token, jwks, app.client_id)["sub"]

    assert sub("employees") == sub("employees")
    assert sub("employees") != sub("customers")
    assert sub("employees") == employee.user.oidc_subject.sub
    assert not sub("employees").isdigit() and len(sub("employees")) >= 32


def test_userinfo_returns_the_id_tokens_user_claims(api, user, oidc_app, jwks):
    body = api.password_grant(oidc_app, "alice", scope="openid email").data
    claims = verify(body["id_token"], jwks, oidc_app.client_id)
    for method in ("get", "post"):
        response = getattr(api.client, method)("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store"
        info = response.json()
        assert info == {k: claims[k] for k in ("sub", "realm", "preferred_username", "email")}


def test_userinfo_needs_an_openid_token(api, user, oidc_app):
    plain = api.password_grant(oidc_app, "alice", scope="read").data
    assert_error(
        api.client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {plain['access_token']}"), 403, "insufficient_scope"
    )
    missing = api.client.get("/o/userinfo/")
    # RFC 6750 §3.1: no credentials, no error code in the challenge.
    assert missing.status_code == 401 and missing["WWW-Authenticate"] == 'Bearer realm="oauth"'
    bad = api.client.get("/o/userinfo/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_error(bad, 401, "invalid_token")
    assert 'error="invalid_token"' in bad["WWW-Authenticate"]
    assert bad.json()["error_description"] in bad["WWW-Authenticate"]  # the body says what the header says


def add_department(*, user, realm, client, scopes, request):
    return {"department": f"{realm.slug}-dept", "scopes_seen": sorted(scopes)}


def steal_sub(**kwargs):
    return {"sub": "admin", "realm": "root"}


def test_claims_hook_adds_to_id_token_and_userinfo(api, user, oidc_app, jwks, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "CLAIMS_HOOK": "tests.test_oidc.add_department"}
    body = api.password_grant(oidc_app, "alice", scope="openid").data
    assert verify(body["id_token"], jwks, oidc_app.client_id)["department"] == "project-dept"
    info = api.client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").json()
    assert info["department"] == "project-dept" and info["scopes_seen"] == ["openid"]


def test_claims_hook_cannot_set_protected_claims(api, user, oidc_app, settings, caplog):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "CLAIMS_HOOK": "tests.test_oidc.steal_sub"}
    response = api.password_grant(oidc_app, "alice", scope="openid")
    assert_error(response, 500, "server_error")
    assert "protected claim(s) realm, sub" in caplog.text
    assert not AccessToken.objects.exists() and not RefreshToken.objects.exists()
    assert api.password_grant(oidc_app, "alice", scope="read").status_code == 200


def test_claims_hook_that_cannot_be_imported_fails_the_checks(settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "CLAIMS_HOOK": "tests.nowhere.hook"}
    assert "ropc_provider.E002" in {m.id for m in checks.run_checks(tags=[checks.Tags.compatibility])}


def test_discovery_document(client):
    doc = client.get("/o/.well-known/openid-configuration").json()
    assert doc["issuer"] == "http://testserver/o"
    assert doc["token_endpoint"] == "http://testserver/o/token/"
    assert doc["userinfo_endpoint"] == "http://testserver/o/userinfo/"
    assert doc["jwks_uri"] == "http://testserver/o/.well-known/jwks.json"
    assert doc["grant_types_supported"] == ["password", "refresh_token", "authorization_code"]
    assert doc["authorization_challenge_endpoint"] == "http://testserver/o/authorize-challenge/"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post", "none"]
    assert "openid" in doc["scopes_supported"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


def test_rotated_out_key_still_verifies_older_tokens(api, user, oidc_app, settings, client):
    old_key = settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]
    old_token = api.password_grant(oidc_app, "alice", scope="openid").data["id_token"]
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OIDC_RSA_PRIVATE_KEY": generate_rsa_key(),
        "OIDC_RSA_PRIVATE_KEYS_INACTIVE": [old_key],
    }
    keys = jwt.PyJWKSet.from_dict(client.get("/o/.well-known/jwks.json").json())
    assert len(keys.keys) == 2
    new_token = api.password_grant(oidc_app, "alice", scope="openid").data["id_token"]
    assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
    for token in (old_token, new_token):
        assert verify(token, keys, oidc_app.client_id)["preferred_username"] == "alice"


def test_oidc_endpoints_are_404_when_disabled(client, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ENABLED": False}
    for path in ("/o/.well-known/openid-configuration", "/o/.well-known/jwks.json", "/o/userinfo/"):
        assert client.get(path).status_code == 404


def steal_username(**kwargs):
    return {"preferred_username": "root"}


def test_userinfo_with_a_broken_hook_is_a_json_error(api, user, oidc_app, settings):
    body = api.password_grant(oidc_app, "alice", scope="openid").data
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "CLAIMS_HOOK": "tests.test_oidc.steal_username"}
    response = api.client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert_error(response, 500, "server_error")
    assert "root" not in response.content.decode()


def test_userinfo_with_a_token_of_no_user(api, token_of_no_user):
    response = api.client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {token_of_no_user}")
    assert_error(response, 401, "invalid_token")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert "issued to a user" in response.json()["error_description"]


def test_auth_time_survives_cleartokens(api, user, oidc_app, jwks, settings):
    """A daily refresh, and cleartokens deleting rotated-away tokens after 14 days, as the README
    recommends: auth_time stays the moment of the password check."""

    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "REFRESH_TOKEN_EXPIRE_SECONDS": 14 * 24 * 3600}
    with freeze_time(timezone.now()) as clock:
        tokens = api.password_grant(oidc_app, "alice", scope="openid read").data
        signed_in = verify(tokens["id_token"], jwks, oidc_app.client_id)["auth_time"]
        for _ in range(16):
            clock.tick(timedelta(days=1))
            tokens = api.refresh(oidc_app, tokens["refresh_token"]).data
        call_command("cleartokens")
        assert RefreshToken.objects.count() < 17  # the first ones are gone
        assert verify(tokens["id_token"], jwks, oidc_app.client_id)["auth_time"] == signed_in
        tokens = api.refresh(oidc_app, tokens["refresh_token"]).data
        claims = verify(tokens["id_token"], jwks, oidc_app.client_id)
        assert claims["auth_time"] == signed_in
        # The session is the same one, and it says so too.
        [session] = sessions.live_sessions(user)
        assert (str(session.pk), int(session.started_at.timestamp())) == (claims["sid"], signed_in)


def test_one_issuer_whatever_the_host_header(api, user, oidc_app, jwks):
    """A token minted through one host name validates against discovery fetched through another,
    and a hostile Host header changes nothing that is signed or published."""
    minted = api.password_grant(oidc_app, "alice", scope="openid", HTTP_HOST="localhost").data
    discovery = api.client.get("/o/.well-known/openid-configuration", HTTP_HOST="127.0.0.1").json()
    assert discovery["issuer"] == "http://testserver/o"
    assert discovery["token_endpoint"] == "http://testserver/o/token/"
    claims = verify(minted["id_token"], jwks, oidc_app.client_id)
    assert claims["iss"] == discovery["issuer"]


def test_email_verified_only_when_the_user_model_can_say(api, oidc_app, jwks, db, monkeypatch):

    UserFactory(username="bea", email="bea@example.com")

    def id_token_claims():
        issued = api.password_grant(oidc_app, "bea", scope="openid email").data
        return verify(issued["id_token"], jwks, oidc_app.client_id)

    unknown = id_token_claims()
    assert unknown["email"] == "bea@example.com" and "email_verified" not in unknown
    monkeypatch.setattr(get_user_model(), "email_verified", property(lambda user: True), raising=False)
    assert id_token_claims()["email_verified"] is True


# -- RFC 8414 -------------------------------------------------------------------------------------


METADATA = "/.well-known/oauth-authorization-server"


@pytest.mark.parametrize("path", [f"{METADATA}/o", f"/o{METADATA}"])
def test_authorization_server_metadata(api, path, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ENABLED": False}  # served all the same
    response = api.client.get(path, HTTP_HOST="localhost")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == "http://testserver/o"
    assert doc["token_endpoint"] == "http://testserver/o/token/"
    assert doc["revocation_endpoint"] == "http://testserver/o/revoke_token/"
    assert doc["introspection_endpoint"] == "http://testserver/o/introspect/"
    assert doc["grant_types_supported"] == ["password", "refresh_token", "authorization_code"]
    assert doc["authorization_challenge_endpoint"] == "http://testserver/o/authorize-challenge/"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "none" in doc["token_endpoint_auth_methods_supported"]
    assert {"read", "openid"} <= set(doc["scopes_supported"])


@pytest.mark.parametrize("path", [METADATA, f"{METADATA}/x"])
def test_metadata_of_another_issuer_path_is_not_ours(api, path):
    assert_error(api.client.get(path), 404, "not_found")


def test_discovery_is_the_metadata_and_more(api):
    metadata = api.client.get(f"{METADATA}/o").json()
    discovery = api.client.get("/o/.well-known/openid-configuration").json()
    assert {key: discovery[key] for key in metadata} == metadata


def test_metadata_validates_under_authlib(api, settings):
    """What a client library checks, with an https issuer as production has: both documents pass
    Authlib's validation of every field RFC 8414 and OpenID Connect Discovery define."""

    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "ISSUER": "https://id.example.com/o"}
    metadata = api.client.get(f"{METADATA}/o").json()
    discovery = api.client.get("/o/.well-known/openid-configuration").json()
    AuthorizationServerMetadata(metadata).validate()
    OpenIDProviderMetadata(discovery).validate()
    assert discovery["authorization_endpoint"] == "https://id.example.com/o/authorize/"
    assert discovery["response_types_supported"] == ["none"]


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded; charset=latin-1", "multipart/form-data; boundary=x"]
)
def test_authorization_endpoint_answers_json_to_a_body_django_cannot_read(api, content_type):
    # Found by the fuzzer on Django 6.1, which refuses such a body with its HTML 400 page.
    response = api.client.generic("POST", "/o/authorize/", b"response_type=code&x=\xff", content_type=content_type)
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("", "invalid_request"),
        ("?response_type=code&client_id=x&redirect_uri=https://evil.example/", "unsupported_response_type"),
        ("?response_type=token", "unsupported_response_type"),
        ("?response_type=none&redirect_uri=https://evil.example/", "access_denied"),
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_authorization_endpoint_refuses_everyone_and_never_redirects(api, query, error, method):
    params = dict(pair.split("=", 1) for pair in query.lstrip("?").split("&") if pair)
    response = getattr(api.client, method)("/o/authorize/", params)  # GET: the query; POST: a form
    assert_error(response, 400, error)
    assert "Location" not in response and "token endpoint" in response.json()["error_description"]


def test_authorization_endpoint_takes_a_repeated_response_type_as_none_given(api):
    response = api.client.get("/o/authorize/?response_type=code&response_type=none")
    assert_error(response, 400, "invalid_request")
    assert api.client.head("/o/authorize/?response_type=code").status_code == 400  # HEAD is GET's
