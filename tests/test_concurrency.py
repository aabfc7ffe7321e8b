"""Concurrent rotations of one refresh token: exactly one wins, the rest get invalid_grant, never
a 500 and never two live token pairs."""

import threading

import pytest
from django.db import connection
from django.test import Client
from oauth2_provider.models import AccessToken, RefreshToken

from tests.conftest import Api

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
