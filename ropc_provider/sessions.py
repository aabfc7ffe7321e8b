"""Ending a user's sessions: the refresh-token cutoff.

``revoke_sessions(user, reason=...)`` is the one way to end every session of a user; password
changes, "sign out everywhere", operators and account deactivation all call it. Tokens are
opaque rows, so unlike JWT providers we end access tokens at once too, not when they expire.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import get_hasher, identify_hasher
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from . import signals
from .accounts import identity_of
from .models import SessionCutoff

# Stable texts a client can rely on to tell "sign in again" from plain expiry.
SESSION_ENDED = "The session was ended; sign in again."
REFRESH_TOKEN_EXPIRED = "The refresh token has expired."


def revoke_sessions(user, *, reason, now=None):
    """Move the user's cutoff to now, revoke their refresh tokens and delete their access tokens
    issued before it. Returns the ``SessionCutoff``."""
    User = get_user_model()
    with transaction.atomic():
        # Locking the user row orders this after any sign-in already writing it (last_login),
        # and makes sign-ins that start now wait for the new cutoff.
        User._default_manager.select_for_update().filter(pk=user.pk).exists()
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
    user.session_cutoff = cutoff
    signals.sessions_revoked.send(sender=revoke_sessions, user=user, realm=identity_of(user).realm, reason=reason)
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


def live_token_count(**owner):
    """Access tokens not yet expired, e.g. ``live_token_count(application=app)``."""
    return get_access_token_model().objects.filter(expires__gt=timezone.now(), **owner).count()


def revoke_realm_tokens(realm, *, application=None):
    """End every session in ``realm`` issued by our password grant (of one client, if given):
    the realm was deactivated, or the client may no longer use it."""
    from oauth2_provider.models import get_application_model

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


def cut_off(refresh_token):
    """Whether this refresh token was issued before its user's cutoff. A token issued at the
    cutoff's very instant or after it is valid."""
    try:
        valid_from = refresh_token.user.session_cutoff.refresh_tokens_valid_from
    except SessionCutoff.DoesNotExist:
        return False
    return refresh_token.created < valid_from


def remember_account_state(sender, instance, **kwargs):
    """post_init of the user model: what a later save compares against."""
    instance._ropc_loaded_state = (instance.password, getattr(instance, "is_active", True))


def end_sessions_on_account_change(sender, instance, created, update_fields=None, **kwargs):
    """post_save of the user model: a new password, a disabled password or a deactivated account
    ends every session of the user.

    A password change is any change of the stored hash — ``set_password()``, the password forms,
    the admin, our CLI, or ``user.password = make_password(...)`` — except an upgrade of the hash
    on login (``_is_hash_upgrade``). Other changes are compared with the state the user was
    loaded in, so saving an unchanged user does nothing. ``QuerySet.update()`` bypasses signals.
    """
    loaded_password, was_active = getattr(instance, "_ropc_loaded_state", (instance.password, True))
    saved = update_fields is None or {"password", "is_active"} & set(update_fields)
    remember_account_state(sender, instance)
    if created or not saved:
        return
    # set_password() keeps the raw password in _password until the save that stores it.
    new_password = getattr(instance, "_password", None) is not None or (
        instance.password != loaded_password and not _is_hash_upgrade(loaded_password, instance, update_fields)
    )
    if new_password:
        revoke_sessions(instance, reason=SessionCutoff.PASSWORD_CHANGED)
    elif was_active and not getattr(instance, "is_active", True):
        revoke_sessions(instance, reason=SessionCutoff.ACCOUNT_DEACTIVATED)


def _is_hash_upgrade(old, user, update_fields):
    """Whether this save is Django re-hashing the same password on login: ``check_password()``
    then saves the password field alone (``_password`` cleared), replacing a hash the preferred
    hasher must update with one in its current form. A password changed the same way from an
    outdated hash would pass for an upgrade; every other way of setting one does not."""
    if update_fields is None or set(update_fields) != {"password"} or not old or not user.password:
        return False
    try:
        old_hasher, new_hasher = identify_hasher(old), identify_hasher(user.password)
    except ValueError:
        return False
    preferred = get_hasher("default")
    if new_hasher.algorithm != preferred.algorithm or preferred.must_update(user.password):
        return False
    return old_hasher.algorithm != preferred.algorithm or preferred.must_update(old)


def end_sessions_on_realm_change(sender, instance, created, **kwargs):
    """post_save of Realm: deactivating a realm ends its sessions at once."""
    if not created and not instance.is_active:
        revoke_realm_tokens(instance)


def follow_client_realm_changes(sender, instance, action, reverse, pk_set, **kwargs):
    """m2m_changed of ClientPolicy.realms, from either side: a realm taken from a client ends that
    client's sessions in it, and stops being its default realm."""
    from .models import ClientPolicy, Realm

    if action not in ("post_remove", "pre_clear"):
        return
    if reverse:  # realm.client_policies.remove(policy) / .clear()
        realms = [instance]
        policies = (
            ClientPolicy.objects.filter(pk__in=pk_set) if action == "post_remove" else instance.client_policies.all()
        )
    else:
        policies = [instance]
        realms = Realm.objects.filter(pk__in=pk_set) if action == "post_remove" else instance.realms.all()
    realms = list(realms)
    for policy in list(policies):
        for realm in realms:
            revoke_realm_tokens(realm, application=policy.application)
        if policy.default_realm_id in {realm.pk for realm in realms}:
            type(policy).objects.filter(pk=policy.pk).update(default_realm=None)
            policy.default_realm = None


def delete_account_user(sender, instance, origin=None, **kwargs):
    """post_delete of RealmAccount: its Django user goes too. Left behind, it would be one of the
    project's users, with the account's password."""
    if not isinstance(origin, get_user_model()):
        get_user_model()._default_manager.filter(pk=instance.user_id).delete()


def delete_policy_application(sender, instance, origin=None, **kwargs):
    """post_delete of ClientPolicy: the client goes too. Left behind, a policy-less password-grant
    Application would be served with the defaults, active again."""
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    if not isinstance(origin, Application):
        Application.objects.filter(pk=instance.application_id).delete()
