"""The negative matrix: one row per single-request refusal of ../shared/reference/
token-endpoint-checklist.md (its row number first) and of the README's error table. Every row
asserts the status, the `error`, the headers every refusal carries, and that nothing was written:
no new token, none revoked."""

import base64
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from oauth2_provider.models import AccessToken, RefreshToken

from ropc_provider import accounts, clients, realms
from tests.factories import PASSWORD, UserFactory

FORM = "application/x-www-form-urlencoded"


@dataclass
class World:
    api: object
    public: object
    confidential: object
    secret: str
    code_app: object
    staff_only: object
    resource_server: tuple
    refresh_token: str = ""
    confidential_refresh_token: str = ""
    access_token: str = ""
    token_of_no_user: str = ""
    extra: dict = field(default_factory=dict)

    def pw(self, **fields):
        return {"grant_type": "password", "username": "alice", "password": PASSWORD, **fields}


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def world(api, db, authorization_code_app, token_of_no_user):
    UserFactory(username="alice")
    staff = realms.create_realm(slug="staff")
    accounts.create_account(staff, "bob", PASSWORD)
    public = clients.register_client(name="Public", confidential=False, scopes=["read"]).application
    registered = clients.register_client(name="Server", confidential=True, scopes=["read"])
    staff_only = clients.register_client(name="Staff", confidential=False, realms=["staff"]).application
    rs = clients.register_client(name="API", confidential=True, resource_server=True)
    w = World(api, public, registered.application, registered.client_secret, authorization_code_app, staff_only,
              (rs.application, rs.client_secret))  # fmt: skip
    issued = api.token(w.pw(client_id=public.client_id)).data  # scope "read": no openid
    w.refresh_token, w.access_token = issued["refresh_token"], issued["access_token"]
    w.token_of_no_user = token_of_no_user
    w.confidential_refresh_token = api.token(
        w.pw(), HTTP_AUTHORIZATION=basic(registered.application.client_id, registered.client_secret)
    ).data["refresh_token"]
    return w


def post(w, data, path="/o/token/", content_type=FORM, body=None, method="POST", **headers):
    raw = body if body is not None else urlencode(data)
    return w.api.client.generic(method, path, raw, content_type=content_type, **headers)


def public(**fields):
    """A password grant of the public client, with fields changed."""
    return lambda w: post(w, w.pw(client_id=w.public.client_id, **fields))


def refresh(client="public", **fields):
    def send(w):
        data = {"grant_type": "refresh_token", "refresh_token": w.refresh_token, **fields}
        return post(w, {"client_id": getattr(w, client).client_id, **data})

    return send


def bearer(path, token, method="POST"):
    """A request to a bearer endpoint: token is None (no Authorization header), a literal, or the
    name of one of the world's tokens."""

    def send(w):
        headers = {} if token is None else {"HTTP_AUTHORIZATION": f"Bearer {getattr(w, token, token)}".rstrip()}
        return post(w, {}, path=path, method=method, **headers)

    return send


