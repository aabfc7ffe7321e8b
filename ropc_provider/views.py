"""Thin HTTP faces of the oauthlib server: every decision is made below them."""

import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.db import InterfaceError, OperationalError, transaction
from django.http import HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.oauth2.rfc6749 import errors

from . import accounts, audit, metadata, mfa, oidc, protection, sessions, tokens
from .claims import user_claims
from .conf import ropc_settings
from .exceptions import (
    ClaimsHookError,
    InvalidInput,
    NotFirstParty,
    ProtectionUnavailable,
    SignInTooOld,
    TooManyAttempts,
    WrongFactor,
)
from .models import Session, SessionCutoff
from .oauth2_backends import OAuthLibCore, claims_hook_failure, read_form, without_credentials
from .oauth2_validators import RopcValidator
from .server import Server

log = logging.getLogger("ropc_provider")

# Hidden from Django's error reports, whatever the endpoint.
SENSITIVE_PARAMETERS = (
    "password",
    "client_secret",
    "refresh_token",
    "token",
    "otp",
    "recovery_code",
    "auth_session",
    "code",
    "code_verifier",
)


def _https_required():
    required = ropc_settings.REQUIRE_HTTPS
    return not settings.DEBUG if required is None else required


def oauth_response(request, headers, body, status):
    response = HttpResponse(body or "", status=status, content_type="application/json")
    if not body:
        del response["Content-Type"]  # an empty answer (revocation's 200, 204) is no JSON
    # Whether or not the project runs Django's SecurityMiddleware.
    response["X-Content-Type-Options"] = "nosniff"
    for name, value in (headers or {}).items():
        if name.lower() != "www-authenticate":
            response[name] = value
    if status == 401 and request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("basic"):
        # RFC 6749 §5.2: a client that tried Basic gets a Basic challenge (oauthlib says Bearer).
        response["WWW-Authenticate"] = 'Basic realm="oauth", charset="UTF-8"'
    # Every answer of these endpoints, errors included, is about credentials: never cache it.
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
@method_decorator(sensitive_post_parameters(*SENSITIVE_PARAMETERS), name="dispatch")
# Each grant is its own transaction (signin.complete), and a failed one is recorded after it: with
# ATOMIC_REQUESTS the whole request's transaction would take that record down with it.
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class OAuthEndpoint(OAuthLibMixin, View):
    server_class = Server
    validator_class = RopcValidator
    oauthlib_backend_class = OAuthLibCore
    http_method_names = ["post"]

    def dispatch(self, request, *args, **kwargs):
        if _https_required() and not request.is_secure():
            return json_error(
                request,
                400,
                "invalid_request",
                "HTTPS is required. Behind a TLS proxy, set Django's SECURE_PROXY_SSL_HEADER.",
            )
        try:
            # What every event recorded while answering shares: the address as attack protection
            # counts it (behind proxies, the user's), to which the validator adds the client.
            context = audit.context(
                user_agent=request.META.get("HTTP_USER_AGENT", ""), ip=protection.client_ip(request.META)
            )
            with context:
                return super().dispatch(request, *args, **kwargs)
        except (OperationalError, InterfaceError) as error:
            # The database is down or unreachable: every transaction was rolled back, and the
            # client may retry. Without this the client would get Django's HTML 500.
            log.error("Database unavailable: %s", type(error).__name__)
            return json_error(
                request,
                503,
                "temporarily_unavailable",
                "The service is temporarily unavailable; try again.",
                **{"Retry-After": "5"},
            )

    def http_method_not_allowed(self, request, *args, **kwargs):
        return method_not_allowed(request, self._allowed_methods())

    def respond(self, request, create):
        _uri, headers, body, status = create(request)
        return oauth_response(request, headers, body, status)


class TokenView(OAuthEndpoint):
    """RFC 6749 token endpoint: ``grant_type=password``, ``refresh_token`` and ``authorization_code``."""

    def post(self, request, *args, **kwargs):
        return self.respond(request, self.get_oauthlib_core().create_token_response)


