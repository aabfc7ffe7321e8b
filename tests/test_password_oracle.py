"""No client can be used to test passwords: the answer never depends on the password until the
client is known to be allowed the password grant; and refusals cost the same work, whatever the
reason."""

from django.contrib.auth.hashers import MD5PasswordHasher, make_password
from django.test import override_settings
from oauth2_provider.models import get_application_model

from ropc_provider import accounts, clients, realms
from tests.factories import PASSWORD


def _answers(api, application):
    right = api.password_grant(application, "alice", password=PASSWORD)
    wrong = api.password_grant(application, "alice", password="wrong")
    return right, wrong


def test_authorization_code_client_gets_identical_answers(api, user, authorization_code_app):
    right, wrong = _answers(api, authorization_code_app)
    assert right.status_code == wrong.status_code == 400
    assert right.content == wrong.content
    assert right.data["error"] == "unauthorized_client"
    assert sorted(right.headers.items()) == sorted(wrong.headers.items())


def test_resource_server_client_gets_identical_answers(api, user, resource_server):
    application, secret = resource_server
    right = api.password_grant(application, "alice", password=PASSWORD, secret=secret, basic=True)
    wrong = api.password_grant(application, "alice", password="wrong", secret=secret, basic=True)
    assert right.status_code == wrong.status_code == 400
    assert right.content == wrong.content


def test_scope_refusal_does_not_depend_on_the_password(api, user, db):

    app = clients.register_client(name="Reader", confidential=False, scopes=["read"]).application
    right = api.password_grant(app, "alice", password=PASSWORD, scope="write")
    wrong = api.password_grant(app, "alice", password="wrong", scope="write")
    assert right.content == wrong.content
    assert right.data["error"] == "invalid_scope"


def test_dot_stock_endpoint_is_an_oracle(api, user, authorization_code_app, settings, recwarn):
    """The reason for the above: DOT's own endpoint, same client, tells the two apart."""

    gate_off = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False}
    data = {"grant_type": "password", "username": "alice", "client_id": authorization_code_app.client_id}
    with override_settings(OAUTH2_PROVIDER=gate_off):
        right = api.post("/dot/token/", {**data, "password": PASSWORD})
        wrong = api.post("/dot/token/", {**data, "password": "wrong"})
    assert right.content != wrong.content
    assert get_application_model().objects.count() == 1


class RecordedHasher(MD5PasswordHasher):
    """Records every hash it computes, so two refusals can be compared by the work they cost."""

    algorithm = "recorded_md5"
    work = []

    def encode(self, password, salt):
        RecordedHasher.work.append(("encode", self.algorithm))
        return super().encode(password, salt)

    def verify(self, password, encoded):
        RecordedHasher.work.append(("verify", self.algorithm))
        return super().verify(password, encoded)


class LegacyHasher(RecordedHasher):
    algorithm = "legacy_md5"


def test_an_inactive_account_with_an_old_hash_costs_what_any_refusal_costs(api, db, settings):

    settings.PASSWORD_HASHERS = ["tests.test_password_oracle.RecordedHasher", "tests.test_password_oracle.LegacyHasher"]
    realm = realms.create_realm(slug="staff")
    account = accounts.create_account(realm, "old", PASSWORD)
    old_hash = make_password(PASSWORD, hasher="legacy_md5")
    type(account.user).objects.filter(pk=account.user_id).update(password=old_hash, is_active=False)
    app = clients.register_client(name="App", confidential=False, realms=["staff"]).application

    def work_of(login, password):
        RecordedHasher.work = []
        response = api.password_grant(app, login, password=password)
        assert response.status_code == 400 and response.data["error"] == "invalid_grant"
        return RecordedHasher.work

    unknown = work_of("nobody", PASSWORD)
    inactive = work_of("old", PASSWORD)
    assert inactive == unknown
    account.user.refresh_from_db()
    assert account.user.password == old_hash  # no hash upgrade on a refused sign-in
