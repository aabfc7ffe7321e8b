"""From a Django request to oauthlib's arguments, strictly.

RFC 6749 §3.2 and §4.3.2: parameters come form-encoded, UTF-8, in the body of a POST, each at most
once. DOT reads ``request.POST`` (accepting multipart bodies, keeping the last of repeated
parameters); we read the raw body so every deviation is a clear ``invalid_request`` instead.
"""

import logging
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, QueryDict
from django.utils.decorators import method_decorator
from django.utils.functional import SimpleLazyObject
from django.views.decorators.debug import sensitive_variables
from oauth2_provider.oauth2_backends import OAuthLibCore as DOTOAuthLibCore
from oauthlib.common import urlencode
from oauthlib.oauth2.rfc6749 import errors

from .conf import ropc_settings
from .exceptions import ClaimsHookError

log = logging.getLogger("ropc_provider")

FORM = "application/x-www-form-urlencoded"

# The parameters our endpoints read. Others are ignored (RFC 6749 §3.2) and never reach oauthlib,
# whose request object would expose a body field named e.g. "client" or "user" as its own attribute.
PARAMETERS = frozenset(
    {
        "grant_type",
        "username",
        "password",
        "scope",
        "realm",
        "refresh_token",
        "client_id",
        "client_secret",
        "token",
        "token_type_hint",
        # the authorization challenge (draft-ietf-oauth-first-party-apps) and its code
        "response_type",
        "auth_session",
        "otp",
        "recovery_code",
        "code_challenge",
        "code_challenge_method",
        "code",
        "code_verifier",
    }
)


def _invalid(description, status_code=400):
    return errors.CustomOAuth2Error("invalid_request", description=description, status_code=status_code)


@sensitive_variables()
def read_form(request):
    """The body's known parameters as a list of pairs; raises an ``OAuth2Error`` for anything
    malformed, including a parameter sent twice (RFC 6749 §3.2)."""
    if request.META.get("QUERY_STRING"):
        raise _invalid("Parameters must be sent in the request body, not in the URL.")
    if request.content_type != FORM or request.content_params.get("charset", "utf-8").lower() not in (
        "utf-8",
        "utf8",
    ):
        raise _invalid(f"The request body must be {FORM} in UTF-8.")
    try:
        body = request.body
    except RequestDataTooBig:
        raise _invalid("The request body is too large.", status_code=413) from None
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except UnicodeDecodeError:
        raise _invalid("The request body is not valid UTF-8.") from None
    except ValueError:
        raise _invalid("The request has too many parameters.") from None
    limit = ropc_settings.MAX_PARAMETER_LENGTH
    known, seen, repeated = [], set(), set()
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise _invalid("Parameters must not contain NUL characters.")
        if len(name) > limit or len(value) > limit:
            raise _invalid(f"A parameter is longer than {limit} characters.")
        if name in PARAMETERS:
            (repeated if name in seen else seen).add(name)
            known.append((name, value))
    if repeated:
        raise _invalid(f"Repeated parameter: {', '.join(sorted(repeated))}.")
    return known


def claims_hook_failure(what):
    """The answer when the project's claims hook is broken: said in the log, a JSON 500 to the
    client, nothing stored. Returns ``(headers, body, status)``."""
    log.exception("%s could not be built", what)
    return {}, errors.ServerError(description=f"{what} could not be built; see the server log.").json, 500


class OAuthLibCore(DOTOAuthLibCore):
    """DOT's Django-to-oauthlib adapter with strict parsing; every answer is a JSON one."""

    @method_decorator(sensitive_variables())
    def _extract_params(self, request):
        return (
            request.build_absolute_uri(request.path),
            request.method,
            urlencode(read_form(request)),
            self.extract_headers(request),
        )

    @method_decorator(sensitive_variables())
    def create_token_response(self, request):
        try:
            uri, method, body, headers = self._extract_params(request)
            headers, body, status = self.server.create_token_response(
                uri, method, body, headers, django_request=request
            )
        except errors.OAuth2Error as error:
            return None, error.headers, error.json, error.status_code
        except ClaimsHookError:
            return None, *claims_hook_failure("The ID token")
        return None, headers, body, status

    @method_decorator(sensitive_variables())
    def create_authorization_challenge_response(self, request):
        try:
            uri, method, body, headers = self._extract_params(request)
            headers, body, status = self.server.create_authorization_challenge_response(
                uri, method, body, headers, django_request=request
            )
        except errors.OAuth2Error as error:
            return None, error.headers, error.json, error.status_code
        return None, headers, body, status

    def create_revocation_response(self, request):
        try:
            return super().create_revocation_response(request)
        except errors.OAuth2Error as error:
            return None, error.headers, error.json, error.status_code

    def create_introspect_response(self, request):
        try:
            uri, method, body, headers = self._extract_params(request)
            headers, body, status = self.server.create_introspect_response(uri, method, body, headers)
        except errors.OAuth2Error as error:
            return None, error.headers, error.json, error.status_code
        return None, headers, body, status

    def verify_request(self, request, scopes):
        """Check the bearer token of a request to one of our protected endpoints. The token comes
        in the Authorization header only (RFC 6750 §2.1): never from a body or a URL."""
        headers = self.extract_headers(request)
        return self.server.verify_request(
            request.build_absolute_uri(request.path), request.method, None, headers, scopes
        )


# What a request shown to signal receivers and authentication backends keeps of the body: nothing
# that authenticates anyone.
SHAREABLE_PARAMETERS = ("grant_type", "response_type", "username", "realm", "scope", "client_id")
_SECRET_HEADER_WORDS = ("AUTH", "COOKIE", "TOKEN", "SECRET", "PASSWORD", "KEY", "SESSION")


def _shareable_meta(meta):
    kept = {}
    for name, value in meta.items():
        if not isinstance(value, str) or name == "QUERY_STRING":
            continue  # the input stream, file wrappers; a query string may carry anything
        if name.startswith("HTTP_") and any(word in name for word in _SECRET_HEADER_WORDS):
            continue
        kept[name] = value
    return kept


def _copy_without_credentials(request):
    copy = HttpRequest()
    copy.method, copy.path, copy.path_info = request.method, request.path, request.path_info
    copy.META = _shareable_meta(request.META)
    body = QueryDict(mutable=True)
    for name, value in parse_qsl(getattr(request, "_body", b"").decode("utf-8", "replace"), keep_blank_values=True):
        if name in SHAREABLE_PARAMETERS:
            body.appendlist(name, value)
    body._mutable = False
    copy.POST, copy._body = body, body.urlencode().encode()
    copy.GET = QueryDict()
    if hasattr(request, "user"):
        copy.user = request.user
    return copy


def without_credentials(request):
    """A copy of a token request that carries no password, secret, token or cookie, for the
    sign-in signals and the project's authentication backends: its method, path, non-secret
    headers (the address, the user agent) and the body's non-secret parameters. Built only when
    something reads it."""
    if request is None:
        return None
    return SimpleLazyObject(lambda: _copy_without_credentials(request))
