"""What the app does when models change, whoever changes them (the admin, the shell, a host's
code): a new password or a deactivation ends sessions, a realm taken from a client ends that
client's sessions in it, and rows that only exist together are deleted together. Connected in
``apps.py``."""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import get_hasher, identify_hasher
from oauth2_provider.models import get_application_model

from . import audit, sessions
from .models import ClientPolicy, Realm, SecurityEvent, Session, SessionCutoff


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
    is_active = getattr(instance, "is_active", True)
    if new_password:
        audit.record(SecurityEvent.ACCOUNT_CHANGED, user=instance, reason="password_changed")
        sessions.revoke_sessions(instance, reason=SessionCutoff.PASSWORD_CHANGED)
    elif was_active and not is_active:
        audit.record(SecurityEvent.ACCOUNT_CHANGED, user=instance, reason="deactivated")
        sessions.revoke_sessions(instance, reason=SessionCutoff.ACCOUNT_DEACTIVATED)
    elif is_active and not was_active:
        audit.record(SecurityEvent.ACCOUNT_CHANGED, user=instance, reason="activated")


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
    """post_save of Realm: deactivating a realm ends its sessions at once. Every save is on record."""
    audit.record(
        SecurityEvent.REALM_CHANGED,
        realm=instance,
        reason="created" if created else "changed" if instance.is_active else "deactivated",
    )
    if not created and not instance.is_active:
        sessions.revoke_realm_tokens(instance)


def end_sessions_on_realm_delete(sender, instance, **kwargs):
    """pre_delete of Realm: its sessions go with it (cascade), each ended on record first, and the
    deletion itself is on record."""
    sessions.revoke_realm_tokens(instance)
    audit.record(SecurityEvent.REALM_CHANGED, realm=instance, reason="deleted")


def end_sessions_on_user_delete(sender, instance, **kwargs):
    """pre_delete of the user model: the user's sessions go with it (cascade), each ended on record
    and announced first."""
    sessions.end_user_sessions(instance, reason=Session.USER_DELETED)


def end_sessions_on_client_delete(sender, instance, **kwargs):
    """pre_delete of a client (DOT's Application): as for a realm."""
    sessions.revoke_client_tokens(instance)
    audit.record(SecurityEvent.CLIENT_CHANGED, client=instance, reason="deleted")


def record_client_change(sender, instance, created, update_fields=None, **kwargs):
    """post_save of ClientPolicy: a client registered or changed, whoever changed it. (Activation and
    deactivation are recorded by clients.set_active, which says which.)"""
    if update_fields is not None and set(update_fields) == {"is_active"}:
        return
    event = SecurityEvent.CLIENT_REGISTERED if created else SecurityEvent.CLIENT_CHANGED
    audit.record(event, client=instance.application)


def record_account_change(sender, instance, created, **kwargs):
    """post_save / post_delete of RealmAccount: a directory account created, renamed or deleted."""
    reason = "created" if created else "changed" if created is not None else "deleted"
    audit.record(
        SecurityEvent.ACCOUNT_CHANGED,
        user_id=instance.user_id,
        realm=instance.realm.slug,
        login_name=instance.login_key,
        reason=reason,
    )


def follow_client_realm_changes(sender, instance, action, reverse, pk_set, **kwargs):
    """m2m_changed of ClientPolicy.realms, from either side: a realm taken from a client ends that
    client's sessions in it, and stops being its default realm."""
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
            sessions.revoke_realm_tokens(realm, application=policy.application)
        if policy.default_realm_id in {realm.pk for realm in realms}:
            type(policy).objects.filter(pk=policy.pk).update(default_realm=None)
            policy.default_realm = None


def delete_account_user(sender, instance, origin=None, **kwargs):
    """post_delete of RealmAccount: its Django user goes too. Left behind, it would be one of the
    project's users, with the account's password."""
    record_account_change(sender, instance, created=None)
    if not isinstance(origin, get_user_model()):
        get_user_model()._default_manager.filter(pk=instance.user_id).delete()


def delete_policy_application(sender, instance, origin=None, **kwargs):
    """post_delete of ClientPolicy: the client goes too. Left behind, a policy-less password-grant
    Application would be served with the defaults, active again."""
    Application = get_application_model()
    if not isinstance(origin, Application):
        Application.objects.filter(pk=instance.application_id).delete()
