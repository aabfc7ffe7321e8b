"""oauthlib's questions, answered by our services. No policy lives here."""

import base64
import binascii
from contextlib import contextmanager
from urllib.parse import unquote_plus

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from . import (
    accounts,
    audit,
    challenges,
    clients,
    exceptions,
    introspection,
    oidc,
    protection,
    refresh,
    sessions,
    signin,
    tokens,
)
from .models import Session
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


@contextmanager
def _protection_refusals(request):
    """Attack protection's refusals, as our endpoints answer them: 429 with Retry-After, or 503."""
    try:
        yield
    except exceptions.TooManyAttempts as error:
        raise exceptions.TooManyAttemptsError(error, request=request) from None
    except exceptions.ProtectionUnavailable as error:
        raise errors.TemporarilyUnavailableError(description=str(error), status_code=503, request=request) from None


# The one description of every credential failure, so failures cannot be told apart.
INVALID_CREDENTIALS = "Invalid credentials given."


class EndsTheSessionOfARevokedToken:
    """RFC 7009 revocation of a token of ours, at our endpoint or DOT's, ends its session on
    record: its refresh token would be refused anyway."""

    def revoke_token(self, token, token_type_hint, request, *args, **kwargs):
        session_id = sessions.session_of_live_token(token, request.client)
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        sessions.end_family(session_id, Session.SIGNED_OUT)


