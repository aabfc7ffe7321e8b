"""The token endpoint's SQL is counted so it cannot creep up unnoticed. DOT 3.4.1's stock
endpoint needs 5 queries for a password grant (without last_login) and 13 for a refresh."""

from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import AccessToken, RefreshToken

from ropc_provider import clients, mfa, realms, tokens
from tests.factories import PASSWORD, AccountFactory, ClientFactory, RealmFactory, UserFactory

# On PostgreSQL the rows a grant writes are one statement (statements.written_together): a sign-in's
# token pair, session and event, a refresh's new pair.
WRITTEN_TOGETHER = connection.vendor == "postgresql"

# Application with policy and default realm, user (account), last_login (which also checks a
# project-realm user is no directory account's), access token, refresh token; then the two records
# DOT keeps neither of: the session, and its sign-in in the audit trail. On PostgreSQL the last four
# are one statement.
RECORDS = 2
PASSWORD_GRANT_QUERIES = 4 if WRITTEN_TOGETHER else 5 + RECORDS
# Application, refresh token with its user, realm, cutoff and whether the client may still use the
# realm (realms.refresh_allowed), claim (unless cut off), delete the old access token, new pair.
REFRESH_GRANT_QUERIES = 5 if WRITTEN_TOGETHER else 6


def test_password_grant_queries(api, user, public_app, django_assert_num_queries):
    with django_assert_num_queries(PASSWORD_GRANT_QUERIES):
        assert api.password_grant(public_app, "alice").status_code == 200


def test_confidential_password_grant_queries(api, user, confidential, django_assert_num_queries):
    application, secret = confidential
    with django_assert_num_queries(PASSWORD_GRANT_QUERIES):
        assert api.password_grant(application, "alice", secret=secret, basic=True).status_code == 200


def test_refresh_grant_queries(api, user, public_app, django_assert_num_queries):
    refresh_token = api.password_grant(public_app, "alice").data["refresh_token"]
    with django_assert_num_queries(REFRESH_GRANT_QUERIES):
        assert api.refresh(public_app, refresh_token).status_code == 200


def _counted(call):
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200, response.content
    statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    return response, len(statements)


def test_no_more_queries_than_dot_stock_endpoint(api, user, public_app, settings, recwarn):
    _, ours_password = _counted(lambda: api.password_grant(public_app, "alice"))
    ours_refresh_token = api.password_grant(public_app, "alice").data["refresh_token"]
    _, ours_refresh = _counted(lambda: api.refresh(public_app, ours_refresh_token))

    gate_off = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    grant = {
        "grant_type": "password",
        "username": "alice",
        "password": PASSWORD,
        "client_id": public_app.client_id,
    }
    with override_settings(OAUTH2_PROVIDER=gate_off):
        dot, dot_password = _counted(lambda: api.post("/dot/token/", grant))
        refresh = {
            "grant_type": "refresh_token",
            "refresh_token": dot.data["refresh_token"],
            "client_id": public_app.client_id,
        }
        _, dot_refresh = _counted(lambda: api.post("/dot/token/", refresh))
    # The same work in no more statements; the session and its audit event are work DOT never does
    # (on PostgreSQL they cost no statement of their own).
    assert ours_password - (0 if WRITTEN_TOGETHER else RECORDS) <= dot_password
    assert ours_refresh < dot_refresh


# The two-step sign-in (test_authorization_challenge.py). The password step: application with
# policy, account with its user, realm and authenticator, the account's old codes and auth
# sessions deleted, the auth session.
PASSWORD_STEP_QUERIES = 5
# The second step: application, auth session with its user, realm, authenticator and cutoff, the
# TOTP step claimed, the session claimed, the code.
SECOND_STEP_QUERIES = 5
# The code for tokens: application, code with its user, realm and cutoff, the code claimed, the
# sign-in recorded (last_login), access token, refresh token, the session, its audit event, what the
# code issued.
CODE_GRANT_QUERIES = 6 if WRITTEN_TOGETHER else 7 + RECORDS


def test_two_step_sign_in_queries(api, db, django_assert_num_queries):
    staff = RealmFactory(slug="staff")
    alice = AccountFactory(realm=staff, login_name="alice")
    secret = mfa.enroll(alice.user).secret
    app = ClientFactory(realms=[staff], default_realm="staff").application
    with django_assert_num_queries(PASSWORD_STEP_QUERIES):
        response = api.password_grant(app, "alice", alice.password)
    assert response.status_code == 403
    with django_assert_num_queries(SECOND_STEP_QUERIES):
        answer = api.post(
            "/o/authorize-challenge/",
            {
                "response_type": "code",
                "client_id": app.client_id,
                "auth_session": response.data["auth_session"],
                "otp": pyotp.TOTP(secret).now(),
            },
        )
    assert answer.status_code == 200, answer.content
    code = {"grant_type": "authorization_code", "code": answer.data["authorization_code"], "client_id": app.client_id}
    with django_assert_num_queries(CODE_GRANT_QUERIES):
        assert api.token(code).status_code == 200


