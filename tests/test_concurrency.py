"""Concurrent rotations of one refresh token: exactly one wins, the rest get invalid_grant, never
a 500 and never two live token pairs."""

import threading

import pytest
from django.db import connection
from django.test import Client
from oauth2_provider.models import AccessToken, RefreshToken

from tests.helpers import Api, RacingHasher, assert_error

ROUNDS = 5


def _race(application, refresh_token, threads):
    barrier = threading.Barrier(threads)
    results = [None] * threads

    def worker(index):
        api = Api(Client())
        barrier.wait()
        try:
            results[index] = api.refresh(application, refresh_token)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    return results


@pytest.mark.parametrize("threads", [2, 4])
@pytest.mark.parametrize("hashed", [True, False], ids=["hashed-at-rest", "plaintext"])
def test_concurrent_refreshes_have_one_winner(transactional_db, settings, user, public_app, threads, hashed):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": hashed}
    api = Api(Client())
    for _ in range(ROUNDS):
        refresh_token = api.password_grant(public_app, "alice").data["refresh_token"]
        results = _race(public_app, refresh_token, threads)
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200] + [400] * (threads - 1), [r.content for r in results]
        assert all(r.data["error"] == "invalid_grant" for r in results if r.status_code == 400)
        winner = next(r for r in results if r.status_code == 200).data
        # The winner's pair is the one live pair of this family.
        assert api.refresh(public_app, winner["refresh_token"]).status_code == 200
    live_per_family = {}
    for token in RefreshToken.objects.filter(revoked__isnull=True):
        live_per_family[token.token_family] = live_per_family.get(token.token_family, 0) + 1
    assert set(live_per_family.values()) <= {1}
    assert AccessToken.objects.count() <= len(live_per_family)


# -- a client or realm changed while a sign-in is in flight ----------------------------------------


def _deactivate_client(application):
    from ropc_provider import clients

    clients.set_active(application.ropc_policy, False)


def _deactivate_realm(application):
    from ropc_provider import realms

    realms.set_realm_active(realms.project_realm(), False)


def _take_the_realm_away(application):
    from ropc_provider import realms

    application.ropc_policy.realms.remove(realms.project_realm())


CHANGES = [_deactivate_client, _deactivate_realm, _take_the_realm_away]


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_during_the_password_check_refuses_the_sign_in(api, racing, public_app, change):
    RacingHasher.during_verify = lambda: change(public_app)
    assert_error(api.password_grant(public_app, "racer"), 400, "invalid_grant")
    assert not AccessToken.objects.exists() and not RefreshToken.objects.exists()


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_while_the_tokens_are_written_ends_them(transactional_db, user, public_app, monkeypatch, change):
    """The operator acts after the sign-in's checks passed and before its tokens are committed:
    either the operator waits for the tokens and ends them, or the sign-in is refused."""
    import time

    from ropc_provider import tokens

    written, real_issue = threading.Event(), tokens.issue

    def slow_issue(**kwargs):
        issued = real_issue(**kwargs)
        written.set()
        time.sleep(0.5)  # the sign-in's transaction stays open while the operator acts
        return issued

    monkeypatch.setattr(tokens, "issue", slow_issue)
    answers = []

    def sign_in():
        try:
            answers.append(Api(Client()).password_grant(public_app, "alice"))
        finally:
            connection.close()

    thread = threading.Thread(target=sign_in)
    thread.start()
    assert written.wait(timeout=10)
    change(public_app)
    thread.join(timeout=30)
    assert answers and answers[0].status_code in (200, 400)
    assert not AccessToken.objects.filter(application=public_app).exists()
    assert not RefreshToken.objects.filter(application=public_app, revoked__isnull=True).exists()
