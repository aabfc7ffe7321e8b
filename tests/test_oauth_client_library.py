"""A standard OAuth client library nobody here wrote talks to a live server: requests-oauthlib's
LegacyApplicationClient (the password grant) obtains, refreshes and revokes tokens."""

import jwt
import pytest
import requests
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from ropc_provider import clients, directories

PASSWORD = "library pass phrase 1"


@pytest.fixture
def live(live_server, transactional_db, monkeypatch, settings):
    # requests-oauthlib refuses plain HTTP unless told; the live server is on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "ISSUER": f"{live_server.url}/o"}
    realm = directories.create_realm(slug="employees")
    directories.create_account(realm, "alice", PASSWORD)
    app = clients.register_client(
        name="Library", confidential=False, realms=["employees"], scopes=["openid", "read"]
    ).application
    return live_server.url, app


def test_obtain_refresh_and_revoke_with_requests_oauthlib(live):
    base, app = live
    oauth = OAuth2Session(client=LegacyApplicationClient(client_id=app.client_id))
    token = oauth.fetch_token(
        f"{base}/o/token/",
        username="alice",
        password=PASSWORD,
        client_id=app.client_id,
        include_client_id=True,
        scope=["openid", "read"],
    )
    assert token["token_type"] == "Bearer" and set(token["scope"]) == {"openid", "read"}
    assert oauth.get(f"{base}/api/me/").json() == {
        "username": "alice",
        "realm": "employees",
        "scopes": ["openid", "read"],
    }

    discovery = requests.get(f"{base}/o/.well-known/openid-configuration", timeout=10).json()
    keys = jwt.PyJWKClient(discovery["jwks_uri"])
    claims = jwt.decode(
        token["id_token"],
        keys.get_signing_key_from_jwt(token["id_token"]).key,
        algorithms=["RS256"],
        audience=app.client_id,
        issuer=discovery["issuer"],
    )
    assert claims["realm"] == "employees"

    refreshed = oauth.refresh_token(f"{base}/o/token/", client_id=app.client_id)
    assert refreshed["access_token"] != token["access_token"]
    assert oauth.get(f"{base}/api/me/").status_code == 200

    url, headers, body = oauth._client.prepare_token_revocation_request(
        f"{base}/o/revoke_token/", refreshed["refresh_token"], token_type_hint="refresh_token"
    )
    revoke = requests.post(url, data=f"{body}&client_id={app.client_id}", headers=headers, timeout=10)
    assert revoke.status_code == 200
    assert oauth.get(f"{base}/api/me/").status_code == 401
    stale = requests.post(
        f"{base}/o/token/",
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"], "client_id": app.client_id},
        timeout=10,
    )
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
