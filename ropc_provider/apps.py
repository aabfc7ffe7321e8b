from django.apps import AppConfig


class RopcProviderConfig(AppConfig):
    name = "ropc_provider"
    verbose_name = "Password-grant provider"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