# (checklist row, what is sent, status, error). Rows the matrix cannot hold (concurrency, timing,
# sequences) have their own tests, named in SECURITY.md.
ROWS = [
    ("3 GET", lambda w: post(w, {}, method="GET"), 405, "invalid_request"),
    ("4 secret in the URL", lambda w: post(w, {}, path=f"/o/token/?{urlencode(w.pw(client_id=w.public.client_id))}"),
     400, "invalid_request"),
    ("5 JSON body", lambda w: post(w, {}, content_type="application/json", body='{"grant_type": "password"}'),
     400, "invalid_request"),
    ("6 multipart", lambda w: post(w, {}, content_type="multipart/form-data; boundary=x", body="--x--"),
     400, "invalid_request"),
    ("7 invalid UTF-8", lambda w: post(w, {}, body=b"grant_type=password&username=\xff"), 400, "invalid_request"),
    ("7 another charset", lambda w: post(w, w.pw(), content_type=f"{FORM}; charset=latin-1"), 400, "invalid_request"),
    ("8 no grant_type", lambda w: post(w, {"username": "alice", "password": PASSWORD, "client_id": w.public.client_id}),
     400, "invalid_request"),
    ("9 grant_type=foo", lambda w: post(w, w.pw(grant_type="foo", client_id=w.public.client_id)),
     400, "unsupported_grant_type"),
    ("10 no username", public(username=""), 400, "invalid_request"),
    ("10 empty password", public(password=""), 400, "invalid_request"),
    ("12 repeated username", lambda w: post(w, {}, body=urlencode(w.pw()) + "&username=bob"), 400, "invalid_request"),
    ("14 scope not allowed", public(scope="write"), 400, "invalid_scope"),
    ("15 5,000 fields", lambda w: post(w, {}, body="&".join(f"f{n}=1" for n in range(5000))), 400, "invalid_request"),
    ("16 1 MB password", public(password="x" * 10**6), 413, "invalid_request"),
    ("17 NUL in client_id", lambda w: post(w, w.pw(client_id="ab\x00c")), 400, "invalid_request"),
    ("18 right password plus NUL", public(password=PASSWORD + "\x00"), 400, "invalid_request"),
    ("18 right password plus a suffix", public(password=PASSWORD + "x" * 80), 400, "invalid_grant"),
    ("21 confidential, no secret", lambda w: post(w, w.pw(client_id=w.confidential.client_id)), 401, "invalid_client"),
    ("22 wrong secret, Basic", lambda w: post(w, w.pw(), HTTP_AUTHORIZATION=basic(w.confidential.client_id, "wrong")),
     401, "invalid_client"),
    ("23 Basic !!!", lambda w: post(w, w.pw(), HTTP_AUTHORIZATION="Basic !!!"), 401, "invalid_client"),
    ("23 Basic without a colon", lambda w: post(w, w.pw(), HTTP_AUTHORIZATION="Basic Zm9v"), 401, "invalid_client"),
    ("23 bare Basic", lambda w: post(w, w.pw(), HTTP_AUTHORIZATION="Basic"), 401, "invalid_client"),
    ("25 Basic and a body secret", lambda w: post(w, w.pw(client_secret=w.secret),
                                                  HTTP_AUTHORIZATION=basic(w.confidential.client_id, w.secret)),
     400, "invalid_request"),
    ("26 no client_id", lambda w: post(w, w.pw()), 401, "invalid_client"),
    ("26 unknown client_id", lambda w: post(w, w.pw(client_id="nobody")), 401, "invalid_client"),
    ("27 public client with a secret", public(client_secret="x"), 401, "invalid_client"),
    ("28 client without the grant", lambda w: post(w, w.pw(client_id=w.code_app.client_id)),
     400, "unauthorized_client"),
    ("30 wrong password", public(password="wrong"), 400, "invalid_grant"),
    ("31 unknown user", public(username="nobody"), 400, "invalid_grant"),
    ("41 another realm's account", public(username="bob"), 400, "invalid_grant"),
    ("43 a realm the client may not use", lambda w: post(w, w.pw(client_id=w.staff_only.client_id, realm="project")),
     400, "invalid_request"),
    ("49 refresh wider than granted", refresh(scope="read write"), 400, "invalid_scope"),
    ("50 another client's refresh token", refresh(client="staff_only"), 400, "invalid_grant"),
    ("51 confidential refresh, no client auth", lambda w: post(w, {"grant_type": "refresh_token",
                                                                   "refresh_token": w.confidential_refresh_token,
                                                                   "client_id": w.confidential.client_id}),
     401, "invalid_client"),
    ("56 empty refresh token", refresh(refresh_token=""), 400, "invalid_request"),
    ("56 10 KB refresh token", refresh(refresh_token="x" * 10_000), 400, "invalid_request"),
    ("60 GET revoke", lambda w: post(w, {}, path="/o/revoke_token/", method="GET"), 405, "invalid_request"),
    ("60 revoke, confidential without auth", lambda w: post(w, {"token": w.refresh_token,
                                                                "client_id": w.confidential.client_id},
                                                            path="/o/revoke_token/"), 401, "invalid_client"),
    ("61 introspect without credentials", lambda w: post(w, {"token": w.refresh_token}, path="/o/introspect/"),
     401, "invalid_client"),
    ("62 introspect as a password-grant client", lambda w: post(w, {"token": w.refresh_token}, path="/o/introspect/",
                                                                HTTP_AUTHORIZATION=basic(w.confidential.client_id,
                                                                                         w.secret)),
     403, "unauthorized_client"),
    ("63 GET introspect", lambda w: post(w, {}, path=f"/o/introspect/?token={w.refresh_token}", method="GET"),
     405, "invalid_request"),
    # The README's other error tables: bearer endpoints (RFC 6750), the authorization endpoint, CORS.
    *[row for path in ("/o/userinfo/", "/o/revoke_sessions/") for row in [
        (f"{path} without a token", bearer(path, None), 401, "unauthorized"),
        (f"{path} unknown token", bearer(path, "not-a-token"), 401, "invalid_token"),
        (f"{path} Bearer with no token", bearer(path, ""), 401, "unauthorized"),
        (f"{path} token of no user", bearer(path, "token_of_no_user"), 401, "invalid_token"),
        (f"{path} refresh token as bearer", bearer(path, "refresh_token"), 401, "invalid_token"),
        (f"{path} DELETE", bearer(path, "access_token", method="DELETE"), 405, "invalid_request"),
    ]],
    ("userinfo without openid", bearer("/o/userinfo/", "access_token"), 403, "insufficient_scope"),
    ("revoke_sessions GET", bearer("/o/revoke_sessions/", "access_token", method="GET"), 405, "invalid_request"),
    ("authorize, code", lambda w: post(w, {}, path=f"/o/authorize/?response_type=code&client_id={w.public.client_id}",
                                       method="GET"), 400, "unsupported_response_type"),
    ("authorize, none", lambda w: post(w, {"response_type": "none"}, path="/o/authorize/"), 400, "access_denied"),
    *[(f"CORS preflight {path}", lambda w, path=path: post(w, {}, path=path, method="OPTIONS",
                                                           HTTP_ORIGIN="https://evil.example",
                                                           HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"),
       405, "invalid_request")
      for path in ("/o/token/", "/o/revoke_token/", "/o/introspect/", "/o/revoke_sessions/", "/o/userinfo/")],
]  # fmt: skip


@pytest.mark.parametrize(("row", "send", "status", "error"), ROWS, ids=[row[0] for row in ROWS])
def test_refusal(world, row, send, status, error, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 512 * 1024  # so a 1 MB body is "too large", as in production
    before = (AccessToken.objects.count(), RefreshToken.objects.filter(revoked__isnull=True).count())
    response = send(world)
    assert response.status_code == status, (row, response.content[:300])
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == error, (row, response.json())
    assert response["Cache-Control"] == "no-store" and response["Pragma"] == "no-cache"
    assert response["X-Content-Type-Options"] == "nosniff"
    if status == 401 and response.wsgi_request.META.get("HTTP_AUTHORIZATION", "").startswith("Basic"):
        assert response["WWW-Authenticate"].startswith("Basic")  # RFC 6749 §5.2: the scheme it tried
    if status == 405:
        allowed = response["Allow"].split(", ")
        assert response.wsgi_request.method not in allowed and "POST" in allowed
    if response.wsgi_request.META.get("HTTP_ORIGIN"):
        assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    if response.wsgi_request.path in ("/o/userinfo/", "/o/revoke_sessions/") and status in (401, 403):
        challenge = response["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="oauth"')
        assert (f'error="{error}"' in challenge) == (error != "unauthorized")  # RFC 6750 §3.1
    # Nothing written: no new token, none revoked.
    assert (AccessToken.objects.count(), RefreshToken.objects.filter(revoked__isnull=True).count()) == before
