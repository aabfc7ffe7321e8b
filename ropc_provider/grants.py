"""The two grants our token endpoint serves, on oauthlib's grant classes.

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

from . import clients
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
