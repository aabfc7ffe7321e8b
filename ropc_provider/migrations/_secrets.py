"""Data steps of migrations, importable by tests (the loader skips modules starting with '_')."""

import secrets

from django.contrib.auth.hashers import make_password
from oauth2_provider.settings import oauth2_settings

PREFIX = "ropc-hmac-sha256$"


def move_verifiers_to_policies(apps, schema_editor):
    """Our verifiers used to sit in DOT's client_secret, which DOT's endpoints compare as a plain
    secret: move each to its policy and leave DOT a hash of a value nobody knows."""
    ClientPolicy = apps.get_model("ropc_provider", "ClientPolicy")
    Application = apps.get_model(oauth2_settings.APPLICATION_MODEL)
    for policy in ClientPolicy.objects.filter(application__client_secret__startswith=PREFIX).select_related(
        "application"
    ):
        ClientPolicy.objects.filter(pk=policy.pk).update(client_secret_verifier=policy.application.client_secret)
        Application.objects.filter(pk=policy.application_id).update(
            client_secret=make_password(secrets.token_urlsafe(32))
        )
