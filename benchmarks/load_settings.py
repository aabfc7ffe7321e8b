"""The load run's settings: example_project's production profile, with DOT's stock token endpoint
served beside ours (benchmarks/load_urls.py) and let through its password-grant gate, so both run
on the same servers, database and cache. ``LOAD_HASHER=cheap`` swaps Django's default password
hasher for a cheap one, so that the endpoints rather than PBKDF2 bound the run."""

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import OAUTH2_PROVIDER

ROOT_URLCONF = "benchmarks.load_urls"
# DOT as it ships: its own validator, which the check E009 would have us replace.
OAUTH2_PROVIDER = {
    **OAUTH2_PROVIDER,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False,
    "OAUTH2_VALIDATOR_CLASS": "oauth2_provider.oauth2_validators.OAuth2Validator",
}
# And Django's own backend, with which DOT's endpoint signs the same accounts in by their Django
# username (login@realm); example_project's keeps them out (check W008 says why).
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
SILENCED_SYSTEM_CHECKS = ["ropc_provider.E009", "ropc_provider.W008"]

if os.environ.get("LOAD_HASHER") == "cheap":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
