"""Seed the demo realm, its user and a public client (idempotent); print a curl line that gets a token."""

import shlex

from django.core.management.base import BaseCommand
from django.db import transaction

from ropc_provider import clients, directories
from ropc_provider.models import Realm, RealmAccount

DEMO_REALM = "demo"
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
        realm = Realm.objects.filter(slug=DEMO_REALM).first() or directories.create_realm(
            slug=DEMO_REALM, name="Demo realm"
        )
        account = RealmAccount.objects.filter(realm=realm, login_key=DEMO_USERNAME).first()
        if account is None:
            directories.create_account(realm, DEMO_USERNAME, DEMO_PASSWORD)
        elif not account.user.check_password(DEMO_PASSWORD):
            account.user.set_password(DEMO_PASSWORD)
            account.user.save()

        application = clients.registered_clients().filter(name=DEMO_CLIENT_NAME).first()
        if application is None:
            application = clients.register_client(
                name=DEMO_CLIENT_NAME, confidential=False, scopes=["read", "write"], realms=[DEMO_REALM]
            ).application

        url = base_url.rstrip("/") + "/o/token/"
        fields = {
            "grant_type": "password",
            "realm": DEMO_REALM,
            "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD,
            "client_id": application.client_id,
        }
        curl = ["curl", "-s", "-X", "POST", url] + [
            part for name, value in fields.items() for part in ("--data-urlencode", f"{name}={value}")
        ]
        self.stdout.write(f"Demo realm {DEMO_REALM!r} with user {DEMO_USERNAME!r} is ready.")
        self.stdout.write(f"Public client: {application.client_id}")
        self.stdout.write("Get a token:")
        self.stdout.write(shlex.join(curl))
