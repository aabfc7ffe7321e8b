"""Refreshing: which presented refresh token may be rotated, a grace retry of a lost answer, and
telling a double-fired refresh from a replayed (leaked) token, which revokes its family."""

import hashlib
import logging
import math
from datetime import timedelta

from django.core.cache import caches

from . import audit, clients, protection, realms, sessions, tokens
from .conf import ropc_settings
from .exceptions import RefreshRefused
from .models import GraceRetry, SecurityEvent, Session

log = logging.getLogger("ropc_provider")


def grace_successor(refresh_token, grace_seconds, *, received_at):
    """``(successor, honoured_at)``: the pair a rotation of ``refresh_token`` issued, if the client
    may still take its place: rotated (not revoked) less than ``grace_seconds`` ago, its successor
    never used, and not honoured before. So only the token one generation back is ever honoured,
    once (DOT honoured several, #1617), and nothing but checksums needs to be stored. When it was
    honoured already, ``honoured_at`` says when."""
    if not grace_seconds:
        return None, None
    # Asked even past the window: a retry honoured at its very end may be double-fired after it.
    honoured = GraceRetry.objects.filter(refresh_token=refresh_token).values_list("retried", flat=True).first()
    if honoured is not None or received_at - refresh_token.revoked > timedelta(seconds=grace_seconds):
        return None, honoured
    successor = next(
        iter(tokens.with_owner().filter(access_token__source_refresh_token=refresh_token, revoked__isnull=True)[:1]),
        None,
    )
    return successor, None


def is_replay(refresh_token, *, received_at, last_used=None):
    """Whether presenting this revoked refresh token looks like a replay of a leaked token rather
    than a request sent concurrently with its last use: its rotation, or a grace retry honoured
    later (``last_used``), which a client may double-fire just as it double-fires a refresh."""
    tolerance = timedelta(seconds=ropc_settings.REFRESH_TOKEN_REUSE_TOLERANCE)
    return received_at > max(refresh_token.revoked, last_used or refresh_token.revoked) + tolerance


# -- who rotated a token: a double-fired refresh comes from the same client as its rotation --------


def presenter(ip, user_agent):
    """What tells one client instance from another at a refresh: its address and user agent."""
    return hashlib.sha256(f"{ip}\x1f{user_agent}".encode()).hexdigest()[:32]


def _rotation_key(refresh_token):
    return f"ropc:rotated:{refresh_token.pk}"


def _remember_rotation(refresh_token, by):
    if by is None or ropc_settings.REFRESH_TOKEN_REUSE_TOLERANCE <= 0:
        return
    try:
        timeout = math.ceil(ropc_settings.REFRESH_TOKEN_REUSE_TOLERANCE) + 1
        caches[ropc_settings.PROTECTION_CACHE].set(_rotation_key(refresh_token), by, timeout)
    except Exception as error:  # the cache is down: the tolerance then trusts the clock alone
        log.error("Could not record a rotation: %s", type(error).__name__)


def _raced_by_another(refresh_token, by, *, last_used=None):
    """Whether a token presented again within the tolerance cannot be a double-fired refresh of
    the client that rotated it: its successor was used since, or another address or user agent
    rotated it. A stolen token raced against its owner is what the tolerance must not cover.
    ``last_used``: when a grace retry of it was honoured, whose new pair is then its successor."""
    since = max(refresh_token.revoked, last_used or refresh_token.revoked)
    successor_used = tokens.RefreshToken.objects.filter(
        token_family=refresh_token.token_family, created__gte=since, revoked__isnull=False
    ).exists()
    if successor_used or by is None:
        return successor_used
    try:
        rotated_by = caches[ropc_settings.PROTECTION_CACHE].get(_rotation_key(refresh_token))
    except Exception:
        return False
    return rotated_by is not None and rotated_by != by


# Why a refresh was refused, as the audit trail says it.
REFUSED_UNKNOWN = "unknown_token"
REFUSED_ENDED = "session_ended"
REFUSED_REUSED = "token_reused"
REFUSED_EXPIRED = "expired"
REFUSED_MAX_LIFETIME = "max_lifetime"
REFUSED_IDLE = "idle"
REFUSED_NOT_ALLOWED = "not_allowed"


def _refused(reason, found=None, *, description=None, ends=None):
    """Record the refusal (and end the session, with ``ends`` as its reason), then refuse. A dead
    token presented again and again is on record once a minute: each costs its sender nothing."""
    if ends is not None:
        sessions.end_family(found.token_family, ends)
    if found is None or protection.worth_recording(reason, found.token_family or found.pk):
        audit.record(SecurityEvent.REFRESH_REFUSED, reason=reason, **_whose(found))
    return RefreshRefused(description)


