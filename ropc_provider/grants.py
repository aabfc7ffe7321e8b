"""The grants our token endpoint serves, on oauthlib's grant classes, and the authorization
challenge of first-party apps (draft-ietf-oauth-first-party-apps), which mints the codes the
``authorization_code`` grant redeems.

oauthlib checks the password before it asks whether the client may use the password grant, so
any client id becomes a password oracle (``unauthorized_client`` for a right password,
``invalid_grant`` for a wrong one). Ours settles everything about the client first and touches the
password last. oauthlib also logs issued tokens and refresh tokens at DEBUG; ours never does.
"""

import json
import logging

from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types import (
    RefreshTokenGrant as OAuthlibRefreshTokenGrant,
)
from oauthlib.oauth2.rfc6749.grant_types import (
    ResourceOwnerPasswordCredentialsGrant,
)
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase

from . import challenges, clients
from .oauth2_validators import INVALID_CREDENTIALS

log = logging.getLogger("ropc_provider")


class _TokenGrantMixin:
    def create_token_response(self, request, token_handler):
        headers = self._get_default_headers()
        try:
            self.validate_token_request(request)
            refresh = clients.policy_of(request.client).issue_refresh_tokens
            token = token_handler.create_token(request, refresh_token=refresh)
            for modifier in self._token_modifiers:
                token = modifier(token, token_handler, request)
            # Built before anything is stored, so a failing claims hook writes nothing.
            id_token = self.request_validator.id_token_for(token, request)
            if id_token:
                token["id_token"] = id_token
            self.request_validator.save_token(token, request)
        except errors.OAuth2Error as error:
            headers.update(error.headers)
            return headers, error.json, error.status_code
        return headers, json.dumps(token), 200


class PasswordGrant(_TokenGrantMixin, ResourceOwnerPasswordCredentialsGrant):
    def validate_token_request(self, request):
        for validator in self.custom_validators.pre_token:
            validator(request)
        for param in ("username", "password"):
            if not getattr(request, param, None):
                raise errors.InvalidRequestError(f"Request is missing {param} parameter.", request=request)

        # Everything about the client first, and none of it depends on the password.
        self.validate_client_authentication(request)
        self.validate_grant_type(request)
        self.validate_scopes(request)

        if not self.request_validator.validate_user(request.username, request.password, request.client, request):
            raise errors.InvalidGrantError(INVALID_CREDENTIALS, request=request)

        for validator in self.custom_validators.post_token:
            validator(request)


class RefreshTokenGrant(_TokenGrantMixin, OAuthlibRefreshTokenGrant):
    def validate_token_request(self, request):
        for validator in self.custom_validators.pre_token:
            validator(request)
        if not request.refresh_token:
            raise errors.InvalidRequestError(description="Missing refresh token parameter.", request=request)

        self.validate_client_authentication(request)
        self.validate_grant_type(request)

        if not self.request_validator.validate_refresh_token(request.refresh_token, request.client, request):
            raise errors.InvalidGrantError(request=request)

        original = self.request_validator.get_original_scopes(request.refresh_token, request).split()
        if request.scope:
            request.scopes = request.scope.split()
            if not set(request.scopes) <= set(original):
                raise errors.InvalidScopeError(request=request)
        else:
            request.scopes = original
        # The client's scopes may have been narrowed since: a refresh never outlives that.
        allowed = [
            scope
            for scope in request.scopes
            if self.request_validator.validate_scopes(request.client_id, [scope], request.client, request)
        ]
        if request.scope and allowed != request.scopes or not allowed and request.scopes:
            raise errors.InvalidScopeError(request=request)
        request.scopes = allowed

        for validator in self.custom_validators.post_token:
            validator(request)


class AuthorizationCodeGrant(_TokenGrantMixin, GrantTypeBase):
    """``grant_type=authorization_code`` for codes the challenge endpoint minted, and no others:
    there is no browser authorization endpoint, so no ``redirect_uri`` to compare."""

    def validate_token_request(self, request):
        for validator in self.custom_validators.pre_token:
            validator(request)
        if not request.code:
            raise errors.InvalidRequestError(description="Missing code parameter.", request=request)

        self.validate_client_authentication(request)
        self.validate_grant_type(request)

        # Sets request.user and request.scopes from the code; raises InvalidGrantError itself.
        self.request_validator.validate_code(request.client_id, request.code, request.client, request)

        for validator in self.custom_validators.post_token:
            validator(request)


class AuthorizationChallenge(GrantTypeBase):
    """The Authorization Challenge Endpoint: a first-party app signs a user in with a password and,
    when due, a second factor, and gets an authorization code, without a browser.

    The checks run in the password grant's order: the request's form, then the client, then
    (last) the user's credentials or the auth_session's second factor."""

    def create_challenge_response(self, request):
        headers = self._get_default_headers()
        try:
            body = self._challenge(request)
        except errors.OAuth2Error as error:
            headers.update(error.headers)
            return headers, error.json, error.status_code
        return headers, json.dumps(body), 200

    def _challenge(self, request):
        if not request.response_type:
            raise errors.InvalidRequestError(description="Missing response_type parameter.", request=request)
        if request.response_type != "code":
            raise errors.UnsupportedResponseTypeError(request=request)
        self._validate_code_challenge(request)

        # The code this ends in is redeemed with grant_type=authorization_code: that is the grant
        # the client must be allowed.
        request.grant_type = "authorization_code"
        if getattr(request, "auth_session", None):
            # The draft lets a request with an auth_session leave client_id out: the session names it.
            self.request_validator.client_id_from_auth_session(request)
        self.validate_client_authentication(request)
        self.validate_grant_type(request)

        if getattr(request, "auth_session", None):
            self.request_validator.validate_auth_session(request)
            return self.request_validator.verify_second_factor(request)
        for param in ("username", "password"):
            if not getattr(request, param, None):
                raise errors.InvalidRequestError(f"Request is missing {param} parameter.", request=request)
        self.validate_scopes(request)
        if not self.request_validator.validate_user(request.username, request.password, request.client, request):
            raise errors.InvalidGrantError(INVALID_CREDENTIALS, request=request)
        return self.request_validator.code_for_sign_in(request)

    def _validate_code_challenge(self, request):
        method = request.code_challenge_method
        if request.code_challenge is None:
            if method is not None:
                raise errors.InvalidRequestError(description="code_challenge_method without a code_challenge.")
            return
        if method != "S256":
            raise errors.InvalidRequestError(description="Only code_challenge_method=S256 is supported.")
        if not challenges.valid_code_challenge(request.code_challenge):
            raise errors.InvalidRequestError(description="Malformed code_challenge.")
