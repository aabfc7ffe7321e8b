"""oauthlib's questions, answered by our services. No policy lives here."""

import base64
import binascii
from urllib.parse import unquote_plus

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from . import accounts, clients, exceptions, introspection, oidc, protection, refresh, signin, tokens
from .oauth2_backends import without_credentials


@sensitive_variables()
def _parse_basic_auth(header):
    """``(client_id, client_secret)`` from an HTTP Basic header, None if it is not Basic.

    Raises ``InvalidClientError`` for a Basic header that is malformed (RFC 6749 §2.3.1: both
    parts are form-encoded before base64)."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.InvalidClientError(description="Malformed Basic credentials.") from None
    client_id, colon, secret = decoded.partition(":")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not colon or not client_id or "\x00" in client_id or "\x00" in secret:
        raise errors.InvalidClientError(description="Malformed Basic credentials.")
    return client_id, secret


# The one description of every credential failure, so failures cannot be told apart.
INVALID_CREDENTIALS = "Invalid credentials given."


class RopcValidator(OAuth2Validator):
    # -- clients ----------------------------------------------------------------------------

    def _basic_credentials(self, request):
        # Cached on the oauthlib request; no body parameter can shadow it (oauth2_backends.PARAMETERS).
        if "_ropc_basic" not in vars(request):
            header = request.headers.get("HTTP_AUTHORIZATION", "")
            request._ropc_basic = _parse_basic_auth(header) if header else None
        return request._ropc_basic

    def _load_application(self, client_id, request):
        if request.client is not None and request.client.client_id == client_id:
            return request.client
        request.client = clients.load_client(client_id)
        return request.client

    def client_authentication_required(self, request, *args, **kwargs):
        if self._basic_credentials(request) or request.client_secret is not None:
            return True
        application = self._load_application(request.client_id, request)
        return application is not None and clients.is_confidential(application)

    @method_decorator(sensitive_variables())
    def authenticate_client(self, request, *args, **kwargs):
        basic = self._basic_credentials(request)
        if basic:
            # RFC 6749 §2.3: one authentication method per request.
            if request.client_secret is not None:
                raise errors.InvalidRequestError(
                    description="Use HTTP Basic or client_secret in the body, not both.", request=request
                )
            client_id, secret = basic
            if request.client_id is not None and request.client_id != client_id:
                raise errors.InvalidRequestError(
                    description="client_id in the body does not match the Basic credentials.",
                    request=request,
                )
        else:
            client_id, secret = request.client_id, request.client_secret
        application = self._load_application(client_id, request)
        try:
            with protection.client_authentication(protection.client_ip(request.headers)) as outcome:
                outcome.succeeded = application is not None and clients.verify_client_secret(application, secret or "")
        except exceptions.TooManyAttempts as error:
            raise exceptions.TooManyAttemptsError(error, request=request) from None
        except exceptions.ProtectionUnavailable as error:
            raise errors.TemporarilyUnavailableError(description=str(error), status_code=503, request=request) from None
        if not outcome.succeeded:
            return False
        request.client_id = client_id
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        application = self._load_application(client_id, request)
        return application is not None and not clients.is_confidential(application)

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        # Both of our grants belong to password-grant clients. Unlike DOT's, this does not consult
        # COMPLIANT_BCP_RFC9700_PASSWORD_GRANT: serving the grant is this endpoint's purpose.
        return clients.may_use_password_grant(client)

    # -- scopes -----------------------------------------------------------------------------

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        return set(scopes) <= clients.allowed_scopes(client)

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return clients.default_scopes(request.client)

    # -- resource owner ---------------------------------------------------------------------

    def _shareable_request(self, request):
        # Backends and signal receivers get the request without its credentials: a receiver that
        # logs what it gets must not log the password.
        if "_ropc_shareable" not in vars(request):
            request._ropc_shareable = without_credentials(request.django_request)
        return request._ropc_shareable

    @method_decorator(sensitive_variables())
    def validate_user(self, username, password, client, request, *args, **kwargs):
        ip = protection.client_ip(request.headers, may_forward_user_ip=clients.may_forward_user_ip(client))
        try:
            sign_in = signin.authenticate(
                clients.policy_of(client),
                getattr(request, "realm", None),
                username,
                password,
                ip=ip,
                request=self._shareable_request(request),
            )
        except exceptions.TooManyAttempts as error:
            raise exceptions.TooManyAttemptsError(error, request=request) from None
        except exceptions.ProtectionUnavailable as error:
            raise errors.TemporarilyUnavailableError(description=str(error), status_code=503, request=request) from None
        except exceptions.RealmInactive as error:
            raise errors.InvalidGrantError(description=str(error), request=request) from None
        except exceptions.RealmError as error:
            raise errors.InvalidRequestError(description=str(error), request=request) from None
        if sign_in is None:
            return False
        request.user = sign_in.user
        request.sign_in = sign_in
        return True

    # -- refresh tokens ---------------------------------------------------------------------

    def _presenter(self, request):
        ip = protection.client_ip(request.headers, may_forward_user_ip=clients.may_forward_user_ip(request.client))
        return refresh.presenter(ip, request.headers.get("HTTP_USER_AGENT", ""))

    def rotate_refresh_token(self, request):
        return True

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        try:
            found, request.retry_of = refresh.redeem(
                refresh_token,
                application=client,
                received_at=request.received_at,
                presented_by=self._presenter(request),
            )
        except exceptions.RefreshRefused as refusal:
            if refusal.description:
                raise errors.InvalidGrantError(description=refusal.description, request=request) from None
            return False
        request.user = found.user
        request.refresh_token_instance = found
        return True

    def get_original_scopes(self, refresh_token, request, *args, **kwargs):
        return request.refresh_token_instance.access_token.scope

    # -- storing ----------------------------------------------------------------------------

    def save_bearer_token(self, token, request, *args, **kwargs):
        if request.grant_type == "refresh_token":
            try:
                refresh.rotate(
                    request.refresh_token_instance,
                    application=request.client,
                    scope=token["scope"],
                    access_token=token["access_token"],
                    expires_in=token["expires_in"],
                    refresh_token=token["refresh_token"],
                    retry_of=request.retry_of,
                    presented_by=self._presenter(request),
                )
            except exceptions.RefreshTokenAlreadyUsed:
                raise errors.InvalidGrantError(request=request) from None
        else:
            issued = signin.complete(
                request.sign_in,
                application=request.client,
                scope=token["scope"],
                access_token=token["access_token"],
                expires_in=token["expires_in"],
                refresh_token=token.get("refresh_token"),
                started_at=request.received_at,
                request=self._shareable_request(request),
            )
            if not issued:
                raise errors.InvalidGrantError(INVALID_CREDENTIALS, request=request)

    # -- OpenID Connect --------------------------------------------------------------------

    def id_token_for(self, token, request):
        if not oidc.enabled() or "openid" not in (request.scopes or ()):
            return None
        if request.grant_type == "password":
            identity, auth_time = request.sign_in.identity, request.received_at
        else:
            identity = accounts.identity_of(request.user)
            auth_time = tokens.family_started(request.refresh_token_instance)
        return oidc.id_token(
            user=request.user,
            identity=identity,
            client=request.client,
            scopes=request.scopes,
            access_token=token["access_token"],
            expires_in=token["expires_in"],
            auth_time=auth_time,
            django_request=request.django_request,
        )

    # -- introspection (RFC 7662) -----------------------------------------------------------

    def introspect_token(self, token, token_type_hint, request, *args, **kwargs):
        return introspection.describe(token, token_type_hint)
