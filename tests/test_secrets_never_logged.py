"""No password, client secret or token value reaches a log record, even at DEBUG."""

import logging

import pytest

from tests.factories import PASSWORD


@pytest.fixture
def every_log_record(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("oauthlib", "oauth2_provider", "ropc_provider", "django"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    return caplog


def test_no_secret_in_logs(api, user, confidential, every_log_record):
    application, secret = confidential
    issued = api.password_grant(application, "alice", secret=secret, basic=True).data
    api.password_grant(application, "alice", password="wrong-password-value", secret=secret)
    api.password_grant(application, "alice", secret="wrong-secret-value")
    refreshed = api.refresh(application, issued["refresh_token"], secret=secret).data
    api.refresh(application, issued["refresh_token"], secret=secret)
    api.post("/o/revoke_token/", {"token": refreshed["access_token"]}, basic=(application.client_id, secret))

    logged = "\n".join(record.getMessage() for record in every_log_record.records)
    assert every_log_record.records, "nothing was logged: the test would prove nothing"
    for value in (
        PASSWORD,
        "wrong-password-value",
        "wrong-secret-value",
        secret,
        issued["access_token"],
        issued["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
    ):
        assert value not in logged
