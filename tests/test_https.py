import pytest

from tests.factories import PASSWORD
from tests.helpers import TOKEN_URL, assert_error


@pytest.fixture
def https_required(settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "REQUIRE_HTTPS": None}  # the default: not DEBUG
    settings.DEBUG = False


def grant(app):
    return {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_id": app.client_id}


def test_plain_http_is_refused_not_redirected(api, user, public_app, https_required):
    response = api.token(grant(public_app))
    assert_error(response, 400, "invalid_request")
    assert "HTTPS is required" in response.data["error_description"]
    assert "Location" not in response


def test_https_is_served(api, user, public_app, https_required):
    assert api.token(grant(public_app), secure=True).status_code == 200


def test_debug_allows_plain_http(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "REQUIRE_HTTPS": None}
    settings.DEBUG = True
    assert api.post(TOKEN_URL, grant(public_app)).status_code == 200