def test_a_project_user_without_a_factor_costs_no_query_more(api, user, public_app, django_assert_num_queries):
    mfa.enroll(UserFactory(username="bob"))  # someone else has one: alice's sign-in must not pay for it
    with django_assert_num_queries(PASSWORD_GRANT_QUERIES):
        assert api.password_grant(public_app, "alice").status_code == 200


# An API call with our bearer token: the token with its client, user, account and realm (the
# project realm's name read in the same statement), nothing more; DOT's own class needs one too.
API_CALL_QUERIES = 1


def test_an_api_call_costs_one_query(api, user, public_app, django_assert_num_queries):
    staff = RealmFactory(slug="staff")
    bob = AccountFactory(realm=staff, login_name="bob")
    staff_app = ClientFactory(realms=[staff], default_realm="staff").application
    for app, login, password, realm in (
        (public_app, "alice", PASSWORD, "project"),
        (staff_app, "bob", bob.password, "staff"),
    ):
        token = api.password_grant(app, login, password).data["access_token"]
        with django_assert_num_queries(API_CALL_QUERIES):
            response = api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200 and response.json()["realm"] == realm


# -- statements written once (ropc_provider/statements.py) ------------------------------------------


def _fields(instance):
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.mark.django_db(transaction=True)
def test_a_lookup_written_once_returns_what_the_orm_returns_in_every_thread(api, db):
    staff, _ = RealmFactory(slug="staff"), realms.project_realm()
    AccountFactory(realm=staff, login_name="bob", password=PASSWORD)
    app = ClientFactory(realms=[staff], default_realm="staff").application
    issued = api.password_grant(app, "bob").data
    by_orm = AccessToken.objects.select_related("user__realm_account__realm").get(
        token_checksum=tokens.checksum(issued["access_token"])
    )

    def looked_up():
        try:
            found = tokens.find_access_token(issued["access_token"])
            client = clients.load_client(app.client_id)
            return found, client, tokens.find_access_token("not a token")
        finally:
            connection.close()  # a thread's own connection

    with ThreadPoolExecutor(max_workers=2) as pool:
        for found, client, unknown in pool.map(lambda _: looked_up(), range(4)):
            assert _fields(found) == _fields(by_orm)  # converted alike: datetimes, JSON, UUIDs
            assert found.user.realm_account.realm.slug == "staff" and found.project_realm == "project"
            assert client.ropc_policy.default_realm.slug == "staff" and unknown is None
    # Written once for every thread: a server starting a thread per request keeps no copy per thread.
    assert list(tokens._ACCESS_TOKEN._compiled) == [connection.alias]


@pytest.mark.parametrize(
    "listened_to", [(AccessToken, RefreshToken), (RefreshToken,), (AccessToken,)], ids=["both", "refresh", "access"]
)
def test_a_hosts_receiver_of_token_saves_still_hears_every_token(api, user, public_app, listened_to):
    # Tokens are written once (statements.insert) only while nothing listens for their saves; one
    # listened to and one not are written both, each its own way (on PostgreSQL: one waits in
    # written_together while the other is saved, and must have its id by then).
    heard = []

    def receiver(sender, instance, created, **kwargs):
        heard.append((sender.__name__, created, instance.pk is not None, getattr(instance, "access_token_id", 0)))

    for model in listened_to:
        post_save.connect(receiver, sender=model, dispatch_uid=f"test.{model.__name__}")
    try:
        refresh_token = api.password_grant(public_app, "alice").data["refresh_token"]
        assert api.refresh(public_app, refresh_token).status_code == 200
    finally:
        for model in listened_to:
            post_save.disconnect(sender=model, dispatch_uid=f"test.{model.__name__}")
    pair = [(model.__name__, True, True) for model in listened_to]
    assert [entry[:3] for entry in heard] == pair * 2
    assert all(entry[3] is not None for entry in heard)  # a refresh token holds its access token


def test_a_hosts_receiver_of_token_deletes_hears_a_refresh_end_the_old_access_token(api, user, public_app):
    issued = api.password_grant(public_app, "alice").data
    old = AccessToken.objects.get().pk
    deleted = []
    post_delete.connect(lambda instance, **kwargs: deleted.append(instance.pk), sender=AccessToken, weak=False,
                        dispatch_uid="test.deleted")  # fmt: skip
    try:
        assert api.refresh(public_app, issued["refresh_token"]).status_code == 200
    finally:
        post_delete.disconnect(sender=AccessToken, dispatch_uid="test.deleted")
    assert deleted == [old]
