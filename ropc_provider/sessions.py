"""Sessions: one per sign-in, seen and ended one by one, or all at once through the user's
refresh-token cutoff.

A session is the sign-in and the refresh-token family descending from it; its id is the family's
id (``tokens.new_family``), so a token names its session without a lookup. ``revoke_sessions(user,
reason=...)`` is the one way to end every session of a user; password changes, "sign out
everywhere", operators and account deactivation all call it. Tokens are opaque rows, so unlike JWT
providers we end access tokens at once too, not when they expire.
"""

import functools
import logging
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q, Subquery
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model

from . import audit, signals, statements, tokens
from .accounts import identity_of
from .models import SecurityEvent, Session, SessionCutoff

log = logging.getLogger("ropc_provider")

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = ["end_session", "live_sessions", "revoke_sessions"]

# Stable texts a client can rely on to tell "sign in again" from plain expiry.
SESSION_ENDED = "The session was ended; sign in again."
REFRESH_TOKEN_EXPIRED = "The refresh token has expired."
SESSION_MAX_REACHED = "The session has reached its maximum lifetime; sign in again."
SESSION_IDLE = "The session was idle too long; sign in again."


# Why a cutoff ends the sessions it ends, in the sessions' own words.
_END_OF_CUTOFF = {SessionCutoff.SIGNED_OUT: Session.SIGNED_OUT, SessionCutoff.OPERATOR: Session.OPERATOR}


def revoke_sessions(user, *, reason, now=None):
    """Move the user's cutoff to now, revoke their refresh tokens and delete their access tokens
    issued before it, and mark their open sessions ended. Returns the ``SessionCutoff``."""
    User = get_user_model()
    identity = identity_of(user)
    with transaction.atomic():
        # Locking the user row orders this after any sign-in already writing it (last_login),
        # and makes sign-ins that start now wait for the new cutoff.
        # NO KEY: a rotation in flight holds its token's row and then writes rows referring to the
        # user (a key-share lock), which a full row lock would block: a deadlock.
        User._default_manager.select_for_update(no_key=True).filter(pk=user.pk).exists()
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
        _ended(
            Session.objects.filter(user=user, started_at__lt=cutoff.refresh_tokens_valid_from),
            _END_OF_CUTOFF.get(reason, Session.CUT_OFF),
        )
        audit.record(
            SecurityEvent.CUTOFF_MOVED,
            user=user,
            reason=reason,
            realm=identity.realm,
            login_name=identity.login_name,
        )
    user.session_cutoff = cutoff
    signals.sessions_revoked.send(sender=revoke_sessions, user=user, realm=identity.realm, reason=reason)
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
        _ended(Session.objects.filter(application=application), Session.CLIENT_DEACTIVATED)


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
        in_realm = Session.objects.filter(realm=realm)
        if application is not None:
            _ended(in_realm.filter(application=application), Session.CLIENT_DEACTIVATED)
        else:
            _ended(in_realm, Session.REALM_DEACTIVATED)


def cut_off(refresh_token):
    """Whether this refresh token was issued before its user's cutoff. A token issued at the
    cutoff's very instant or after it is valid."""
    try:
        valid_from = refresh_token.user.session_cutoff.refresh_tokens_valid_from
    except SessionCutoff.DoesNotExist:
        return False
    return refresh_token.created < valid_from


def past_its_limits(refresh_token, *, started_at, max_lifetime, idle_timeout, now, last_refresh=None):
    """Why a session may not be refreshed any more, or None: past its absolute lifetime counted
    from the sign-in (``started_at``), or idle longer than ``idle_timeout`` since its last refresh
    (the presented token's issue, or ``last_refresh``). At the limit itself it still may be."""
    if now > started_at + timedelta(seconds=max_lifetime):
        return SESSION_MAX_REACHED
    last_refresh = last_refresh or refresh_token.created
    if idle_timeout is not None and now > last_refresh + timedelta(seconds=idle_timeout):
        return SESSION_IDLE
    return None


def refresh_token_ends(refresh_token, *, lifetime, max_lifetime, idle_timeout):
    """When this refresh token stops working: its own lifetime, or its session's limits, whichever
    comes first. No token outlives its session."""
    started = tokens.family_started(refresh_token)
    ends = [refresh_token.created + timedelta(seconds=lifetime), started + timedelta(seconds=max_lifetime)]
    if idle_timeout is not None:
        ends.append(refresh_token.created + timedelta(seconds=idle_timeout))
    return min(ends)