class RopcValidator(EndsTheSessionOfARevokedToken, OAuth2Validator):
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
        audit.note(client=request.client)
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
        ip = protection.client_ip(request.headers)
        with _protection_refusals(request):
            with protection.client_authentication(ip) as outcome:
                outcome.succeeded = application is not None and clients.verify_client_secret(application, secret or "")
        if not outcome.succeeded:
            clients.authentication_failed(application, ip=ip)
            return False
        request.client_id = client_id
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        application = self._load_application(client_id, request)
        if application is None:
            clients.authentication_failed(None, ip=protection.client_ip(request.headers))
        return application is not None and not clients.is_confidential(application)

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        # All our grants (the code grant redeems our challenge endpoint's codes, no browser's)
        # belong to password-grant clients. Unlike DOT's, this does not consult
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
        audit.note(ip=ip)
        try:
            with _protection_refusals(request):
                sign_in = signin.authenticate(
                    clients.policy_of(client),
                    getattr(request, "realm", None),
                    username,
                    password,
                    ip=ip,
                    request=self._shareable_request(request),
                )
        except exceptions.RealmInactive as error:
            raise errors.InvalidGrantError(description=str(error), request=request) from None
        except exceptions.RealmError as error:
            raise errors.InvalidRequestError(description=str(error), request=request) from None
        if sign_in is None:
            return False
        request.user = sign_in.user
        request.sign_in = (
            None if self._at_challenge_endpoint(request) else signin.with_factor_checked_on_record(sign_in)
        )
        if request.sign_in is None:
            request.sign_in = sign_in
            if signin.second_factor_due(sign_in):
                raise self._second_factor_due(request)
        return True

    def _second_factor_due(self, request):
        challenge = challenges.open_session(
            request.sign_in,
            application=request.client,
            scope=" ".join(request.scopes or ()),
            auth_time=request.received_at,
            # PKCE is the challenge endpoint's (checked there); the password grant ignores it.
            code_challenge=request.code_challenge if self._at_challenge_endpoint(request) else "",
            request=self._shareable_request(request),
        )
        return self._insufficient_authorization(request, challenge)

    def _at_challenge_endpoint(self, request):
        return getattr(request, "at_challenge_endpoint", False)

    def _insufficient_authorization(self, request, challenge, description=None):
        details = {
            "auth_session": challenge.auth_session,
            # Not "expires_in": in the draft's challenge errors that is a request_uri's (RFC 9126).
            "auth_session_expires_in": challenge.expires_in,
            "accepted_factors": list(challenge.factors),
        }
        if challenge.enrolment is not None:
            details.update(
                enrollment_required=True,
                totp_secret=challenge.enrolment.secret,
                provisioning_uri=challenge.enrolment.provisioning_uri,
            )
        if description is None:
            description = (
                "This account must enrol an authenticator: add the secret to an app, then send its code."
                if challenge.enrolment is not None
                else "A second factor is required: send a code with the auth_session."
            )
        return exceptions.InsufficientAuthorizationError(
            details=details,
            description=description,
            # The draft's token-endpoint error is a 403; the challenge endpoint answers 400.
            status_code=400 if self._at_challenge_endpoint(request) else 403,
            request=request,
        )

    # -- the authorization challenge (first-party apps) -------------------------------------

    def client_id_from_auth_session(self, request):
        if request.client_id is None and not self._basic_credentials(request):
            try:
                request.client_id = challenges.client_id_of_session(request.auth_session)
            except exceptions.InvalidSession as refusal:
                raise errors.CustomOAuth2Error("invalid_session", description=str(refusal), request=request) from None

    def validate_auth_session(self, request):
        try:
            request.auth_session_record = challenges.find_session(
                request.auth_session, request.client, code_challenge=request.code_challenge
            )
        except exceptions.InvalidSession as refusal:
            raise errors.CustomOAuth2Error("invalid_session", description=str(refusal), request=request) from None
        except exceptions.InvalidInput as refusal:
            raise errors.InvalidRequestError(description=str(refusal), request=request) from None

    @method_decorator(sensitive_variables())
    def verify_second_factor(self, request):
        session = request.auth_session_record
        # An empty value is no code: refused as missing, never counted as a wrong one.
        otp, recovery_code = getattr(request, "otp", None) or None, getattr(request, "recovery_code", None) or None
        if otp is None and recovery_code is None:
            raise errors.InvalidRequestError(description="Send otp or recovery_code.", request=request)
        ip = protection.client_ip(request.headers, may_forward_user_ip=clients.may_forward_user_ip(request.client))
        try:
            with _protection_refusals(request):
                code, recovery_codes = challenges.second_step(
                    session,
                    otp=otp,
                    recovery_code=recovery_code,
                    ip=ip,
                    code_challenge=request.code_challenge,
                    request=self._shareable_request(request),
                )
        except exceptions.InvalidSession as refusal:
            raise errors.CustomOAuth2Error("invalid_session", description=str(refusal), request=request) from None
        except exceptions.WrongFactor as refusal:
            # The same auth_session goes on: the draft lets a client retry a factor with it.
            challenge = challenges.continued(session, request.auth_session)
            raise self._insufficient_authorization(request, challenge, str(refusal)) from None
        body = {"authorization_code": code}
        if recovery_codes:
            body["recovery_codes"] = list(recovery_codes)
        return body

    def code_for_sign_in(self, request):
        return {
            "authorization_code": challenges.code_for_sign_in(
                request.sign_in,
                application=request.client,
                scope=" ".join(request.scopes or ()),
                code_challenge=request.code_challenge,
                auth_time=request.received_at,
            )
        }

    @method_decorator(sensitive_variables())
    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        try:
            found = challenges.redeem_code(code, client, code_verifier=request.code_verifier)
        except exceptions.CodeRefused as refusal:
            raise errors.InvalidGrantError(description=str(refusal), request=request) from None
        request.user, request.authorization_code = found.user, found
        request.scopes = found.scope.split()
        return True

    # -- refresh tokens ---------------------------------------------------------------------

    def _client_ip(self, request):
        ip = protection.client_ip(request.headers, may_forward_user_ip=clients.may_forward_user_ip(request.client))
        audit.note(ip=ip)
        return ip

    def _presenter(self, request):
        return refresh.presenter(self._client_ip(request), request.headers.get("HTTP_USER_AGENT", ""))

    def _session_id(self, request):
        """The id of the session these tokens belong to (the token family's), known before they are
        stored, so the ID token can name it (``sid``)."""
        if "_ropc_session_id" not in vars(request):
            if request.grant_type == "refresh_token":
                request._ropc_session_id = request.refresh_token_instance.token_family
            elif request.grant_type == "authorization_code":
                request._ropc_session_id = challenges.family_of(request.authorization_code)
            else:
                request._ropc_session_id = tokens.new_family(request.received_at)
        return request._ropc_session_id

    def rotate_refresh_token(self, request):
        return True

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        try:
            found, request.retry_of = refresh.redeem(
                refresh_token,
                application=client,
                received_at=request.received_at,
                presented_by=self._presenter(request),
                ip=self._client_ip(request),
                user_agent=request.headers.get("HTTP_USER_AGENT", ""),
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
        elif request.grant_type == "authorization_code":
            issued = challenges.complete(
                request.authorization_code,
                application=request.client,
                policy=clients.policy_of(request.client),
                scope=token["scope"],
                access_token=token["access_token"],
                expires_in=token["expires_in"],
                refresh_token=token.get("refresh_token"),
                family=self._session_id(request),
                ip=self._client_ip(request),
                request=self._shareable_request(request),
            )
            if not issued:
                raise errors.InvalidGrantError(challenges.CODE_REFUSED, request=request)
        else:
            try:
                issued = signin.complete(
                    request.sign_in,
                    application=request.client,
                    scope=token["scope"],
                    access_token=token["access_token"],
                    expires_in=token["expires_in"],
                    refresh_token=token.get("refresh_token"),
                    started_at=request.received_at,
                    family=self._session_id(request),
                    request=self._shareable_request(request),
                )
            except exceptions.SecondFactorDue:
                raise self._second_factor_due(request) from None
            if not issued:
                raise errors.InvalidGrantError(INVALID_CREDENTIALS, request=request)

    # -- OpenID Connect --------------------------------------------------------------------

    def id_token_for(self, token, request):
        if not oidc.enabled() or "openid" not in (request.scopes or ()):
            return None
        methods = ["pwd"]
        if request.grant_type == "password":
            identity, auth_time = request.sign_in.identity, request.received_at
        elif request.grant_type == "authorization_code":
            code = request.authorization_code
            identity = accounts.Identity(realm=code.realm, login_name=code.login_name)
            auth_time, methods = code.auth_time, code.methods.split()
        else:
            identity = accounts.identity_of(request.user)
            auth_time = tokens.family_started(request.refresh_token_instance)
            methods = tokens.family_methods(request.refresh_token_instance)
        return oidc.id_token(
            user=request.user,
            identity=identity,
            client=request.client,
            scopes=request.scopes,
            access_token=token["access_token"],
            expires_in=token["expires_in"],
            auth_time=auth_time,
            methods=methods,
            session_id=self._session_id(request),
            django_request=request.django_request,
        )

    # -- introspection (RFC 7662) -----------------------------------------------------------

    def introspect_token(self, token, token_type_hint, request, *args, **kwargs):
        return introspection.describe(token, token_type_hint)

    # Revocation (RFC 7009): EndsTheSessionOfARevokedToken.
