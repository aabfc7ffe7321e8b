"""Who the resource owner is: realms, their accounts, and checking a login name and password.

A realm's accounts come from its own directory (``RealmAccount`` rows, each its own Django user)
or from the project's users through Django's ``authenticate()``, so a project adopts the app
without moving anyone. Every question about the realm is settled before the password is touched.
"""

import functools
import unicodedata
from dataclasses import dataclass

from django.contrib.auth import authenticate as django_authenticate
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import protection, signals
from .conf import ropc_settings
from .exceptions import InvalidInput, RopcError
from .models import ClientPolicy, Realm, RealmAccount

PROJECT_REALM_SLUG = "project"


class RealmError(RopcError):
    """The realm of a sign-in cannot be used; decided before any password is checked."""


class RealmRequired(RealmError):
    pass


class RealmNotAvailable(RealmError):
    """Unknown, or not one this client may use: the same answer, so realm names do not leak."""


class RealmInactive(RealmError):
    pass


@dataclass(frozen=True)
class Identity:
    """Who a user is to clients: a login name in a realm."""

    realm: Realm
    login_name: str


@dataclass(frozen=True)
class SignIn:
    user: object
    realm: Realm
    login_name: str
    attempt: object = None
    # The client's policy; an unsaved one for a DOT client registered without us.
    policy: object = None

    @property
    def identity(self):
        return Identity(realm=self.realm, login_name=self.login_name)


def normalize_login(value):
    """The form login names are compared in: NFKC, case-folded, trimmed (so `Alice`, ` alice` and
    fullwidth `ａｌｉｃｅ` are one name, for lookups and, later, lockout counters alike)."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


# -- realms -------------------------------------------------------------------------------------


def project_realm():
    """The realm of the project's own users; created on first need."""
    realm = Realm.objects.filter(source=Realm.PROJECT).first()
    if realm is None:
        try:
            with transaction.atomic():
                realm = Realm.objects.create(slug=PROJECT_REALM_SLUG, name="Project users", source=Realm.PROJECT)
        except IntegrityError:  # created concurrently
            realm = Realm.objects.get(source=Realm.PROJECT)
    return realm


def check_new_realm(*, slug, source=Realm.DIRECTORY, allow_email_login=False):
    """Every rule a new realm must pass. Raises ``InvalidInput``."""
    try:
        validate_slug(slug or "")
    except ValidationError:
        raise InvalidInput(f"Invalid realm slug {slug!r}: use letters, digits, hyphens and underscores.") from None
    if len(slug) > 40:
        raise InvalidInput("A realm slug is at most 40 characters.")
    if source not in (Realm.DIRECTORY, Realm.PROJECT):
        raise InvalidInput(f"Unknown realm source {source!r}: use 'directory' or 'project'.")
    if Realm.objects.filter(slug=slug).exists():
        raise InvalidInput(f"A realm {slug!r} exists already.")
    if source == Realm.PROJECT and Realm.objects.filter(source=Realm.PROJECT).exists():
        existing = Realm.objects.get(source=Realm.PROJECT).slug
        raise InvalidInput(f"The project's users already form realm {existing!r}; there can be only one.")
    if allow_email_login and source == Realm.PROJECT:
        raise InvalidInput("Email sign-in is for directory realms; the project's backends decide for its users.")


def create_realm(*, slug, name=None, source=Realm.DIRECTORY, allow_email_login=False, is_active=True):
    check_new_realm(slug=slug, source=source, allow_email_login=allow_email_login)
    try:
        with transaction.atomic():
            return Realm.objects.create(
                slug=slug,
                name=(name or slug).strip()[:150],
                source=source,
                allow_email_login=allow_email_login,
                is_active=is_active,
            )
    except IntegrityError:
        raise InvalidInput(f"A realm {slug!r} exists already.") from None


def check_email_login(realm, enabled):
    """The rules for switching email sign-in on. Raises ``InvalidInput``."""
    if enabled and not realm.is_directory:
        raise InvalidInput("Email sign-in is for directory realms; the project's backends decide for its users.")
    if enabled and realm.pk and realm.accounts.filter(login_key__contains="@").exists():
        raise InvalidInput("Some login names in this realm contain '@' and would be ambiguous with email addresses.")


def set_email_login(realm, enabled):
    """Let a directory realm's accounts sign in with their email address (or stop it)."""
    check_email_login(realm, enabled)
    realm.allow_email_login = enabled
    realm.save(update_fields=["allow_email_login"])


def set_realm_active(realm, active):
    """Activate or deactivate a realm; deactivating ends every session in it at once (the
    post_save receiver in sessions.py)."""
    realm.is_active = active
    realm.save(update_fields=["is_active"])


def realm_users(realm):
    """The users a realm signs in: its accounts' users, or the project's (non-directory) users."""
    User = get_user_model()
    if realm.is_directory:
        return User._default_manager.filter(realm_account__realm=realm)
    return User._default_manager.filter(realm_account__isnull=True)