def capped_to_session(lifetime, *, started_at, now, max_lifetime, idle_timeout=None, refresh_lifetime=None):
    """An access token's lifetime (seconds), cut to what its session could have left: its maximum
    lifetime from the sign-in, and its idle timeout and refresh token's lifetime from now (the
    refresh token issued beside it is the session's newest). So no token outlives its session.
    Whole seconds, at least one."""
    left = int((started_at + timedelta(seconds=max_lifetime) - now).total_seconds())
    return max(1, min(cap for cap in (lifetime, left, idle_timeout, refresh_lifetime) if cap is not None))


# -- one session at a time ------------------------------------------------------------------------


def start(*, session_id, user, realm, application, login_name, started_at, ip, user_agent, access_token=None):
    """Store a new session, in the sign-in's transaction. ``access_token``: the one token of a
    client that gets no refresh tokens, which then is what the session holds."""
    # Written on every sign-in: one statement written once (statements.py), not compiled each time.
    return statements.insert(
        Session(
            id=session_id,
            user=user,
            realm=realm,
            application=application,
            login_name=login_name,
            started_at=started_at,
            ip_address=audit.stored_address(ip),
            user_agent=(user_agent or "")[: Session._meta.get_field("user_agent").max_length],
            access_token_checksum=access_token.token_checksum if access_token is not None else "",
        )
    )


def adopt(refresh_token, *, application, ip, user_agent):
    """Make one of our sessions of a token family begun elsewhere (DOT's endpoint, before its
    client moved to ours), at its first refresh here: listed, ended one by one, kept out of DOT's
    refresh grant, its limits counted from its oldest token still stored (``family_started``). The
    family gets an id of ours, which says when it began, so later refreshes cost no more than any
    other; the token's instance follows."""
    RefreshToken = get_refresh_token_model()
    started_at = tokens.family_started(refresh_token)
    family = tokens.new_family(started_at)
    same_family = (
        Q(token_family=refresh_token.token_family)
        if refresh_token.token_family is not None
        else Q(pk=refresh_token.pk, token_family__isnull=True)
    )
    with transaction.atomic():
        # The token first, still live: a rotation of it at DOT's endpoint (or a sign-out) is then
        # committed before the family is read, so no token DOT adds to it stays behind, and a
        # token ended meanwhile starts nothing (its rotation here then fails).
        if not tokens.hold(refresh_token.pk, live=True):
            return
        # Of two first refreshes at once, one moves the family (the other's UPDATE then finds it
        # moved, on PostgreSQL after waiting for the first to commit) and starts the session.
        if RefreshToken.objects.filter(same_family).update(token_family=family):
            identity = identity_of(refresh_token.user)
            whose = {"user": refresh_token.user, "realm": identity.realm, "login_name": identity.login_name}
            start(
                session_id=family, application=application, started_at=started_at, ip=ip, user_agent=user_agent, **whose
            )
            audit.record(
                SecurityEvent.SESSION_ADOPTED,
                client=application,
                session_id=family,
                ip=ip,
                user_agent=user_agent,
                **whose,
            )
    refresh_token.token_family = RefreshToken.objects.values_list("token_family", flat=True).get(pk=refresh_token.pk)


def named(session_id):
    """``{"realm": slug, "login_name": name}`` of a session, for events about its tokens; empty for
    none (a token from before sessions were kept)."""
    found = Session.objects.filter(pk=session_id).values("realm__slug", "login_name").first() if session_id else None
    return {"realm": found["realm__slug"], "login_name": found["login_name"]} if found else {}


def _newest_token():
    """When a session's newest refresh token was issued: when it was last used."""
    return (
        get_refresh_token_model()
        .objects.filter(token_family=OuterRef("pk"))
        .order_by()
        .values("token_family")
        .annotate(newest=Max("created"))
        .values("newest")
    )


