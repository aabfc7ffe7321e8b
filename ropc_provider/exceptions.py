"""Every error our services raise, in one place; each message is safe to show an operator or a
client."""

import math

from django.core.exceptions import ImproperlyConfigured
from oauthlib.oauth2.rfc6749 import errors


class RopcError(Exception):
    """Base of the errors our services raise; the message is safe to show an operator."""


class InvalidInput(RopcError, ValueError):
    """Bad input to a service (CLI argument, admin form field): nothing was written."""


class RealmError(RopcError):
    """The realm of a sign-in cannot be used; decided before any password is checked."""


class RealmRequired(RealmError):
    pass


class RealmNotAvailable(RealmError):
    """Unknown, or not one this client may use: the same answer, so realm names do not leak."""


class RealmInactive(RealmError):
    pass


class RefreshTokenAlreadyUsed(Exception):
    """Another request rotated this refresh token first."""


class RefreshRefused(Exception):
    """A refresh token that cannot be redeemed; ``description`` is a stable text for the client
    when it should act on the reason (sign in again, expired), else None."""

    def __init__(self, description=None):
        super().__init__(description or "refused")
        self.description = description


class SecondFactorDue(RopcError):
    """The password was right, but the account has a second factor to verify first."""


class NotFirstParty(RopcError):
    """The access token was issued to a client that does not sign people in through us (e.g. a
    third-party app of the host's own DOT endpoints)."""


class SignInTooOld(RopcError):
    """The action needs a sign-in more recent than ``max_age`` seconds (RFC 9470's step-up)."""

    def __init__(self, max_age):
        super().__init__(f"Sign in again: this needs a sign-in within the last {max_age} seconds.")
        self.max_age = max_age


class ChallengeRefused(RopcError):
    """A step of the first-party sign-in (challenges.py) that cannot go on; the message is safe to
    show the client."""


class InvalidSession(ChallengeRefused):
    """The auth_session is unknown, expired, used, another client's, or its sign-in no longer stands."""


class WrongFactor(ChallengeRefused):
    """The second-factor code was refused; the auth_session stays usable until a lockout."""


class FactorExhausted(WrongFactor):
    """The account's TOTP codes are refused after too many consecutive wrong codes; a recovery code
    (or an operator) lifts it."""


class CodeRefused(ChallengeRefused):
    """An authorization code that cannot be redeemed (unknown, expired, used, another client's, or
    a PKCE verifier that does not match)."""


class TooManyAttempts(RopcError):
    """``kind``, for the audit trail: "locked" (the identity), "throttled" (the address), or
    "too_many_at_once" (more checks of the identity running than it has failures left)."""

    def __init__(self, retry_after, kind="locked"):
        super().__init__("Too many failed attempts; try again later.")
        self.retry_after = max(1, math.ceil(retry_after))
        self.kind = kind


class ProtectionUnavailable(RopcError):
    """The cache is unreachable and ROPC_PROVIDER['PROTECTION_FAIL_CLOSED'] is on."""


class ClaimsHookError(ImproperlyConfigured):
    """ROPC_PROVIDER["CLAIMS_HOOK"] returned something we must not put in a token."""


class TooManyAttemptsError(errors.OAuth2Error):
    """``TooManyAttempts`` as the token endpoint answers it: 429 with ``Retry-After``."""

    error = "too_many_attempts"
    status_code = 429

    def __init__(self, cause, **kwargs):
        super().__init__(description=str(cause), **kwargs)
        self.retry_after = cause.retry_after

    @property
    def headers(self):
        return {"Retry-After": str(self.retry_after)}


class InsufficientAuthorizationError(errors.OAuth2Error):
    """The password was right and a second factor is due (draft-ietf-oauth-first-party-apps):
    ``403`` at the token endpoint, ``400`` at the challenge endpoint, with the ``auth_session`` to
    continue with and what the client may send next (``details``)."""

    error = "insufficient_authorization"

    def __init__(self, *, details, status_code=403, **kwargs):
        super().__init__(status_code=status_code, **kwargs)
        self.details = details

    @property
    def twotuples(self):
        return super().twotuples + list(self.details.items())
