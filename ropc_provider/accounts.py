"""Accounts: who a user is to clients (a login name in a realm), the directory accounts of a
realm, and their locks as an operator sees them."""

import unicodedata
from dataclasses import dataclass

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.views.decorators.debug import sensitive_variables

from . import protection, statements
from .conf import ropc_settings
from .exceptions import InvalidInput
from .models import Authenticator, Realm, RealmAccount
from .realms import project_realm

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = [
    "Identity",
    "identity_of",
    "create_account",
    "set_account_active",
    "find_user",
    "lock_state",
    "unlock",
    "normalize_login",
]


@dataclass(frozen=True)
class Identity:
    """Who a user is to clients: a login name in a realm."""

    realm: Realm
    login_name: str


def normalize_login(value):
    """The form login names are compared in: NFKC, case-folded, trimmed (so `Alice`, ` alice` and
    fullwidth `ａｌｉｃｅ` are one name, for lookups and, later, lockout counters alike)."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def is_directory_account(user):
    """Whether this Django user is a directory account's (and so no project user)."""
    return RealmAccount.objects.filter(user_id=user.pk).exists()


def identity_of(user):
    try:
        account = user.realm_account
    except RealmAccount.DoesNotExist:
        return Identity(realm=project_realm(), login_name=user.get_username())
    return Identity(realm=account.realm, login_name=account.login_name)


def _internal_username(realm, login_key):
    # Readable in the admin and valid for Django's username validator; unique because
    # (realm, login_key) is.
    return f"{login_key}@{realm.slug}"


@dataclass(frozen=True)
class NewAccount:
    realm: Realm
    login_name: str
    login_key: str
    email: str | None
    email_key: str | None


@sensitive_variables()
def check_new_account(realm, login_name, password, *, email=None):
    """Every rule a new directory account must pass, password validators included; returns what
    create_account writes. Raises ``InvalidInput`` naming the first rule broken."""
    if not realm.is_directory:
        raise InvalidInput(f"Realm {realm.slug!r} takes its users from the project; create them there.")
    login_key = normalize_login(login_name or "")
    if not login_key:
        raise InvalidInput("A login name cannot be empty.")
    if len(login_key) > 100:
        raise InvalidInput("A login name is at most 100 characters.")
    try:
        UnicodeUsernameValidator()(login_key)
    except ValidationError:
        raise InvalidInput("A login name may contain letters, digits and @ . + - _ only.") from None
    if realm.allow_email_login and "@" in login_key:
        raise InvalidInput("In a realm with email sign-in, login names cannot contain '@'.")
    email_key = None
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput(f"Invalid email address {email!r}.") from None
        email_key = normalize_login(email)
    if RealmAccount.objects.filter(realm=realm, login_key=login_key).exists():
        raise InvalidInput(f"Realm {realm.slug!r} already has an account {login_name!r}.")
    if email_key and RealmAccount.objects.filter(realm=realm, email_key=email_key).exists():
        raise InvalidInput(f"Realm {realm.slug!r} already has an account with that email address.")
    try:
        password_validation.validate_password(password, _new_user(realm, login_key, email))
    except ValidationError as error:
        raise InvalidInput("Password rejected: " + " ".join(error.messages)) from None
    return NewAccount(realm, login_name.strip(), login_key, email or None, email_key)


def _new_user(realm, login_key, email):
    User = get_user_model()
    user = User(**{User.USERNAME_FIELD: _internal_username(realm, login_key)})
    if email:
        setattr(user, User.get_email_field_name(), email)
    return user


@sensitive_variables()
def create_account(realm, login_name, password, *, email=None):
    """Create a directory account with its own Django user. Password validators apply; on any
    error nothing is written."""
    new = check_new_account(realm, login_name, password, email=email)
    user = _new_user(realm, new.login_key, new.email)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            return RealmAccount.objects.create(
                realm=realm, user=user, login_name=new.login_name, login_key=new.login_key, email_key=new.email_key
            )
    except IntegrityError:  # created concurrently
        raise InvalidInput(f"Realm {realm.slug!r} already has an account {login_name!r}.") from None


def set_account_active(account, active):
    """Let an account sign in again, or stop it; deactivating ends its sessions at once (the
    user model's receiver in receivers.py)."""
    account.user.is_active = active
    account.user.save(update_fields=["is_active"])


