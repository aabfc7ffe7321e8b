"""Signing in: the one service both doors call (the password grant, and the challenge endpoint of
first-party apps).

It settles the realm before any password is touched, checks the password at the same cost
whatever the outcome, records the sign-in in the same transaction as its tokens, settles the
attempt attack protection counted, and announces the result.
"""

from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.auth import authenticate as django_authenticate
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.signals import user_login_failed
from django.db import connections, router, transaction
from django.db.models import CharField, Field, Q
from django.utils import timezone
from django.views.debug import SafeExceptionReporterFilter
from django.views.decorators.debug import sensitive_variables
from oauth2_provider.models import get_access_token_model

from . import audit, mfa, protection, sessions, signals, statements, tokens
from .accounts import Identity, account_by_login, account_in, is_directory_account, normalize_login, project_lockout_key
from .conf import ropc_settings
from .exceptions import RealmInactive, RealmNotAvailable, RealmRequired, SecondFactorDue, TooManyAttempts
from .models import Realm, RealmAccount, SecurityEvent
from .realms import allowed_realms, default_realm, project_users

AccessToken = get_access_token_model()


@dataclass(frozen=True)
class SignIn:
    user: object
    realm: Realm
    login_name: str
    attempt: object = None
    # The client's policy; an unsaved one for a DOT client registered without us.
    policy: object = None
    # What attack protection counted this sign-in under: the name as typed, and its account's key.
    lockout_key: str = ""
    account_key: str = ""
    # Whether the account has a second factor is asked by record_sign_in's statement, not before
    # (see second_factor_due).
    factor_checked_on_record: bool = False
    # Where it came from, as attack protection counted it: the session keeps both.
    ip: str | None = None
    user_agent: str = ""

    @property
    def identity(self):
        return Identity(realm=self.realm, login_name=self.login_name)


def _resolve(policy, realm_slug, login_key):
    """The realm to sign in to and, when the lookup found it on the way, the directory account.
    Raises a ``RealmError`` without touching any password."""
    default = default_realm(policy)
    if not realm_slug:
        if default is None:
            raise RealmRequired("This client serves several realms: name one with the realm parameter.")
        return default, None, False
    if default is not None and realm_slug == default.slug:
        return default, None, False
    # The common case in one query: the account, its user and its realm, if that realm is one
    # this client may use. Only when nothing is found do we ask why.
    realm_filter = Q(realm__slug=realm_slug) & allowed_realms(policy, "realm__")
    account = account_by_login(realm_filter, login_key, Q(realm__allow_email_login=True))
    if account is not None:
        return account.realm, account, True
    realm = Realm.objects.filter(allowed_realms(policy), slug=realm_slug).first()
    if realm is None:
        raise RealmNotAvailable("Unknown realm, or one this client may not use.")
    return realm, None, True


@sensitive_variables()
def _burn_a_hash(password):
    # An unknown account costs what a wrong password costs (one hash with the default hasher),
    # so response time does not tell which names exist; ModelBackend does the same.
    get_user_model()().set_password(password)


STOCK_BACKEND = "django.contrib.auth.backends.ModelBackend"
# Ours refuses directory accounts, which the grant's own lookup of project users finds as no one
# anyway (_PROJECT_USER), so with ours the grant may find users its own way too.
STOCK_BACKENDS = (STOCK_BACKEND, "ropc_provider.backends.ModelBackend")


def _stock_user_lookup():
    """Whether the project finds users exactly as Django ships it: ModelBackend (or ours) its only backend,
    the user manager's own ``get_by_natural_key``, a text username field."""
    User = get_user_model()
    username = User._meta.get_field(User.USERNAME_FIELD)
    return (
        len(settings.AUTHENTICATION_BACKENDS) == 1
        and settings.AUTHENTICATION_BACKENDS[0] in STOCK_BACKENDS
        and type(User._default_manager).get_by_natural_key is BaseUserManager.get_by_natural_key
        and isinstance(username, CharField)
        # A field that changes the value on its way to the database (lower-cases it, say) would be
        # skipped: the statement written once takes the value as given.
        and type(username).get_prep_value is CharField.get_prep_value
        and type(username).get_db_prep_value is Field.get_db_prep_value
    )


