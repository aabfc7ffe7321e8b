"""Client secrets: generated with 256 bits of entropy, verified by a keyed SHA-256, and kept out of
DOT's reach.

Client secrets are random, not chosen by people, so a slow password hash (DOT's default, PBKDF2)
buys nothing against guessing and costs a full password-hash time on every confidential token
request. Our verifier is an HMAC keyed with a key derived from ``SECRET_KEY``, so a stolen
database is useless without the key; ``SECRET_KEY_FALLBACKS`` keep secrets valid across a key
rotation. It lives on our client policy, never in DOT's ``Application.client_secret``: DOT's own
endpoints compare that field as a secret, so a verifier there would itself be a secret to them.
DOT's field of one of our clients holds DOT's hash of a value nobody ever sees.
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


def unknown_to_dot():
    """What DOT's ``client_secret`` of one of our clients is set to, with ``hash_client_secret``
    on: DOT stores its own hash of it, and since the value is never shown or kept, no secret
    authenticates that client at DOT's endpoints."""
    return secrets.token_urlsafe(32)


def _digest(secret, key):
    return salted_hmac(_KEY_SALT, secret, secret=key, algorithm="sha256").hexdigest()


def make_verifier(secret):
    return PREFIX + _digest(secret, settings.SECRET_KEY)


@sensitive_variables()
def check_verifier(provided, verifier):
    """Return ``(matches, renewed_verifier)``; ``renewed_verifier`` is not None when the secret
    matched under a retired key and the verifier should be stored anew under the current one."""
    if not provided or not verifier or not verifier.startswith(PREFIX):
        return False, None
    # Every key is tried, so the time taken does not tell which one matched.
    current = constant_time_compare(make_verifier(provided), verifier)
    fallback = False
    for key in getattr(settings, "SECRET_KEY_FALLBACKS", []):
        fallback |= constant_time_compare(PREFIX + _digest(provided, key), verifier)
    return current or fallback, (make_verifier(provided) if fallback and not current else None)


@sensitive_variables()
def check_dot_secret(provided, stored):
    """Compare a secret with an ``Application.client_secret`` as DOT's own endpoints do (its hash,
    or plain text), without ever rewriting it."""
    if not provided or not stored:
        return False
    try:
        identify_hasher(stored)
    except ValueError:
        # Plain text (DOT with hash_client_secret=False). Compare digests so the comparison time
        # does not depend on the stored length.
        return hmac.compare_digest(hashlib.sha256(provided.encode()).digest(), hashlib.sha256(stored.encode()).digest())
    return check_password(provided, stored)
