"""Seed the demo user and public client (idempotent) and print a curl line that gets a token."""

import shlex

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from ropc_provider import clients

DEMO_USERNAME = "demo"
# A demo password for a local demo database only; printed on purpose.
DEMO_PASSWORD = "demo-password-not-for-production"
DEMO_CLIENT_NAME = "Demo native app"


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    @transaction.atomic
    def handle(self, *args, base_url, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USERNAME)
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save()

        application = clients.registered_clients().filter(name=DEMO_CLIENT_NAME).first()
        if application is None:
            application = clients.register_client(
                name=DEMO_CLIENT_NAME, confidential=False, scopes=["read", "write"]
            ).application

        url = base_url.rstrip("/") + "/o/token/"
        fields = {
            "grant_type": "password",
            "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD,
            "client_id": application.client_id,
        }
        curl = ["curl", "-s", "-X", "POST", url] + [
            part for name, value in fields.items() for part in ("--data-urlencode", f"{name}={value}")
        ]
        self.stdout.write(f"Demo user {DEMO_USERNAME!r} and public client {application.client_id!r} are ready.")
        self.stdout.write("Get a token:")
        self.stdout.write(shlex.join(curl))
