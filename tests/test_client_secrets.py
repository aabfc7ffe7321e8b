"""Our clients' secrets: a fast keyed verifier on our policy, out of DOT's reach; DOT's own
clients' secrets: checked as DOT checks them, never rewritten."""

import pytest
from oauth2_provider.models import get_application_model

from ropc_provider import client_secrets, clients
from tests.helpers import assert_error

DOT_TOKEN = "/dot/token/"


def test_secret_is_kept_as_a_keyed_hash_on_the_policy(confidential):
    application, secret = confidential
    application.refresh_from_db()
    verifier = application.ropc_policy.client_secret_verifier
    assert verifier.startswith(client_secrets.PREFIX) and secret not in verifier
    assert secret not in application.client_secret and verifier not in application.client_secret
    assert len(secret) >= 43


def test_verifier_depends_on_the_secret_key(settings):
    verifier = client_secrets.make_verifier("s3cret")
    settings.SECRET_KEY = "another-key-entirely-another-key-entirely-1234"
    assert client_secrets.make_verifier("s3cret") != verifier


def test_secret_key_rotation_keeps_secrets_valid(api, user, confidential, settings):
    application, secret = confidential
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-a-brand-new-secret-key-xyz"
    assert api.password_grant(application, "alice", secret=secret, basic=True).status_code == 200


def _dot_client_credentials(api, client_id, secret):
    return api.post(DOT_TOKEN, {"grant_type": "client_credentials"}, basic=(client_id, secret))


def test_nothing_in_the_database_authenticates_our_client_at_dots_endpoints(api, db):
    """A copy of the database is not a copy of the secret: neither DOT's field nor our verifier
    is accepted by DOT's own token endpoint (nor is the real secret: the client is ours alone)."""
    registered = clients.register_client(name="Machine", confidential=True)
    application = registered.application
    # Let DOT's endpoint consider the client at all: a grant it serves.
    Application = get_application_model()
    Application.objects.filter(pk=application.pk).update(authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)
    application.refresh_from_db()
    for stored in (application.client_secret, application.ropc_policy.client_secret_verifier, registered.client_secret):
        assert_error(_dot_client_credentials(api, application.client_id, stored), 401, "invalid_client")


@pytest.mark.parametrize("hashed", [True, False], ids=["dot-hashed", "plaintext"])
def test_a_dot_client_using_our_endpoints_keeps_its_secret(api, user, db, hashed):
    Application = get_application_model()
    secret = "dot client secret 1"
    dot_client = Application.objects.create(
        name="Host's own",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        hash_client_secret=hashed,
    )
    dot_client.refresh_from_db()
    stored = dot_client.client_secret
    issued = _dot_client_credentials(api, dot_client.client_id, secret)
    assert issued.status_code == 200
    revoked = api.post("/o/revoke_token/", {"token": issued.data["access_token"]}, basic=(dot_client.client_id, secret))
    assert revoked.status_code == 200
    dot_client.refresh_from_db()
    assert dot_client.client_secret == stored
    assert _dot_client_credentials(api, dot_client.client_id, secret).status_code == 200
    wrong = api.post("/o/revoke_token/", {"token": "x"}, basic=(dot_client.client_id, "wrong"))
    assert_error(wrong, 401, "invalid_client")


def test_rotation_replaces_the_verifier(api, user, confidential):
    application, secret = confidential
    new = clients.rotate_secret(application)
    assert_error(api.password_grant(application, "alice", secret=secret, basic=True), 401, "invalid_client")
    assert api.password_grant(application, "alice", secret=new, basic=True).status_code == 200


def test_empty_values_never_match():
    verifier = client_secrets.make_verifier("x")
    assert client_secrets.check_verifier("", verifier) == (False, None)
    assert client_secrets.check_verifier("x", "") == (False, None)
    assert client_secrets.check_dot_secret("", "") is False


def test_public_clients_never_verify_a_secret(public_app):
    assert clients.verify_client_secret(public_app, "") is False
    assert clients.verify_client_secret(public_app, "anything") is False


def test_secret_matched_by_a_retired_key_is_restored_under_the_current_one(api, user, confidential, settings):
    application, secret = confidential
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-secret-key-the-new-secret-key-0123456789"
    assert api.password_grant(application, "alice", secret=secret, basic=True).status_code == 200
    application.ropc_policy.refresh_from_db()
    assert application.ropc_policy.client_secret_verifier == client_secrets.make_verifier(secret)
    settings.SECRET_KEY_FALLBACKS = []
    assert api.password_grant(application, "alice", secret=secret, basic=True).status_code == 200