def _whose(found):
    """What an event about this token says of it: its user, session, realm and login name."""
    if found is None:
        return {}
    return {"user": found.user, "session_id": found.token_family, **sessions.named(found.token_family)}


def redeem(value, *, application, received_at, presented_by=None, ip=None, user_agent=""):
    """The live refresh token a refresh by ``application`` rotates, and the token it stands in for
    when that is a grace-period retry (else None). Raises ``RefreshRefused``, recorded in the audit
    trail. ``presented_by``: the ``presenter()`` of this request; ``ip``: its counted address. A
    family begun at DOT's endpoint becomes one of our sessions here (``sessions.adopt``)."""
    policy, retry_of = clients.policy_of(application), None
    found = tokens.find_refresh_token(value)
    # Another client's token is refused without side effects, so one client cannot revoke
    # another's sessions by replaying their tokens.
    if found is None or found.application_id != application.pk:
        # Guesses cost one lookup each; on record once a minute per client and address (not per
        # presenter: a user agent is the sender's to vary).
        if protection.worth_recording(REFUSED_UNKNOWN, application.pk, ip=ip):
            raise _refused(REFUSED_UNKNOWN)
        raise RefreshRefused()
    if sessions.cut_off(found):
        if found.revoked is None:
            tokens.revoke_family(found)
        raise _refused(REFUSED_ENDED, found, description=sessions.SESSION_ENDED, ends=Session.CUT_OFF)
    if found.revoked is not None and sessions.has_ended(found.token_family):
        # Signed out of, or ended by an operator: no replay to suspect, and the client is told so.
        raise _refused(REFUSED_ENDED, found, description=sessions.SESSION_ENDED)
    if found.revoked is not None:
        successor, honoured_at = grace_successor(found, policy.refresh_grace_seconds, received_at=received_at)
        if successor is None:
            replay = is_replay(found, received_at=received_at, last_used=honoured_at)
            if ropc_settings.REFRESH_TOKEN_REUSE_PROTECTION and found.token_family and not replay:
                replay = _raced_by_another(found, presented_by, last_used=honoured_at)
            if ropc_settings.REFRESH_TOKEN_REUSE_PROTECTION and replay:
                tokens.revoke_family(found)
                audit.record(SecurityEvent.REUSE_DETECTED, **_whose(found))
                raise _refused(REFUSED_REUSED, found, ends=Session.REUSE_DETECTED)
            raise _refused(REFUSED_REUSED, found)
        # The answer to the rotation was lost: rotate its (unused) successor instead, so the
        # client continues and the pair it never received dies.
        retry_of, found = found, successor
    if tokens.refresh_token_expired(found, clients.refresh_token_lifetime(application)):
        raise _refused(REFUSED_EXPIRED, found, description=sessions.REFRESH_TOKEN_EXPIRED, ends=Session.EXPIRED)
    # The sign-in's time is in the token family's id: the limits cost no query.
    limit = sessions.past_its_limits(
        found,
        started_at=tokens.family_started(found),
        max_lifetime=clients.session_max_lifetime(application),
        idle_timeout=clients.session_idle_timeout(application),
        now=received_at,
    )
    if limit == sessions.SESSION_MAX_REACHED:
        raise _refused(REFUSED_MAX_LIFETIME, found, description=limit, ends=Session.EXPIRED)
    if limit:
        raise _refused(REFUSED_IDLE, found, description=limit, ends=Session.IDLE)
    if (
        found.access_token is None
        or not found.user.is_active
        # A client switched to no refresh tokens keeps none alive.
        or not policy.issue_refresh_tokens
        or not realms.may_refresh(policy, found)
    ):
        raise _refused(REFUSED_NOT_ALLOWED, found)
    if not tokens.family_begun_here(found):
        sessions.adopt(found, application=application, ip=ip, user_agent=user_agent)
    return found, retry_of


def rotate(previous, *, presented_by=None, **pair):
    """``tokens.rotate`` (the new pair, or ``RefreshTokenAlreadyUsed``), remembering who rotated,
    so a token presented again within the tolerance can be told apart (``_raced_by_another``).
    ``presented_by``: the ``presenter()`` of this request."""
    access = tokens.rotate(previous, **pair)
    _remember_rotation(pair.get("retry_of") or previous, presented_by)
    if ropc_settings.AUDIT_REFRESH_SUCCEEDED:  # spares every refresh the session's lookup
        audit.record(SecurityEvent.REFRESH_SUCCEEDED, **_whose(previous))
    return access
