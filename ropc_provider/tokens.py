"""Issuing, rotating and revoking tokens, stored in DOT's token models.

Token values are stored the way DOT is configured to (plain or hashed at rest, see
``COMPLIANT_BCP_RFC9700_TOKEN_STORAGE``); they are always looked up by their SHA-256 checksum.
"""

import datetime
import functools
import hashlib
import logging
import math
import secrets
import uuid
from datetime import timedelta

from django.core.cache import caches
from django.db import connections, router, transaction
from django.db.models import Min
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_refresh_token_model,
    set_token_value,
)

from . import accounts, clients, realms, sessions
from .claims import subject_of
from .conf import ropc_settings
from .metadata import configured_issuer
from .models import GraceRetry, SessionCutoff

log = logging.getLogger("ropc_provider")
AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


class RefreshTokenAlreadyUsed(Exception):
    """Another request rotated this refresh token first."""


class RefreshRefused(Exception):
    """A refresh token that cannot be redeemed; ``description`` is a stable text for the client
    when it should act on the reason (sign in again, expired), else None."""

    def __init__(self, description=None):
        super().__init__(description or "refused")
        self.description = description


def checksum(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _with_owner():
    return RefreshToken.objects.select_related(
        "access_token", "user", "user__realm_account__realm", "user__session_cutoff", "user__oidc_subject"
    )


def find_refresh_token(value):
    """The refresh token row for a presented value, live one first, or None."""
    found = _with_owner().filter(token_checksum=checksum(value))
    # Rows share a checksum only when DOT re-issued a value without rotating; the live one wins.
    live = next(iter(found.filter(revoked__isnull=True)[:1]), None)
    return live or found.order_by("-revoked").first()


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
        iter(_with_owner().filter(access_token__source_refresh_token=refresh_token, revoked__isnull=True)[:1]), None
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
    successor_used = RefreshToken.objects.filter(
        token_family=refresh_token.token_family, created__gte=since, revoked__isnull=False
    ).exists()
    if successor_used or by is None:
        return successor_used
    try:
        rotated_by = caches[ropc_settings.PROTECTION_CACHE].get(_rotation_key(refresh_token))
    except Exception:
        return False
    return rotated_by is not None and rotated_by != by


def new_family(started_at):
    """A token family's id: a UUIDv7 (RFC 9562) whose first 48 bits are the sign-in's Unix time in
    milliseconds. The sign-in time travels with every token of the family, so ``auth_time`` needs no
    row and no query, and survives ``cleartokens`` deleting the family's first tokens."""
    milliseconds = int(started_at.timestamp() * 1000) & (2**48 - 1)
    value = (milliseconds << 80) | (0x7 << 76) | (secrets.randbits(12) << 64) | (0b10 << 62) | secrets.randbits(62)
    return uuid.UUID(int=value)


def family_started(refresh_token):
    """When the password grant that began this token family happened."""
    family = refresh_token.token_family
    if family is not None and family.version == 7:
        return datetime.datetime.fromtimestamp((family.int >> 80) / 1000, tz=datetime.UTC)
    # Families begun before ids carried their start: their first token that is left.
    if family is None:
        return refresh_token.created
    first = RefreshToken.objects.filter(token_family=family).aggregate(Min("created"))
    return first["created__min"] or refresh_token.created


def refresh_token_expired(refresh_token, lifetime_seconds, *, now=None):
    now = now or timezone.now()
    return refresh_token.created + timedelta(seconds=lifetime_seconds) <= now


def _new_access_token(*, user, application, scope, value, expires, source_refresh_token=None):
    token = AccessToken(
        user=user,
        application=application,
        scope=scope,
        expires=expires,
        source_refresh_token=source_refresh_token,
    )
    set_token_value(token, value)
    token.save(force_insert=True)
    return token


def _new_refresh_token(*, user, application, access_token, value, family):
    token = RefreshToken(user=user, application=application, access_token=access_token, token_family=family)
    set_token_value(token, value)
    token.save(force_insert=True)
    return token


def issue(*, user, application, scope, access_token, expires_in, refresh_token=None, started_at=None):
    """Store a new token pair (a new family, begun at ``started_at``) for a password grant."""
    now = timezone.now()
    expires = now + timedelta(seconds=expires_in)
    # savepoint=False: a token pair is written whole or not at all, without costing a SAVEPOINT
    # round trip when the caller already holds a transaction.
    with transaction.atomic(using=router.db_for_write(AccessToken), savepoint=False):
        access = _new_access_token(user=user, application=application, scope=scope, value=access_token, expires=expires)
        if refresh_token:
            _new_refresh_token(
                user=user,
                application=application,
                access_token=access,
                value=refresh_token,
                family=new_family(started_at or now),
            )
    return access


def rotate(
    previous, *, application, scope, access_token, expires_in, refresh_token, retry_of=None, presented_by=None
):
    """Replace ``previous`` (a live refresh token) by a new pair in the same family.

    The claim on ``previous`` is a conditional UPDATE, so of several concurrent rotations of one
    token exactly one wins, on every database; the others get ``RefreshTokenAlreadyUsed``.
    ``retry_of``: a grace-period retry of the token ``previous`` replaced. The new pair then
    descends from that token, and ``previous`` — whose answer never arrived — from nothing, so
    presenting it later is a replay.
    """
    now = timezone.now()
    expires = now + timedelta(seconds=expires_in)
    with transaction.atomic(using=router.db_for_write(RefreshToken), savepoint=False):
        connection = connections[router.db_for_write(RefreshToken)]
        with connection.cursor() as cursor:
            cursor.execute(
                _claim_statement(connection.alias),
                [
                    connection.ops.adapt_datetimefield_value(now),
                    RefreshToken._meta.pk.get_db_prep_value(previous.pk, connection),
                ],
            )
            claimed = cursor.rowcount == 1
        if claimed and previous.access_token_id:
            _delete_access_token(previous.access_token_id)
        if claimed and retry_of is not None:
            # Only the winner of the claim gets here, so concurrent retries cannot both record it.
            GraceRetry.objects.create(refresh_token=retry_of)
        if claimed:
            access = _new_access_token(
                user=previous.user,
                application=application,
                scope=scope,
                value=access_token,
                expires=expires,
                source_refresh_token=retry_of or previous,
            )
            _new_refresh_token(
                user=previous.user,
                application=application,
                access_token=access,
                value=refresh_token,
                family=previous.token_family or new_family(previous.created),
            )
    if not claimed:
        raise RefreshTokenAlreadyUsed()
    _remember_rotation(retry_of or previous, presented_by)
    return access


# The two statements of a rotation, written out once per process: compiled by the ORM (an UPDATE
# filtered by a NOT EXISTS subquery, a DELETE through the collector) they cost more than the rest of
# a refresh. Only quoted identifiers from model metadata go into the text; values are parameters.


@functools.cache
def _claim_statement(alias):
    """Claim a live refresh token, unless its user's cutoff moved past it since it was read (a
    sign-out racing the rotation wins)."""
    quote = connections[alias].ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    tokens, cutoffs = quote(RefreshToken._meta.db_table), quote(SessionCutoff._meta.db_table)
    valid_from = column(SessionCutoff, "refresh_tokens_valid_from")
    return (
        f"UPDATE {tokens} SET {column(RefreshToken, 'revoked')} = %s, {column(RefreshToken, 'access_token')} = NULL"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
        f" WHERE {column(RefreshToken, 'id')} = %s AND {column(RefreshToken, 'revoked')} IS NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {cutoffs}"
        f" WHERE {cutoffs}.{column(SessionCutoff, 'user')} = {tokens}.{column(RefreshToken, 'user')}"
        f" AND {cutoffs}.{valid_from} > {tokens}.{column(RefreshToken, 'created')})"
    )


@functools.cache
def _plain_access_token_delete(alias):
    """A one-statement delete, when nothing but DOT's refresh token (already unlinked) points at
    access tokens; otherwise None, and the ORM's collector handles the other relations."""
    relations = [rel for rel in AccessToken._meta.related_objects if rel.related_model is not RefreshToken]
    if relations:
        return None
    quote = connections[alias].ops.quote_name
    return f"DELETE FROM {quote(AccessToken._meta.db_table)} WHERE {quote(AccessToken._meta.pk.column)} = %s"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters


def _delete_access_token(pk):
    connection = connections[router.db_for_write(AccessToken)]
    statement = _plain_access_token_delete(connection.alias)
    if statement is None:
        AccessToken.objects.filter(pk=pk).delete()
        return
    with connection.cursor() as cursor:
        cursor.execute(statement, [AccessToken._meta.pk.get_db_prep_value(pk, connection)])


def revoke_family(refresh_token):
    """Revoke every token descended from the same password grant (reuse detected)."""
    if refresh_token.token_family:
        RefreshToken.revoke_family(refresh_token.token_family)
    else:
        refresh_token.revoke()


def _epoch(moment):
    return int(moment.timestamp())


def describe(value, type_hint=None):
    """RFC 7662 members of a live token of ours, or None (inactive, unknown, expired, revoked)."""
    digest = checksum(value)
    lookups = [AccessToken, RefreshToken]
    if type_hint == "refresh_token":
        lookups.reverse()
    now = timezone.now()
    for model in lookups:
        found = model.objects.select_related("application", "user", "user__realm_account__realm").filter(
            token_checksum=digest
        )
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
            lifetime = clients.refresh_token_lifetime(token.application)
            if token.access_token is None or refresh_token_expired(token, lifetime, now=now):
                return None
            scope, expires = token.access_token.scope, token.created + timedelta(seconds=lifetime)
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
        if model is AccessToken:
            # RFC 7662 §2.2: a type from the OAuth token type registry; a refresh token has none.
            claims["token_type"] = "Bearer"
        issuer = configured_issuer()
        if issuer:
            claims["iss"] = issuer
        return claims
    return None


def redeem(value, *, application, received_at, presented_by=None):
    """The live refresh token a refresh by ``application`` rotates, and the token it stands in for
    when that is a grace-period retry (else None). Raises ``RefreshRefused``. ``presented_by``:
    the ``presenter()`` of this request."""
    found = find_refresh_token(value)
    # Another client's token is refused without side effects, so one client cannot revoke
    # another's sessions by replaying their tokens.
    if found is None or found.application_id != application.pk:
        raise RefreshRefused()
    if sessions.cut_off(found):
        if found.revoked is None:
            revoke_family(found)
        raise RefreshRefused(sessions.SESSION_ENDED)
    policy, retry_of = clients.policy_of(application), None
    if found.revoked is not None:
        successor, honoured_at = grace_successor(found, policy.refresh_grace_seconds, received_at=received_at)
        if successor is None:
            replay = is_replay(found, received_at=received_at, last_used=honoured_at)
            if ropc_settings.REFRESH_TOKEN_REUSE_PROTECTION and found.token_family and not replay:
                replay = _raced_by_another(found, presented_by, last_used=honoured_at)
            if ropc_settings.REFRESH_TOKEN_REUSE_PROTECTION and replay:
                revoke_family(found)
            raise RefreshRefused()
        # The answer to the rotation was lost: rotate its (unused) successor instead, so the
        # client continues and the pair it never received dies.
        retry_of, found = found, successor
    if refresh_token_expired(found, clients.refresh_token_lifetime(application)):
        raise RefreshRefused(sessions.REFRESH_TOKEN_EXPIRED)
    if (
        found.access_token is None
        or not found.user.is_active
        # A client switched to no refresh tokens keeps none alive.
        or not policy.issue_refresh_tokens
        or realms.realm_for_refresh(policy, found.user) is None
    ):
        raise RefreshRefused()
    return found, retry_of
