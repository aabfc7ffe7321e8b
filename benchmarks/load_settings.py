"""The load run's settings: example_project's production profile, with DOT's stock token endpoint
served beside ours (benchmarks/load_urls.py) and let through its password-grant gate, so both run
on the same servers, database and cache."""

from example_project.settings import *  # noqa: F403
from example_project.settings import OAUTH2_PROVIDER

ROOT_URLCONF = "benchmarks.load_urls"
OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
