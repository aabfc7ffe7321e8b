from django.apps import AppConfig


class RopcProviderConfig(AppConfig):
    name = "ropc_provider"
    verbose_name = "Password-grant provider"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from . import checks  # noqa: F401  (registers the system checks)
        from .sessions import end_sessions_on_account_change

        post_save.connect(
            end_sessions_on_account_change, sender=get_user_model(), dispatch_uid="ropc_provider.end_sessions"
        )
