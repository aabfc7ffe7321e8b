"""Who this authorization server is and what it serves: the issuer, and its metadata (RFC 8414).

The issuer comes from configuration, so what we sign and publish never follows the Host header a
client sends; only an unconfigured development server takes it from the request.
"""

from urllib.parse import urlsplit, urlunsplit

from django.urls import reverse
from oauth2_provider.settings import oauth2_settings

from . import clients
from .conf import ropc_settings

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
RESOURCE_SERVER_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def configured_issuer():
    return (ropc_settings.ISSUER or oauth2_settings.OIDC_ISS_ENDPOINT or "").rstrip("/") or None


def issuer(django_request):
    configured = configured_issuer()
    if configured:
        return configured
    token = django_request.build_absolute_uri(reverse("ropc_provider:token"))
    return token[: -len("/token/")]


def endpoint_url(django_request, name):
    """An endpoint's absolute URL on the issuer's origin (scheme and host), never the request's."""
    path = reverse(f"ropc_provider:{name}")
    configured = configured_issuer()
    if not configured:
        return django_request.build_absolute_uri(path)
    origin = urlsplit(configured)
    return urlunsplit((origin.scheme, origin.netloc, path, "", ""))


def issuer_path(django_request):
    """The issuer's path, which RFC 8414 §3 puts after /.well-known/oauth-authorization-server."""
    return urlsplit(issuer(django_request)).path.rstrip("/")


def authorization_server(django_request):
    """RFC 8414 §2 metadata of what our endpoints serve, whether or not OpenID Connect is on."""
    return {
        "issuer": issuer(django_request),
        "token_endpoint": endpoint_url(django_request, "token"),
        "revocation_endpoint": endpoint_url(django_request, "revoke-token"),
        "introspection_endpoint": endpoint_url(django_request, "introspect"),
        "authorization_challenge_endpoint": endpoint_url(django_request, "authorize-challenge"),
        "grant_types_supported": ["password", "refresh_token", "authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        # OpenID Connect Discovery §3 requires both (RFC 8414 §2 only response_types_supported),
        # and what is true here is that no browser signs in: the authorization endpoint answers every request with an
        # error, and "none" is the registered response type that returns no code and no token.
        "authorization_endpoint": endpoint_url(django_request, "authorize"),
        "response_types_supported": ["none"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": RESOURCE_SERVER_AUTH_METHODS,
        "scopes_supported": sorted(clients.known_scopes()),
    }
