import base64
import json
import os
import shutil
from urllib.parse import quote_plus, urlencode

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from oauth2_provider.models import get_application_model

from ropc_provider import clients
from tests.factories import PASSWORD, UserFactory

FORM = "application/x-www-form-urlencoded"
TOKEN_URL = "/o/token/"


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


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    if getattr(settings, "POSTGRESQL_MISSING", False):
        skip = pytest.mark.skip(reason="ROPC_TEST_DATABASE=postgresql, but PostgreSQL is not installed")
        for item in items:
            item.add_marker(skip)


def pytest_report_header(config):
    from django.conf import settings

    return f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Attack-protection counters live in the cache: no test inherits another's failures."""
    from django.core.cache import caches

    for alias in caches:
        caches[alias].clear()


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def public_app(db):
    return clients.register_client(name="Native app", confidential=False, scopes=["read", "write"]).application


@pytest.fixture
def confidential(db):
    """(application, secret) of a confidential password-grant client."""
    registered = clients.register_client(name="Server app", confidential=True, scopes=["read", "write"])
    return registered.application, registered.client_secret


@pytest.fixture
def resource_server(db):
    registered = clients.register_client(name="API", confidential=True, resource_server=True)
    return registered.application, registered.client_secret


@pytest.fixture
def authorization_code_app(db):
    """A public single-page app registered with DOT for the authorization code grant."""
    Application = get_application_model()
    return Application.objects.create(
        name="SPA",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://spa.example.com/callback",
    )


def assert_no_store(response):
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"
    assert response["Content-Type"] == "application/json"


def assert_error(response, status, error):
    assert response.status_code == status, response.content
    body = json.loads(response.content)
    assert body["error"] == error, body
    assert_no_store(response)


@pytest.fixture
def token_of_no_user(api, db):
    """A valid bearer token with no user: DOT's own client-credentials grant, which host projects
    keep using beside ours, at DOT's endpoint mounted in tests/urls.py."""
    Application = get_application_model()
    application = Application.objects.create(
        name="Machine",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="machine secret 1",
    )
    response = api.post(
        "/dot/token/",
        {"grant_type": "client_credentials", "scope": "openid read"},
        basic=(application.client_id, "machine secret 1"),
    )
    assert response.status_code == 200, response.content
    return response.data["access_token"]


class RacingHasher(MD5PasswordHasher):
    """Runs ``during_verify`` while a password is being checked, as a concurrent request would."""

    algorithm = "racing_md5"
    during_verify = None

    def verify(self, password, encoded):
        hook, RacingHasher.during_verify = RacingHasher.during_verify, None
        if hook:
            hook()
        return super().verify(password, encoded)


@pytest.fixture
def racing(settings, db):
    settings.PASSWORD_HASHERS = ["tests.conftest.RacingHasher"]
    from tests.factories import UserFactory

    return UserFactory(username="racer")
