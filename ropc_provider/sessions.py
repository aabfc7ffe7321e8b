"""Ending a user's sessions: the refresh-token cutoff.

``revoke_sessions(user, reason=...)`` is the one way to end every session of a user; password
changes, "sign out everywhere", operators and account deactivation all call it. Tokens are
opaque rows, so unlike JWT providers we end access tokens at once too, not when they expire.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model

from . import signals
from .accounts import identity_of
from .models import SessionCutoff

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = ["revoke_sessions"]

# Stable texts a client can rely on to tell "sign in again" from plain expiry.
SESSION_ENDED = "The session was ended; sign in again."
REFRESH_TOKEN_EXPIRED = "The refresh token has expired."
SESSION_MAX_REACHED = "The session has reached its maximum lifetime; sign in again."
SESSION_IDLE = "The session was idle too long; sign in again."


def revoke_sessions(user, *, reason, now=None):
    """Move the user's cutoff to now, revoke their refresh tokens and delete their access tokens
    issued before it. Returns the ``SessionCutoff``."""
    User = get_user_model()
    with transaction.atomic():
        # Locking the user row orders this after any sign-in already writing it (last_login),
        # and makes sign-ins that start now wait for the new cutoff.
        User._default_manager.select_for_update().filter(pk=user.pk).exists()
        # Wait for rotations in flight (they hold their refresh token's row): their new pair is
        # then visible here and revoked with the rest; rotations that start later find their
        # token revoked.
        list(get_refresh_token_model().objects.select_for_update().filter(user=user, revoked__isnull=True).values("pk"))
        now = now or timezone.now()
        cutoff = SessionCutoff.objects.select_for_update().filter(user=user).first()
        if cutoff is None:
            cutoff = SessionCutoff.objects.create(user=user, refresh_tokens_valid_from=now, reason=reason)
        else:
            # Never backwards: with several app servers, a slower clock must not revive tokens.
            cutoff.refresh_tokens_valid_from = max(cutoff.refresh_tokens_valid_from, now)
            cutoff.reason = reason
            cutoff.save(update_fields=["refresh_tokens_valid_from", "reason"])
        _revoke_tokens(user=user, created_before=cutoff.refresh_tokens_valid_from)
    user.session_cutoff = cutoff
    signals.sessions_revoked.send(sender=revoke_sessions, user=user, realm=identity_of(user).realm, reason=reason)
    return cutoff


def _revoke_tokens(*conditions, created_before=None, **owner):
    """Revoke the live refresh tokens and delete the access tokens matching the filter."""
    AccessToken, RefreshToken = get_access_token_model(), get_refresh_token_model()
    when = {"created__lt": created_before} if created_before else {}
    RefreshToken.objects.filter(*conditions, revoked__isnull=True, **owner, **when).update(
        revoked=timezone.now(), access_token=None
    )
    AccessToken.objects.filter(*conditions, **owner, **when).delete()


def revoke_client_tokens(application):
    """End every session of one client (secret leaked, client retired)."""
    with transaction.atomic():
        _revoke_tokens(application=application)


def live_token_count(**owner):
    """Access tokens not yet expired, e.g. ``live_token_count(application=app)``."""
    return get_access_token_model().objects.filter(expires__gt=timezone.now(), **owner).count()


def revoke_realm_tokens(realm, *, application=None):
    """End every session in ``realm`` issued by our password grant (of one client, if given):
    the realm was deactivated, or the client may no longer use it."""
    if realm.is_directory:
        users = Q(user__realm_account__realm=realm)
    else:
        users = Q(user__realm_account__isnull=True)
    clients = (
        Q(application=application)
        if application is not None
        else Q(application__authorization_grant_type=get_application_model().GRANT_PASSWORD)
    )
    with transaction.atomic():
        _revoke_tokens(users & clients)


def cut_off(refresh_token):
    """Whether this refresh token was issued before its user's cutoff. A token issued at the
    cutoff's very instant or after it is valid."""
    try:
        valid_from = refresh_token.user.session_cutoff.refresh_tokens_valid_from
    except SessionCutoff.DoesNotExist:
        return False
    return refresh_token.created < valid_from


def past_its_limits(refresh_token, *, started_at, max_lifetime, idle_timeout, now):
    """Why a session may not be refreshed any more, or None: past its absolute lifetime counted
    from the sign-in (``started_at``), or idle longer than ``idle_timeout`` since its last refresh
    (the presented token's issue). At the limit itself it still may be."""
    if now > started_at + timedelta(seconds=max_lifetime):
        return SESSION_MAX_REACHED
    if idle_timeout is not None and now > refresh_token.created + timedelta(seconds=idle_timeout):
        return SESSION_IDLE
    return None
