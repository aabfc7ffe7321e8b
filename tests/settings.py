import os
import tempfile

from example_project.keys import generate_rsa_key
from example_project.settings import *  # noqa: F403
from example_project.settings import DATABASES, OAUTH2_PROVIDER

# A cheap hasher keeps the suite fast; tests about hashing cost live in benchmarks/.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ROOT_URLCONF = "tests.urls"
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not shared-cache memory, so threads in concurrency tests really contend for the
    # database lock the way two server processes do.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"ropc-provider-test-{os.getpid()}.sqlite3")
    }

# A throwaway signing key per test run: OpenID Connect on, as in a real deployment.
OIDC_TEST_KEY = generate_rsa_key()
OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "OIDC_ENABLED": True, "OIDC_RSA_PRIVATE_KEY": OIDC_TEST_KEY}
