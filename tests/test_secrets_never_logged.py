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


def _everything_in(request):
    """All a receiver can reach through the request it was given."""
    seen = []
    for name in dir(request):
        try:
            value = getattr(request, name)
        except Exception:  # noqa: BLE001 - a property that needs what the copy leaves out
            continue
        if callable(value) and name not in ("get_full_path", "build_absolute_uri", "read", "readlines"):
            continue
        if callable(value):
            try:
                value = value()
            except Exception:  # noqa: BLE001
                continue
        seen.append(repr(value))
    return "\n".join(seen)


def test_sign_in_signals_and_backends_get_no_credentials(api, user, confidential, db):
    from django.contrib.auth.signals import user_login_failed

    from ropc_provider import signals

    application, secret = confidential
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    for signal in (signals.sign_in_succeeded, signals.sign_in_failed, user_login_failed):
        signal.connect(receiver, dispatch_uid="inspect")
    try:
        grant = {"grant_type": "password", "username": "alice", "client_id": application.client_id}
        ok = api.token({**grant, "password": PASSWORD, "client_secret": secret}, HTTP_USER_AGENT="Tester/1")
        refused = api.token(
            {**grant, "password": "wrong-password-value", "client_secret": secret}, HTTP_USER_AGENT="Tester/1"
        )
    finally:
        for signal in (signals.sign_in_succeeded, signals.sign_in_failed, user_login_failed):
            signal.disconnect(dispatch_uid="inspect")
    assert ok.status_code == 200 and refused.status_code == 400
    requests = [kwargs["request"] for kwargs in received]
    assert len(requests) == 3  # ours twice, Django's own once
    for request in requests:
        everything = _everything_in(request) + repr(received)
        assert "Tester/1" in everything and "alice" in everything  # what receivers are for
        for value in (PASSWORD, "wrong-password-value", secret):
            assert value not in everything