def realms_with_account_counts():
    return Realm.objects.annotate(account_count=Count("accounts")).order_by("slug")


def get_realm(slug):
    realm = Realm.objects.filter(slug=slug).first()
    if realm is None:
        raise InvalidInput(f"No realm {slug!r}.")
    return realm


def identity_of(user):
    try:
        account = user.realm_account
    except RealmAccount.DoesNotExist:
        return Identity(realm=project_realm(), login_name=user.get_username())
    return Identity(realm=account.realm, login_name=account.login_name)


# -- directory accounts -------------------------------------------------------------------------


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
        if user is not None and RealmAccount.objects.filter(user=user).exists():
            user = None
    if user is None:
        raise InvalidInput(f"Realm {realm.slug!r} has no account {login!r}.")
    return user


# -- lockout, for operators ----------------------------------------------------------------------


def _lockout_of(realm, login):
    """The names failures of ``login`` are counted under, and the key of its account, if any."""
    if not realm.is_directory:
        return [_project_lockout_key(login)], None
    login_key = normalize_login(login)
    account = _account_lookup(Q(realm=realm), login_key, Q() if realm.allow_email_login else None)
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
    """Lift the locks ``lock_state`` reports and forget the failures; returns whether it was locked."""
    names, account_key = _lockout_of_account(account) if account else _lockout_of(realm, login)
    was_locked = protection.lock_state(realm.slug, names, account_key=account_key)["locked_until"] is not None
    protection.unlock(realm.slug, names, account_key=account_key)
    return was_locked


# -- signing in ---------------------------------------------------------------------------------


def _allowed(policy, prefix=""):
    """Realms this client may use, as a filter on Realm (or, with a prefix, on a relation to it)."""
    if policy.pk is None:  # a DOT client registered without us: the project's users only
        return Q(**{f"{prefix}source": Realm.PROJECT})
    return Q(**{f"{prefix}client_policies": policy})


def default_realm(policy):
    if policy.pk is None:
        return project_realm()
    return policy.default_realm


def realm_for_refresh(policy, user):
    """The realm of ``user`` if this client may still use it and it is active, else None: a
    refresh must not outlive the client's right to the realm, or the realm itself."""
    try:
        realm = user.realm_account.realm
        allowed = Realm.objects.filter(_allowed(policy), pk=realm.pk).exists()
    except RealmAccount.DoesNotExist:
        if policy.pk is None:
            # A DOT client's session begun at DOT's endpoint, refreshed here before anyone signed
            # in here: the project realm is created on first need, as a sign-in would.
            realm, allowed = project_realm(), True
        else:
            realm = next(iter(Realm.objects.filter(_allowed(policy), source=Realm.PROJECT)[:1]), None)
            allowed = realm is not None
    return realm if allowed and realm.is_active else None


def _account_lookup(realm_filter, login_key, email_filter):
    """The account whose login name (or, where ``email_filter`` allows, email) this is."""
    by_name = Q(login_key=login_key)
    if email_filter is not None and "@" in login_key:
        by_name |= Q(email_key=login_key) & email_filter
    # At most one row matches (login names and emails cannot overlap in a realm); [:1] spares the
    # ORDER BY that first() would compile on every sign-in.
    return next(iter(RealmAccount.objects.select_related("user", "realm").filter(realm_filter, by_name)[:1]), None)


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
    realm_filter = Q(realm__slug=realm_slug) & _allowed(policy, "realm__")
    account = _account_lookup(realm_filter, login_key, Q(realm__allow_email_login=True))
    if account is not None:
        return account.realm, account, True
    realm = Realm.objects.filter(_allowed(policy), slug=realm_slug).first()
    if realm is None:
        raise RealmNotAvailable("Unknown realm, or one this client may not use.")
    return realm, None, True


@sensitive_variables()
def _burn_a_hash(password):
    # An unknown account costs what a wrong password costs (one hash with the default hasher),
    # so response time does not tell which names exist; ModelBackend does the same.
    get_user_model()().set_password(password)


