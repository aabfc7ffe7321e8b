"""Client libraries nobody here wrote talk to a live server: requests-oauthlib's
LegacyApplicationClient (the password grant) obtains, refreshes and revokes tokens, and Node's
certified openid-client discovers us and validates our ID tokens."""

import json
import shutil
import subprocess

import jwt
import pytest
import requests
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from ropc_provider import accounts, clients, realms
from tests.helpers import require_program

PASSWORD = "library pass phrase 1"


@pytest.fixture
def live(live_server, transactional_db, monkeypatch, settings):
    # requests-oauthlib refuses plain HTTP unless told; the live server is on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "ISSUER": f"{live_server.url}/o"}
    realm = realms.create_realm(slug="employees")
    accounts.create_account(realm, "alice", PASSWORD)
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


OPENID_CLIENT_SCRIPT = r"""
const { Issuer } = require('openid-client');
(async () => {
  const [issuerUrl, clientId, password] = process.argv.slice(2);
  const issuer = await Issuer.discover(issuerUrl);
  const client = new issuer.Client({ client_id: clientId, token_endpoint_auth_method: 'none' });
  // grant() and refresh() validate the ID token: signature by the JWKS, iss, aud, exp, iat, at_hash.
  const tokens = await client.grant({ grant_type: 'password', username: 'alice', password, scope: 'openid read' });
  const userinfo = await client.userinfo(tokens);  // checks its sub against the ID token's
  const refreshed = await client.refresh(tokens);
  await client.revoke(refreshed.refresh_token, 'refresh_token');
  let refusal = null;
  try { await client.refresh(refreshed.refresh_token); } catch (error) { refusal = error.error; }
  console.log(JSON.stringify({ issuer: issuer.issuer, claims: tokens.claims(), userinfo,
                               refreshedSub: refreshed.claims().sub, refusal }));
})().catch((error) => { console.error(String(error)); process.exit(1); });
"""


@pytest.fixture(scope="module")
def openid_client(tmp_path_factory):
    """Node's certified openid-client (5.x), installed from the npm registry into a temporary
    directory (node and npm come with this kind of machine; CI installs them where missing)."""

    require_program("npm")
    directory = tmp_path_factory.mktemp("openid-client")
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "openid-client@5"],
                   cwd=directory, check=True, capture_output=True, timeout=300)  # fmt: skip
    (directory / "flow.js").write_text(OPENID_CLIENT_SCRIPT)
    return shutil.which("node"), directory / "flow.js"


def test_nodes_openid_client_discovers_signs_in_validates_refreshes_and_revokes(live, openid_client):

    base, app = live
    node, script = openid_client
    done = subprocess.run([node, str(script), f"{base}/o", app.client_id, PASSWORD],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["issuer"] == f"{base}/o"
    assert result["claims"]["realm"] == "employees" and result["claims"]["preferred_username"] == "alice"
    assert result["userinfo"]["sub"] == result["claims"]["sub"] == result["refreshedSub"]
    assert result["refusal"] == "invalid_grant"  # the revoked refresh token
