"""OpenID Connect on the password grant: ID tokens, discovery, keys.

oauthlib's OpenID server covers the authorization-code and implicit flows only, so DOT returns no
ID token from a password grant; this module signs one. Keys are DOT's: ``OIDC_RSA_PRIVATE_KEY``
signs, ``OIDC_RSA_PRIVATE_KEYS_INACTIVE`` still verify through the JWKS after a rotation.
"""

import base64
import hashlib
import json
import time

from jwcrypto import jwt
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.utils import jwk_from_pem

from . import metadata
from .claims import user_claims

ALGORITHM = "RS256"


def enabled():
    return bool(oauth2_settings.OIDC_ENABLED and oauth2_settings.OIDC_RSA_PRIVATE_KEY)


def at_hash(access_token):
    # OIDC Core §3.1.3.6: the left half of the SHA-256 of the access token, base64url.
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def id_token(
    *,
    user,
    identity,
    client,
    scopes,
    access_token,
    expires_in,
    auth_time,
    django_request,
    methods=("pwd",),
    session_id=None,
):
    key = jwk_from_pem(oauth2_settings.OIDC_RSA_PRIVATE_KEY)
    now = int(time.time())
    claims = user_claims(user=user, identity=identity, client=client, scopes=scopes, request=django_request)
    claims.update(
        {
            "iss": metadata.issuer(django_request),
            "aud": client.client_id,
            "iat": now,
            "exp": now + expires_in,
            "auth_time": int(auth_time.timestamp()),
            "at_hash": at_hash(access_token),
            "amr": list(methods),
        }
    )
    if session_id is not None:
        # OpenID Connect Front- and Back-Channel Logout's claim: which session the token is of.
        claims["sid"] = str(session_id)
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
    """OpenID Connect Discovery: the authorization server's metadata (RFC 8414) and what OpenID
    Connect adds to it."""
    return {
        **metadata.authorization_server(django_request),
        "userinfo_endpoint": metadata.endpoint_url(django_request, "userinfo"),
        "jwks_uri": metadata.endpoint_url(django_request, "jwks"),
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
            "sid",
            "realm",
            "preferred_username",
            "name",
            "given_name",
            "family_name",
            "email",
            "email_verified",
        ],
    }
