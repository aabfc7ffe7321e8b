"""Everything hostile a client can send, generated: whatever arrives, every endpoint answers JSON
(or an empty body where the RFC says so), never a 5xx or an HTML page, and writes no token unless
it answers 200 to a token request.

`make test` runs a small budget; `make fuzz` (HYPOTHESIS_PROFILE=long) a long one."""

import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oauth2_provider.models import AccessToken, RefreshToken

from ropc_provider import clients
from ropc_provider.oauth2_backends import PARAMETERS
from tests.factories import PASSWORD

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ENDPOINTS = [
    "/o/authorize/",
    "/o/token/",
    "/o/authorize-challenge/",
    "/o/revoke_token/",
    "/o/introspect/",
    "/o/revoke_sessions/",
    "/o/sessions/",
    "/o/sessions/0190f1c2-4c2e-7a3b-8e1f-2b3c4d5e6f70/",
    "/o/sessions/not%20a%20session/",
    "/o/userinfo/",
    "/o/mfa/",
    "/o/mfa/totp/",
    "/o/mfa/totp/confirm/",
    "/o/mfa/totp/remove/",
    "/o/mfa/recovery-codes/",
]
# The parameters our endpoints read, and names of oauthlib request attributes a body might shadow.
NAMES = sorted(PARAMETERS) + ["client", "user", "headers"]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/json",
    "multipart/form-data; boundary=x",
    "text/plain",
    "",
]
METHODS = ["POST", "GET", "PUT", "DELETE", "OPTIONS", "PATCH"]

text = st.text(max_size=40)
known_value = st.sampled_from(
    ["password", "refresh_token", "alice", PASSWORD, "read write", "openid", "client_id", "x" * 5000]
)
values = st.one_of(text, known_value)
pairs = st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), text), values), max_size=8)
authorization = st.one_of(
    st.none(),
    st.sampled_from(["Basic", "Basic !!!", "Basic Zm9v", "Bearer", "Bearer x", "Digest x", "Basic " + "A" * 3000]),
    text.map(lambda value: "Bearer " + value),
    text.map(lambda value: "Basic " + value),
)


def _encode(pairs, client_id):
    encoded = []
    for name, value in pairs:
        value = client_id if value == "client_id" else value  # the real client now and then
        encoded.append(f"{quote(name, safe='')}={quote(value, safe='')}")
    return "&".join(encoded).encode()


@pytest.fixture
def app(db, user):
    return clients.register_client(name="Fuzzed", confidential=False, scopes=["read", "write", "openid"]).application


def _looks_right(response):
    assert response.status_code < 500, response.content[:300]
    body = response.content
    if body:
        assert response["Content-Type"].startswith("application/json"), (response.status_code, body[:300])
    else:
        assert response.status_code in (200, 204)
    assert response.get("Cache-Control") == "no-store" or response.status_code == 405 and not body


@given(
    path=st.sampled_from(ENDPOINTS),
    method=st.sampled_from(METHODS),
    content_type=st.sampled_from(CONTENT_TYPES),
    fields=pairs,
    raw=st.one_of(st.none(), st.binary(max_size=200)),
    header=authorization,
    query=st.one_of(st.just(""), pairs.map(lambda p: _encode(p, "").decode())),
    # Any host ALLOWED_HOSTS lets through (Django answers the others before we are reached).
    host=st.sampled_from(["testserver", "localhost:8000", "127.0.0.1:1", "LOCALHOST", "localhost."]),
)
def test_every_endpoint_answers_json_and_writes_nothing_on_failure(
    client, app, path, method, content_type, fields, raw, header, query, host
):
    body = raw if raw is not None else _encode(fields, app.client_id)
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    extra["HTTP_HOST"] = host
    url = f"{path}?{query}" if query else path
    tokens_before = (AccessToken.objects.count(), RefreshToken.objects.count())
    response = client.generic(method, url, body, content_type=content_type, **extra)
    _looks_right(response)
    if not (path == "/o/token/" and response.status_code == 200):
        assert (AccessToken.objects.count(), RefreshToken.objects.count()) <= tokens_before


def _maybe(real):
    """The real value (most often), another one, or nothing."""
    return st.one_of(st.just(real), st.just(real), text, st.none())


password_grants = st.fixed_dictionaries(
    {
        "grant_type": st.one_of(st.sampled_from(["password", "refresh_token"]), text, st.none()),
        "username": _maybe("alice"),
        "password": _maybe(PASSWORD),
        "client_id": _maybe("client_id"),
        "scope": st.one_of(st.none(), st.sampled_from(["read", "read write", "openid", "admin", ""])),
    }
)


a_few_more = st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), text), values), max_size=2)


@given(grant=password_grants, extra=a_few_more, header=st.one_of(st.none(), authorization))
def test_a_token_only_for_the_right_credentials(client, app, settings, grant, extra, header):
    """Token requests near a right one, each part right, wrong or missing, with extra fields and
    headers: a token is issued only for grant_type=password with alice's right password."""
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 10**6, "LOCKOUT_THRESHOLD": 10**6}
    fields = [(name, value) for name, value in grant.items() if value is not None] + extra
    body = _encode(fields, app.client_id)
    headers = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = client.generic("POST", "/o/token/", body, content_type="application/x-www-form-urlencoded", **headers)
    _looks_right(response)
    if response.status_code == 200:
        assert grant["grant_type"] == "password" and grant["username"] == "alice"
        assert grant["password"] == PASSWORD and grant["client_id"] == "client_id"
