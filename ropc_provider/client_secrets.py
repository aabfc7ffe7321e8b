"""Client secrets: generated with 256 bits of entropy, stored as a keyed SHA-256, verified fast.

Client secrets are random, not chosen by people, so a slow password hash (DOT's default, PBKDF2)
buys nothing against guessing and costs a full password-hash time on every confidential token
request. An HMAC keyed with a key derived from ``SECRET_KEY`` keeps a stolen database useless
without the key; ``SECRET_KEY_FALLBACKS`` keep secrets valid across a key rotation.
Secrets stored by DOT's hasher (or in plain text) still verify, and are re-stored in this format
on their first successful use.
"""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.contrib.auth.hashers import check_password, identify_hasher
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.debug import sensitive_variables

PREFIX = "ropc-hmac-sha256$"
_KEY_SALT = "ropc_provider.client_secret"


def generate_secret():
    # 43 URL-safe characters, 256 bits: no '+', ':' or '%' that clients mis-encode in Basic auth.
    return secrets.token_urlsafe(32)


def _digest(secret, key):
    return salted_hmac(_KEY_SALT, secret, secret=key, algorithm="sha256").hexdigest()


def make_stored_secret(secret):
    return PREFIX + _digest(secret, settings.SECRET_KEY)


@sensitive_variables()
def check_secret(provided, stored):
    """Return ``(matches, upgraded_value)``; ``upgraded_value`` is not None when the stored
    value should be replaced by our format (it was a legacy hash or plain text)."""
    if not provided or not stored:
        return False, None
    if stored.startswith(PREFIX):
        # Every key is tried, so the time taken does not tell which one matched.
        current = constant_time_compare(make_stored_secret(provided), stored)
        fallback = False
        for key in getattr(settings, "SECRET_KEY_FALLBACKS", []):
            fallback |= constant_time_compare(PREFIX + _digest(provided, key), stored)
        # Matched by a retired key: re-store under the current one before the fallback goes.
        return current or fallback, (make_stored_secret(provided) if fallback and not current else None)
    try:
        identify_hasher(stored)
    except ValueError:
        # Stored in plain text (DOT with hash_client_secret=False). Compare digests so the
        # comparison time does not depend on the stored length.
        matched = hmac.compare_digest(
            hashlib.sha256(provided.encode()).digest(), hashlib.sha256(stored.encode()).digest()
        )
    else:
        matched = check_password(provided, stored)
    return matched, (make_stored_secret(provided) if matched else None)
