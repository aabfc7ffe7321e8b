"""Ending a user's sessions: the refresh-token cutoff.

``revoke_sessions(user, reason=...)`` is the one way to end every session of a user; password
changes, "sign out everywhere", operators and account deactivation all call it. Tokens are
opaque rows, so unlike JWT providers we end access tokens at once too, not when they expire.
"""

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from . import signals
from .directories import identity_of
from .models import SessionCutoff

# Stable texts a client can rely on to tell "sign in again" from plain expiry.
SESSION_ENDED = "The session was ended; sign in again."
REFRESH_TOKEN_EXPIRED = "The refresh token has expired."


def revoke_sessions(user, *, reason, now=None):
    """Move the user's cutoff to now, revoke their refresh tokens and delete their access tokens
    issued before it. Returns the ``SessionCutoff``."""
    now = now or timezone.now()
    AccessToken, RefreshToken = get_access_token_model(), get_refresh_token_model()
    with transaction.atomic():
        cutoff = SessionCutoff.objects.select_for_update().filter(user=user).first()
        if cutoff is None:
            cutoff = SessionCutoff.objects.create(user=user, refresh_tokens_valid_from=now, reason=reason)
        else:
            # Never backwards: with several app servers, a slower clock must not revive tokens.
            cutoff.refresh_tokens_valid_from = max(cutoff.refresh_tokens_valid_from, now)
            cutoff.reason = reason
            cutoff.save(update_fields=["refresh_tokens_valid_from", "reason"])
        RefreshToken.objects.filter(user=user, revoked__isnull=True, created__lt=now).update(
            revoked=now, access_token=None
        )
        AccessToken.objects.filter(user=user, created__lt=now).delete()
    user.session_cutoff = cutoff
    signals.sessions_revoked.send(sender=revoke_sessions, user=user, realm=identity_of(user).realm, reason=reason)
    return cutoff


def cut_off(refresh_token):
    """Whether this refresh token was issued before its user's cutoff. A token issued at the
    cutoff's very instant or after it is valid."""
    try:
        valid_from = refresh_token.user.session_cutoff.refresh_tokens_valid_from
    except SessionCutoff.DoesNotExist:
        return False
    return refresh_token.created < valid_from


def _has_live_tokens(user):
    AccessToken, RefreshToken = get_access_token_model(), get_refresh_token_model()
    return (
        AccessToken.objects.filter(user=user).exists()
        or RefreshToken.objects.filter(user=user, revoked__isnull=True).exists()
    )


def end_sessions_on_account_change(sender, instance, created, update_fields=None, **kwargs):
    """post_save of the user model: a new password, or a deactivated account, ends every session.

    ``AbstractBaseUser`` keeps the raw password in ``_password`` from ``set_password()`` until the
    save that stores it, and clears it for hash upgrades on login, so this catches every password
    change made through Django (``set_password``, password change and reset forms, the admin, our
    CLI) and never a mere upgrade. ``QuerySet.update()`` bypasses it, as it bypasses signals.
    """
    if created:
        return
    if getattr(instance, "_password", None) is not None:
        revoke_sessions(instance, reason=SessionCutoff.PASSWORD_CHANGED)
    elif (
        not instance.is_active
        and (update_fields is None or "is_active" in update_fields)
        and _has_live_tokens(instance)
    ):
        revoke_sessions(instance, reason=SessionCutoff.ACCOUNT_DEACTIVATED)