def _ended(found, reason, *, now=None):
    """Mark the open sessions in ``found`` ended, keeping when each was last used; each is recorded
    in the audit trail. Returns their ids."""
    now = now or timezone.now()
    with transaction.atomic():
        # Locked, so of two ends of one session (two operators, a sign-out racing a cutoff) one
        # ends it and is on record, and the other finds it ended.
        open_sessions = found.filter(ended_at__isnull=True).select_for_update(of=("self",))
        rows = list(open_sessions.values("pk", "user_id", "realm__slug", "login_name", "application__client_id"))
        if not rows:
            return []
        Session.objects.filter(pk__in=[row["pk"] for row in rows]).update(
            ended_at=now, end_reason=reason, last_used_at=Subquery(_newest_token())
        )
        audit.record_many(
            SecurityEvent.SESSION_ENDED,
            [
                {
                    "reason": reason,
                    "session_id": row["pk"],
                    "user_id": row["user_id"],
                    "realm": row["realm__slug"],
                    "login_name": row["login_name"],
                    "client_id": row["application__client_id"],
                }
                for row in rows
            ],
        )
        if signals.session_ended.has_listeners(Session):
            # Heard once the end is committed: a receiver must not act on an end that rolls back,
            # and one that fails must neither turn what was done into an error nor silence the rest.
            transaction.on_commit(functools.partial(_announce_ended, rows, reason), robust=True)
    return [row["pk"] for row in rows]


def _announce_ended(rows, reason):
    for row in rows:
        answers = signals.session_ended.send_robust(
            sender=Session,
            session_id=row["pk"],
            user_id=row["user_id"],
            realm=row["realm__slug"],
            login=row["login_name"],
            client_id=row["application__client_id"],
            reason=reason,
        )
        for receiver, answer in answers:
            if isinstance(answer, Exception):
                log.error("A session_ended receiver failed: %r raised %s", receiver, type(answer).__name__)


def has_ended(session_id):
    """Whether the session with this id was ended (its tokens then are refused as such)."""
    return session_id is not None and Session.objects.filter(pk=session_id, ended_at__isnull=False).exists()


def end_family(session_id, reason):
    """End one session by its id, with its tokens: reuse detected, a limit reached, a code
    replayed, the client revoking a token."""
    if session_id is not None:
        _end(session_id, reason)


def own_session(user, session_id):
    """The user's session with this id (as sent: any text), or None: unknown, malformed or another
    user's are all the same None."""
    try:
        session_id = uuid.UUID(str(session_id))
    except ValueError:
        return None
    return Session.objects.filter(pk=session_id, user=user).first()


def end_user_sessions(user, *, reason):
    """End, on record, every open session of a user about to be deleted (their rows and tokens go
    with the user)."""
    _ended(Session.objects.filter(user=user), reason)


def end_session(session, *, reason):
    """End one session: its refresh tokens revoked and access tokens deleted at once. Returns
    whether this call ended it (False: it had ended already)."""
    return _end(session.pk, reason, access_token_checksum=session.access_token_checksum)


def _end(session_id, reason, *, access_token_checksum=None):
    with transaction.atomic():
        AccessToken, RefreshToken = get_access_token_model(), get_refresh_token_model()
        # Wait for a rotation in flight (it holds its refresh token's row): its new pair is then
        # committed, and the statements below see and end it; one that starts later finds its token
        # revoked. (revoke_sessions does the same for all of a user's.)
        list(
            RefreshToken.objects.select_for_update().filter(token_family=session_id, revoked__isnull=True).values("pk")
        )
        family = Q(refresh_token__token_family=session_id) | Q(source_refresh_token__token_family=session_id)
        if access_token_checksum is None:  # the session's, when a client gets no refresh tokens
            access_token_checksum = (
                Session.objects.filter(pk=session_id).values_list("access_token_checksum", flat=True).first()
            )
        if access_token_checksum:
            family |= Q(token_checksum=access_token_checksum)
        AccessToken.objects.filter(family).delete()
        RefreshToken.objects.filter(token_family=session_id, revoked__isnull=True).update(
            revoked=timezone.now(), access_token=None
        )
        return bool(_ended(Session.objects.filter(pk=session_id), reason))


def _alive(now):
    """Conditions of a session whose tokens still work, but for its client's lifetimes."""
    live_refresh = get_refresh_token_model().objects.filter(token_family=OuterRef("pk"), revoked__isnull=True)
    live_access = get_access_token_model().objects.filter(
        token_checksum=OuterRef("access_token_checksum"), expires__gt=now
    )
    return Q(ended_at__isnull=True) & (Exists(live_refresh) | (~Q(access_token_checksum="") & Exists(live_access)))


