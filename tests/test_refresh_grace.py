"""The per-client refresh grace period: a client that lost the answer to a refresh may present
the just-rotated token again, once, within the window."""

from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider.models import RefreshToken

from ropc_provider import clients
from tests.helpers import assert_error


@pytest.fixture
def mobile(db):
    return clients.register_client(name="Mobile", confidential=False, refresh_grace_seconds=30).application


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed-at-rest", "plaintext"])
def test_a_lost_answer_can_be_retried_once(api, user, mobile, settings, hashed):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": hashed}
    start = timezone.now()
    with freeze_time(start) as clock:
        first = api.password_grant(mobile, "alice").data
        lost = api.refresh(mobile, first["refresh_token"]).data  # the client never saw this answer
        clock.tick(timedelta(seconds=10))
        retried = api.refresh(mobile, first["refresh_token"])
        assert retried.status_code == 200, retried.content
        new = retried.data
        assert new["refresh_token"] not in (lost["refresh_token"], first["refresh_token"])
        # The pair the client never received is dead; the new one works.
        assert_error(api.refresh(mobile, lost["refresh_token"]), 400, "invalid_grant")
        assert api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {lost['access_token']}").status_code == 401
        assert api.refresh(mobile, new["refresh_token"]).status_code == 200
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1


def test_only_one_generation_back(api, user, mobile):
    start = timezone.now()
    with freeze_time(start) as clock:
        first = api.password_grant(mobile, "alice").data
        second = api.refresh(mobile, first["refresh_token"]).data
        api.refresh(mobile, second["refresh_token"])  # second is used: first is two generations back
        clock.tick(timedelta(seconds=5))
        assert_error(api.refresh(mobile, first["refresh_token"]), 400, "invalid_grant")
    # ...and that was a replay: the family is revoked.
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


def test_not_after_the_window(api, user, mobile):
    start = timezone.now()
    with freeze_time(start) as clock:
        first = api.password_grant(mobile, "alice").data
        second = api.refresh(mobile, first["refresh_token"]).data
        clock.tick(timedelta(seconds=31))
        assert_error(api.refresh(mobile, first["refresh_token"]), 400, "invalid_grant")
        assert_error(api.refresh(mobile, second["refresh_token"]), 400, "invalid_grant")


def test_off_by_default(api, user, public_app):
    first = api.password_grant(public_app, "alice").data
    second = api.refresh(public_app, first["refresh_token"]).data
    assert_error(api.refresh(public_app, first["refresh_token"]), 400, "invalid_grant")
    assert api.refresh(public_app, second["refresh_token"]).status_code == 200


def test_a_revoked_token_gets_no_grace(api, user, mobile):
    first = api.password_grant(mobile, "alice").data
    api.post("/o/revoke_token/", {"token": first["refresh_token"], "client_id": mobile.client_id})
    assert_error(api.refresh(mobile, first["refresh_token"]), 400, "invalid_grant")


def test_honoured_once_only(api, user, mobile):
    start = timezone.now()
    with freeze_time(start) as clock:
        first = api.password_grant(mobile, "alice").data
        api.refresh(mobile, first["refresh_token"])  # answer lost
        clock.tick(timedelta(seconds=2))
        retried = api.refresh(mobile, first["refresh_token"])
        assert retried.status_code == 200
        clock.tick(timedelta(seconds=2))
        # A second retry is no lost answer but a replay: refused, and the family revoked.
        assert_error(api.refresh(mobile, first["refresh_token"]), 400, "invalid_grant")
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


def test_a_retry_sent_twice_is_refused_once_and_the_session_survives(api, user, mobile):
    start = timezone.now()
    with freeze_time(start) as clock:
        first = api.password_grant(mobile, "alice").data
        api.refresh(mobile, first["refresh_token"])  # answer lost
        clock.tick(timedelta(seconds=10))
        retried = api.refresh(mobile, first["refresh_token"])
        assert retried.status_code == 200
        clock.tick(timedelta(milliseconds=100))
        # The same retry fired again, as a double-fired refresh would be: refused, nothing revoked.
        assert_error(api.refresh(mobile, first["refresh_token"]), 400, "invalid_grant")
        assert api.refresh(mobile, retried.data["refresh_token"]).status_code == 200


def test_a_retry_at_the_end_of_the_window_may_be_double_fired_after_it(api, user, mobile):
    start = timezone.now()
    with freeze_time(start) as clock:
        first = api.password_grant(mobile, "alice").data
        api.refresh(mobile, first["refresh_token"])  # answer lost
        clock.tick(timedelta(seconds=29, milliseconds=900))
        retried = api.refresh(mobile, first["refresh_token"])
        assert retried.status_code == 200
        clock.tick(timedelta(milliseconds=300))  # past the 30 s window, within the tolerance
        assert_error(api.refresh(mobile, first["refresh_token"]), 400, "invalid_grant")
        assert api.refresh(mobile, retried.data["refresh_token"]).status_code == 200