def find_user(realm, login):
    """The user known in ``realm`` by ``login`` (a login name, as an operator types it)."""
    if realm.is_directory:
        account = (
            RealmAccount.objects.select_related("user").filter(realm=realm, login_key=normalize_login(login)).first()
        )
        user = account.user if account else None
    else:
        User = get_user_model()
        user = User._default_manager.filter(**{User.USERNAME_FIELD: login}).first()
        if user is not None and is_directory_account(user):
            user = None
    if user is None:
        raise InvalidInput(f"Realm {realm.slug!r} has no account {login!r}.")
    return user


# -- locks, for operators ----------------------------------------------------------------------


def _lockout_of(realm, login):
    """The names failures of ``login`` are counted under, and the key of its account, if any."""
    if not realm.is_directory:
        return [project_lockout_key(login)], None
    login_key = normalize_login(login)
    account = account_by_login(Q(realm=realm), login_key, Q() if realm.allow_email_login else None)
    if account is None:
        return [login_key], None
    return _lockout_of_account(account)


def _lockout_of_account(account):
    return [key for key in (account.login_key, account.email_key) if key], account.login_key


def lock_state(realm, login=None, *, account=None):
    """Failures and lock of an account (given, or found by its login name or email in ``realm``),
    over every name it is counted under; or of a name no account has."""
    names, account_key = _lockout_of_account(account) if account else _lockout_of(realm, login)
    return protection.lock_state(realm.slug, names, account_key=account_key)


def unlock(realm, login=None, *, account=None):
    """Lift the locks ``lock_state`` reports and forget the failures, wrong second-factor codes
    included; returns whether it was locked."""
    if account is None and realm.is_directory:
        # By login name or email, as the lockout counts it.
        account = account_by_login(Q(realm=realm), normalize_login(login), Q() if realm.allow_email_login else None)
    names, account_key = _lockout_of_account(account) if account else _lockout_of(realm, login)
    was_locked = protection.lock_state(realm.slug, names, account_key=account_key)["locked_until"] is not None
    protection.unlock(realm.slug, names, account_key=account_key)
    try:
        user = account.user if account else find_user(realm, login)
    except InvalidInput:
        return was_locked  # a name no account has
    cap = ropc_settings.SECOND_FACTOR_MAX_FAILURES
    factors = Authenticator.objects.filter(user=user, failed_attempts__gt=0)
    exhausted = factors.filter(failed_attempts__gte=cap).exists()
    factors.update(failed_attempts=0)
    return was_locked or exhausted


def account_by_login(realm_filter, login_key, email_filter):
    """The account whose login name (or, where ``email_filter`` allows, email) this is."""
    by_name = Q(login_key=login_key)
    if email_filter is not None and "@" in login_key:
        by_name |= Q(email_key=login_key) & email_filter
    # At most one row matches (login names and emails cannot overlap in a realm); [:1] spares the
    # ORDER BY that first() would compile on every sign-in.
    # The user's authenticator comes along: whether a second factor is due costs the sign-in no query.
    found = RealmAccount.objects.select_related("user__authenticator", "realm").filter(realm_filter, by_name)[:1]
    return next(iter(found), None)


def _account_lookup(by_email):
    def build(realm_slug, login_key, email_key=None):
        by_name = Q(login_key=login_key) | Q(email_key=email_key) if by_email else Q(login_key=login_key)
        return RealmAccount.objects.select_related("user__authenticator", "realm").filter(
            Q(realm__slug=realm_slug), by_name
        )[:1]

    return statements.Lookup(RealmAccount, build, arity=3 if by_email else 2)


# A sign-in to a client's default realm looks its account up: a statement written once (statements.py).
_ACCOUNT_IN = {False: _account_lookup(False), True: _account_lookup(True)}


def account_in(realm, login_key):
    """``account_by_login`` in one realm: the account whose login name (or email, where the realm
    allows signing in with one) this is, with its user, authenticator and realm."""
    by_email = realm.allow_email_login and "@" in login_key
    return _ACCOUNT_IN[by_email].first(realm.slug, login_key, *([login_key] if by_email else []))


def lockout_keys(user, identity):
    """What attack protection counts ``user``'s sign-ins under: ``(login_key, account_key)``."""
    if identity.realm.is_directory:
        account = user.realm_account
        return account.login_key, account.login_key
    return project_lockout_key(identity.login_name), ""


def project_lockout_key(username):
    hook = ropc_settings.PROJECT_LOCKOUT_KEY
    return hook(username) if hook else username