class AuthorizationChallengeView(OAuthEndpoint):
    """The Authorization Challenge Endpoint of first-party apps (draft-ietf-oauth-first-party-apps):
    a password, then a second factor when due, in exchange for an authorization code."""

    def post(self, request, *args, **kwargs):
        return self.respond(request, self.get_oauthlib_core().create_authorization_challenge_response)


class RevokeTokenView(OAuthEndpoint):
    """RFC 7009 token revocation."""

    def post(self, request, *args, **kwargs):
        return self.respond(request, self.get_oauthlib_core().create_revocation_response)


class IntrospectTokenView(OAuthEndpoint):
    """RFC 7662 token introspection, for clients registered as resource servers."""

    def post(self, request, *args, **kwargs):
        return self.respond(request, self.get_oauthlib_core().create_introspect_response)


class RevokeSessionsView(OAuthEndpoint):
    """Sign out everywhere: end every session of the bearer token's user (this one included)."""

    def post(self, request, *args, **kwargs):
        valid, oauth_request = self.get_oauthlib_core().verify_request(request, scopes=[])
        if not valid:
            return bearer_refusal(request, oauth_request)
        if oauth_request.user is None:
            return bearer_refusal(request, oauth_request, "This endpoint needs a token issued to a user.")
        sessions.revoke_sessions(oauth_request.user, reason=SessionCutoff.SIGNED_OUT)
        return oauth_response(request, {}, "", 204)


class NotFound(Exception):
    """What a user asked for is not theirs, or not there: 404, alike."""


class OwnAccountView(OAuthEndpoint):
    """What a signed-in user does with their own account, with a bearer access token of a first-party
    client (ours). Bodies are form-encoded, read as strictly as the token endpoint's."""

    @method_decorator(sensitive_variables())
    def _acting(self, request, act):
        valid, oauth_request = self.get_oauthlib_core().verify_request(request, scopes=[])
        if not valid:
            return bearer_refusal(request, oauth_request)
        if oauth_request.user is None:
            return bearer_refusal(request, oauth_request, "This endpoint needs a token issued to a user.")
        try:
            mfa.require_first_party(oauth_request.client)
            # An empty POST (begin an enrolment) needs no content type; anything sent is read strictly.
            sent = request.method == "POST" and (request.body or request.META.get("QUERY_STRING"))
            form = dict(read_form(request)) if sent else {}
            self.access_token = oauth_request.access_token
            status, body = act(oauth_request.user, form)
        except errors.OAuth2Error as error:
            return oauth_response(request, error.headers, error.json, error.status_code)
        except InvalidInput as refusal:
            return json_error(request, 400, "invalid_request", str(refusal))
        except WrongFactor as refusal:
            return json_error(request, 400, "invalid_request", str(refusal))
        except TooManyAttempts as refusal:
            return json_error(
                request, 429, "too_many_attempts", str(refusal), **{"Retry-After": str(refusal.retry_after)}
            )
        except ProtectionUnavailable as refusal:
            return json_error(request, 503, "temporarily_unavailable", str(refusal))
        except NotFirstParty as refusal:
            challenge = f'Bearer realm="{BEARER_REALM}", error="insufficient_scope", error_description="{refusal}"'
            return json_error(request, 403, "insufficient_scope", str(refusal), **{"WWW-Authenticate": challenge})
        except SignInTooOld as refusal:
            # RFC 9470 (step-up authentication): sign in again, then retry within max_age.
            code, description = "insufficient_user_authentication", str(refusal)
            challenge = (
                f'Bearer realm="{BEARER_REALM}", error="{code}", '
                f'error_description="{description}", max_age="{refusal.max_age}"'
            )
            return json_error(request, 401, code, description, **{"WWW-Authenticate": challenge})
        except NotFound as refusal:
            return json_error(request, 404, "not_found", str(refusal))
        return oauth_response(request, {}, json.dumps(body) if body is not None else "", status)


