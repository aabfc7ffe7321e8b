"""OpenID Connect on the password grant: ID tokens, discovery, keys.

oauthlib's OpenID server covers the authorization-code and implicit flows only, so DOT returns no
ID token from a password grant; this module signs one. Keys are DOT's: ``OIDC_RSA_PRIVATE_KEY``
signs, ``OIDC_RSA_PRIVATE_KEYS_INACTIVE`` still verify through the JWKS after a rotation.
"""

import base64
import hashlib
import json
import time
from urllib.parse import urlsplit, urlunsplit

from django.urls import reverse
from jwcrypto import jwt
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.utils import jwk_from_pem

from . import clients
from .claims import user_claims
from .conf import ropc_settings

ALGORITHM = "RS256"


def enabled():
    return bool(oauth2_settings.OIDC_ENABLED and oauth2_settings.OIDC_RSA_PRIVATE_KEY)


def configured_issuer():
    return (ropc_settings.ISSUER or oauth2_settings.OIDC_ISS_ENDPOINT or "").rstrip("/") or None


def issuer(django_request):
    """One issuer, from configuration; only an unconfigured development server takes it from the
    request's Host header (which a client chooses)."""
    configured = configured_issuer()
    if configured:
        return configured
    discovery = django_request.build_absolute_uri(reverse("ropc_provider:openid-configuration"))
    return discovery[: -len("/.well-known/openid-configuration")]


def endpoint_url(django_request, name):
    """An endpoint's absolute URL on the issuer's origin (scheme and host), never the request's."""
    path = reverse(f"ropc_provider:{name}")
    configured = configured_issuer()
    if not configured:
        return django_request.build_absolute_uri(path)
    origin = urlsplit(configured)
    return urlunsplit((origin.scheme, origin.netloc, path, "", ""))


def at_hash(access_token):
    # OIDC Core §3.1.3.6: the left half of the SHA-256 of the access token, base64url.
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def id_token(*, user, identity, client, scopes, access_token, expires_in, auth_time, django_request):
    key = jwk_from_pem(oauth2_settings.OIDC_RSA_PRIVATE_KEY)
    now = int(time.time())
    claims = user_claims(user=user, identity=identity, client=client, scopes=scopes, request=django_request)
    claims.update(
        {
            "iss": issuer(django_request),
            "aud": client.client_id,
            "iat": now,
            "exp": now + expires_in,
            "auth_time": int(auth_time.timestamp()),
            "at_hash": at_hash(access_token),
            "amr": ["pwd"],
        }
    )
    token = jwt.JWT(header={"alg": ALGORITHM, "typ": "JWT", "kid": key.thumbprint()}, claims=json.dumps(claims))
    token.make_signed_token(key)
    return token.serialize()


def jwks():
    keys = []
    if oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        for pem in [oauth2_settings.OIDC_RSA_PRIVATE_KEY, *oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE]:
            key = jwk_from_pem(pem)
            keys.append({"alg": ALGORITHM, "use": "sig", "kid": key.thumbprint(), **json.loads(key.export_public())})
    return {"keys": keys}


def discovery(django_request):
    def url(name):
        return endpoint_url(django_request, name)

    scopes = sorted(clients.known_scopes())
    client_auth = ["client_secret_basic", "client_secret_post", "none"]
    return {
        "issuer": issuer(django_request),
        "token_endpoint": url("token"),
        "userinfo_endpoint": url("userinfo"),
        "jwks_uri": url("jwks"),
        "revocation_endpoint": url("revoke-token"),
        "introspection_endpoint": url("introspect"),
        "grant_types_supported": ["password", "refresh_token"],
        # No authorization endpoint: this provider serves no redirect-based flow.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "at_hash",
            "amr",
            "realm",
            "preferred_username",
            "name",
            "given_name",
            "family_name",
            "email",
            "email_verified",
        ],
    }
