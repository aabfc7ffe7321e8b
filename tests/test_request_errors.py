"""Every malformed request gets an RFC 6749 §5.2 JSON error with no-store headers, never a 500,
and writes no token."""

import base64
import json

import pytest
from oauth2_provider.models import AccessToken

from ropc_provider import client_secrets, clients
from tests.factories import PASSWORD
from tests.helpers import TOKEN_URL, assert_error


@pytest.fixture
def grant(user, public_app):
    return {
        "grant_type": "password",
        "username": "alice",
        "password": PASSWORD,
        "client_id": public_app.client_id,
    }


def test_get_is_405_json(client, grant):
    response = client.get(TOKEN_URL, grant)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"] == "invalid_request"
    assert response["Cache-Control"] == "no-store"


def test_parameters_in_query_string_are_refused(api, grant):
    response = api.post(f"{TOKEN_URL}?password={PASSWORD}", grant)
    assert_error(response, 400, "invalid_request")
    assert PASSWORD not in response.content.decode()
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize(
    "content_type,body",
    [
        ("application/json", None),
        ("multipart/form-data; boundary=xyz", None),
        ("text/plain", None),
        ("application/x-www-form-urlencoded; charset=iso-8859-1", None),
    ],
)
def test_body_must_be_form_encoded_utf8(api, grant, content_type, body):

    body = json.dumps(grant) if content_type == "application/json" else None
    if content_type.startswith("multipart"):
        body = "".join(f'--xyz\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in grant.items())
        body += "--xyz--\r\n"
    response = api.post(TOKEN_URL, grant, content_type=content_type, body=body)
    assert_error(response, 400, "invalid_request")
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("raw", [b"grant_type=password&username=\xff\xfe", b"grant_type=password&username=%FF%FE"])
def test_invalid_utf8_is_invalid_request(api, raw):
    response = api.client.generic("POST", TOKEN_URL, raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_missing_grant_type(api, grant):
    del grant["grant_type"]
    assert_error(api.token(grant), 400, "invalid_request")


def test_unknown_grant_type(api, grant):
    assert_error(api.token({**grant, "grant_type": "foo"}), 400, "unsupported_grant_type")


@pytest.mark.parametrize("grant_type", ["client_credentials", "implicit"])
def test_grants_we_do_not_serve(api, grant, grant_type):
    assert_error(api.token({**grant, "grant_type": grant_type}), 400, "unsupported_grant_type")


def test_authorization_code_grant_needs_a_code(api, grant):
    # Served for the challenge endpoint's codes only (test_authorization_challenge.py).
    assert_error(api.token({**grant, "grant_type": "authorization_code"}), 400, "invalid_request")


@pytest.mark.parametrize("field", ["username", "password"])
def test_missing_or_empty_credentials(api, grant, field):
    assert_error(api.token({**grant, field: ""}), 400, "invalid_request")
    del grant[field]
    assert_error(api.token(grant), 400, "invalid_request")


@pytest.mark.parametrize("field", ["grant_type", "username", "password", "scope", "client_id"])
def test_repeated_parameter_is_invalid_request(api, grant, field):
    grant.setdefault(field, "read")
    pairs = list(grant.items()) + [(field, grant[field])]
    response = api.token(pairs)
    assert_error(response, 400, "invalid_request")
    assert field in response.data["error_description"]
    assert not AccessToken.objects.exists()


def test_body_too_large_is_413(api, grant, settings):
    response = api.token({**grant, "padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    assert_error(response, 413, "invalid_request")


def test_too_many_fields(api, grant, settings):
    pairs = list(grant.items()) + [(f"f{i}", "x") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)]
    assert_error(api.token(pairs), 400, "invalid_request")


@pytest.mark.parametrize("field", ["password", "username"])
def test_overlong_parameter_is_refused_before_hashing(api, grant, field):
    assert_error(api.token({**grant, field: "é" * 10_000}), 400, "invalid_request")


@pytest.mark.parametrize("field", ["username", "client_id", "password"])
def test_nul_byte_is_invalid_request(api, grant, field):
    assert_error(api.token({**grant, field: grant[field] + "\x00"}), 400, "invalid_request")


# -- client authentication --------------------------------------------------------------------


def test_unknown_or_missing_client_id(api, grant):
    assert_error(api.token({**grant, "client_id": "nope"}), 401, "invalid_client")
    del grant["client_id"]
    assert_error(api.token(grant), 401, "invalid_client")


def test_confidential_client_without_secret(api, user, confidential):
    application, _secret = confidential
    response = api.password_grant(application, "alice")
    assert_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" not in response


def test_confidential_wrong_secret_in_body(api, user, confidential):
    application, _secret = confidential
    assert_error(api.password_grant(application, "alice", secret="wrong"), 401, "invalid_client")


def test_confidential_wrong_secret_basic_gets_basic_challenge(api, user, confidential):
    application, _secret = confidential
    response = api.password_grant(application, "alice", secret="wrong", basic=True)
    assert_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    "header", ["Basic !!!", "Basic Zm9v", "Basic", "Basic " + base64.b64encode(b"\xff:\xfe").decode()]
)
def test_malformed_basic_is_invalid_client(api, user, confidential, header):
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    response = api.token(data, HTTP_AUTHORIZATION=header)
    assert_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic ")


def test_basic_and_body_secret_together_is_invalid_request(api, user, confidential):
    application, secret = confidential
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_secret": secret}
    assert_error(api.token(data, basic=(application.client_id, secret)), 400, "invalid_request")


def test_public_client_sending_a_secret_is_not_confidential(api, user, public_app):
    assert_error(api.password_grant(public_app, "alice", secret="x"), 401, "invalid_client")


def test_basic_secret_is_form_decoded(api, user, db):

    registered = clients.register_client(name="Odd secret", confidential=True)
    app = registered.application
    odd = "a:b+c%d e"
    app.ropc_policy.client_secret_verifier = client_secrets.make_verifier(odd)
    app.ropc_policy.save()
    response = api.password_grant(app, "alice", secret=odd, basic=True)
    assert response.status_code == 200, response.content


def test_client_registered_for_another_grant_is_unauthorized(api, user, authorization_code_app):
    response = api.password_grant(authorization_code_app, "alice")
    assert_error(response, 400, "unauthorized_client")


def test_cors_preflight_is_refused(api):
    """These endpoints are not for browsers: a preflight gets no CORS permission."""
    response = api.client.options(
        "/o/token/", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


@pytest.mark.parametrize("field", ["client", "user", "scopes", "_ropc_basic", "django_request", "headers"])
def test_body_fields_named_like_request_attributes_are_ignored(api, user, confidential, field):
    application, secret = confidential
    response = api.password_grant(application, "alice", secret=secret, basic=True, **{field: "x"})
    assert response.status_code == 200, response.content
    assert response.data["scope"] == "read"


@pytest.mark.parametrize("client_id", ["ab\x00c", "abc%00"])
def test_nul_in_basic_credentials_is_invalid_client(api, user, confidential, client_id):
    _application, secret = confidential
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    assert_error(api.token(data, basic=(client_id, secret)), 401, "invalid_client")
