"""pytest fixtures for a host project's API tests (registered by the ``pytest11`` entry point).

    def test_my_api(ropc_api_client):
        response = ropc_api_client.get("/api/me/")
        assert response.status_code == 200

Every fixture builds through the app's services in the test database (pytest-django's ``db``);
imports happen inside them, so merely installing the package never touches a project's tests.
"""

import pytest

# Imports inside the fixtures: pytest loads this plugin in every project that installs the
# package, before Django is configured, so nothing here may import models at load time.


@pytest.fixture
def ropc_realm(db):
    """A directory realm, slug ``test``."""
    from .factories import RealmFactory

    return RealmFactory(slug="test")


@pytest.fixture
def ropc_account(ropc_realm):
    """Account ``alice`` of ``ropc_realm``; ``ropc_account.password`` is its password."""
    from .factories import AccountFactory

    return AccountFactory(realm=ropc_realm, login_name="alice", email="alice@example.com")


@pytest.fixture
def ropc_client(ropc_realm):
    """A public client on ``ropc_realm`` that may ask for every scope (a ``RegisteredClient``:
    ``.application.client_id``)."""
    from .factories import ClientFactory

    return ClientFactory(name="Test public client", realms=[ropc_realm])


@pytest.fixture
def ropc_confidential_client(ropc_realm):
    """A confidential client on ``ropc_realm``; ``.client_secret`` is its secret."""
    from .factories import ClientFactory

    return ClientFactory(name="Test confidential client", confidential=True, realms=[ropc_realm])


@pytest.fixture
def ropc_tokens(ropc_account, ropc_client):
    """A token pair of ``ropc_account`` from ``ropc_client``, with every scope the client may have:
    ``.access_token``, ``.refresh_token``, ``.authorization`` (the header value)."""
    from .factories import issue_tokens

    return issue_tokens(ropc_account, ropc_client)


@pytest.fixture
def ropc_api_client(ropc_tokens):
    """DRF's ``APIClient`` sending ``ropc_tokens``' access token on every request."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=ropc_tokens.authorization)
    return client
