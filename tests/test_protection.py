"""Lockout per identity, throttling per address, the counted address, cache failures."""

import io
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import OperationalError
from django.db.models.signals import post_save
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider.models import AccessToken

from ropc_provider import accounts, clients, protection, realms, signals
from ropc_provider.exceptions import InvalidInput
from tests.factories import PASSWORD, UserFactory
from tests.helpers import Api, assert_error

WRONG = "not the password"


@pytest.fixture
def employees_with_alice(db):
    realm = realms.create_realm(slug="employees")
    accounts.create_account(realm, "alice", PASSWORD)
    return realm


@pytest.fixture
def app(employees_with_alice):
    realms.create_realm(slug="customers")
    accounts.create_account(realms.get_realm("customers"), "alice", PASSWORD)
    return clients.register_client(
        name="App", confidential=False, realms=["employees", "customers"], default_realm="employees"
    ).application


def attempt(api, app, login="alice", password=WRONG, **extra):
    data = {"grant_type": "password", "username": login, "password": password, "client_id": app.client_id}
    realm = extra.pop("realm", None)
    if realm:
        data["realm"] = realm
    return api.token(data, **extra)


def fail(api, app, times, login="alice", **extra):
    for _ in range(times):
        assert_error(attempt(api, app, login, **extra), 400, "invalid_grant")


def assert_locked(response):
    assert_error(response, 429, "too_many_attempts")
    assert int(response["Retry-After"]) > 0


def test_lockout_after_the_threshold_refuses_even_the_right_password(api, app):
    fail(api, app, 10)
    locked = attempt(api, app, password=PASSWORD)
    assert_locked(locked)
    assert 55 <= int(locked["Retry-After"]) <= 60


def test_lock_lifts_after_its_period_and_grows_next_time(api, app):
    start = timezone.now()
    with freeze_time(start) as clock:
        fail(api, app, 10)
        assert_locked(attempt(api, app, password=PASSWORD))
        clock.tick(timedelta(seconds=61))
        fail(api, app, 10)  # failures after a lock lock again, for twice as long
        second = attempt(api, app, password=PASSWORD)
        assert_locked(second)
        assert 115 <= int(second["Retry-After"]) <= 120
        clock.tick(timedelta(seconds=121))
        assert attempt(api, app, password=PASSWORD).status_code == 200


def test_success_resets_the_count(api, app):
    fail(api, app, 9)
    assert attempt(api, app, password=PASSWORD).status_code == 200
    fail(api, app, 9)
    assert attempt(api, app, password=PASSWORD).status_code == 200


def test_unknown_login_names_lock_the_same_way(api, app):
    fail(api, app, 10, login="nobody")
    unknown = attempt(api, app, login="nobody")
    fail(api, app, 10)
    known = attempt(api, app)
    assert_locked(unknown)
    assert unknown.content == known.content


def test_variants_share_one_counter_other_realm_has_its_own(api, app):
    for variant in ["Alice", "ALICE", " alice", "ａｌｉｃｅ", "alice"] * 2:
        assert_error(attempt(api, app, variant), 400, "invalid_grant")
    assert_locked(attempt(api, app, "alice", password=PASSWORD))
    assert attempt(api, app, "alice", password=PASSWORD, realm="customers").status_code == 200


def test_locked_and_throttled_rejections_cost_no_hashing(api, app, counting_hasher, settings):
    fail(api, app, 10)
    counting_hasher.calls = 0
    assert_locked(attempt(api, app, password=PASSWORD))
    assert counting_hasher.calls == 0


