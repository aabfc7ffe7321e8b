"""The first-party sign-in (draft-ietf-oauth-first-party-apps): auth sessions that wait for a
second factor, and the single-use authorization codes the challenge endpoint mints.

An ``auth_session`` and a code are random values of 256 bits, stored only as their SHA-256, and
bound to the client, the realm and the account they were issued for. Neither outlives the sign-in
it continues: a password change, deactivation, or anything else that moves the user's session
cutoff after the password was checked ends them.
"""

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from oauth2_provider.models import get_access_token_model

from . import mfa, sessions, signals, signin, statements, tokens
from .conf import ropc_settings
from .exceptions import CodeRefused, InvalidInput, InvalidSession, ProtectionUnavailable, TooManyAttempts, WrongFactor
from .models import AuthorizationCode, AuthSession, Session, SessionCutoff

PASSWORD = "pwd"  # RFC 8176
# What a client may send to verify each kind of factor.
FACTORS = {mfa.VERIFY: [mfa.OTP, mfa.RECOVERY_CODE], mfa.ENROL: [mfa.OTP]}
# RFC 7636 §4.1: 43 to 128 characters of the unreserved set, for verifiers and S256 challenges.
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")

# Open auth sessions kept per account: opening another ends the oldest, so sign-ins with the password
# cannot pile rows up.
OPEN_SESSIONS_PER_ACCOUNT = 5
# Used and expired codes are kept this long, so a late second use still revokes what the first issued.
CODES_KEPT = timedelta(days=1)

SESSION_ENDED = "The auth_session is unknown, expired or already used; sign in again."
CODE_REFUSED = "The authorization code is unknown, expired or already used."


def _new_value():
    return secrets.token_urlsafe(32)  # 256 bits, as the draft asks of auth_session


