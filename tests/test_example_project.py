"""The reference deployment reads what a deployer must tell it from the environment."""

import json
import subprocess
import sys

from tests.servers import example_environment

SHOW = (
    "import django; django.setup(); from django.conf import settings; import json; "
    "print(json.dumps({'ropc': settings.ROPC_PROVIDER, 'cache': settings.CACHES['default']}))"
)


def settings_with(**env):
    result = subprocess.run(
        [sys.executable, "-c", SHOW], env=example_environment(**env), capture_output=True, text=True, timeout=60
    )
    return result


def test_the_proxy_in_front_and_the_issuer_are_configured_from_the_environment():
    shown = json.loads(
        settings_with(
            ROPC_TRUSTED_PROXY_COUNT="1", ROPC_CLIENT_IP_HEADER="HTTP_X_REAL_IP", ROPC_ISSUER="https://id.example.com/o"
        ).stdout
    )["ropc"]
    assert shown["TRUSTED_PROXY_COUNT"] == 1 and shown["CLIENT_IP_HEADER"] == "HTTP_X_REAL_IP"
    assert shown["ISSUER"] == "https://id.example.com/o"
    default = json.loads(settings_with().stdout)["ropc"]
    assert default["TRUSTED_PROXY_COUNT"] == 0 and default["CLIENT_IP_HEADER"] is None


def test_a_bad_proxy_count_stops_the_start_with_a_clear_error():
    result = settings_with(ROPC_TRUSTED_PROXY_COUNT="two")
    assert result.returncode != 0
    assert "ROPC_TRUSTED_PROXY_COUNT must be a whole number of proxies, not 'two'" in result.stderr


def test_without_redis_every_process_shares_one_cache(tmp_path):
    cache = json.loads(settings_with(DJANGO_CACHE_DIR=str(tmp_path)).stdout)["cache"]
    assert cache["BACKEND"].endswith("FileBasedCache") and cache["LOCATION"] == str(tmp_path)
