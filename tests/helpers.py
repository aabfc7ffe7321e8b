"""What several test modules share: the token-endpoint client, assertions every refusal must pass,
the README's code blocks, and a hasher that lets a test act while a password is being checked."""

import base64
import json
import os
import pathlib
import re
import secrets
import shutil
from urllib.parse import quote_plus, urlencode

import jwt
import pytest
from django.contrib.auth.hashers import MD5PasswordHasher

from tests.factories import PASSWORD

FORM = "application/x-www-form-urlencoded"
TOKEN_URL = "/o/token/"
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def require_program(name):
    """Skip without a system program on a laptop; under CI=true its absence is a failure."""
    if shutil.which(name):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name!r} is not installed, and CI must run every test (.ci/run installs it)")
    pytest.skip(f"{name!r} is not installed")


class Api:
    """Token-endpoint calls the way an OAuth client sends them: form-encoded bodies."""

    def __init__(self, client):
        self.client = client

    def post(self, url, data=(), *, basic=None, content_type=FORM, body=None, **extra):
        if basic is not None:
            client_id, secret = basic
            # RFC 6749 §2.3.1: form-encode both parts before base64.
            pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
            extra["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(pair).decode()
        if body is None:
            body = urlencode(list(data.items()) if isinstance(data, dict) else list(data))
        response = self.client.generic("POST", url, body, content_type=content_type, **extra)
        is_json = response.get("Content-Type", "").startswith("application/json")
        response.data = json.loads(response.content) if is_json and response.content else None
        return response

    def token(self, data, **kwargs):
        return self.post(TOKEN_URL, data, **kwargs)

    def password_grant(
        self, application, username, password=PASSWORD, secret=None, basic=False, HTTP_HOST=None, **fields
    ):
        data = {"grant_type": "password", "username": username, "password": password, **fields}
        extra = {"HTTP_HOST": HTTP_HOST} if HTTP_HOST else {}
        if basic:
            return self.token(data, basic=(application.client_id, secret), **extra)
        data["client_id"] = application.client_id
        if secret is not None:
            data["client_secret"] = secret
        return self.token(data, **extra)

    def refresh(self, application, refresh_token, secret=None, **fields):
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **fields}
        if secret is not None:
            return self.token(data, basic=(application.client_id, secret))
        data["client_id"] = application.client_id
        return self.token(data)


def assert_no_store(response):
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"
    assert response["Content-Type"] == "application/json"


def assert_error(response, status, error):
    assert response.status_code == status, response.content
    body = json.loads(response.content)
    assert body["error"] == error, body
    assert_no_store(response)


class RacingHasher(MD5PasswordHasher):
    """Runs ``during_verify`` while a password is being checked, as a concurrent request would."""

    algorithm = "racing_md5"
    during_verify = None

    def verify(self, password, encoded):
        hook, RacingHasher.during_verify = RacingHasher.during_verify, None
        if hook:
            hook()
        return super().verify(password, encoded)


def readme_blocks(language=None):
    return [body.strip() for lang, body in FENCE.findall(README.read_text()) if language in (None, lang)]


def readme_block(first_line):
    """The README's code block that starts with ``first_line``."""
    found = [block for block in readme_blocks() if block.startswith(first_line)]
    assert len(found) == 1, f"{len(found)} README blocks start with {first_line!r}"
    return found[0]


INTROSPECT = "/o/introspect/"


def me(api, body):
    """The example API, called with the access token of a token response's body."""
    return api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")


class CountingHasher(MD5PasswordHasher):
    algorithm = "counting_md5"
    calls = 0

    def encode(self, password, salt):
        CountingHasher.calls += 1
        return super().encode(password, salt)


def prefixed_token(request, refresh_token=False):
    """A TOKEN_GENERATOR of a project with its own token format."""
    return "test-" + secrets.token_urlsafe(24)


def verify(id_token, jwks, audience):
    """The claims of an ID token, verified as a relying party would (``jwks``: the conftest fixture)."""
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(
        id_token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer="http://testserver/o",
        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time", "at_hash"]},
    )
