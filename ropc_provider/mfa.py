"""Second factors: a TOTP authenticator (RFC 6238, computed by pyotp) and single-use recovery
codes, per user; and the realm policy that says when one is due.

Enrolling through an operator (CLI, admin) is active at once. Enrolling oneself (the API, or inside
the sign-in under a ``required`` policy) is pending until a first valid code confirms it. Removing
the factor or regenerating the codes ends every session of the user.
"""

import secrets
import time
from dataclasses import dataclass

import pyotp
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables

from . import audit, clients, protection, sessions, signals, statements
from .accounts import identity_of, lockout_keys
from .conf import ropc_settings
from .exceptions import FactorExhausted, InvalidInput, NotFirstParty, SignInTooOld, WrongFactor
from .models import Authenticator, Realm, RecoveryCode, SecurityEvent, SessionCutoff

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = ["enroll", "remove", "regenerate_recovery_codes", "status", "second_factor_due"]

# RFC 6238 as authenticator apps implement it: 6 digits, 30-second steps, SHA-1.
DIGITS, INTERVAL = 6, 30
# A code of the step before or after the server's is accepted too (clock drift, typing time).
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
# OpenID Connect amr values (RFC 8176 registers "otp"; recovery codes have no registered value).
OTP, RECOVERY_CODE = "otp", "recovery_code"
EXHAUSTED = "Too many wrong codes: sign in with a recovery code, or ask an operator."
# What a sign-in needs next: a code of the user's factor, or to enrol one first.
VERIFY, ENROL = "verify", "enrol"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    provisioning_uri: str
    recovery_codes: tuple = ()


def _totp(secret):
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)


def provisioning_uri(secret, realm, login_name):
    """An ``otpauth://totp/`` URI naming the realm as issuer, for a QR code or an app's "add key"."""
    return _totp(secret).provisioning_uri(name=login_name, issuer_name=realm.name)


def policy_of(realm):
    """``enrolled`` or ``required``: the realm's own, or for the project realm the setting's."""
    return realm.mfa if realm.is_directory else ropc_settings.PROJECT_REALM_MFA


def active_authenticator(user):
    """The user's confirmed authenticator, or None. Reads ``user.authenticator`` (select_related
    spares the query)."""
    try:
        authenticator = user.authenticator
    except Authenticator.DoesNotExist:
        return None
    return authenticator if authenticator.confirmed_at else None


def second_factor_due(user, realm):
    """``VERIFY`` when the user has a factor, ``ENROL`` when the realm requires one they lack,
    else None: the password alone signs them in."""
    if active_authenticator(user) is not None:
        return VERIFY
    return ENROL if policy_of(realm) == Realm.MFA_REQUIRED else None


# -- recovery codes ----------------------------------------------------------------------------

_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def _normalize_recovery_code(code):
    return "".join(code.split()).replace("-", "").lower()


@sensitive_variables()
def _recovery_digest(user, code):
    # Keyed with SECRET_KEY and bound to the user: a leaked table gives neither codes nor a way to
    # test guesses offline, and one user's code is no other's.
    message = f"{user.pk}:{_normalize_recovery_code(code)}"
    return salted_hmac("ropc_provider.mfa.recovery_code", message, algorithm="sha256").hexdigest()


