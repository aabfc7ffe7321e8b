from django.apps import AppConfig


class RopcProviderConfig(AppConfig):
    name = "ropc_provider"
    # Sorts first on the admin index, before DOT's own screens.
    verbose_name = "Access: password grant"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import m2m_changed, post_save

        from . import checks, sessions  # noqa: F401  (checks registers the system checks)
        from .models import ClientPolicy, Realm

        post_save.connect(sessions.end_sessions_on_account_change, sender=get_user_model(), dispatch_uid="ropc.user")
        post_save.connect(sessions.end_sessions_on_realm_change, sender=Realm, dispatch_uid="ropc.realm")
        m2m_changed.connect(
            sessions.end_sessions_on_client_realms_change,
            sender=ClientPolicy.realms.through,
            dispatch_uid="ropc.realms",
        )
