"""Protecting a project's own API with our bearer tokens (DRF), as example_project's /api/me/ does."""

from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider.models import AccessToken
from oauth2_provider.oauth2_validators import OAuth2Validator

from ropc_provider import accounts, clients, realms
from tests.factories import PASSWORD
from tests.helpers import readme_block

ME = "/api/me/"


def test_the_grant_tells_the_api_who_signed_in(api, db):
    realm = realms.create_realm(slug="staff")
    accounts.create_account(realm, "Bob", PASSWORD)
    app = clients.register_client(name="App", confidential=False, realms=["staff"], scopes=["read"]).application
    token = api.password_grant(app, "bob").data["access_token"]
    response = api.client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.json() == {"username": "Bob", "realm": "staff", "scopes": ["read"]}


def test_no_token_is_challenged_without_an_error_code(api, db):
    response = api.client.get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'  # RFC 6750 §3.1


def test_a_bad_token_is_invalid_token_in_header_and_body(api, db):
    response = api.client.get(ME, HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 401
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api", error="invalid_token"')
    assert f'error_description="{response.json()["detail"]}"' in challenge


def test_a_revoked_token_is_refused_as_invalid(api, user, public_app):
    tokens = api.password_grant(public_app, "alice").data
    api.client.post("/o/revoke_sessions/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    response = api.client.get(ME, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == 401 and 'error="invalid_token"' in response["WWW-Authenticate"]


def test_an_expired_token_is_refused_as_invalid(api, user, public_app):
    token = api.password_grant(public_app, "alice").data["access_token"]
    with freeze_time(timezone.now() + timedelta(seconds=clients.access_token_lifetime(public_app) + 1)):
        response = api.client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and 'error="invalid_token"' in response["WWW-Authenticate"]


def test_the_header_is_read_as_oauthlib_reads_it_and_a_bound_token_goes_dots_way(api, user, public_app):
    token = api.password_grant(public_app, "alice").data["access_token"]
    assert api.client.get(ME, HTTP_AUTHORIZATION=f"bearer  {token} ").json()["username"] == "alice"
    AccessToken.objects.update(resource=["https://elsewhere.example/"])  # RFC 8707: bound elsewhere
    refused = api.client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 401 and 'error="invalid_token"' in refused["WWW-Authenticate"]


def test_a_token_of_no_user_is_forbidden(api, token_of_no_user):
    assert api.client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token_of_no_user}").status_code == 403


def test_dots_token_has_scope_guards_a_view_by_scope(api, db):
    realm = realms.create_realm(slug="staff")
    accounts.create_account(realm, "bob", PASSWORD)
    app = clients.register_client(
        name="App", confidential=False, realms=["staff"], scopes=["read", "write"]
    ).application
    reader = api.password_grant(app, "bob", scope="read").data["access_token"]
    writer = api.password_grant(app, "bob", scope="read write").data["access_token"]
    assert api.client.post("/api/orders/", HTTP_AUTHORIZATION=f"Bearer {reader}").status_code == 403
    placed = api.client.post("/api/orders/", HTTP_AUTHORIZATION=f"Bearer {writer}")
    assert placed.status_code == 200 and placed.json() == {"placed_by": "bob"}


def test_the_readmes_scope_example_is_the_view_tested_above():

    tested = (Path(__file__).parent / "urls.py").read_text()
    shown = readme_block("from oauth2_provider.contrib.rest_framework import TokenHasScope")
    assert all(line in tested for line in shown.splitlines() if line.strip())


class RefusesEveryBearerToken(OAuth2Validator):
    def validate_bearer_token(self, token, scopes, request):
        return False


def test_a_projects_own_validator_decides_api_calls(api, user, public_app, settings):
    token = api.password_grant(public_app, "alice").data["access_token"]
    validator = "tests.test_authentication.RefusesEveryBearerToken"
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OAUTH2_VALIDATOR_CLASS": validator}
    assert api.client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_a_token_model_that_calls_a_token_invalid_is_heard(api, user, public_app, monkeypatch):
    token = api.password_grant(public_app, "alice").data["access_token"]
    monkeypatch.setattr(AccessToken, "is_valid", lambda self, scopes=None: False)
    assert api.client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
