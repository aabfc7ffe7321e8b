import jwt
import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from oauth2_provider.models import get_application_model
from playwright.sync_api import sync_playwright

from tests.factories import PASSWORD, AccountFactory, ClientFactory, RealmFactory, UserFactory
from tests.helpers import Api, CountingHasher, require_program


def pytest_collection_modifyitems(config, items):

    if getattr(settings, "POSTGRESQL_MISSING", False):
        skip = pytest.mark.skip(reason="ROPC_TEST_DATABASE=postgresql, but PostgreSQL is not installed")
        for item in items:
            item.add_marker(skip)


def pytest_report_header(config):

    return f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Attack-protection counters live in the cache: no test inherits another's failures."""

    for alias in caches:
        caches[alias].clear()


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def staff(db):
    """A directory realm, for the two-step sign-in's tests."""
    return RealmFactory(slug="staff", name="Example Staff")


@pytest.fixture
def alice(staff):
    """Alice's account in realm staff (``alice.password`` in clear)."""
    return AccountFactory(realm=staff, login_name="alice")


@pytest.fixture
def public_app(db):
    return ClientFactory(name="Native app", scopes=["read", "write"]).application


@pytest.fixture
def confidential(db):
    """(application, secret) of a confidential password-grant client."""
    registered = ClientFactory(name="Server app", confidential=True, scopes=["read", "write"])
    return registered.application, registered.client_secret


@pytest.fixture
def resource_server(db):
    registered = ClientFactory(name="API", confidential=True, resource_server=True)
    return registered.application, registered.client_secret


@pytest.fixture
def authorization_code_app(db):
    """A public single-page app registered with DOT for the authorization code grant."""
    Application = get_application_model()
    return Application.objects.create(
        name="SPA",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://spa.example.com/callback",
    )


@pytest.fixture
def token_of_no_user(api, db):
    """A valid bearer token with no user: DOT's own client-credentials grant, which host projects
    keep using beside ours, at DOT's endpoint mounted in tests/urls.py."""
    Application = get_application_model()
    application = Application.objects.create(
        name="Machine",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="machine secret 1",
    )
    response = api.post(
        "/dot/token/",
        {"grant_type": "client_credentials", "scope": "openid read"},
        basic=(application.client_id, "machine secret 1"),
    )
    assert response.status_code == 200, response.content
    return response.data["access_token"]


@pytest.fixture
def jwks(client):
    response = client.get("/o/.well-known/jwks.json")
    assert response.status_code == 200
    return jwt.PyJWKSet.from_dict(response.json())


@pytest.fixture
def racing(settings, db):
    settings.PASSWORD_HASHERS = ["tests.helpers.RacingHasher"]

    return UserFactory(username="racer")


# Debian's Chromium, driven by Playwright, for the admin's browser tests.
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser_page(monkeypatch):
    require_program(CHROMIUM)

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
    # synchronous code, as Django's checks cannot tell.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        # Django keeps connections in context variables, and the ORM calls made while Playwright's
        # sync API runs get a connection pytest-django's teardown never sees: close it here, or it
        # outlives the test database (PostgreSQL: "being accessed by other users" at the drop).
        connections.close_all()
        browser.close()


@pytest.fixture
def employees_app(db):
    alice = AccountFactory(realm=RealmFactory(slug="employees"), login_name="alice", password=PASSWORD)
    return alice.realm, ClientFactory(name="Staff", realms=[alice.realm]).application


@pytest.fixture
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.helpers.CountingHasher"]
    CountingHasher.calls = 0
    return CountingHasher
