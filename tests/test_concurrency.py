"""Concurrent rotations of one refresh token: exactly one wins, the rest get invalid_grant, never
a 500 and never two live token pairs."""

import threading
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models.signals import post_save
from django.test import Client, override_settings
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken, get_application_model

from ropc_provider import clients, realms, sessions, tokens
from ropc_provider.exceptions import RefreshTokenAlreadyUsed
from ropc_provider.models import Session, SessionCutoff
from tests.factories import PASSWORD
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


def test_concurrent_first_refreshes_of_a_family_dots_endpoint_began_make_one_session(transactional_db, user, recwarn):
    Application = get_application_model()
    legacy = Application.objects.create(
        name="Legacy", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_PASSWORD
    )
    api = Api(Client())
    dot_grant = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    for _ in range(ROUNDS):
        with override_settings(OAUTH2_PROVIDER=dot_grant):
            begun = api.post(
                "/dot/token/",
                {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_id": legacy.client_id},
            ).data
        results = _race(legacy, begun["refresh_token"], 4)
        assert sorted(r.status_code for r in results) == [200, 400, 400, 400], [r.content for r in results]
        winner = next(r for r in results if r.status_code == 200).data
        family = tokens.find_refresh_token(winner["refresh_token"]).token_family
        assert Session.objects.filter(pk=family).exists()
    assert Session.objects.count() == ROUNDS  # one each, however many refreshes raced to begin it


def _legacy_client_and_dot_sign_in():
    """A client of DOT's stock password grant, and a sign-in DOT's endpoint gave it (the tokens of a
    project moving to ours)."""
    Application = get_application_model()
    legacy = Application.objects.create(
        name="Legacy", client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_PASSWORD
    )
    with override_settings(OAUTH2_PROVIDER=_dots_grant_on()):
        begun = Api(Client()).post(
            "/dot/token/",
            {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_id": legacy.client_id},
        )
    return legacy, begun.data


def _dots_grant_on():
    return {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}


def test_a_first_refresh_here_racing_dots_rotation_of_the_token_leaves_no_branch_alive(transactional_db, user, recwarn):
    # A thief refreshes at DOT's endpoint (still routed) while the owner's first refresh here takes
    # the family over: the taking-over must wait for DOT's new token and take it too, so the
    # owner's retry, a replay, ends every branch.
    legacy, begun = _legacy_client_and_dot_sign_in()
    inside = threading.Event()

    def hold_dots_rotation(sender, instance, **kwargs):
        if threading.current_thread().name == "dot" and instance.revoked is not None:
            inside.set()  # DOT holds the old token's row, its new token not yet written
            time.sleep(1.5)

    post_save.connect(hold_dots_rotation, sender=RefreshToken, dispatch_uid="test.hold_dot")
    at_dot = []

    def thief():
        try:
            with override_settings(OAUTH2_PROVIDER=_dots_grant_on()):
                refresh = {"grant_type": "refresh_token", "refresh_token": begun["refresh_token"]}
                at_dot.append(Api(Client()).post("/dot/token/", {**refresh, "client_id": legacy.client_id}))
        finally:
            connection.close()

    try:
        thread = threading.Thread(target=thief, name="dot")
        thread.start()
        assert inside.wait(10)
        owner = Api(Client()).refresh(legacy, begun["refresh_token"])
        thread.join(30)
    finally:
        post_save.disconnect(dispatch_uid="test.hold_dot", sender=RefreshToken)
    assert at_dot[0].status_code == 200 and owner.status_code == 400
    assert_error(Api(Client()).refresh(legacy, begun["refresh_token"]), 400, "invalid_grant")  # the retry
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()  # the thief's token died too


def _sign_out_everywhere(user):
    sessions.revoke_sessions(user, reason=SessionCutoff.SIGNED_OUT)


def _rename_and_deactivate(user):
    # A unique column changed (the username): its UPDATE locks the user row more strongly.
    user.username, user.is_active = "alice.smith", False
    with transaction.atomic():  # as the admin's change form saves
        user.save()


@pytest.mark.parametrize("change", [_sign_out_everywhere, _rename_and_deactivate])
def test_a_change_of_the_user_during_a_refresh_waits_for_it_and_ends_it(
    transactional_db, user, public_app, monkeypatch, change
):
    # On PostgreSQL the refresh holds its token's row and writes rows referring to the user; the
    # change holds the user's row, then waits for the token's. Neither may deadlock.
    issued = Api(Client()).password_grant(public_app, "alice").data
    claimed = threading.Event()
    delete = tokens._delete_access_token

    def slow_delete(pk):
        claimed.set()  # the rotation holds its claim
        time.sleep(1.5)
        return delete(pk)

    monkeypatch.setattr(tokens, "_delete_access_token", slow_delete)
    answers = []

    def refresh():
        try:
            answers.append(Api(Client(raise_request_exception=False)).refresh(public_app, issued["refresh_token"]))
        finally:
            connection.close()

    thread = threading.Thread(target=refresh)
    thread.start()
    assert claimed.wait(10)
    change(user)
    thread.join(30)
    assert answers[0].status_code == 200, answers[0].content
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()  # its new pair ended too
    assert not AccessToken.objects.exists()


def test_dots_rotation_waits_for_a_taking_over_in_flight_and_refuses(transactional_db, user, recwarn, monkeypatch):
    legacy, begun = _legacy_client_and_dot_sign_in()
    inside = threading.Event()
    start = sessions.start

    def slow_start(**kwargs):
        inside.set()  # the taking-over holds the token and has moved its family, not yet committed
        time.sleep(1.5)
        return start(**kwargs)

    monkeypatch.setattr(sessions, "start", slow_start)
    ours = []

    def owner():
        try:
            ours.append(Api(Client()).refresh(legacy, begun["refresh_token"]))
        finally:
            connection.close()

    thread = threading.Thread(target=owner)
    thread.start()
    assert inside.wait(10)
    with override_settings(OAUTH2_PROVIDER=_dots_grant_on()):
        refresh = {"grant_type": "refresh_token", "refresh_token": begun["refresh_token"]}
        at_dot = Api(Client(raise_request_exception=False)).post(
            "/dot/token/", {**refresh, "client_id": legacy.client_id}
        )
    thread.join(30)
    assert (ours[0].status_code, at_dot.status_code) == (200, 400), (ours[0].content, at_dot.content)
    (live,) = RefreshToken.objects.filter(revoked__isnull=True)
    assert tokens.family_begun_here(live)  # one live token, in our session


# -- a client or realm changed while a sign-in is in flight ----------------------------------------


def _deactivate_client(application):

    clients.set_active(application.ropc_policy, False)


def _deactivate_realm(application):

    realms.set_realm_active(realms.project_realm(), False)


def _take_the_realm_away(application):

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


def _change_password(user_id):

    other = get_user_model().objects.get(pk=user_id)
    other.set_password("changed meanwhile 1")
    other.save()


def _deactivate(user_id):

    other = get_user_model().objects.get(pk=user_id)
    other.is_active = False
    other.save()


@pytest.mark.parametrize("change", [_change_password, _deactivate])
def test_a_change_committed_during_the_hash_wins_over_the_sign_in(api, racing, public_app, change):
    RacingHasher.during_verify = lambda: change(racing.pk)
    assert_error(api.password_grant(public_app, "racer"), 400, "invalid_grant")
    assert not AccessToken.objects.exists() and not RefreshToken.objects.exists()


def test_rotation_refused_when_a_cutoff_lands_after_validation(api, user, public_app):
    issued = api.password_grant(public_app, "alice").data
    found = tokens.find_refresh_token(issued["refresh_token"])
    SessionCutoff.objects.create(user=user, refresh_tokens_valid_from=timezone.now(), reason="operator")
    with pytest.raises(RefreshTokenAlreadyUsed):
        tokens.rotate(
            found, application=public_app, scope="read", access_token="a" * 30, expires_in=60, refresh_token="r" * 30
        )