def _digest(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _cut_off_since(user, moment):
    # A password change, deactivation or factor removal after the password check ends the sign-in.
    try:
        return user.session_cutoff.refresh_tokens_valid_from > moment
    except SessionCutoff.DoesNotExist:
        return False


def valid_code_challenge(value):
    return bool(_PKCE_VALUE.fullmatch(value or ""))


@dataclass(frozen=True)
class Challenge:
    """A sign-in waiting for its second factor: the ``auth_session`` to continue with, and what
    the client may send (``enrolment`` when the account must first enrol the secret it carries)."""

    auth_session: str = ""
    expires_in: int = 0
    factors: tuple = ()
    enrolment: mfa.Enrolment | None = None


# -- auth sessions -------------------------------------------------------------------------------


def open_session(sign_in, *, application, scope, auth_time, code_challenge="", request=None):
    """The password of ``sign_in`` was right and a second factor is due: store an auth session
    for it and settle its counted attempt as pending. Under a ``required`` policy an account
    without a factor gets a new pending authenticator to enrol."""
    due = signin.second_factor_due(sign_in)
    enrolment = mfa.offered_enrolment(sign_in.user) if due == mfa.ENROL else None
    value = _new_value()
    lifetime = ropc_settings.AUTH_SESSION_LIFETIME
    _forget_the_past(sign_in.user)
    AuthSession.objects.create(
        digest=_digest(value),
        application=application,
        realm=sign_in.realm,
        user=sign_in.user,
        login_name=sign_in.login_name,
        login_key=sign_in.lockout_key,
        account_key=sign_in.account_key,
        scope=scope,
        code_challenge=code_challenge or "",
        enrolment_secret=enrolment.secret if enrolment else "",
        # When the password was checked, not now: a password change committed while it was being
        # hashed moved the cutoff past this, and ends the session (find_session).
        auth_time=auth_time,
        expires=timezone.now() + timedelta(seconds=lifetime),
    )
    sign_in.attempt.second_factor_due()
    signals.challenge_issued.send(
        sender=open_session, user=sign_in.user, realm=sign_in.realm, enrol=enrolment is not None, request=request
    )
    # due is None only when the factor was removed this very moment: the session asks for one all the same.
    factors = tuple(FACTORS[due or mfa.VERIFY])
    return Challenge(auth_session=value, expires_in=lifetime, factors=factors, enrolment=enrolment)


# Every second step looks its auth session up: a statement written once (statements.py).
_AUTH_SESSION = statements.Lookup(
    AuthSession,
    lambda digest: AuthSession.objects.select_related("realm", "user__authenticator", "user__session_cutoff").filter(
        digest=digest
    )[:1],
)


def find_session(value, application, *, code_challenge=None):
    """The live auth session of this value and client; raises ``InvalidSession`` otherwise, the
    same for every reason, so a session of another client is not told apart from none. A
    ``code_challenge`` other than the one the session was opened with is ``InvalidInput``."""
    session = _AUTH_SESSION.first(_digest(value or ""))
    if (
        session is None
        or session.application_id != application.pk
        or session.used_at is not None
        or session.expires <= timezone.now()
        or not session.user.is_active
        or not session.realm.is_active
        or _cut_off_since(session.user, session.auth_time)
    ):
        raise InvalidSession(SESSION_ENDED)
    if code_challenge and session.code_challenge and code_challenge != session.code_challenge:
        raise InvalidInput("This auth_session is bound to another code_challenge.")
    return session


def client_id_of_session(value):
    """The client_id of the client an auth session belongs to; ``InvalidSession`` when there is no
    such session (find_session checks the rest)."""
    found = AuthSession.objects.filter(digest=_digest(value or "")).values_list("application__client_id", flat=True)
    client_id = next(iter(found[:1]), None)
    if client_id is None:
        raise InvalidSession(SESSION_ENDED)
    return client_id


def continued(session, value):
    """The challenge an auth session still stands for after a wrong code: the same value, what is
    left of its lifetime, and what the client may send."""
    remaining = max(1, int((session.expires - timezone.now()).total_seconds()))
    due = mfa.second_factor_due(session.user, session.realm) or mfa.VERIFY
    return Challenge(auth_session=value, expires_in=remaining, factors=tuple(FACTORS[due]))


@sensitive_variables()
def second_step(session, *, otp=None, recovery_code=None, ip, code_challenge="", request=None):
    """Check a code of the session's account as a password is checked (``mfa.check``) and, when
    right, end the session in an authorization code. Under a ``required`` policy, the first code
    of an account without a factor enrols the secret this session offered, and no other.

    The session is claimed first, by a conditional UPDATE: of two concurrent requests with one
    session, the loser is ``InvalidSession`` before any code is spent. A wrong code hands it back.
    Returns ``(authorization_code, recovery_codes)``, the codes only when just enrolled."""
    if not statements.update(AuthSession, session.pk, {"used_at": timezone.now()}, unset=["used_at"]):
        raise InvalidSession(SESSION_ENDED)
    try:
        method, recovery_codes = mfa.check(
            session.user,
            session.realm,
            lockout_key=session.login_key,
            account_key=session.account_key,
            otp=otp,
            recovery_code=recovery_code,
            ip=ip,
            request=request,
            offered=session.enrolment_secret or None,
        )
    except (WrongFactor, TooManyAttempts, ProtectionUnavailable):
        # Refused before or by the check: the session goes on. (Any other error after the check
        # may have spent the code: the session stays ended then, and the user signs in again.)
        statements.update(AuthSession, session.pk, {"used_at": None})
        raise
    code = _mint(
        application_id=session.application_id,
        user=session.user,
        realm=session.realm,
        login_name=session.login_name,
        scope=session.scope,
        code_challenge=code_challenge or session.code_challenge,
        auth_time=session.auth_time,
        methods=[PASSWORD, method],
    )
    return code, recovery_codes


# -- authorization codes ---------------------------------------------------------------------------


def code_for_sign_in(sign_in, *, application, scope, code_challenge="", auth_time):
    """The code for a sign-in that needs no second factor (the password alone). Its counted
    attempt is settled as the success it is, as the password grant settles its own."""
    _forget_the_past(sign_in.user, sessions=False)
    value = _mint(
        application_id=application.pk,
        user=sign_in.user,
        realm=sign_in.realm,
        login_name=sign_in.login_name,
        scope=scope,
        code_challenge=code_challenge,
        auth_time=auth_time,
        methods=[PASSWORD],
    )
    sign_in.attempt.succeeded()
    return value


def _forget_the_past(user, *, sessions=True):
    """Delete the account's codes past keeping and, with ``sessions``, its auth sessions but the
    newest open ones (one fewer than kept, for the one being opened)."""
    now = timezone.now()
    AuthorizationCode.objects.filter(user=user, expires__lt=now - CODES_KEPT).delete()
    if sessions:
        open_ones = AuthSession.objects.filter(user=user, used_at__isnull=True, expires__gt=now).order_by("-pk")
        # One statement (a LIMIT in a subquery: SQLite and PostgreSQL, the databases we support).
        keep = open_ones.values("pk")[: OPEN_SESSIONS_PER_ACCOUNT - 1]
        AuthSession.objects.filter(user=user).exclude(pk__in=keep).delete()


def _mint(*, application_id, user, realm, login_name, scope, code_challenge, auth_time, methods):
    value, now = _new_value(), timezone.now()
    code = AuthorizationCode(
        digest=_digest(value),
        application_id=application_id,
        user=user,
        realm=realm,
        login_name=login_name,
        scope=scope,
        code_challenge=code_challenge or "",
        auth_time=auth_time,
        methods=" ".join(methods),
        expires=now + timedelta(seconds=ropc_settings.AUTHORIZATION_CODE_LIFETIME),
    )
    # One on every sign-in through this door: written once unless something listens for its save.
    if statements.unheard(AuthorizationCode):
        statements.insert(code)
    else:
        code.save(force_insert=True)
    return value


def _pkce_matches(code, verifier):
    if not code.code_challenge:
        return verifier is None  # a verifier for a code minted without a challenge is a mix-up
    if verifier is None or not _PKCE_VALUE.fullmatch(verifier):
        return False
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return hmac.compare_digest(computed, code.code_challenge)


# Every code redeemed is looked up: a statement written once (statements.py).
_CODE = statements.Lookup(
    AuthorizationCode,
    lambda digest: AuthorizationCode.objects.select_related("realm", "user__session_cutoff").filter(digest=digest)[:1],
)


@sensitive_variables()
def redeem_code(value, application, *, code_verifier=None):
    """Claim a code for this client, once. A second use of a code is refused and revokes what its
    first use issued (RFC 6749 §4.1.2); a wrong PKCE verifier spends the code, so verifiers cannot
    be guessed one after the other. Raises ``CodeRefused``."""
    code = _CODE.first(_digest(value or ""))
    if code is None or code.application_id != application.pk:
        raise CodeRefused(CODE_REFUSED)
    claimed = statements.update(AuthorizationCode, code.pk, {"used_at": timezone.now()}, unset=["used_at"])
    if not claimed:
        _revoke_first_use(code)
        raise CodeRefused(CODE_REFUSED)
    if code.expires <= timezone.now() or _cut_off_since(code.user, code.auth_time):
        raise CodeRefused(CODE_REFUSED)
    if not _pkce_matches(code, code_verifier):
        raise CodeRefused("The code_verifier does not match the code_challenge.")
    return code


def _revoke_first_use(code):
    # A code presented twice may have leaked (RFC 6749 §4.1.2): its first use's session ends, as a
    # replayed refresh token's does.
    code.refresh_from_db(fields=["token_family", "access_token_checksum"])
    if code.token_family:
        sessions.end_family(code.token_family, Session.REUSE_DETECTED)
    elif code.access_token_checksum:
        get_access_token_model().objects.filter(token_checksum=code.access_token_checksum).delete()


def family_of(code):
    """The id of the session (token family) redeeming this code begins: it carries the sign-in's
    time and second factor (``tokens.new_family``)."""
    methods = code.methods.split()
    return tokens.new_family(code.auth_time, second_factor=methods[1] if len(methods) > 1 else None)


def complete(
    code, *, application, policy, scope, access_token, expires_in, refresh_token, family=None, ip=None, request=None
):
    """Issue the token pair of a redeemed code, as a sign-in (``signin.complete``) whose
    authentication happened at the code's ``auth_time``; remember what was issued, for a replay to
    revoke. Returns the access token, or None when the sign-in no longer stands. ``ip``: the
    redeeming client's address, the session's."""
    sign_in = signin.SignIn(
        user=code.user,
        realm=code.realm,
        login_name=code.login_name,
        policy=policy,
        ip=ip,
        user_agent=request.META.get("HTTP_USER_AGENT", "") if request is not None else "",
    )
    family = family or family_of(code)

    def remember(access):
        statements.update(
            AuthorizationCode, code.pk, {"token_family": family, "access_token_checksum": access.token_checksum}
        )

    return signin.complete(
        sign_in,
        application=application,
        scope=scope,
        access_token=access_token,
        expires_in=expires_in,
        refresh_token=refresh_token,
        started_at=code.auth_time,
        family=family,
        request=request,
        during=remember,
    )
