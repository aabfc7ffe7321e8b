import pytest
from oauth2_provider.models import get_application_model

from ropc_provider import client_secrets, clients


def test_secret_is_stored_as_keyed_hash_not_plaintext(confidential):
    application, secret = confidential
    application.refresh_from_db()
    assert secret not in application.client_secret
    assert application.client_secret.startswith(client_secrets.PREFIX)
    assert len(secret) >= 43


def test_stored_value_depends_on_the_secret_key(settings):
    stored = client_secrets.make_stored_secret("s3cret")
    settings.SECRET_KEY = "another-key-entirely-another-key-entirely-1234"
    assert client_secrets.make_stored_secret("s3cret") != stored


def test_secret_key_rotation_keeps_secrets_valid(api, user, confidential, settings):
    application, secret = confidential
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-a-brand-new-secret-key-xyz"
    assert api.password_grant(application, "alice", secret=secret, basic=True).status_code == 200


@pytest.mark.parametrize("stored", ["dot-hashed", "plaintext"])
def test_secrets_stored_by_dot_keep_working_and_are_upgraded(api, user, db, stored):
    Application = get_application_model()
    secret = "legacy-secret-value"
    app = Application.objects.create(
        name="Legacy",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_PASSWORD,
        client_secret=secret,
        hash_client_secret=(stored == "dot-hashed"),
    )
    app.refresh_from_db()
    assert (app.client_secret == secret) is (stored == "plaintext")
    assert api.password_grant(app, "alice", secret="wrong", basic=True).status_code == 401
    assert api.password_grant(app, "alice", secret=secret, basic=True).status_code == 200
    app.refresh_from_db()
    assert app.client_secret.startswith(client_secrets.PREFIX)
    assert api.password_grant(app, "alice", secret=secret, basic=True).status_code == 200


def test_check_secret_rejects_empty_values():
    stored = client_secrets.make_stored_secret("x")
    assert client_secrets.check_secret("", stored) == (False, None)
    assert client_secrets.check_secret("x", "") == (False, None)


def test_public_clients_never_verify_a_secret(public_app):
    assert clients.verify_client_secret(public_app, "") is False
    assert clients.verify_client_secret(public_app, "anything") is False