# ModelBackend's lookup of a project user, written once (statements.py): compiled by the ORM on
# every request it was a fifth of a password grant's time. A directory account's user (a Django
# user too, named login@realm) is no project user: found as no one, in the same statement.
_PROJECT_USER = statements.Lookup(
    get_user_model(),
    lambda username: project_users().filter(**{get_user_model().USERNAME_FIELD: username})[:1],
)


@sensitive_variables()
def authenticate_project_user(request, username, password):
    """Django's ``authenticate(request, username=..., password=...)``. Where the project finds
    users as Django ships it (``_stock_user_lookup``), the same steps as its ModelBackend with the
    lookup written once: one hash for an unknown user, the active check, ``user.backend`` set,
    ``user_login_failed`` sent with the credentials cleansed. Any other setup: Django's own.

    Either way a directory account's user (a Django user too, named ``login@realm``) is no project
    user: found as no one, at a wrong password's cost, before a second factor could be asked of it."""
    if not _stock_user_lookup():
        User = get_user_model()
        if RealmAccount.objects.filter(**{f"user__{User.USERNAME_FIELD}": username}).exists():
            _burn_a_hash(password)  # before any backend checks (and perhaps re-hashes) its password
        else:
            user = django_authenticate(request, username=username, password=password)
            # A backend that finds users its own way (by e-mail, say) may still reach one.
            if user is None or not is_directory_account(user):
                return user
    else:
        user = _PROJECT_USER.first(username)
        if user is None:
            _burn_a_hash(password)  # as ModelBackend does
        elif user.check_password(password) and getattr(user, "is_active", True):
            user.backend = settings.AUTHENTICATION_BACKENDS[0]
            return user
    user_login_failed.send(
        sender=django_authenticate.__module__,
        # What Django sends: the password replaced by the error reports' stand-in.
        credentials={"username": username, "password": SafeExceptionReporterFilter.cleansed_substitute},
        request=request,
    )
    return None


@sensitive_variables()
def authenticate(policy, realm_slug, login, password, *, ip, request=None):
    """Return a ``SignIn`` for these credentials, or None; raise ``RealmError`` for a realm the
    client cannot use, ``TooManyAttempts`` for a locked identity or throttled address
    (both before any password is checked). Unknown account, wrong password and inactive account
    all return None after the same password-hash work.

    A returned ``SignIn`` carries its counted attempt: the caller settles it once the sign-in
    stands (``record_sign_in``), so a refusal there counts as the failure it is.
    """
    login_key = normalize_login(login)
    realm, account, looked_up = _resolve(policy, realm_slug, login_key)
    if not realm.is_active:
        # Refused before any hash: an address knocking on a closed realm is on record once a minute.
        if protection.worth_recording(FAILED_REALM_DISABLED, realm.slug, ip=ip):
            record_failure(realm, login, reason=FAILED_REALM_DISABLED, ip=ip)
        raise RealmInactive("Sign-in to this realm is disabled.")
    if realm.is_directory and not looked_up:
        account = account_in(realm, login_key)
    lockout_key = login_key if realm.is_directory else project_lockout_key(login)
    account_key = account.login_key if account else None
    try:
        attempt = protection.begin(realm_slug=realm.slug, login_key=lockout_key, account_key=account_key, ip=ip)
    except TooManyAttempts as refusal:
        # Refusals cost no hash, so an attacker can send many: one on record a minute is enough.
        if refusal.kind == FAILED_THROTTLED:
            worth_recording = protection.worth_recording(refusal.kind, ip=ip)
        else:
            worth_recording = protection.worth_recording(refusal.kind, realm.slug, lockout_key)
        if worth_recording:
            record_failure(realm, login, reason=refusal.kind, ip=ip)
        raise

    user, login_name, why = None, login, FAILED_CREDENTIALS
    try:
        if realm.is_directory:
            if account is None or not account.user.is_active or not account.user.has_usable_password():
                # One hash, as a wrong password costs: for an inactive account check_password()
                # would also upgrade an old hash on a right password, a second hash that tells.
                _burn_a_hash(password)
                if account is not None and not account.user.is_active:
                    why = FAILED_INACTIVE
            elif account.user.check_password(password):
                user, login_name = account.user, account.login_name
        else:
            candidate = authenticate_project_user(request, login, password)
            # No directory account's user (authenticate_project_user); record_sign_in's statement
            # asks again, for an account made meanwhile.
            if candidate is not None and candidate.is_active:
                user, login_name = candidate, candidate.get_username()
        if attempt.account_locked:
            # The account is locked through another of its names: refuse as a wrong password would.
            user, why = None, FAILED_LOCKED
    except BaseException:
        # A check that crashed counts: an error an attacker can provoke must not be a free guess.
        attempt.failed()
        raise

    if user is None:
        attempt.failed()
        announce_failure(realm, login, reason=why, ip=ip, request=request)
        return None
    return SignIn(
        user=user,
        realm=realm,
        login_name=login_name,
        attempt=attempt,
        policy=policy,
        lockout_key=lockout_key,
        account_key=account_key or "",
        ip=ip,
        user_agent=request.META.get("HTTP_USER_AGENT", "") if request is not None else "",
    )