class OwnSessionsView(OwnAccountView):
    """The signed-in user's live sessions (README, "Sessions"): GET lists them, DELETE on one's path
    ends it. Another user's session is not found, as an unknown one."""

    http_method_names = ["get", "delete"]

    def get(self, request, *args, **kwargs):
        return self._acting(request, self.list)

    def delete(self, request, session_id, *args, **kwargs):
        return self._acting(request, lambda user, form: self.end(user, session_id))

    def list(self, user, form):
        current = sessions.session_of(self.access_token)
        return 200, {
            "sessions": [
                {**sessions.describe(session), "current": session.pk == current}
                for session in sessions.live_sessions(user)
            ]
        }

    def end(self, user, session_id):
        session = sessions.own_session(user, session_id)
        if session is None:
            raise NotFound("No such session.")
        sessions.end_session(session, reason=Session.SIGNED_OUT)
        return 204, None


class OwnFactorView(OwnAccountView):
    """The signed-in user's own second factor: see README, "Multi-factor sign-in"."""

    # Each path one action: GET the status, POST the others (urls.py).
    action = "status"

    def get(self, request, *args, **kwargs):
        return self._acting(request, lambda user, form: (200, mfa.status(user)))

    def post(self, request, *args, **kwargs):
        return self._acting(request, getattr(self, self.action))

    @method_decorator(sensitive_variables())
    def begin(self, user, form):
        enrolment = mfa.begin_enrolment(user, signed_in_at=tokens.signed_in_at(self.access_token))
        return 200, {"secret": enrolment.secret, "provisioning_uri": enrolment.provisioning_uri}

    @method_decorator(sensitive_variables())
    def confirm(self, user, form):
        codes = mfa.confirm_enrolment(user, form.get("otp", ""), signed_in_at=tokens.signed_in_at(self.access_token))
        if codes is None:
            raise WrongFactor("The code is not right, or no enrolment was begun.")
        return 200, {"recovery_codes": list(codes)}

    @method_decorator(sensitive_variables())
    def _check(self, user, form, request):
        if not form.get("otp") and not form.get("recovery_code"):
            raise InvalidInput("Send otp or recovery_code.")
        mfa.check_own(
            user,
            otp=form.get("otp") or None,
            recovery_code=form.get("recovery_code") or None,
            ip=protection.client_ip(request.META),
            request=without_credentials(request),
        )

    def remove(self, user, form):
        self._check(user, form, self.request)
        mfa.remove(user)
        return 204, None

    def regenerate(self, user, form):
        self._check(user, form, self.request)
        return 200, {"recovery_codes": list(mfa.regenerate_recovery_codes(user))}


def method_not_allowed(request, allowed):
    # A CORS preflight (OPTIONS) lands here too: these endpoints are not for browsers' scripts.
    response = json_error(request, 405, "invalid_request", f"Use {' or '.join(allowed)}.")
    response["Allow"] = ", ".join(allowed)
    return response


def json_error(request, status, error, description, **headers):
    response = oauth_response(request, {}, json.dumps({"error": error, "error_description": description}), status)
    for name, value in headers.items():
        response[name] = value
    return response


BEARER_REALM = "oauth"


