"""Write a local OpenID Connect signing key to var/oidc.key unless one is there (for `make demo`)."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand

from example_project.keys import generate_rsa_key


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        path = settings.OIDC_KEY_FILE
        if path.exists() or os.environ.get("OIDC_RSA_PRIVATE_KEY"):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Private key: readable by its owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as key_file:
            key_file.write(generate_rsa_key())
        self.stdout.write(f"Wrote a local OpenID Connect signing key to {path}.")