def record_sign_in(sign_in):
    """Write what a successful sign-in changes on the user, in the token's transaction. Returns
    False when the sign-in must not stand:

    - the row no longer holds the password that was checked, or is no longer active: a password
      change or deactivation committed while the hash was being computed wins;
    - the client was deactivated, the realm deactivated, or the realm taken from the client
      meanwhile; where the database can, those rows stay share-locked until the tokens are
      committed, so a deactivation waits for this sign-in and then ends its tokens too;
    - through the project realm, a directory account's user (it is a Django user too) is not one
      of the project's users, whatever its password.
    """
    user, policy = sign_in.user, sign_in.policy
    has_policy = policy is not None and policy.pk is not None
    statement = statements.sign_in(
        project_realm=not sign_in.realm.is_directory,
        write_last_login=ropc_settings.UPDATE_LAST_LOGIN,
        has_policy=has_policy,
        without_factor=sign_in.factor_checked_on_record,
    )
    connection = connections[router.db_for_write(type(user))]
    now = timezone.now()
    params = [type(user)._meta.pk.get_db_prep_value(user.pk, connection), user.password]
    if statements.user_columns()[1]:
        params.append(True)
    params += [sign_in.realm.pk, True]
    if has_policy:
        params += [policy.pk, True, sign_in.realm.pk]
    if ropc_settings.UPDATE_LAST_LOGIN:
        params.insert(0, connection.ops.adapt_datetimefield_value(now))
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        done = cursor.rowcount if ropc_settings.UPDATE_LAST_LOGIN else cursor.fetchone() is not None
    if done and ropc_settings.UPDATE_LAST_LOGIN:
        user.last_login = now
    return bool(done)


# Why a sign-in failed, as the audit trail says it. An unknown account and a wrong password are one
# category: the trail must not become the oracle the endpoint refuses to be.
FAILED_CREDENTIALS = "invalid_credentials"
FAILED_INACTIVE = "inactive"
FAILED_REALM_DISABLED = "realm_disabled"
FAILED_LOCKED = "locked"
FAILED_THROTTLED = "throttled"
FAILED_TOO_MANY_AT_ONCE = "too_many_at_once"
# The sign-in's transaction failed (the database, a receiver of the host's): nothing was issued.
FAILED_ERROR = "error"


def record_failure(realm, login, *, reason, ip=None):
    audit.record(SecurityEvent.SIGN_IN_FAILED, realm=realm, login_name=normalize_login(login), reason=reason, ip=ip)


def announce_failure(realm, login, *, reason=FAILED_CREDENTIALS, ip=None, request=None):
    record_failure(realm, login, reason=reason, ip=ip)
    signals.sign_in_failed.send(sender=authenticate, realm=realm, login=normalize_login(login), request=request)


