"""The pytest plugin a host project gets by installing the package: its fixtures, used in our own
suite as a host would use them, and a host project's test file run by a pytest of its own."""

import pathlib
import textwrap
from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from ropc_provider import accounts
from ropc_provider.exceptions import InvalidInput
from ropc_provider.testing.factories import AccountFactory, ClientFactory, RealmFactory, issue_tokens
from tests.helpers import readme_block

pytest_plugins = ["pytester"]


def test_the_api_client_calls_a_protected_api_as_the_account(ropc_api_client, ropc_account):
    response = ropc_api_client.get("/api/me/")
    assert response.status_code == 200, response.content
    every_scope = ["email", "openid", "profile", "read", "write"]
    assert response.json() == {"username": "alice", "realm": "test", "scopes": every_scope}


def test_the_fixture_account_signs_in_at_the_real_token_endpoint(api, ropc_account, ropc_client):
    issued = api.token(
        {
            "grant_type": "password",
            "username": "alice",
            "password": ropc_account.password,
            "client_id": ropc_client.application.client_id,
        }  # fmt: skip
    )
    assert issued.status_code == 200, issued.data
    assert accounts.identity_of(ropc_account.user).login_name == "alice"


def test_confidential_client_has_its_secret_once(api, ropc_account, ropc_confidential_client):
    client = ropc_confidential_client
    issued = api.password_grant(client.application, "alice", password=ropc_account.password,
                                secret=client.client_secret, basic=True, realm="test")  # fmt: skip
    assert issued.status_code == 200, issued.data


def test_tokens_refresh_and_are_what_the_client_may_have(api, db):
    realm = RealmFactory(slug="shop")
    account = AccountFactory(realm=realm, login_name="bob")
    narrow = ClientFactory(realms=[realm], scopes=["read"])
    pair = issue_tokens(account, narrow)
    assert pair.scope == "read"
    refreshed = api.refresh(narrow.application, pair.refresh_token)
    assert refreshed.status_code == 200 and refreshed.data["scope"] == "read"
    narrowest = issue_tokens(account.user, narrow.application, scope="")
    assert api.client.get("/api/me/", HTTP_AUTHORIZATION=narrowest.authorization).json()["scopes"] == []


def test_issued_tokens_are_a_session_the_user_sees_and_ends(api, db):
    shop = RealmFactory(slug="shop")
    client = ClientFactory(name="Shop app", realms=[shop])
    pair = issue_tokens(AccountFactory(realm=shop, login_name="bob"), client)
    listed = api.client.get("/o/sessions/", HTTP_AUTHORIZATION=pair.authorization)
    assert [(s["client"], s["realm"]) for s in listed.json()["sessions"]] == [("Shop app", "shop")]
    ended = api.client.delete(
        f"/o/sessions/{listed.json()['sessions'][0]['id']}/", HTTP_AUTHORIZATION=pair.authorization
    )
    assert ended.status_code == 204
    assert api.refresh(client.application, pair.refresh_token).status_code == 400


def test_factories_obey_the_services_rules(db):

    realm = RealmFactory(slug="shop")
    assert RealmFactory(slug="shop") == realm  # looked up by slug
    with pytest.raises(InvalidInput, match="Password rejected"):
        AccountFactory(realm=realm, password="1")
    with pytest.raises(InvalidInput, match="Unknown scope"):
        ClientFactory(realms=[realm], scopes=["launch-missiles"])


HOST_TEST = """
def test_me(ropc_api_client):
    response = ropc_api_client.get("/api/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
"""


def test_a_host_projects_api_test_in_five_lines(pytester, monkeypatch):
    """The README's worked example, in a pytest run of its own against the example project's
    settings, as a host project runs it: the plugin comes from the installed entry point."""

    assert readme_block("def test_me(ropc_api_client):") == textwrap.dedent(HOST_TEST).strip()
    root = pathlib.Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pytester.makepyfile(test_host_api=HOST_TEST)
    result = pytester.runpytest_subprocess("--ds=example_project.settings", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_tokens_are_refused_where_the_grant_would_refuse_them(db):
    from ropc_provider import accounts
    from ropc_provider.exceptions import InvalidInput

    shop, staff = RealmFactory(slug="shop"), RealmFactory(slug="staff")
    account = AccountFactory(realm=shop, login_name="bob")
    with pytest.raises(InvalidInput, match="realm"):
        issue_tokens(account, ClientFactory(realms=[staff]))
    with pytest.raises(InvalidInput, match="password grant"):
        issue_tokens(account, ClientFactory(confidential=True, resource_server=True))
    accounts.set_account_active(account, False)
    with pytest.raises(InvalidInput, match="inactive"):
        issue_tokens(account, ClientFactory(realms=[shop]))


def test_nothing_secret_is_in_what_a_failing_test_prints(db):
    shop = RealmFactory(slug="shop")
    confidential = ClientFactory(confidential=True, realms=[shop])
    pair = issue_tokens(AccountFactory(realm=shop), confidential)
    assert confidential.client_secret not in repr(confidential)
    assert pair.access_token not in repr(pair) and pair.refresh_token not in repr(pair)


def test_tokens_come_from_the_projects_generator(db, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "TOKEN_GENERATOR": "tests.helpers.prefixed_token"}
    shop = RealmFactory(slug="shop")
    pair = issue_tokens(AccountFactory(realm=shop), ClientFactory(realms=[shop]))
    assert pair.access_token.startswith("test-") and pair.refresh_token.startswith("test-")


def test_a_client_is_only_ever_created_registered(db):
    with pytest.raises(NotImplementedError, match="registered"):
        ClientFactory.build()


def test_issued_tokens_end_with_their_session(api, db):
    shop = RealmFactory(slug="shop")
    pair = issue_tokens(AccountFactory(realm=shop), ClientFactory(realms=[shop], session_max_lifetime=60))
    with freeze_time(timezone.now() + timedelta(seconds=61)):
        assert api.client.get("/api/me/", HTTP_AUTHORIZATION=pair.authorization).status_code == 401
