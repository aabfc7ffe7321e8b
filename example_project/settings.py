"""A runnable host project for ropc_provider: SQLite and local memory by default,
PostgreSQL when DATABASE_URL is set."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# The development key is for `make demo` only; production sets DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-ropc-provider-demo-key-change-me")
# Off unless asked for (`make demo` asks): a deployed example must not show debug pages.
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

# Django's ModelBackend for the project's own users; directory accounts sign in at the token
# endpoint only, with their realm's lockout and second factor.
AUTHENTICATION_BACKENDS = ["ropc_provider.backends.ModelBackend"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "rest_framework",
    "ropc_provider",
    "example_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
        # A persistent connection that died with its server is replaced at the next request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # With the database down, fail a request in seconds (JSON 503), not after the OS timeout.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 3
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the lock when their transaction starts and wait for each other, instead of
    # failing with "database is locked" when two token requests write at once; WAL lets readers
    # go on meanwhile and makes a commit an append instead of a journal rewrite.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# Attack-protection counters live here: Redis in production, so every app server shares them.
REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # With Redis down, give up in half a second and serve without it (fail-open).
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    # Without Redis, files every process reads: the server and `manage.py ropc_unlock` then see
    # the same counters (a per-process memory cache would hide a lock from the CLI). Their
    # increments are not atomic across processes, so counting under concurrency is inexact here:
    # production sets REDIS_URL (`check --deploy` says so).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ.get("DJANGO_CACHE_DIR") or str(BASE_DIR / "var" / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# OpenID Connect signing key: from the environment in production; `make demo` writes a local one.
OIDC_KEY_FILE = BASE_DIR / "var" / "oidc.key"
OIDC_RSA_PRIVATE_KEY = os.environ.get("OIDC_RSA_PRIVATE_KEY") or (
    OIDC_KEY_FILE.read_text() if OIDC_KEY_FILE.exists() else ""
)

OAUTH2_PROVIDER = {
    "SCOPES": {
        "read": "Read your data",
        "write": "Change your data",
        "openid": "Know who you are",
        "profile": "Your name",
        "email": "Your email address",
    },
    "DEFAULT_SCOPES": ["read"],
    # Tokens are stored as SHA-256 checksums only (RFC 9700).
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    # DOT's own endpoints refuse the password grant; ropc_provider's /o/token/ serves it on purpose.
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    # DOT's own refresh grant leaves ropc_provider's sessions alone (their limits are ours to keep).
    "OAUTH2_VALIDATOR_CLASS": "ropc_provider.dot.OAuth2Validator",
    # The rest of RFC 9700 for the project's other DOT endpoints.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "OIDC_ENABLED": bool(OIDC_RSA_PRIVATE_KEY),
    "OIDC_RSA_PRIVATE_KEY": OIDC_RSA_PRIVATE_KEY,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["ropc_provider.authentication.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}


def _proxy_count(value):
    try:
        count = int(value or 0)
    except ValueError:
        count = -1
    if count < 0:
        raise ImproperlyConfigured(f"ROPC_TRUSTED_PROXY_COUNT must be a whole number of proxies, not {value!r}.")
    return count


ROPC_PROVIDER = {
    # Plain HTTP only for loopback demos and tests; production sets DJANGO_HTTPS=1.
    "REQUIRE_HTTPS": os.environ.get("DJANGO_HTTPS") == "1",
    # Behind a proxy, say which address is the client's, or every user counts as the proxy's
    # address and one attacker can lock everybody out: how many proxies append X-Forwarded-For,
    # or the request.META key of a header your proxy sets (e.g. HTTP_X_REAL_IP).
    "TRUSTED_PROXY_COUNT": _proxy_count(os.environ.get("ROPC_TRUSTED_PROXY_COUNT")),
    "CLIENT_IP_HEADER": os.environ.get("ROPC_CLIENT_IP_HEADER") or None,
    # One issuer whatever the Host header: `make demo` sets it from its address.
    "ISSUER": os.environ.get("ROPC_ISSUER") or None,
}

# Behind TLS (production): DJANGO_HTTPS=1. Off for `make demo` and the loopback tests.
if os.environ.get("DJANGO_HTTPS") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Credentials sent over plain HTTP are refused by the endpoints (400), not redirected.
    SECURE_REDIRECT_EXEMPT = [r"^o/"]
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
