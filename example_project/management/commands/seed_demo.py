"""Seed the demo realm, its user and a public client (idempotent); print a curl line that gets a token."""

import shlex

from django.core.management.base import BaseCommand
from django.db import transaction

from ropc_provider import accounts, clients, realms
from ropc_provider.models import Realm, RealmAccount

DEMO_REALM = "demo"
DEMO_USERNAME = "demo"
# A demo password for a local demo database only; printed on purpose.
DEMO_PASSWORD = "demo-password-not-for-production"
DEMO_CLIENT_NAME = "Demo native app"
# OpenID Connect's too, so every section of the README can be tried on the demo.
DEMO_SCOPES = ["read", "write", "openid", "profile", "email"]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    @transaction.atomic
    def handle(self, *args, base_url, **options):
        realm = Realm.objects.filter(slug=DEMO_REALM).first() or realms.create_realm(slug=DEMO_REALM, name="Demo realm")
        account = RealmAccount.objects.filter(realm=realm, login_key=DEMO_USERNAME).first()
        if account is None:
            accounts.create_account(realm, DEMO_USERNAME, DEMO_PASSWORD)
        elif not account.user.check_password(DEMO_PASSWORD):
            account.user.set_password(DEMO_PASSWORD)
            account.user.save()

        application = clients.registered_clients().filter(name=DEMO_CLIENT_NAME).first()
        if application is None:
            application = clients.register_client(
                name=DEMO_CLIENT_NAME, confidential=False, scopes=DEMO_SCOPES, realms=[DEMO_REALM]
            ).application
        elif application.ropc_policy.scope_list != DEMO_SCOPES:  # seeded by an older demo
            application.ropc_policy.allowed_scopes = " ".join(DEMO_SCOPES)
            application.ropc_policy.save(update_fields=["allowed_scopes"])

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
        # No operator account is made for you: a known admin password is one leak away from a
        # takeover if the demo is ever reachable from elsewhere.
        self.stdout.write(f"Admin: {base_url.rstrip('/')}/admin/ (an operator account in one line: "
                          ".venv/bin/python manage.py createsuperuser --username operator)")  # fmt: skip
        self.stdout.write("Get a token (add --data-urlencode scope=openid for an ID token too):")
        self.stdout.write(shlex.join(curl))