def announce_sign_in(sign_in, login, *, request=None):
    signals.sign_in_succeeded.send(
        sender=authenticate, user=sign_in.user, realm=sign_in.realm, login=normalize_login(login), request=request
    )


def second_factor_due(sign_in):
    """What the sign-in needs before tokens: ``mfa.VERIFY``, ``mfa.ENROL``, or None."""
    return mfa.second_factor_due(sign_in.user, sign_in.realm)


def with_factor_checked_on_record(sign_in):
    """The sign-in with "has the account a second factor" asked by ``record_sign_in``'s statement,
    when that spares the password grant a query; else None (ask ``second_factor_due``).

    A directory account's authenticator came with it (``account_by_login``); a project user comes
    from the project's backends without it. Under the ``enrolled`` policy such a sign-in goes on,
    and ``complete`` raises ``SecondFactorDue`` if the statement finds a factor."""
    if "authenticator" in sign_in.user._state.fields_cache or mfa.policy_of(sign_in.realm) != Realm.MFA_ENROLLED:
        return None
    return replace(sign_in, factor_checked_on_record=True)


def complete(
    sign_in,
    *,
    application,
    scope,
    access_token,
    expires_in,
    refresh_token,
    started_at=None,
    family=None,
    request=None,
    during=None,
):
    """Finish a sign-in: store its token pair and its session, or refuse it when it no longer stands
    (``record_sign_in``); settles its counted attempt, if any, either way. Returns the access token
    issued, or None. ``during(access)`` runs in the same transaction, after the tokens are written.
    ``family``: the session's id (``tokens.new_family``), when the caller needed it before."""
    started_at = started_at or timezone.now()
    family = family or tokens.new_family(started_at)
    access = None
    try:
        # One transaction, one commit: the sign-in, its token pair, its session and its event.
        with transaction.atomic(using=router.db_for_write(AccessToken), savepoint=False):
            if record_sign_in(sign_in):
                # The token pair, the session and its event: one statement where the database can.
                with statements.written_together(AccessToken):
                    access = tokens.issue(
                        user=sign_in.user,
                        application=application,
                        scope=scope,
                        access_token=access_token,
                        expires_in=expires_in,
                        refresh_token=refresh_token,
                        started_at=started_at,
                        family=family,
                    )
                    sessions.start(
                        session_id=family,
                        user=sign_in.user,
                        realm=sign_in.realm,
                        application=application,
                        login_name=sign_in.login_name,
                        started_at=started_at,
                        ip=sign_in.ip,
                        user_agent=sign_in.user_agent,
                        access_token=None if refresh_token else access,
                    )
                    audit.record(
                        SecurityEvent.SIGN_IN_SUCCEEDED,
                        user=sign_in.user,
                        realm=sign_in.realm,
                        client=application,
                        login_name=normalize_login(sign_in.login_name),
                        session_id=family,
                        ip=sign_in.ip,
                        user_agent=sign_in.user_agent,
                    )
                if during is not None:
                    during(access)
    except Exception:
        # Rolled back: recorded now, outside it, for this is the failure a security team needs. Not
        # the user's failure: no count towards a lock, no signal that someone guessed wrong.
        if sign_in.attempt is not None:
            sign_in.attempt.interrupted()
        record_failure(sign_in.realm, sign_in.login_name, reason=FAILED_ERROR, ip=sign_in.ip)
        raise
    if access is not None:
        if sign_in.attempt is not None:
            sign_in.attempt.succeeded()
        announce_sign_in(sign_in, sign_in.login_name, request=request)
    elif sign_in.factor_checked_on_record and mfa.has_active_factor(sign_in.user):
        raise SecondFactorDue()  # the attempt is the caller's to settle, through challenges.open_session
    else:
        if sign_in.attempt is not None:
            sign_in.attempt.failed()
        announce_failure(sign_in.realm, sign_in.login_name, ip=sign_in.ip, request=request)
    return access