def live_sessions(user, *, now=None):
    """The user's sessions that still work, newest first, each with ``last_used_at`` (its newest
    refresh, or its sign-in)."""
    from . import clients  # clients imports this module

    now = now or timezone.now()
    found = (
        Session.objects.filter(_alive(now), user=user)
        .select_related("application", "application__ropc_policy", "realm")
        .annotate(newest_token=Subquery(_newest_token()))
    )
    live = []
    for session in found:
        last_used = session.newest_token or session.started_at
        if session.newest_token is not None:
            lifetime = clients.refresh_token_lifetime(session.application)
            if last_used + timedelta(seconds=lifetime) <= now or past_its_limits(
                None,
                started_at=session.started_at,
                max_lifetime=clients.session_max_lifetime(session.application),
                idle_timeout=clients.session_idle_timeout(session.application),
                now=now,
                last_refresh=last_used,
            ):
                continue
        session.last_used_at = last_used
        live.append(session)
    return live


def describe(session):
    """What a user or an operator sees of a live session: never a token."""
    return {
        "id": str(session.pk),
        "client": session.application.name,
        "client_id": session.application.client_id,
        "realm": session.realm.slug,
        "started_at": session.started_at.isoformat(),
        "last_used_at": session.last_used_at.isoformat(),
        "ip_address": session.ip_address,
        "user_agent": session.user_agent,
    }


def live_session_count(application, *, now=None):
    """How many sessions of this client still work (its lifetimes and limits counted)."""
    from . import clients  # clients imports this module

    now = now or timezone.now()
    # A refresh token stops working at its lifetime or after the idle timeout, whichever is first.
    lifetime = clients.refresh_token_lifetime(application)
    idle_timeout = clients.session_idle_timeout(application)
    if idle_timeout is not None:
        lifetime = min(lifetime, idle_timeout)
    fresh = get_refresh_token_model().objects.filter(
        token_family=OuterRef("pk"), revoked__isnull=True, created__gt=now - timedelta(seconds=lifetime)
    )
    live_access = get_access_token_model().objects.filter(
        token_checksum=OuterRef("access_token_checksum"), expires__gt=now
    )
    started_after = now - timedelta(seconds=clients.session_max_lifetime(application))
    return Session.objects.filter(
        Exists(fresh) | (~Q(access_token_checksum="") & Exists(live_access)),
        application=application,
        ended_at__isnull=True,
        started_at__gte=started_after,
    ).count()


def session_of(access_token):
    """The id of the session an access token belongs to, or None (tokens from before sessions)."""
    for refresh_token in (_refresh_token_of(access_token), access_token.source_refresh_token):
        if refresh_token is not None and refresh_token.token_family is not None:
            return refresh_token.token_family
    return (
        Session.objects.filter(access_token_checksum=access_token.token_checksum).values_list("pk", flat=True).first()
    )


def _refresh_token_of(access_token):
    try:
        return access_token.refresh_token
    except get_refresh_token_model().DoesNotExist:
        return None


def session_of_live_token(value, application):
    """The session of this client's live refresh or access token with this value, or None:
    revoking either (RFC 7009) signs that session out, for a refresh token whose access token is
    gone is refused anyway."""
    if application is None:
        return None
    checksum = tokens.checksum(value)
    found = (
        get_refresh_token_model()
        .objects.filter(token_checksum=checksum, application=application, revoked__isnull=True)
        .values_list("token_family", flat=True)
        .first()
    )
    if found is None:
        access = (
            get_access_token_model()
            .objects.filter(token_checksum=checksum, application=application)
            .select_related("source_refresh_token")
            .first()
        )
        found = session_of(access) if access is not None else None
    return found


def purge(before):
    """Delete the sessions that ended or began before ``before`` and have no token left
    (``cleartokens`` removed them). Returns how many. A session whose revoked refresh token is
    still stored is kept, so the token presented again is refused as its session's, ended, not
    taken for a replay."""
    AccessToken, RefreshToken = get_access_token_model(), get_refresh_token_model()
    tokens_left = Exists(RefreshToken.objects.filter(token_family=OuterRef("pk"))) | (
        ~Q(access_token_checksum="")
        & Exists(AccessToken.objects.filter(token_checksum=OuterRef("access_token_checksum")))
    )
    deleted, _ = Session.objects.filter(
        Q(ended_at__lt=before) | Q(ended_at__isnull=True, started_at__lt=before), ~tokens_left
    ).delete()
    return deleted
