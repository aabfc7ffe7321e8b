"""The oauthlib server behind our endpoints: the password, refresh-token and authorization-code
grants, the authorization challenge of first-party apps, revocation (RFC 7009) and introspection
(RFC 7662). Nothing else is served here; the host project's own DOT endpoints keep their own
server."""

from django.utils import timezone
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.endpoints import (
    IntrospectEndpoint,
    ResourceEndpoint,
    RevocationEndpoint,
    TokenEndpoint,
)
from oauthlib.oauth2.rfc6749.tokens import BearerToken

from . import clients, tokens
from .conf import ropc_settings
from .grants import AuthorizationChallenge, AuthorizationCodeGrant, PasswordGrant, RefreshTokenGrant


def access_token_lifetime(request):
    """The client's access-token lifetime, cut to what the session could have left."""
    return clients.session_capped_access_token_lifetime(
        request.client, started_at=session_started(request), now=request.received_at
    )


def session_started(request):
    """When the session these tokens belong to began: a refresh's at its first sign-in, a code's
    when its password was checked (the second step and the redemption came after), a password
    grant's now."""
    if getattr(request, "refresh_token_instance", None) is not None:
        return tokens.family_started(request.refresh_token_instance)
    if getattr(request, "authorization_code", None) is not None:
        return request.authorization_code.auth_time
    return request.received_at


class Server(TokenEndpoint, RevocationEndpoint, IntrospectEndpoint, ResourceEndpoint):
    def __init__(self, request_validator, **dot_server_kwargs):
        # DOT's project-wide server kwargs (its lifetimes and generators) are ignored on purpose:
        # ours come from ROPC_PROVIDER and the client's policy.
        generator = ropc_settings.TOKEN_GENERATOR
        self.bearer = BearerToken(request_validator, generator, access_token_lifetime, generator)
        grants = {
            "password": PasswordGrant(request_validator),
            "refresh_token": RefreshTokenGrant(request_validator),
            "authorization_code": AuthorizationCodeGrant(request_validator),
        }
        self.challenge = AuthorizationChallenge(request_validator)
        TokenEndpoint.__init__(self, "password", self.bearer, grants)
        RevocationEndpoint.__init__(self, request_validator)
        IntrospectEndpoint.__init__(self, request_validator)
        ResourceEndpoint.__init__(self, default_token="Bearer", token_types={"Bearer": self.bearer})
        self.request_validator = request_validator

    def create_token_response(self, uri, http_method="POST", body=None, headers=None, django_request=None):
        request = Request(uri, http_method=http_method, body=body, headers=headers)
        request.received_at = timezone.now()
        request.django_request = django_request
        self.validate_token_request(request)
        if not request.grant_type:
            raise errors.InvalidRequestError(description="Missing grant_type parameter.", request=request)
        grant = self.grant_types.get(request.grant_type)
        if grant is None:
            raise errors.UnsupportedGrantTypeError(request=request)
        # An empty scope parameter means no scope was asked for (RFC 6749 §3.3).
        if request.scope is not None and not request.scope.strip():
            request.scope = None
        return grant.create_token_response(request, self.bearer)

    def create_authorization_challenge_response(
        self, uri, http_method="POST", body=None, headers=None, django_request=None
    ):
        request = Request(uri, http_method=http_method, body=body, headers=headers)
        request.received_at = timezone.now()
        request.django_request = django_request
        request.at_challenge_endpoint = True
        if request.scope is not None and not request.scope.strip():
            request.scope = None
        return self.challenge.create_challenge_response(request)

    def validate_introspect_request(self, request):
        super().validate_introspect_request(request)
        if not clients.policy_of(request.client).may_introspect:
            raise errors.CustomOAuth2Error(
                "unauthorized_client",
                description="This client may not introspect tokens.",
                status_code=403,
                request=request,
            )
