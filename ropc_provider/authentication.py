"""DRF authentication with our bearer tokens: ``request.user`` is the token's user, and
``request.auth`` its access token (so DOT's ``TokenHasScope`` works), carrying who the user is to
clients: ``realm`` (slug), ``login_name`` and ``client``, beside DOT's ``scopes``.

Refusals follow RFC 6750 §3.1: a request without a bearer token is challenged with no error
code; a token that is unknown, expired or revoked gets ``error="invalid_token"``, and the body's
``detail`` says what the header's ``error_description`` says (DOT's class answers such a token
"Authentication credentials were not provided.").
"""

from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.exceptions import AuthenticationFailed

from .accounts import identity_of

INVALID_TOKEN = "The token is unknown, expired or revoked."


def _sent_bearer(request):
    return request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("bearer ")


class BearerAuthentication(OAuth2Authentication):
    www_authenticate_realm = "api"

    def authenticate(self, request):
        found = super().authenticate(request)
        if found is None:
            if _sent_bearer(request):
                raise AuthenticationFailed(INVALID_TOKEN)
            return None
        user, token = found
        if user is not None:
            identity = identity_of(user)
            token.realm, token.login_name = identity.realm.slug, identity.login_name
        token.client = token.application
        return user, token

    def authenticate_header(self, request):
        challenge = f'Bearer realm="{self.www_authenticate_realm}"'
        if _sent_bearer(request):
            challenge += f', error="invalid_token", error_description="{INVALID_TOKEN}"'
        return challenge