@sensitive_variables()
def authenticate(policy, realm_slug, login, password, *, ip, request=None):
    """Return a ``SignIn`` for these credentials, or None; raise ``RealmError`` for a realm the
    client cannot use, ``protection.TooManyAttempts`` for a locked identity or throttled address
    (both before any password is checked). Unknown account, wrong password and inactive account
    all return None after the same password-hash work.

    A returned ``SignIn`` carries its counted attempt: the caller settles it once the sign-in
    stands (``record_sign_in``), so a refusal there counts as the failure it is.
    """
    login_key = normalize_login(login)
    realm, account, looked_up = _resolve(policy, realm_slug, login_key)
    if not realm.is_active:
        raise RealmInactive("Sign-in to this realm is disabled.")
    if realm.is_directory and not looked_up:
        account = _account_lookup(Q(realm=realm), login_key, Q() if realm.allow_email_login else None)
    attempt = protection.begin(
        realm_slug=realm.slug,
        login_key=login_key if realm.is_directory else _project_lockout_key(login),
        account_key=account.login_key if account else None,
        ip=ip,
    )

    user, login_name = None, login
    try:
        if realm.is_directory:
            if account is None or not account.user.is_active or not account.user.has_usable_password():
                # Hash all the same, so the time taken does not tell: check_password() returns at
                # once for an unusable password (Django's CVE-2024-39329), and for an inactive
                # account it would upgrade an old hash on a right password, a second hash.
                _burn_a_hash(password)
            elif account.user.check_password(password):
                user, login_name = account.user, account.login_name
        else:
            candidate = django_authenticate(request, username=login, password=password)
            # That the user is no directory account's is checked by record_sign_in, in the
            # statement that writes last_login, to spare the grant a query.
            if candidate is not None and candidate.is_active:
                user, login_name = candidate, candidate.get_username()
        if attempt.account_locked:
            # The account is locked through another of its names: refuse as a wrong password would.
            user = None
    except BaseException:
        attempt.failed()
        raise

    if user is None:
        attempt.failed()
        announce_failure(realm, login, request=request)
        return None
    return SignIn(user=user, realm=realm, login_name=login_name, attempt=attempt, policy=policy)


def _project_lockout_key(username):
    hook = ropc_settings.PROJECT_LOCKOUT_KEY
    return hook(username) if hook else username


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
    statement = _sign_in_statement(
        project_realm=not sign_in.realm.is_directory,
        write_last_login=ropc_settings.UPDATE_LAST_LOGIN,
        has_policy=has_policy,
    )
    connection = connections[router.db_for_write(type(user))]
    now = timezone.now()
    params = [type(user)._meta.pk.get_db_prep_value(user.pk, connection), user.password]
    if _user_columns()[1]:
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


def _user_columns():
    User = get_user_model()
    columns = {field.name: field.column for field in User._meta.concrete_fields}
    return columns, "is_active" in columns


@functools.cache
def _sign_in_statement(*, project_realm, write_last_login, has_policy):
    # Written out once per process: building this through the ORM (a filtered UPDATE with
    # subqueries) cost more CPU than the rest of a password grant's queries together.
    # Only quoted identifiers from model metadata go into the text; every value is a parameter.
    User = get_user_model()
    connection = connections[router.db_for_write(User)]
    quote = connection.ops.quote_name
    share = " FOR SHARE" if connection.features.has_select_for_update else ""

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    columns, uses_active = _user_columns()
    table, pk = quote(User._meta.db_table), quote(User._meta.pk.column)
    where = f"{table}.{pk} = %s AND {quote(columns['password'])} = %s"
    if uses_active:
        where += f" AND {quote(columns['is_active'])} = %s"
    realms = quote(Realm._meta.db_table)
    realm_id, realm_active = f"{realms}.{column(Realm, 'id')}", f"{realms}.{column(Realm, 'is_active')}"
    where += f" AND EXISTS (SELECT 1 FROM {realms} WHERE {realm_id} = %s AND {realm_active} = %s{share})"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
    if has_policy:
        policies, links = quote(ClientPolicy._meta.db_table), ClientPolicy.realms.through
        link_table, policy_id = quote(links._meta.db_table), f"{policies}.{column(ClientPolicy, 'id')}"
        where += (
            f" AND EXISTS (SELECT 1 FROM {policies} INNER JOIN {link_table}"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
            f" ON {link_table}.{column(links, 'clientpolicy')} = {policy_id}"
            f" WHERE {policy_id} = %s AND {policies}.{column(ClientPolicy, 'is_active')} = %s"
            f" AND {link_table}.{column(links, 'realm')} = %s{share})"
        )
    if project_realm:
        accounts = quote(RealmAccount._meta.db_table)
        account_user = quote(RealmAccount._meta.get_field("user").column)
        where += f" AND NOT EXISTS (SELECT 1 FROM {accounts} WHERE {accounts}.{account_user} = {table}.{pk})"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
    if write_last_login:
        return f"UPDATE {table} SET {quote(columns['last_login'])} = %s WHERE {where}"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters
    # Without the write, lock the row as the UPDATE would: a password change waits for this
    # sign-in's tokens, then ends them.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return f"SELECT 1 FROM {table} WHERE {where}{lock}"  # noqa: S608  # nosec B608: quoted model identifiers, values are parameters


def announce_failure(realm, login, *, request=None):
    signals.sign_in_failed.send(sender=authenticate, realm=realm, login=normalize_login(login), request=request)


def announce_sign_in(sign_in, login, *, request=None):
    signals.sign_in_succeeded.send(
        sender=authenticate, user=sign_in.user, realm=sign_in.realm, login=normalize_login(login), request=request
    )
