"""The settings object: defaults, durations as seconds or timedelta, hooks by dotted path, and
every bad value reported by `manage.py check` at startup rather than at the first request."""

from datetime import timedelta

import pytest
from django.core import checks

from ropc_provider import conf
from ropc_provider.conf import ropc_settings


def _errors():
    return [(message.id, message.msg) for message in checks.run_checks(tags=[checks.Tags.compatibility])
            if message.id.startswith("ropc_provider.E00")]  # fmt: skip


def test_every_default_is_read_through_the_settings_object(settings):
    settings.ROPC_PROVIDER = {}
    for key, default in conf.DEFAULTS.items():
        value = getattr(ropc_settings, key)
        assert value == default or (key in conf.IMPORT_STRINGS and callable(value)), key
    assert _errors() == []


def test_durations_take_a_timedelta_as_simplejwt_users_write_them(api, user, public_app, settings):
    settings.ROPC_PROVIDER = {
        **settings.ROPC_PROVIDER,
        "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
        "IP_FAILURE_WINDOW": timedelta(seconds=90),
    }
    assert _errors() == []
    assert ropc_settings.IP_FAILURE_WINDOW == 90
    assert api.password_grant(public_app, "alice").data["expires_in"] == 300


def test_an_unimportable_hook_names_the_setting(settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "TOKEN_GENERATOR": "nowhere.generate"}
    with pytest.raises(ImportError, match=r"for ROPC_PROVIDER\['TOKEN_GENERATOR'\]"):
        ropc_settings.TOKEN_GENERATOR  # noqa: B018
    assert [error_id for error_id, message in _errors() if "TOKEN_GENERATOR" in message] == ["ropc_provider.E008"]


@pytest.mark.parametrize(
    ("configured", "named"),
    [
        ({"LOCKOUT_THRESHOLD": 0}, "LOCKOUT_THRESHOLD"),
        ({"LOCKOUT_THRESHOLD": True}, "LOCKOUT_THRESHOLD"),
        ({"IP_FAILURE_WINDOW": "300"}, "IP_FAILURE_WINDOW"),
        ({"ACCESS_TOKEN_LIFETIME": timedelta(0)}, "ACCESS_TOKEN_LIFETIME"),
        ({"SESSION_MAX_LIFETIME": 10**12}, "SESSION_MAX_LIFETIME"),
        ({"AUDIT_RETENTION_DAYS": 10**6}, "AUDIT_RETENTION_DAYS"),
        ({"REFRESH_TOKEN_REUSE_TOLERANCE": -1}, "REFRESH_TOKEN_REUSE_TOLERANCE"),
        ({"IPV6_PREFIX_LENGTH": 129}, "IPV6_PREFIX_LENGTH"),
        ({"PROTECTION_FAIL_CLOSED": "yes"}, "PROTECTION_FAIL_CLOSED"),
        ({"REQUIRE_HTTPS": 1}, "REQUIRE_HTTPS"),
        ({"ISSUER": ""}, "ISSUER"),
        ({"PROJECT_LOCKOUT_KEY": "ropc_provider.conf.DEFAULTS"}, "PROJECT_LOCKOUT_KEY"),
        ({"LOCKOUT_SECONDS": 600, "LOCKOUT_MAX_SECONDS": 60}, "LOCKOUT_MAX_SECONDS"),
        ({"LOKCOUT_THRESHOLD": 5}, "LOKCOUT_THRESHOLD"),
    ],
)
def test_check_reports_each_bad_value_by_name(settings, configured, named):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, **configured}
    errors = _errors()
    assert [error_id for error_id, _ in errors] == ["ropc_provider.E008"], errors
    assert named in errors[0][1]