def _new_recovery_codes(user):
    """Replace the user's recovery codes; returns the new ones in clear, to be shown once."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))  # ~49 bits each
        codes.append(f"{raw[:5]}-{raw[5:]}")
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create(RecoveryCode(user=user, digest=_recovery_digest(user, code)) for code in codes)
    return tuple(codes)


# -- enrolment -----------------------------------------------------------------------------------


def has_active_factor(user):
    """Asked of the database (in the caller's transaction): a cached ``user.authenticator`` may be stale."""
    return Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists()


def _new_secret(user, *, confirmed):
    offered = offered_enrolment(user)
    user.authenticator, _ = Authenticator.objects.update_or_create(
        user=user,
        defaults={
            "secret": offered.secret,
            "confirmed_at": timezone.now() if confirmed else None,
            "last_used_step": None,
        },
    )
    return offered.secret, offered.provisioning_uri


def offered_enrolment(user):
    """A new secret for the user to enrol, written nowhere yet: the sign-in that offers it keeps it
    (its auth session), so nobody else's sign-in can swap it for theirs."""
    secret = pyotp.random_base32()  # 160 bits, as RFC 4226 §4 recommends
    identity = identity_of(user)
    return Enrolment(secret=secret, provisioning_uri=provisioning_uri(secret, identity.realm, identity.login_name))


def enroll(user):
    """An operator's enrolment: a new authenticator, active at once, and new recovery codes.
    Refused (``InvalidInput``) when the user has one already: remove it first."""
    with transaction.atomic():
        if has_active_factor(user):
            raise InvalidInput("This account has an authenticator already; remove it first.")
        secret, uri = _new_secret(user, confirmed=True)
        codes = _new_recovery_codes(user)
    audit.record(SecurityEvent.SECOND_FACTOR_ENROLLED, user=user, reason="operator")
    signals.second_factor_enrolled.send(sender=enroll, user=user)
    return Enrolment(secret=secret, provisioning_uri=uri, recovery_codes=codes)


def require_first_party(application):
    """Only a token from a client that signs people in through us manages their factors: a
    third-party app the user authorised at the host's own DOT endpoints must not hold a factor."""
    if (
        application is None
        or not clients.may_use_password_grant(application)
        or not clients.policy_of(application).is_active
    ):
        raise NotFirstParty("Second factors are managed with a token from this provider's own sign-in.")


def _require_recent(signed_in_at):
    # Whoever holds a user's access token must not add a factor the user does not have: only a
    # sign-in that just happened may (the sign-in inside a challenge passes None: it is now).
    if signed_in_at is None:
        return
    max_age = ropc_settings.ENROLMENT_SIGN_IN_MAX_AGE
    if (timezone.now() - signed_in_at).total_seconds() > max_age:
        raise SignInTooOld(max_age)


def begin_enrolment(user, *, signed_in_at=None):
    """Self-service: a new pending authenticator (replacing any pending one), active only once
    ``confirm_enrolment`` sees a code of it. ``signed_in_at``: when the user's sign-in happened,
    refused (``SignInTooOld``) past ``ENROLMENT_SIGN_IN_MAX_AGE``."""
    _require_recent(signed_in_at)
    with transaction.atomic():
        if has_active_factor(user):
            raise InvalidInput("This account has an authenticator already; remove it first.")
        secret, uri = _new_secret(user, confirmed=False)
    return Enrolment(secret=secret, provisioning_uri=uri)


@sensitive_variables()
def confirm_enrolment(user, otp, *, secret=None, signed_in_at=None):
    """Activate, with a first valid code, the user's pending authenticator, or the ``secret`` a
    sign-in offered (``offered_enrolment``), unless another became active meanwhile. Returns the
    new recovery codes (shown once), or None."""
    _require_recent(signed_in_at)
    with transaction.atomic():
        # One enrolment at a time per user: the row lock orders concurrent confirmations (NO KEY,
        # as revoke_sessions takes it: rotations in flight still write rows referring to the user).
        type(user)._default_manager.select_for_update(no_key=True).filter(pk=user.pk).exists()
        if secret is None:
            pending = Authenticator.objects.filter(user=user, confirmed_at__isnull=True).first()
            secret = pending.secret if pending else None
        elif has_active_factor(user):
            return None
        step = _matching_step(secret, otp) if secret else None
        if step is None:
            return None
        user.authenticator, _ = Authenticator.objects.update_or_create(
            user=user, defaults={"secret": secret, "confirmed_at": timezone.now(), "last_used_step": step}
        )
        codes = _new_recovery_codes(user)
    audit.record(SecurityEvent.SECOND_FACTOR_ENROLLED, user=user, reason="user")
    signals.second_factor_enrolled.send(sender=enroll, user=user)
    return codes


def remove(user):
    """Remove the user's authenticator and recovery codes, and end every session of theirs: whoever
    removed it may not be the person those sessions belong to. Returns whether there was one."""
    with transaction.atomic():
        deleted, _ = Authenticator.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        if deleted:
            sessions.revoke_sessions(user, reason=SessionCutoff.SECOND_FACTOR_REMOVED)
    user._state.fields_cache.pop("authenticator", None)
    if deleted:
        audit.record(SecurityEvent.SECOND_FACTOR_REMOVED, user=user)
        signals.second_factor_removed.send(sender=remove, user=user)
    return bool(deleted)


def regenerate_recovery_codes(user):
    """New recovery codes for a user with an active authenticator (the old ones stop working), and
    every session of theirs ends, as a new password would. Returns the codes, to be shown once."""
    with transaction.atomic():
        if not has_active_factor(user):
            raise InvalidInput("This account has no active authenticator.")
        codes = _new_recovery_codes(user)
        sessions.revoke_sessions(user, reason=SessionCutoff.RECOVERY_CODES_REGENERATED)
        audit.record(SecurityEvent.RECOVERY_CODES_REGENERATED, user=user)
    return codes


def status(user):
    """What an operator or the user sees: never a secret or a code."""
    authenticator = Authenticator.objects.filter(user=user).first()
    active = authenticator is not None and authenticator.confirmed_at is not None
    return {
        "totp": active,
        "enrolment_pending": authenticator is not None and not active,
        "active_since": authenticator.confirmed_at.isoformat() if active else None,
        "recovery_codes_left": RecoveryCode.objects.filter(user=user, used_at__isnull=True).count() if active else 0,
    }


# -- verification --------------------------------------------------------------------------------


@sensitive_variables()
def _matching_step(secret, otp):
    otp = (otp or "").strip()
    if len(otp) != DIGITS or not otp.isdigit():
        return None
    try:
        return _totp(secret).verify_and_get_timecode(otp, for_time=time.time(), valid_window=VALID_WINDOW)
    except pyotp.exceptions.OTPVerificationError:
        return None


@sensitive_variables()
def verify(user, *, otp=None, recovery_code=None):
    """The amr method (``OTP``, ``RECOVERY_CODE``) of a right code of the user's active factor, or
    None. Either kind works once: a TOTP code's step, and every earlier one, is spent by its use
    (RFC 6238 §5.2), a recovery code by its. Each claim is a conditional UPDATE, so of two
    concurrent uses of one code exactly one wins."""
    authenticator = active_authenticator(user)
    if authenticator is None:
        return None
    cap = ropc_settings.SECOND_FACTOR_MAX_FAILURES
    if otp is not None:
        if authenticator.failed_attempts >= cap:
            raise FactorExhausted(EXHAUSTED)
        step = _matching_step(authenticator.secret, otp)
        if step is None:
            return None
        # A conditional UPDATE (statements.py): of two concurrent uses of one step, one wins.
        return OTP if statements.claim_totp_step(authenticator.pk, step, cap) else None
    if recovery_code:
        claimed = RecoveryCode.objects.filter(
            user=user, digest=_recovery_digest(user, recovery_code), used_at__isnull=True
        ).update(used_at=timezone.now())
        if claimed and authenticator.failed_attempts:
            Authenticator.objects.filter(pk=authenticator.pk).update(failed_attempts=0)
        return RECOVERY_CODE if claimed else None
    return None


def _count_failure(user):
    # Durable and per user, whatever name or address the guesses come from, and cleared only by a
    # right code: the lockout's counters slow guessing down, this one ends it (NIST SP 800-63B
    # §5.2.2 allows at most 100 consecutive failures).
    Authenticator.objects.filter(user=user, confirmed_at__isnull=False).update(failed_attempts=F("failed_attempts") + 1)


@sensitive_variables()
def check(user, realm, *, lockout_key, account_key, otp=None, recovery_code=None, ip, request=None, offered=None):
    """Verify a code under attack protection, as a password is checked: refused before verifying
    when the identity is locked (``TooManyAttempts``), a wrong code counted toward its lock and
    refused (``WrongFactor``; ``FactorExhausted`` past ``SECOND_FACTOR_MAX_FAILURES``), a right one
    clearing its failures. ``offered``: the secret a sign-in offered an account without a factor; a
    code of it enrols it. Returns ``(method, recovery_codes)``, the codes only when just enrolled."""
    attempt = protection.begin(realm_slug=realm.slug, login_key=lockout_key, account_key=account_key or None, ip=ip)
    method, recovery_codes = None, None
    try:
        if attempt.account_locked:
            pass  # locked through another of its names: refused as a wrong code, nothing spent
        elif active_authenticator(user) is not None:
            method = verify(user, otp=otp, recovery_code=recovery_code)
            if method is None:
                _count_failure(user)
        elif offered and otp is not None:
            recovery_codes = confirm_enrolment(user, otp, secret=offered)
            method = OTP if recovery_codes else None
    except FactorExhausted:
        # No code was checked: nothing to count, or the user's right codes would lock them out of
        # the recovery codes that lift the stop.
        attempt.second_factor_due()
        # Checked no code and cost no hash, so could be asked for again and again: on record once
        # a minute, or the trail would grow by a row a request.
        if protection.worth_recording("factor_exhausted", user.pk):
            audit.record(SecurityEvent.SECOND_FACTOR_FAILED, user=user, realm=realm, reason="exhausted", ip=ip)
        signals.factor_failed.send(sender=check, user=user, realm=realm, request=request)
        raise
    except BaseException:
        attempt.failed()
        raise
    if method is None:
        attempt.failed()
        audit.record(SecurityEvent.SECOND_FACTOR_FAILED, user=user, realm=realm, reason="wrong_code", ip=ip)
        signals.factor_failed.send(sender=check, user=user, realm=realm, request=request)
        raise WrongFactor("The code is not right.")
    attempt.succeeded()
    signals.factor_verified.send(sender=check, user=user, realm=realm, method=method, request=request)
    return method, recovery_codes


def check_own(user, *, otp=None, recovery_code=None, ip, request=None):
    """``check`` for a signed-in user acting on their own factor (the self-service API): counted
    where their sign-ins are, so a stolen access token gives no more guesses than the password did."""
    identity = identity_of(user)
    lockout_key, account_key = lockout_keys(user, identity)
    return check(
        user,
        identity.realm,
        lockout_key=lockout_key,
        account_key=account_key,
        otp=otp,
        recovery_code=recovery_code,
        ip=ip,
        request=request,
    )