def test_address_throttling_across_accounts(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 5}
    for n in range(5):
        assert_error(attempt(api, app, f"user{n}"), 400, "invalid_grant")
    assert_locked(attempt(api, app, "someone-else"))
    assert attempt(api, app, password=PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_successes_do_not_use_up_the_address_limit(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 3}
    for _ in range(10):
        assert attempt(api, app, password=PASSWORD).status_code == 200


def test_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 5}
    for n in range(5):
        attempt(api, app, f"user{n}", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert_locked(attempt(api, app, "other", HTTP_X_FORWARDED_FOR="203.0.113.99"))


def test_trusted_proxy_count_reads_the_proxy_seen_address(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 5, "TRUSTED_PROXY_COUNT": 1}
    for n in range(5):
        # The client prepends whatever it likes; the proxy appends what it saw.
        attempt(api, app, f"user{n}", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.10")
    assert_locked(attempt(api, app, "other", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.10"))
    assert attempt(api, app, password=PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.11").status_code == 200


def test_forwarded_user_ip_only_from_a_flagged_confidential_client(api, employees_with_alice, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 3}
    flagged = clients.register_client(name="BFF", confidential=True, realms=["employees"], may_forward_user_ip=True)
    plain = clients.register_client(name="Other backend", confidential=True, realms=["employees"])

    def attempt_as(registered, user_ip, login):
        data = {"grant_type": "password", "username": login, "password": WRONG}
        return api.token(
            data, basic=(registered.application.client_id, registered.client_secret), HTTP_X_END_USER_IP=user_ip
        )

    for n in range(3):
        attempt_as(flagged, "198.51.100.1", f"u{n}")
    assert attempt_as(flagged, "198.51.100.1", "u9").status_code == 429
    assert attempt_as(flagged, "198.51.100.2", "u9").status_code == 400  # another end user
    for n in range(3):
        attempt_as(plain, f"198.51.100.{n + 10}", f"v{n}")
    # The unflagged client's header was ignored: all its attempts counted against its own address.
    assert attempt_as(plain, "198.51.100.99", "v9").status_code == 429


def test_public_clients_cannot_forward_user_ips(db):

    with pytest.raises(InvalidInput, match="confidential"):
        clients.register_client(name="App", confidential=False, may_forward_user_ip=True)


def test_unlock_command(api, app):
    fail(api, app, 10)
    out = io.StringIO()
    call_command("ropc_unlock", "--realm", "employees", "--username", "ALICE", stdout=out)
    assert json.loads(out.getvalue()) == {"realm": "employees", "username": "alice", "was_locked": True}
    assert attempt(api, app, password=PASSWORD).status_code == 200


def test_locked_out_signal(api, app):
    received = []
    signals.locked_out.connect(lambda **kwargs: received.append(kwargs), weak=False, dispatch_uid="t")
    try:
        fail(api, app, 10)
    finally:
        signals.locked_out.disconnect(dispatch_uid="t")
    (event,) = received
    assert (event["realm_slug"], event["login"], event["seconds"]) == ("employees", "alice", 60)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_cache(settings):
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }


def test_cache_down_fails_open_by_default(api, app, unreachable_cache, settings, caplog):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "PROTECTION_CACHE": "down"}
    assert attempt(api, app, password=PASSWORD).status_code == 200
    assert_error(attempt(api, app), 400, "invalid_grant")
    assert "Attack protection unavailable, serving without it" in caplog.text


def test_cache_down_fails_closed_when_configured(api, app, unreachable_cache, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "PROTECTION_CACHE": "down", "PROTECTION_FAIL_CLOSED": True}
    response = attempt(api, app, password=PASSWORD)
    assert_error(response, 503, "temporarily_unavailable")


def test_counting_is_exact_under_concurrency(live_server, transactional_db, settings, counting_hasher):
    realm = realms.create_realm(slug="employees")
    accounts.create_account(realm, "alice", PASSWORD)
    app = clients.register_client(name="App", confidential=False, realms=["employees"]).application
    counting_hasher.calls = 0
    data = {"grant_type": "password", "username": "alice", "password": WRONG, "client_id": app.client_id}

    def one(_):
        return requests.post(f"{live_server.url}/o/token/", data=data, timeout=30)

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = sorted(response.status_code for response in pool.map(one, range(50)))
    # Exactly the threshold reach a password hash; every other attempt is refused before it.
    assert statuses.count(400) == 10
    assert statuses.count(429) == 40
    assert counting_hasher.calls == 10


def test_guessing_client_secrets_is_throttled_per_address(api, employees_with_alice, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 5}
    registered = clients.register_client(name="Backend", confidential=True, realms=["employees"])
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    for n in range(5):
        assert_error(api.token(data, basic=(registered.application.client_id, f"guess{n}")), 401, "invalid_client")
    throttled = api.token(data, basic=(registered.application.client_id, registered.client_secret))
    assert_locked(throttled)
    elsewhere = api.token(
        data, basic=(registered.application.client_id, registered.client_secret), REMOTE_ADDR="198.51.100.9"
    )
    assert elsewhere.status_code == 200


def test_right_client_secrets_do_not_use_up_the_limit(api, employees_with_alice, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 3}
    registered = clients.register_client(name="Backend", confidential=True, realms=["employees"])
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    for _ in range(8):
        response = api.token(data, basic=(registered.application.client_id, registered.client_secret))
        assert response.status_code == 200


def test_a_right_password_through_the_wrong_door_counts_as_a_failure(api, employees_with_alice, db):
    """A directory account's Django user signing in through the project realm is refused; its
    right password must not reset the failures either (that would tell the attacker)."""
    internal = realms.get_realm("employees").accounts.get().user.get_username()
    legacy = clients.register_client(name="Legacy", confidential=False).application
    for _ in range(9):
        assert_error(attempt(api, legacy, internal), 400, "invalid_grant")
    assert_error(attempt(api, legacy, internal, password=PASSWORD), 400, "invalid_grant")
    assert_locked(attempt(api, legacy, internal))


@pytest.fixture
def shop(db):
    realm = realms.create_realm(slug="shop", allow_email_login=True)
    accounts.create_account(realm, "bob", PASSWORD, email="bob@example.com")
    return clients.register_client(name="Shop", confidential=False, realms=["shop"]).application


def test_an_accounts_names_share_one_lock_that_answers_like_a_wrong_password(api, shop):
    for login in ["bob", "bob@example.com"] * 5:
        assert_error(attempt(api, shop, login), 400, "invalid_grant")
    # Neither name reached its own threshold; the account did: even its right password is refused,
    # the way a wrong one is, so the refusal does not tell that the two names are one account.
    for login in ("bob", "bob@example.com"):
        refused = attempt(api, shop, login, password=PASSWORD)
        assert_error(refused, 400, "invalid_grant")


def test_an_email_is_answered_the_same_whether_or_not_a_locked_account_has_it(api, shop):
    fail(api, shop, 10, login="bob")
    assert_locked(attempt(api, shop, "bob", password=PASSWORD))
    accounts_email = attempt(api, shop, "bob@example.com")
    unknown_email = attempt(api, shop, "nobody@example.com")
    assert accounts_email.status_code == unknown_email.status_code == 400
    assert accounts_email.content == unknown_email.content
    assert_error(attempt(api, shop, "bob@example.com", password=PASSWORD), 400, "invalid_grant")


def test_unlock_command_lifts_an_accounts_locks_by_its_email(api, shop):
    fail(api, shop, 10, login="bob@example.com")
    assert_locked(attempt(api, shop, "bob@example.com", password=PASSWORD))
    out = io.StringIO()
    call_command("ropc_unlock", "--realm", "shop", "--username", "Bob@Example.com", stdout=out)
    assert json.loads(out.getvalue())["was_locked"] is True
    assert attempt(api, shop, "bob@example.com", password=PASSWORD).status_code == 200
    assert attempt(api, shop, "bob", password=PASSWORD).status_code == 200


def test_project_realm_counts_each_username_apart(api, db, settings):

    UserFactory(username="bob")
    UserFactory(username="ＢＯＢ")  # fullwidth: another user, as far as ModelBackend goes
    legacy = clients.register_client(name="Legacy", confidential=False).application
    fail(api, legacy, 10, login="ＢＯＢ")
    assert_locked(attempt(api, legacy, "ＢＯＢ", password=PASSWORD))
    assert attempt(api, legacy, "bob", password=PASSWORD).status_code == 200


def test_project_lockout_key_for_case_insensitive_backends(api, db, settings):

    settings.ROPC_PROVIDER = {
        **settings.ROPC_PROVIDER,
        "PROJECT_LOCKOUT_KEY": "ropc_provider.accounts.normalize_login",
    }
    UserFactory(username="bob")
    legacy = clients.register_client(name="Legacy", confidential=False).application
    for login in ["Bob", "BOB"] * 5:
        attempt(api, legacy, login)
    assert_locked(attempt(api, legacy, "bob", password=PASSWORD))


def test_one_ipv6_prefix_is_one_address(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 3}
    # Three /64s of one /56, the default prefix: one subscriber.
    for n in range(3):
        attempt(api, app, f"user{n}", REMOTE_ADDR=f"2001:db8:1:{n}::1")
    assert_locked(attempt(api, app, "other", REMOTE_ADDR="2001:db8:1:ff:ffff::9"))
    assert attempt(api, app, password=PASSWORD, REMOTE_ADDR="2001:db8:1:100::1").status_code == 200


def test_the_ipv6_prefix_is_a_setting(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 3, "IPV6_PREFIX_LENGTH": 64}
    for n in range(3):
        attempt(api, app, f"user{n}", REMOTE_ADDR=f"2001:db8:1:2::{n + 1}")
    assert_locked(attempt(api, app, "other", REMOTE_ADDR="2001:db8:1:2:ffff::9"))
    assert attempt(api, app, password=PASSWORD, REMOTE_ADDR="2001:db8:1:3::1").status_code == 200


def test_the_address_window_slides_across_its_boundary(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 5, "IP_FAILURE_WINDOW": 300}
    window_start = (int(timezone.now().timestamp()) // 300 + 1) * 300
    with freeze_time(datetime.fromtimestamp(window_start + 290, tz=UTC)) as clock:
        for n in range(5):
            assert_error(attempt(api, app, f"user{n}"), 400, "invalid_grant")
        clock.tick(timedelta(seconds=20))  # a new fixed window, but the same five minutes
        throttled = attempt(api, app, "someone-else")
        assert_locked(throttled)
        # The failures leave the window some 300 s after they were made, not at a boundary.
        assert 270 <= int(throttled["Retry-After"]) <= 300
        clock.tick(timedelta(seconds=int(throttled["Retry-After"])))
        assert_error(attempt(api, app, "someone-else"), 400, "invalid_grant")


def test_concurrent_guesses_never_let_more_than_the_address_limit_reach_a_hash(
    live_server, transactional_db, settings, counting_hasher
):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 20}
    app = clients.register_client(name="App", confidential=False).application
    counting_hasher.calls = 0

    def one(n):
        data = {"grant_type": "password", "username": f"guess{n}", "password": WRONG, "client_id": app.client_id}
        return requests.post(f"{live_server.url}/o/token/", data=data, timeout=30)

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = sorted(response.status_code for response in pool.map(one, range(60)))
    assert statuses.count(400) == 20
    assert statuses.count(429) == 40
    assert counting_hasher.calls == 20


def test_an_attacker_elsewhere_cannot_lock_a_user_out_of_a_known_address(api, app):
    home, attacker = "198.51.100.5", "203.0.113.9"
    assert attempt(api, app, password=PASSWORD, REMOTE_ADDR=home).status_code == 200
    fail(api, app, 10, REMOTE_ADDR=attacker)
    assert_locked(attempt(api, app, password=PASSWORD, REMOTE_ADDR=attacker))
    assert_locked(attempt(api, app, password=PASSWORD, REMOTE_ADDR="192.0.2.77"))  # any new address
    assert attempt(api, app, password=PASSWORD, REMOTE_ADDR=home).status_code == 200
    # Guessing from the known address locks it there too.
    fail(api, app, 10, REMOTE_ADDR=home)
    assert_locked(attempt(api, app, password=PASSWORD, REMOTE_ADDR=home))


def test_unlock_lifts_the_lock_at_a_known_address_too(api, app):
    home = "198.51.100.5"
    assert attempt(api, app, password=PASSWORD, REMOTE_ADDR=home).status_code == 200
    fail(api, app, 10, REMOTE_ADDR=home)
    call_command("ropc_unlock", "--realm", "employees", "--username", "alice", stdout=io.StringIO())
    assert attempt(api, app, password=PASSWORD, REMOTE_ADDR=home).status_code == 200


def test_known_addresses_can_be_switched_off(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "KNOWN_ADDRESS_LIFETIME": 0}
    home = "198.51.100.5"
    assert attempt(api, app, password=PASSWORD, REMOTE_ADDR=home).status_code == 200
    fail(api, app, 10, REMOTE_ADDR="203.0.113.9")
    assert_locked(attempt(api, app, password=PASSWORD, REMOTE_ADDR=home))


def test_forwarded_for_without_a_trusted_proxy_is_reported_once(api, app, caplog, monkeypatch):

    monkeypatch.setattr(protection, "_warned_untrusted_forwarding", False)
    for _ in range(3):
        attempt(api, app, HTTP_X_FORWARDED_FOR="203.0.113.1")
    warnings = [record for record in caplog.records if "X-Forwarded-For" in record.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"


def test_ipv4_mapped_ipv6_is_the_ipv4_address(api, app, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "IP_FAILURE_LIMIT": 2}
    attempt(api, app, "u1", REMOTE_ADDR="203.0.113.5")
    attempt(api, app, "u2", REMOTE_ADDR="::ffff:203.0.113.5")
    assert_locked(attempt(api, app, "u3", REMOTE_ADDR="203.0.113.5"))


def test_a_crash_on_the_threshold_attempt_still_locks(api, app, monkeypatch):

    fail(api, app, 9)

    def crash(self, password):
        raise RuntimeError("hasher crashed")

    monkeypatch.setattr(get_user_model(), "check_password", crash)
    assert attempt(Api(Client(raise_request_exception=False)), app).status_code == 500
    monkeypatch.undo()
    locked = attempt(api, app, password=PASSWORD)
    assert_locked(locked)
    assert 55 <= int(locked["Retry-After"]) <= 60


@pytest.mark.django_db(transaction=True)
def test_a_sign_in_our_database_failed_counts_no_failure(api, app, settings):
    # The password was right and the fault ours: no step towards a lock, and no failed-sign-in
    # signal to alarm a listener about the user.
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "LOCKOUT_THRESHOLD": 1, "IP_FAILURE_LIMIT": 1}
    heard = []

    def listener(**kwargs):
        heard.append(kwargs)

    def database_gives_way(sender, **kwargs):
        raise OperationalError("could not serialize access")

    signals.sign_in_failed.connect(listener, dispatch_uid="test.heard")
    post_save.connect(database_gives_way, sender=AccessToken, dispatch_uid="test.rollback")
    try:
        for _ in range(2):
            assert_error(attempt(api, app, password=PASSWORD), 503, "temporarily_unavailable")
    finally:
        post_save.disconnect(dispatch_uid="test.rollback", sender=AccessToken)
        signals.sign_in_failed.disconnect(dispatch_uid="test.heard")
    assert heard == []
    assert attempt(api, app, password=PASSWORD).status_code == 200
