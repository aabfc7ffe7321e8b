"""Realms: the user directories people sign in to, and which of them a client may use.

A realm's accounts come from its own directory (``RealmAccount`` rows, each its own Django user)
or from the project's users through Django's ``authenticate()``, so a project adopts the app
without moving anyone.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Exists, OuterRef, Q, When

from .exceptions import InvalidInput
from .models import Realm, RealmAccount

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = ["create_realm", "get_realm", "set_realm_active", "set_email_login", "project_realm"]

PROJECT_REALM_SLUG = "project"


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


def check_new_realm(*, slug, source=Realm.DIRECTORY, allow_email_login=False, mfa=Realm.MFA_ENROLLED):
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
    if mfa not in (Realm.MFA_ENROLLED, Realm.MFA_REQUIRED):
        raise InvalidInput(f"Unknown two-step policy {mfa!r}: use 'enrolled' or 'required'.")
    if mfa != Realm.MFA_ENROLLED and source == Realm.PROJECT:
        raise InvalidInput("The project realm's two-step policy is ROPC_PROVIDER['PROJECT_REALM_MFA'].")


def create_realm(
    *, slug, name=None, source=Realm.DIRECTORY, allow_email_login=False, is_active=True, mfa=Realm.MFA_ENROLLED
):
    check_new_realm(slug=slug, source=source, allow_email_login=allow_email_login, mfa=mfa)
    try:
        with transaction.atomic():
            return Realm.objects.create(
                slug=slug,
                name=(name or slug).strip()[:150],
                source=source,
                allow_email_login=allow_email_login,
                is_active=is_active,
                mfa=mfa,
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
    post_save receiver in receivers.py)."""
    realm.is_active = active
    realm.save(update_fields=["is_active"])


def project_users():
    """The project's own users: every Django user but directory accounts' (a Django user too)."""
    return get_user_model()._default_manager.filter(realm_account__isnull=True)


def realm_users(realm):
    """The users a realm signs in: its accounts' users, or the project's (non-directory) users."""
    if realm.is_directory:
        return get_user_model()._default_manager.filter(realm_account__realm=realm)
    return project_users()


def realms_with_account_counts():
    return Realm.objects.annotate(account_count=Count("accounts")).order_by("slug")


def get_realm(slug):
    realm = Realm.objects.filter(slug=slug).first()
    if realm is None:
        raise InvalidInput(f"No realm {slug!r}.")
    return realm


def allowed_realms(policy, prefix=""):
    """Realms this client may use, as a filter on Realm (or, with a prefix, on a relation to it)."""
    if policy.pk is None:  # a DOT client registered without us: the project's users only
        return Q(**{f"{prefix}source": Realm.PROJECT})
    return Q(**{f"{prefix}client_policies": policy})


def default_realm(policy):
    if policy.pk is None:
        return project_realm()
    return policy.default_realm


def refresh_allowed():
    """Whether a refresh token's user is in a realm the token's client may still use, and it is
    active, as an expression on RefreshToken: folded into the token's lookup, it spares each
    refresh the query ``realm_for_refresh`` makes."""
    usable = Realm.objects.filter(client_policies__application=OuterRef("application"), is_active=True)
    return Case(
        When(user__realm_account__isnull=True, then=Exists(usable.filter(source=Realm.PROJECT))),
        default=Exists(usable.filter(pk=OuterRef("user__realm_account__realm"))),
    )


def may_refresh(policy, refresh_token):
    """Whether this client may still refresh this token's user: ``refresh_allowed`` as read with
    the token, else (a DOT client, whose project realm may not exist yet; a token looked up another
    way) ``realm_for_refresh``."""
    folded = getattr(refresh_token, "realm_allowed", None)
    if folded is not None and policy.pk is not None:
        return folded
    return realm_for_refresh(policy, refresh_token.user) is not None


def realm_for_refresh(policy, user):
    """The realm of ``user`` if this client may still use it and it is active, else None: a
    refresh must not outlive the client's right to the realm, or the realm itself."""
    try:
        realm = user.realm_account.realm
        allowed = Realm.objects.filter(allowed_realms(policy), pk=realm.pk).exists()
    except RealmAccount.DoesNotExist:
        if policy.pk is None:
            # A DOT client's session begun at DOT's endpoint, refreshed here before anyone signed
            # in here: the project realm is created on first need, as a sign-in would.
            realm, allowed = project_realm(), True
        else:
            realm = next(iter(Realm.objects.filter(allowed_realms(policy), source=Realm.PROJECT)[:1]), None)
            allowed = realm is not None
    return realm if allowed and realm.is_active else None
