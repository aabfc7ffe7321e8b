"""Storing tokens in DOT's token models: issuing a pair, rotating one, revoking a family.

Token values are stored the way DOT is configured to (plain or hashed at rest, see
``COMPLIANT_BCP_RFC9700_TOKEN_STORAGE``); they are always looked up by their SHA-256 checksum.
"""

import datetime
import hashlib
import logging
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import F, Min, Subquery
from django.db.models.signals import post_delete, pre_delete
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_refresh_token_model,
    set_token_value,
)

from . import statements
from .exceptions import RefreshTokenAlreadyUsed
from .models import GraceRetry, Realm

log = logging.getLogger("ropc_provider")
AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


def checksum(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def with_owner():
    return RefreshToken.objects.select_related(
        "access_token", "user", "user__realm_account__realm", "user__session_cutoff", "user__oidc_subject"
    )


# An API call looks its access token up, a refresh its refresh token: statements written once
# (statements.py), with everything the caller reads next joined in.
_ACCESS_TOKEN = statements.Lookup(
    AccessToken,
    lambda value: (
        AccessToken.objects.select_related("application", "user", "user__realm_account__realm")
        .annotate(
            project_realm=Subquery(Realm.objects.filter(source=Realm.PROJECT).order_by("slug").values("slug")[:1])
        )
        .filter(token_checksum=value)[:1]
    ),
)


def find_access_token(value):
    """The access token with this value, with its client, user, and the user's account and realm,
    in one statement; ``project_realm`` is the project realm's slug, read in it too, for a project
    user (who has no account). None if unknown."""
    return _ACCESS_TOKEN.first(checksum(value))


def _refresh_token_lookup(value):
    from .realms import refresh_allowed  # realms imports this module's neighbours

    return with_owner().annotate(realm_allowed=refresh_allowed()).filter(token_checksum=value, revoked__isnull=True)[:1]


_LIVE_REFRESH_TOKEN = statements.Lookup(RefreshToken, _refresh_token_lookup)


def find_refresh_token(value):
    """The refresh token row for a presented value, live one first, or None. A live one comes with
    ``realm_allowed`` (``realms.refresh_allowed``), read in the same statement."""
    live = _LIVE_REFRESH_TOKEN.first(checksum(value))
    # Rows share a checksum only when DOT re-issued a value without rotating; the live one wins.
    return live or with_owner().filter(token_checksum=checksum(value)).order_by("-revoked").first()


# The second factor a sign-in used, kept in its family id (see new_family); index 0: none.
SECOND_FACTORS = (None, "otp", "recovery_code")


def new_family(started_at, second_factor=None):
    """A token family's id: a UUIDv7 (RFC 9562) whose first 48 bits are the sign-in's Unix time in
    milliseconds. The sign-in time travels with every token of the family, so ``auth_time`` needs no
    row and no query, and survives ``cleartokens`` deleting the family's first tokens.

    A sign-in with a second factor gets the same layout as a UUIDv8 (RFC 9562 §5.8, the custom
    version), the top two of its 12 ``rand_a`` bits naming the factor, so refreshed ID tokens say
    ``amr`` as the sign-in did. v7 ids stay what they were: random there, and no second factor."""
    milliseconds = int(started_at.timestamp() * 1000) & (2**48 - 1)
    factor = SECOND_FACTORS.index(second_factor)
    version, rand_a = (0x8, (factor << 10) | secrets.randbits(10)) if factor else (0x7, secrets.randbits(12))
    value = (milliseconds << 80) | (version << 76) | (rand_a << 64) | (0b10 << 62) | secrets.randbits(62)
    return uuid.UUID(int=value)


def hold(refresh_token_pk, *, live=False):
    """Lock a refresh token's row until the transaction ends, on every database: a write that
    changes nothing, since SQLite's only lock is its write lock. Returns whether the row is there
    (and, with ``live``, not revoked), read after any writer holding it has committed."""
    held = RefreshToken.objects.filter(pk=refresh_token_pk)
    return bool((held.filter(revoked__isnull=True) if live else held).update(revoked=F("revoked")))


def family_begun_here(refresh_token):
    """Whether this token's family began at our endpoint, whose family ids carry their start
    (``new_family``); DOT's endpoint gives random ones (or, before DOT 3, none)."""
    family = refresh_token.token_family
    return family is not None and family.version in (7, 8)


def family_started(refresh_token):
    """When the sign-in that began this token family happened."""
    family = refresh_token.token_family
    if family is not None and family.version in (7, 8):
        started = datetime.datetime.fromtimestamp((family.int >> 80) / 1000, tz=datetime.UTC)
        # Compared with timezone.now() and stored times, which are naive without USE_TZ.
        return started if settings.USE_TZ else timezone.make_naive(started)
    # Families begun before ids carried their start: their first token that is left.
    if family is None:
        return refresh_token.created
    first = RefreshToken.objects.filter(token_family=family).aggregate(Min("created"))
    return first["created__min"] or refresh_token.created


def family_methods(refresh_token):
    """The authentication methods (OpenID Connect ``amr``) of the sign-in that began this family."""
    family = refresh_token.token_family
    factor = SECOND_FACTORS[(family.int >> 74) & 0b11] if family is not None and family.version == 8 else None
    return ["pwd", factor] if factor else ["pwd"]


def signed_in_at(access_token):
    """When the sign-in behind an access token happened: its token family's start, or, for a
    client that gets no refresh tokens, the token's own creation (each one is a sign-in)."""
    for refresh_token in (getattr(access_token, "refresh_token", None), access_token.source_refresh_token):
        if refresh_token is not None:
            return family_started(refresh_token)
    return access_token.created


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
    return _store(token)


def _new_refresh_token(*, user, application, access_token, value, family):
    token = RefreshToken(user=user, application=application, access_token=access_token, token_family=family)
    set_token_value(token, value)
    return _store(token)


def _store(token):
    # Two of these on every grant: written once (statements.insert) they spare the ORM's save
    # machinery, unless a receiver of the host's listens for the save or the model has its own.
    if statements.unheard(type(token)):
        return statements.insert(token, read_pk=True)
    statements.write_waiting()
    token.save(force_insert=True)
    return token


def issue(*, user, application, scope, access_token, expires_in, refresh_token=None, started_at=None, family=None):
    """Store a new token pair for a sign-in: a new family (``family``, or one begun at ``started_at``)."""
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
                family=family or new_family(started_at or now),
            )
    return access


def rotate(previous, *, application, scope, access_token, expires_in, refresh_token, retry_of=None):
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
                statements.refresh_claim(connection.alias),
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
            with statements.written_together(AccessToken):  # the new pair in one statement, where it can be
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
    return access


def _delete_access_token(pk):
    connection = connections[router.db_for_write(AccessToken)]
    statement = statements.access_token_delete(connection.alias)
    # A receiver of the host's (a cache of token lookups, say) must hear the old token go.
    if statement is None or pre_delete.has_listeners(AccessToken) or post_delete.has_listeners(AccessToken):
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