def bearer_refusal(request, oauth_request, description=None):
    """RFC 6750 §3.1: a request without a bearer token gets a challenge with no error code; a bad
    token ``invalid_token`` (401), too narrow a one ``insufficient_scope`` (403), the body saying
    what the header says. A valid token of nobody (DOT's client-credentials grant) is unusable
    here, and no wider scope would help: ``invalid_token``."""
    if not request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("bearer "):
        return json_error(
            request,
            401,
            "unauthorized",
            "A bearer token is required.",
            **{"WWW-Authenticate": f'Bearer realm="{BEARER_REALM}"'},
        )
    error = "invalid_token" if description else getattr(oauth_request, "oauth2_error", {}).get("error", "invalid_token")
    if error == "insufficient_scope":
        status, description = 403, description or "The token lacks a scope this endpoint needs."
    else:
        error, status = "invalid_token", 401
        description = description or "The token is unknown, expired or revoked."
    challenge = f'Bearer realm="{BEARER_REALM}", error="{error}", error_description="{description}"'
    return json_error(request, status, error, description, **{"WWW-Authenticate": challenge})


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class AuthorizationView(View):
    """The authorization endpoint that metadata must name, for a provider where no browser signs in:
    every request is refused, and never by a redirect, since no redirect URI is ever checked here
    (redirecting to one would make this an open redirector)."""

    http_method_names = ["get", "head", "post"]

    def http_method_not_allowed(self, request, *args, **kwargs):
        return method_not_allowed(request, self._allowed_methods())

    def get(self, request, *args, **kwargs):
        try:
            sent = (request.POST if request.method == "POST" else request.GET).getlist("response_type")
        except (BadRequest, SuspiciousOperation, MultiPartParserError, UnicodeDecodeError):
            sent = []  # a body Django cannot read (a charset, a size): still our JSON
        # Sent twice, it is no one value (RFC 6749 §3.1), whichever of them is "none".
        response_type = sent[0] if len(sent) == 1 else None
        if not response_type:
            error = "invalid_request"
        elif response_type != "none":
            error = "unsupported_response_type"
        else:
            error = "access_denied"
        return json_error(
            request,
            400,
            error,
            "Nobody signs in through a browser here: apps sign in at the token endpoint.",
        )

    post = get


def _oidc_disabled(request):
    return json_error(request, 404, "not_found", "OpenID Connect is not enabled on this server.")


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class UserInfoView(OAuthEndpoint):
    """OpenID Connect userinfo: the claims about the bearer token's user that its scopes allow."""

    http_method_names = ["get", "post"]

    def get(self, request, *args, **kwargs):
        if not oidc.enabled():
            return _oidc_disabled(request)
        valid, oauth_request = self.get_oauthlib_core().verify_request(request, scopes=["openid"])
        if not valid:
            return bearer_refusal(request, oauth_request)
        user = oauth_request.user
        if user is None:
            return bearer_refusal(request, oauth_request, "This endpoint needs a token issued to a user.")
        try:
            claims = user_claims(
                user=user,
                identity=accounts.identity_of(user),
                client=oauth_request.client,
                scopes=oauth_request.scopes,
                request=request,
            )
        except ClaimsHookError:
            return oauth_response(request, *claims_hook_failure("The claims"))
        return oauth_response(request, {}, json.dumps(claims), 200)

    post = get


@method_decorator(login_not_required, name="dispatch")
class DiscoveryView(View):
    """OpenID Connect discovery: what this provider serves and how."""

    def get(self, request, *args, **kwargs):
        if not oidc.enabled():
            return _oidc_disabled(request)
        response = JsonResponse(oidc.discovery(request))
        response["Access-Control-Allow-Origin"] = "*"
        response["X-Content-Type-Options"] = "nosniff"
        return response


@method_decorator(login_not_required, name="dispatch")
class AuthorizationServerMetadataView(View):
    """RFC 8414 metadata. At the host's root (``ropc_provider.well_known_urls``), under
    /.well-known/oauth-authorization-server followed by the issuer's path, as §3 puts it; and
    under our own prefix, for a project that cannot touch its root URLs."""

    at_root = False

    def get(self, request, issuer_path=None, *args, **kwargs):
        if self.at_root and (issuer_path or "").rstrip("/") != metadata.issuer_path(request):
            return json_error(request, 404, "not_found", "No authorization server has this issuer path.")
        response = JsonResponse(metadata.authorization_server(request))
        response["Access-Control-Allow-Origin"] = "*"
        response["X-Content-Type-Options"] = "nosniff"
        return response


@method_decorator(login_not_required, name="dispatch")
class JwksView(View):
    """The public keys that verify our ID tokens, the current one first, then retired ones."""

    def get(self, request, *args, **kwargs):
        if not oidc.enabled():
            return _oidc_disabled(request)
        response = JsonResponse(oidc.jwks())
        response["Access-Control-Allow-Origin"] = "*"
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "public, max-age=3600"
        return response
