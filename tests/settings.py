import os
import tempfile

from example_project.keys import generate_rsa_key
from example_project.settings import *  # noqa: F403
from example_project.settings import DATABASES, OAUTH2_PROVIDER

# A cheap hasher keeps the suite fast; tests about hashing cost live in benchmarks/.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ROOT_URLCONF = "tests.urls"
# The test client and the live servers speak plain HTTP on loopback; test_https.py turns it on.
ROPC_PROVIDER = {"REQUIRE_HTTPS": False, "ISSUER": "http://testserver/o"}
# One process: the local-memory cache is shared by every thread, and its increments are atomic,
# which the concurrency tests rely on (the production tests use Redis).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

# ROPC_TEST_DATABASE=postgresql runs the whole suite on a real PostgreSQL server it starts.
POSTGRESQL_MISSING = False
if os.environ.get("ROPC_TEST_DATABASE") == "postgresql":
    import dj_database_url

    from tests.servers import start_test_postgresql

    _url = os.environ.get("ROPC_TEST_DATABASE_URL") or start_test_postgresql()
    if _url:
        DATABASES = {"default": dj_database_url.parse(_url, conn_health_checks=True)}
    else:
        POSTGRESQL_MISSING = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not shared-cache memory, so threads in concurrency tests really contend for the
    # database lock the way two server processes do.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"ropc-provider-test-{os.getpid()}.sqlite3")
    }

# A throwaway signing key per test run: OpenID Connect on, as in a real deployment.
OIDC_TEST_KEY = generate_rsa_key()
OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "OIDC_ENABLED": True, "OIDC_RSA_PRIVATE_KEY": OIDC_TEST_KEY}
