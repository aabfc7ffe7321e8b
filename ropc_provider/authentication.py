"""DRF authentication with our bearer tokens: ``request.user`` is the token's user, and
``request.auth`` its access token (so DOT's ``TokenHasScope`` works), carrying who the user is to
clients: ``realm`` (slug), ``login_name`` and ``client``, beside DOT's ``scopes``.

Refusals follow RFC 6750 §3.1: a request without a bearer token is challenged with no error
code; a token that is unknown, expired or revoked gets ``error="invalid_token"``, and the body's
``detail`` says what the header's ``error_description`` says (DOT's class answers such a token
"Authentication credentials were not provided.").
"""

from oauth2_provider import oauth2_validators
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from oauth2_provider.models import AbstractAccessToken, AbstractApplication
from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.settings import oauth2_settings
from oauthlib import oauth2, openid
from rest_framework.exceptions import AuthenticationFailed

from . import accounts, dot, tokens

INVALID_TOKEN = "The token is unknown, expired or revoked."


def _sent_bearer(request):
    return request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("bearer ")


def _header_token(request):
    """The token of an ``Authorization: Bearer TOKEN`` header, read as oauthlib reads it; else None."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    return parts[1] if len(parts) == 2 and parts[0].lower() == "bearer" else None


def _dot_as_shipped():
    """Whether DOT would check a bearer token with its own classes (or our validator, which changes
    nothing for bearer tokens): a project's own validator, server or backend may add rules."""
    return (
        oauth2_settings.OAUTH2_VALIDATOR_CLASS in (oauth2_validators.OAuth2Validator, dot.OAuth2Validator)
        and oauth2_settings.OAUTH2_SERVER_CLASS in (oauth2.Server, openid.Server)
        and oauth2_settings.OAUTH2_BACKEND_CLASS is OAuthLibCore
    )


class BearerAuthentication(OAuth2Authentication):
    www_authenticate_realm = "api"

    def authenticate(self, request):
        value = _header_token(request)
        # The common case checked directly, in one query and without oauthlib's request machinery
        # (which cost an API call more than the query): a token in the header, checked as DOT
        # checks it. Anything else goes DOT's whole way: a token in the body, a token bound to a
        # resource (RFC 8707), a remote introspection server, a token or client model with its own
        # rules, a project's own validator, server or backend.
        if value is None or oauth2_settings.RESOURCE_SERVER_INTROSPECTION_URL or not _dot_as_shipped():
            return self._through_oauthlib(request)
        found = tokens.find_access_token(value)
        if found is not None and not self._plain(found):
            return self._through_oauthlib(request)
        if found is None or found.is_expired():
            raise AuthenticationFailed(INVALID_TOKEN)
        return self._identified(found.user, found)

    @staticmethod
    def _plain(token):
        return (
            not token.resource
            and type(token).is_valid is AbstractAccessToken.is_valid
            and (token.application is None or type(token.application).is_usable is AbstractApplication.is_usable)
        )

    def _through_oauthlib(self, request):
        found = super().authenticate(request)
        if found is None:
            if _sent_bearer(request):
                raise AuthenticationFailed(INVALID_TOKEN)
            return None
        return self._identified(*found)

    @staticmethod
    def _identified(user, token):
        # Who the user is to clients: the account and realm come with the token (find_access_token),
        # so this costs no query; a project user has no account and is in the project realm.
        if user is not None:
            account = getattr(user, "realm_account", None)
            if account is not None:
                token.realm, token.login_name = account.realm.slug, account.login_name
            else:
                token.realm = getattr(token, "project_realm", None) or accounts.identity_of(user).realm.slug
                token.login_name = user.get_username()
        token.client = token.application
        return user, token

    def authenticate_header(self, request):
        challenge = f'Bearer realm="{self.www_authenticate_realm}"'
        if _sent_bearer(request):
            challenge += f', error="invalid_token", error_description="{INVALID_TOKEN}"'
        return challenge
