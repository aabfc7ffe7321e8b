"""Who the resource owner is: checking a login name and password.

Today every client signs in the project's own users through Django's ``authenticate()`` (so the
project's ``AUTHENTICATION_BACKENDS`` and hashers apply). Realm-scoped directories plug in here.
"""

from django.contrib.auth import authenticate as django_authenticate
from django.contrib.auth.models import update_last_login

from . import signals
from .conf import ropc_settings


def authenticate(username, password, *, request=None):
    """Return the active user these credentials belong to, or None.

    Unknown user, wrong password and inactive user all return None after the same password-hash
    work: ``ModelBackend`` hashes the password even for an unknown name, and checks ``is_active``
    only after the password (``user_can_authenticate``).
    """
    user = django_authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        signals.sign_in_failed.send(sender=authenticate, username=username, request=request)
        return None
    return user


def record_sign_in(user):
    """Write what a successful sign-in changes on the user; call it in the token's transaction."""
    if ropc_settings.UPDATE_LAST_LOGIN:
        update_last_login(None, user)


def announce_sign_in(user, *, request=None):
    signals.sign_in_succeeded.send(sender=authenticate, user=user, request=request)
