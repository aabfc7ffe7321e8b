from django.apps import AppConfig


class RopcProviderConfig(AppConfig):
    name = "ropc_provider"
    # Sorts first on the admin index, before DOT's own screens.
    verbose_name = "Access: password grant"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, as Django requires: models and receivers need the app registry ready.
        from django.apps import apps
        from django.contrib.auth import get_user_model
        from django.db.models.signals import class_prepared, m2m_changed, post_delete, post_init, post_save, pre_delete
        from oauth2_provider.settings import oauth2_settings

        from . import checks, receivers  # noqa: F401  (checks registers the system checks)
        from .models import ClientPolicy, Realm, RealmAccount

        User = get_user_model()

        def hear_users_of(sender, **kwargs):
            # Django names a proxy (or a multi-table child) as the sender of its instances' signals:
            # a project's own user screens often edit one, and its password changes and deletions
            # must be heard too.
            if not issubclass(sender, User):
                return
            post_init.connect(receivers.remember_account_state, sender=sender, dispatch_uid="ropc.user_state")
            post_save.connect(receivers.end_sessions_on_account_change, sender=sender, dispatch_uid="ropc.user")
            pre_delete.connect(receivers.end_sessions_on_user_delete, sender=sender, dispatch_uid="ropc.user_deleted")

        for model in apps.get_models():
            hear_users_of(model)
        class_prepared.connect(hear_users_of, weak=False, dispatch_uid="ropc.user_proxies")  # proxies made later
        post_save.connect(receivers.end_sessions_on_realm_change, sender=Realm, dispatch_uid="ropc.realm")
        m2m_changed.connect(
            receivers.follow_client_realm_changes, sender=ClientPolicy.realms.through, dispatch_uid="ropc.realms"
        )
        post_delete.connect(receivers.delete_account_user, sender=RealmAccount, dispatch_uid="ropc.account")
        post_save.connect(receivers.record_account_change, sender=RealmAccount, dispatch_uid="ropc.account_saved")
        post_save.connect(receivers.record_client_change, sender=ClientPolicy, dispatch_uid="ropc.policy_saved")
        post_delete.connect(receivers.delete_policy_application, sender=ClientPolicy, dispatch_uid="ropc.policy")
        pre_delete.connect(receivers.end_sessions_on_realm_delete, sender=Realm, dispatch_uid="ropc.realm_deleted")
        pre_delete.connect(
            # By label, resolved once the model is there: without DOT installed, check says so (E001).
            receivers.end_sessions_on_client_delete,
            sender=oauth2_settings.APPLICATION_MODEL,
            dispatch_uid="ropc.client_deleted",
        )

        if apps.is_installed("django.contrib.admin"):
            from django.contrib import admin

            from .admin import record_operators

            record_operators(admin.site)
