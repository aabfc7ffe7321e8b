"""Introspection (RFC 7662): what a resource server may learn of a live token of ours."""

from django.utils import timezone

from . import accounts, clients, sessions, tokens
from .claims import subject_of
from .metadata import configured_issuer
from .tokens import AccessToken, RefreshToken


def _epoch(moment):
    return int(moment.timestamp())


def describe(value, type_hint=None):
    """RFC 7662 members of a live token of ours, or None (inactive, unknown, expired, revoked)."""
    digest = tokens.checksum(value)
    lookups = [AccessToken, RefreshToken]
    if type_hint == "refresh_token":
        lookups.reverse()
    now = timezone.now()
    for model in lookups:
        found = model.objects.select_related("application", "user", "user__realm_account__realm").filter(
            token_checksum=digest
        )
        if model is AccessToken:
            found = found.select_related("refresh_token", "source_refresh_token")
        if model is RefreshToken:
            found = found.filter(revoked__isnull=True).select_related("access_token")
        token = found.first()
        if token is None or token.application is None or token.user is None:
            continue
        if model is AccessToken:
            if token.is_expired():
                return None
            scope, expires = token.scope, token.expires
        else:
            expires = sessions.refresh_token_ends(
                token,
                lifetime=clients.refresh_token_lifetime(token.application),
                max_lifetime=clients.session_max_lifetime(token.application),
                idle_timeout=clients.session_idle_timeout(token.application),
            )
            # Past its session's limits a refresh token is refused: it is not active either.
            if token.access_token is None or expires <= now:
                return None
            scope = token.access_token.scope
        if not token.user.is_active:
            return None
        identity = accounts.identity_of(token.user)
        claims = {
            "scope": scope,
            "client_id": token.application.client_id,
            "aud": token.application.client_id,
            "sub": subject_of(token.user),
            "username": identity.login_name,
            "realm": identity.realm.slug,
            "iat": _epoch(token.created),
            "exp": _epoch(expires),
        }
        session_id = sessions.session_of(token) if model is AccessToken else token.token_family
        if session_id is not None:
            # The session the token belongs to, as the ID token's sid names it.
            claims["sid"] = str(session_id)
        if model is AccessToken:
            # RFC 7662 §2.2: a type from the OAuth token type registry; a refresh token has none.
            claims["token_type"] = "Bearer"
        issuer = configured_issuer()
        if issuer:
            claims["iss"] = issuer
        return claims
    return None
