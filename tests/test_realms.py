import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import aauthenticate, aget_user, authenticate, get_user, get_user_model
from django.contrib.auth.signals import user_login_failed
from django.db import connection
from django.db.models import CharField
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import AccessToken

from ropc_provider import accounts, clients, mfa, realms, signals
from ropc_provider.backends import ModelBackend
from ropc_provider.exceptions import InvalidInput
from ropc_provider.models import Realm, RealmAccount
from tests.helpers import INTROSPECT, assert_error, me
from tests.test_query_counts import PASSWORD_GRANT_QUERIES

EMPLOYEE_PASSWORD = "employee pass phrase 1"
CUSTOMER_PASSWORD = "customer pass phrase 2"


@pytest.fixture
def employees(db):
    return realms.create_realm(slug="employees", name="Employees")


@pytest.fixture
def customers(db):
    return realms.create_realm(slug="customers", name="Customers", allow_email_login=True)


@pytest.fixture
def two_alices(employees, customers):
    return (
        accounts.create_account(employees, "alice", EMPLOYEE_PASSWORD),
        accounts.create_account(customers, "alice", CUSTOMER_PASSWORD, email="Alice@Example.com"),
    )


@pytest.fixture
def both_realms_app(employees, customers):
    return clients.register_client(
        name="Both", confidential=False, realms=["employees", "customers"], scopes=["read"]
    ).application


def sign_in(api, app, login, password, realm=None):
    fields = {"realm": realm} if realm else {}
    return api.password_grant(app, login, password=password, **fields)


def who(api, response):
    return api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {response.data['access_token']}").json()


# -- identity per realm -------------------------------------------------------------------------


def test_same_login_name_in_two_realms_are_two_identities(api, two_alices, both_realms_app):
    employee = sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD, "employees")
    customer = sign_in(api, both_realms_app, "alice", CUSTOMER_PASSWORD, "customers")
    assert employee.status_code == customer.status_code == 200
    assert who(api, employee) == {"username": "alice", "realm": "employees", "scopes": ["read"]}
    assert who(api, customer) == {"username": "alice", "realm": "customers", "scopes": ["read"]}
    assert two_alices[0].user != two_alices[1].user
    assert AccessToken.objects.filter(user=two_alices[0].user).count() == 1
    assert AccessToken.objects.filter(user=two_alices[1].user).count() == 1


def test_each_password_works_only_in_its_own_realm(api, two_alices, both_realms_app):
    wrong_password = sign_in(api, both_realms_app, "alice", "nope", "employees")
    cross_realm = sign_in(api, both_realms_app, "alice", CUSTOMER_PASSWORD, "employees")
    unknown = sign_in(api, both_realms_app, "zed", EMPLOYEE_PASSWORD, "employees")
    for response in (wrong_password, cross_realm, unknown):
        assert_error(response, 400, "invalid_grant")
    assert wrong_password.content == cross_realm.content == unknown.content


@pytest.mark.parametrize("variant", ["Alice", "ALICE", " alice ", "ａｌｉｃｅ", "Ａｌｉｃｅ"])
def test_case_and_unicode_variants_find_the_same_account(api, two_alices, both_realms_app, variant):
    response = sign_in(api, both_realms_app, variant, EMPLOYEE_PASSWORD, "employees")
    assert response.status_code == 200, response.content
    assert who(api, response)["username"] == "alice"


def test_compatibility_forms_are_one_name(employees):
    accounts.create_account(employees, "ﬁona", EMPLOYEE_PASSWORD)  # the "fi" ligature
    assert RealmAccount.objects.get().login_key == "fiona"


@pytest.mark.parametrize("variant", ["ALICE", "ａｌｉｃｅ", "Alice "])
def test_duplicate_variant_cannot_be_created(two_alices, employees, variant):
    with pytest.raises(InvalidInput, match="already has an account"):
        accounts.create_account(employees, variant, "another pass phrase 3")
    assert RealmAccount.objects.filter(realm=employees).count() == 1
    assert get_user_model().objects.count() == 2


def test_email_login_where_the_realm_allows_it(api, two_alices, both_realms_app):
    by_email = sign_in(api, both_realms_app, "alice@EXAMPLE.com", CUSTOMER_PASSWORD, "customers")
    assert by_email.status_code == 200, by_email.content
    assert who(api, by_email)["username"] == "alice"


def test_no_email_login_where_the_realm_does_not(api, employees, both_realms_app):
    accounts.create_account(employees, "bob", EMPLOYEE_PASSWORD, email="bob@example.com")
    assert_error(sign_in(api, both_realms_app, "bob@example.com", EMPLOYEE_PASSWORD, "employees"), 400, "invalid_grant")


def test_email_unique_per_realm(customers, two_alices):
    with pytest.raises(InvalidInput, match="email"):
        accounts.create_account(customers, "alice2", CUSTOMER_PASSWORD, email="ALICE@example.com")


def test_login_names_in_email_realms_cannot_contain_at(customers):
    with pytest.raises(InvalidInput, match="'@'"):
        accounts.create_account(customers, "a@b", CUSTOMER_PASSWORD)


def test_email_login_cannot_be_switched_on_over_at_signs(employees):
    accounts.create_account(employees, "x@y", EMPLOYEE_PASSWORD)
    with pytest.raises(InvalidInput, match="ambiguous"):
        realms.set_email_login(employees, True)
    employees.refresh_from_db()
    assert employees.allow_email_login is False


def test_email_login_switch(api, employees, both_realms_app):
    accounts.create_account(employees, "bob", EMPLOYEE_PASSWORD, email="bob@example.com")
    realms.set_email_login(employees, True)
    assert sign_in(api, both_realms_app, "bob@example.com", EMPLOYEE_PASSWORD, "employees").status_code == 200


def test_rejected_password_creates_nothing(employees):
    with pytest.raises(InvalidInput, match="Password rejected"):
        accounts.create_account(employees, "carol", "123")
    assert not RealmAccount.objects.exists() and not get_user_model().objects.exists()


# -- which realm ----------------------------------------------------------------------------------


def test_single_realm_client_uses_it_by_default(api, two_alices, employees):
    app = clients.register_client(name="Staff app", confidential=False, realms=["employees"]).application
    response = sign_in(api, app, "alice", EMPLOYEE_PASSWORD)
    assert response.status_code == 200
    assert who(api, response)["realm"] == "employees"


def test_default_realm_among_several(api, two_alices, employees, customers):
    app = clients.register_client(
        name="Shop", confidential=False, realms=["employees", "customers"], default_realm="customers"
    ).application
    assert who(api, sign_in(api, app, "alice", CUSTOMER_PASSWORD))["realm"] == "customers"
    assert who(api, sign_in(api, app, "alice", EMPLOYEE_PASSWORD, "employees"))["realm"] == "employees"


def test_several_realms_and_no_default_requires_the_parameter(api, two_alices, both_realms_app):
    response = sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD)
    assert_error(response, 400, "invalid_request")
    assert "realm" in response.data["error_description"]


def test_unknown_and_forbidden_realms_get_one_answer(api, two_alices, employees, db):
    realms.create_realm(slug="partners")
    app = clients.register_client(name="Staff app", confidential=False, realms=["employees"]).application
    unknown = sign_in(api, app, "alice", EMPLOYEE_PASSWORD, "nowhere")
    forbidden = sign_in(api, app, "alice", CUSTOMER_PASSWORD, "customers")
    forbidden_no_account = sign_in(api, app, "alice", CUSTOMER_PASSWORD, "partners")
    for response in (unknown, forbidden, forbidden_no_account):
        assert_error(response, 400, "invalid_request")
    assert unknown.content == forbidden.content == forbidden_no_account.content
    assert not AccessToken.objects.exists()


def test_inactive_realm(api, two_alices, employees, both_realms_app):
    Realm.objects.filter(pk=employees.pk).update(is_active=False)
    right = sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD, "employees")
    wrong = sign_in(api, both_realms_app, "alice", "nope", "employees")
    assert_error(right, 400, "invalid_grant")
    assert right.content == wrong.content
    assert "realm" in right.data["error_description"]


def test_realm_answers_do_not_depend_on_the_password(api, two_alices, employees):
    app = clients.register_client(name="Staff app", confidential=False, realms=["employees"]).application
    right = sign_in(api, app, "alice", CUSTOMER_PASSWORD, "customers")
    wrong = sign_in(api, app, "alice", "nope", "customers")
    assert right.content == wrong.content


# -- deactivation and refresh -----------------------------------------------------------------------


def test_deactivating_an_account_stops_tokens_and_refreshes(api, two_alices, both_realms_app):
    first = sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD, "employees").data
    user = two_alices[0].user
    user.is_active = False
    user.save()
    assert_error(sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD, "employees"), 400, "invalid_grant")
    assert_error(api.refresh(both_realms_app, first["refresh_token"]), 400, "invalid_grant")
    # The same name in the other realm is untouched.
    assert sign_in(api, both_realms_app, "alice", CUSTOMER_PASSWORD, "customers").status_code == 200


def test_deactivating_a_realm_stops_tokens_and_refreshes(api, two_alices, employees, both_realms_app):
    first = sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD, "employees").data
    employees.is_active = False
    employees.save()
    assert_error(sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD, "employees"), 400, "invalid_grant")
    assert_error(api.refresh(both_realms_app, first["refresh_token"]), 400, "invalid_grant")


def test_refresh_refused_once_the_client_loses_the_realm(api, two_alices, employees, both_realms_app):
    first = sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD, "employees").data
    both_realms_app.ropc_policy.realms.remove(employees)
    assert_error(api.refresh(both_realms_app, first["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("realm", ["employees", "project"])
@pytest.mark.parametrize("change", ["realm closed", "realm taken from the client"])
def test_a_refresh_checks_the_realm_itself_not_only_the_sessions_a_change_ended(api, two_alices, realm, change):
    # Changed behind the services' back (a bulk update sends no signal, so no session ends): the
    # refresh's own check of the realm must still refuse.
    get_user_model().objects.create_user("dora", password=EMPLOYEE_PASSWORD)
    realms.project_realm()
    app = clients.register_client(name="Both", confidential=False, realms=["employees", "project"]).application
    login = "alice" if realm == "employees" else "dora"
    issued = sign_in(api, app, login, EMPLOYEE_PASSWORD, realm).data
    issued = api.refresh(app, issued["refresh_token"]).data  # refreshes while the realm is open
    if change == "realm closed":
        Realm.objects.filter(slug=realm).update(is_active=False)
    else:
        app.ropc_policy.realms.through.objects.filter(realm__slug=realm).delete()
    assert_error(api.refresh(app, issued["refresh_token"]), 400, "invalid_grant")


def test_introspection_names_the_realm(api, two_alices, both_realms_app, resource_server):
    tokens = sign_in(api, both_realms_app, "alice", CUSTOMER_PASSWORD, "customers").data
    application, secret = resource_server
    body = api.post("/o/introspect/", {"token": tokens["access_token"]}, basic=(application.client_id, secret)).data
    assert body["realm"] == "customers" and body["username"] == "alice"


# -- the project's own users -------------------------------------------------------------------------


def test_project_realm_signs_in_existing_users_without_extra_rows(api, db):
    User = get_user_model()
    User.objects.create_superuser("root", "root@example.com", "root pass phrase 4")
    User.objects.create_user("dora", "dora@example.com", "dora pass phrase 5")
    app = clients.register_client(name="Legacy", confidential=False).application
    assert not RealmAccount.objects.exists()
    for login, password in (("root", "root pass phrase 4"), ("dora", "dora pass phrase 5")):
        response = sign_in(api, app, login, password)
        assert response.status_code == 200, response.content
        assert who(api, response)["realm"] == "project"
    assert not RealmAccount.objects.exists()


class PassphraseBackend:
    """A project's own backend: signs anyone in who says the passphrase."""

    def authenticate(self, request, username=None, password=None):
        return get_user_model().objects.filter(username=username).first() if password == "open sesame" else None

    def get_user(self, user_id):
        return get_user_model().objects.filter(pk=user_id).first()


STOCK = ["django.contrib.auth.backends.ModelBackend"]


@pytest.mark.parametrize(
    "backends", [STOCK, [*STOCK, "tests.test_realms.PassphraseBackend"]], ids=["stock", "with-another"]
)
def test_project_users_sign_in_as_djangos_authenticate_says(api, db, settings, backends):
    # With Django's stock backend alone, its lookup is written once (signin.authenticate_project_user);
    # either way, every outcome Django's authenticate() has must be the grant's.
    settings.AUTHENTICATION_BACKENDS = backends
    User = get_user_model()
    User.objects.create_user("dora", password="dora pass phrase 5")
    User.objects.create_user("ed", password="ed pass phrase 6", is_active=False)
    app = clients.register_client(name="Legacy", confidential=False).application
    failed = []
    receiver = lambda sender, credentials, request, **kwargs: failed.append((sender, credentials))  # noqa: E731
    user_login_failed.connect(receiver, dispatch_uid="test.failed")
    try:
        assert sign_in(api, app, "dora", "dora pass phrase 5").status_code == 200
        for login, password in (("nobody", "a guess"), ("dora", "not hers"), ("ed", "ed pass phrase 6")):
            assert_error(sign_in(api, app, login, password), 400, "invalid_grant")
    finally:
        user_login_failed.disconnect(dispatch_uid="test.failed")
    cleansed = "********************"
    assert failed == [
        ("django.contrib.auth", {"username": login, "password": cleansed}) for login in ("nobody", "dora", "ed")
    ]
    assert User.objects.get(username="dora").last_login is not None


def test_a_projects_own_backend_is_asked(api, db, settings):
    settings.AUTHENTICATION_BACKENDS = ["tests.test_realms.PassphraseBackend"]
    get_user_model().objects.create_user("dora", password="dora pass phrase 5")
    app = clients.register_client(name="Legacy", confidential=False).application
    assert sign_in(api, app, "dora", "open sesame").status_code == 200
    assert_error(sign_in(api, app, "dora", "dora pass phrase 5"), 400, "invalid_grant")


def test_directory_users_are_not_project_users(api, two_alices, db):
    internal_username = two_alices[0].user.get_username()
    app = clients.register_client(name="Legacy", confidential=False).application
    response = sign_in(api, app, internal_username, EMPLOYEE_PASSWORD)
    assert_error(response, 400, "invalid_grant")
    assert response.content == sign_in(api, app, "nobody", EMPLOYEE_PASSWORD).content
    assert not AccessToken.objects.exists()


OURS = ["ropc_provider.backends.ModelBackend"]


def test_a_directory_account_cannot_sign_in_at_the_projects_own_login_pages(api, client, two_alices, settings):
    # A directory account is a Django user with an internal username (login@realm): with Django's
    # ModelBackend, the project's own login pages would let it in without its realm's lockout or
    # second factor. Ours lets the project's users in and no directory account.
    settings.AUTHENTICATION_BACKENDS = OURS
    employee = two_alices[0].user
    dora = get_user_model().objects.create_user("dora", password="dora pass phrase 5")
    assert authenticate(username=employee.get_username(), password=EMPLOYEE_PASSWORD) is None
    assert not client.login(username=employee.get_username(), password=EMPLOYEE_PASSWORD)
    assert authenticate(username="dora", password="dora pass phrase 5") == dora
    # A Django session begun before the switch signs no directory account in either.
    client.force_login(employee, backend=OURS[0])
    request = RequestFactory().get("/")
    request.session = client.session
    assert get_user(request).is_anonymous
    client.force_login(dora, backend=OURS[0])
    request.session = client.session
    assert get_user(request) == dora
    # The token endpoint signs both in, each at its own door, and the project realm's lookup stays
    # the one statement written once.
    app = clients.register_client(name="Legacy", confidential=False).application
    assert sign_in(api, app, "dora", "dora pass phrase 5").status_code == 200
    employees_app = clients.register_client(name="Staff", confidential=False, realms=["employees"])
    assert sign_in(api, employees_app.application, "alice", EMPLOYEE_PASSWORD).status_code == 200


def test_refusing_a_directory_account_at_the_projects_login_pages_costs_what_a_wrong_password_costs(
    counting_hasher, employees, settings
):
    settings.AUTHENTICATION_BACKENDS = OURS
    internal = accounts.create_account(employees, "alice", EMPLOYEE_PASSWORD).user.get_username()
    costs = []
    for password in ("not the password", EMPLOYEE_PASSWORD, "not the password either"):
        before = counting_hasher.calls
        with CaptureQueriesContext(connection) as queries:
            assert authenticate(username=internal, password=password) is None
        costs.append((counting_hasher.calls - before, len(queries)))
    assert costs[0] == costs[1] == costs[2] == (1, 1)  # the right password is not told by its cost


def test_refusing_a_directory_account_at_the_projects_login_pages_writes_nothing(employees, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    internal = accounts.create_account(employees, "alice", EMPLOYEE_PASSWORD).user.get_username()
    stored = get_user_model().objects.get(username=internal).password
    # A stronger hasher first, as after an upgrade: a checked password would be re-hashed and saved.
    settings.PASSWORD_HASHERS = ["tests.helpers.CountingHasher", "django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AUTHENTICATION_BACKENDS = OURS
    assert authenticate(username=internal, password=EMPLOYEE_PASSWORD) is None
    assert get_user_model().objects.get(username=internal).password == stored


def _finds_users_case_insensitively(monkeypatch):
    User = get_user_model()
    finder = lambda manager, name: manager.get(**{f"{User.USERNAME_FIELD}__iexact": name})  # noqa: E731
    monkeypatch.setattr(type(User._default_manager), "get_by_natural_key", finder)


@pytest.mark.parametrize("where", ["our backend, the manager's own lookup", "the grant, with other backends"])
def test_a_right_directory_password_costs_what_a_wrong_one_costs_and_writes_nothing(
    api, employees, settings, monkeypatch, where
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    internal = accounts.create_account(employees, "alice", EMPLOYEE_PASSWORD).user.get_username()
    stored = get_user_model().objects.get(username=internal).password
    # A stronger hasher first, as after an upgrade: a checked password would be re-hashed and saved.
    settings.PASSWORD_HASHERS = ["tests.helpers.CountingHasher", "django.contrib.auth.hashers.MD5PasswordHasher"]
    if where.startswith("our backend"):
        settings.AUTHENTICATION_BACKENDS = OURS
        _finds_users_case_insensitively(monkeypatch)

        def attempt(password):
            assert authenticate(username=internal, password=password) is None
    else:
        settings.AUTHENTICATION_BACKENDS = [*STOCK, "tests.test_realms.PassphraseBackend"]
        app = clients.register_client(name="Legacy", confidential=False).application

        def attempt(password):
            assert_error(sign_in(api, app, internal, password), 400, "invalid_grant")

    failed = []
    user_login_failed.connect(lambda sender, **kwargs: failed.append(1), weak=False, dispatch_uid="test.failed")
    try:
        costs = []
        for password in ("not the password", EMPLOYEE_PASSWORD):
            failed.clear()
            with CaptureQueriesContext(connection) as queries:
                attempt(password)
            costs.append((len(queries), len(failed)))
    finally:
        user_login_failed.disconnect(dispatch_uid="test.failed")
    assert costs[0] == costs[1]  # queries, and user_login_failed sent: alike
    assert get_user_model().objects.get(username=internal).password == stored


class StaffOnlyBackend(ModelBackend):
    """A project's own rule on top of ours, as Django documents for its ModelBackend."""

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and user.is_staff


def test_a_subclass_of_our_backend_keeps_its_own_rule(client, db, settings):
    settings.AUTHENTICATION_BACKENDS = ["tests.test_realms.StaffOnlyBackend"]
    dora = get_user_model().objects.create_user("dora", password="dora pass phrase 5")
    assert authenticate(username="dora", password="dora pass phrase 5") is None
    client.force_login(dora, backend=settings.AUTHENTICATION_BACKENDS[0])
    request = RequestFactory().get("/")
    request.session = client.session
    assert get_user(request).is_anonymous
    dora.is_staff = True
    dora.save()
    assert authenticate(username="dora", password="dora pass phrase 5") == dora


def test_our_backend_at_async_login_pages(settings, db):
    settings.AUTHENTICATION_BACKENDS = OURS
    dora = get_user_model().objects.create_user("dora", password="dora pass phrase 5")
    assert async_to_sync(aauthenticate)(username="dora", password="dora pass phrase 5") == dora
    client = Client()
    client.force_login(dora, backend=OURS[0])
    request = RequestFactory().get("/")
    request.session = client.session
    assert async_to_sync(aget_user)(request) == dora


@pytest.mark.parametrize("backends", [OURS, STOCK, [*STOCK, "tests.test_realms.PassphraseBackend"]])
def test_a_directory_accounts_internal_name_in_the_project_realm_tells_nothing(api, two_alices, settings, backends):
    # Not even with a second factor, which a right password would otherwise be asked for.
    settings.AUTHENTICATION_BACKENDS = backends
    mfa.enroll(two_alices[0].user)
    app = clients.register_client(name="Legacy", confidential=False).application
    internal = two_alices[0].user.get_username()
    right = sign_in(api, app, internal, EMPLOYEE_PASSWORD)
    assert_error(right, 400, "invalid_grant")
    assert right.content == sign_in(api, app, internal, "not the password").content


def test_our_backend_keeps_the_project_realms_grant_as_cheap_as_djangos(api, db, settings, django_assert_num_queries):
    settings.AUTHENTICATION_BACKENDS = OURS
    get_user_model().objects.create_user("dora", password="dora pass phrase 5")
    app = clients.register_client(name="Legacy", confidential=False).application
    with django_assert_num_queries(PASSWORD_GRANT_QUERIES):
        assert sign_in(api, app, "dora", "dora pass phrase 5").status_code == 200


def test_only_one_project_realm(db):
    realms.project_realm()
    with pytest.raises(InvalidInput, match="only one"):
        realms.create_realm(slug="staff", source=Realm.PROJECT)


# -- cost and signals ---------------------------------------------------------------------------------


def test_unknown_account_costs_the_same_hashing_as_a_wrong_password(api, employees, both_realms_app, counting_hasher):
    accounts.create_account(employees, "erin", EMPLOYEE_PASSWORD)
    costs = {}
    for case, login, password in [
        ("wrong password", "erin", "nope"),
        ("unknown account", "nobody", "nope"),
        ("right password", "erin", EMPLOYEE_PASSWORD),
    ]:
        counting_hasher.calls = 0
        sign_in(api, both_realms_app, login, password, "employees")
        costs[case] = counting_hasher.calls
    assert costs == {"wrong password": 1, "unknown account": 1, "right password": 1}


def test_an_unusable_password_costs_a_hash_too(api, employees, both_realms_app, counting_hasher):
    account = accounts.create_account(employees, "frank", EMPLOYEE_PASSWORD)
    account.user.set_unusable_password()
    account.user.save()
    counting_hasher.calls = 0
    response = sign_in(api, both_realms_app, "frank", EMPLOYEE_PASSWORD, "employees")
    assert_error(response, 400, "invalid_grant")
    assert counting_hasher.calls == 1


def test_forbidden_realm_costs_no_hashing(api, two_alices, db, counting_hasher):
    app = clients.register_client(name="Staff app", confidential=False, realms=["employees"]).application
    counting_hasher.calls = 0
    sign_in(api, app, "alice", CUSTOMER_PASSWORD, "customers")
    assert counting_hasher.calls == 0


def test_signals_carry_realm_and_login_never_the_password(api, two_alices, both_realms_app):
    received = []

    def listener(signal, **kwargs):
        received.append((signal, kwargs))

    signals.sign_in_succeeded.connect(listener)
    signals.sign_in_failed.connect(listener)
    try:
        sign_in(api, both_realms_app, "ALICE", EMPLOYEE_PASSWORD, "employees")
        sign_in(api, both_realms_app, "Alice", "wrong password 9", "customers")
    finally:
        signals.sign_in_succeeded.disconnect(listener)
        signals.sign_in_failed.disconnect(listener)
    (ok_signal, ok), (failed_signal, failed) = received
    assert ok_signal is signals.sign_in_succeeded and failed_signal is signals.sign_in_failed
    assert (ok["realm"].slug, ok["login"], ok["user"]) == ("employees", "alice", two_alices[0].user)
    assert (failed["realm"].slug, failed["login"]) == ("customers", "alice")
    for _signal, kwargs in received:
        assert EMPLOYEE_PASSWORD not in repr(kwargs) and "wrong password 9" not in repr(kwargs)


def test_realm_password_grant_queries(api, two_alices, both_realms_app, django_assert_num_queries):
    # Application; account with its user and realm, if the client may use the realm; the tokens; last_login.
    with django_assert_num_queries(PASSWORD_GRANT_QUERIES):
        assert sign_in(api, both_realms_app, "alice", EMPLOYEE_PASSWORD, "employees").status_code == 200


def test_default_realm_password_grant_queries(api, two_alices, django_assert_num_queries):
    app = clients.register_client(name="Staff app", confidential=False, realms=["employees"]).application
    with django_assert_num_queries(PASSWORD_GRANT_QUERIES):
        assert sign_in(api, app, "alice", EMPLOYEE_PASSWORD).status_code == 200


def test_realm_deactivation_ends_live_access_tokens(api, employees_app, resource_server):
    realm, app = employees_app
    issued = api.password_grant(app, "alice").data
    realm.is_active = False
    realm.save()
    assert me(api, issued).status_code == 401
    rs, secret = resource_server
    body = api.post(INTROSPECT, {"token": issued["refresh_token"]}, basic=(rs.client_id, secret)).data
    assert body == {"active": False}


def test_taking_a_realm_from_a_client_ends_that_clients_sessions_only(api, employees_app):
    realm, app = employees_app
    other = clients.register_client(name="Other", confidential=False, realms=["employees"]).application
    mine, theirs = api.password_grant(app, "alice").data, api.password_grant(other, "alice").data
    app.ropc_policy.realms.remove(realm)
    assert me(api, mine).status_code == 401
    assert me(api, theirs).status_code == 200
    other.ropc_policy.realms.clear()
    assert me(api, theirs).status_code == 401


def test_deleting_an_account_deletes_its_user(api, employees_app):

    realm, app = employees_app
    account = realm.accounts.get()
    internal, issued = account.user.get_username(), api.password_grant(app, "alice").data
    account.delete()
    assert not get_user_model().objects.filter(username=internal).exists()
    assert me(api, issued).status_code == 401
    legacy = clients.register_client(name="Legacy", confidential=False).application
    assert_error(api.password_grant(legacy, internal), 400, "invalid_grant")


def test_taking_a_client_from_the_realm_side(api, employees_app):
    realm, app = employees_app
    issued = api.password_grant(app, "alice").data
    realm.client_policies.remove(app.ropc_policy)
    assert me(api, issued).status_code == 401
    assert_error(api.password_grant(app, "alice"), 400, "invalid_request")


def test_a_removed_default_realm_is_no_longer_used(api, employees_app):
    realm, app = employees_app
    app.ropc_policy.realms.remove(realm)
    app.ropc_policy.refresh_from_db()
    assert app.ropc_policy.default_realm is None
    assert_error(api.password_grant(app, "alice"), 400, "invalid_request")
    assert_error(api.password_grant(app, "alice", realm="employees"), 400, "invalid_request")


def test_a_user_manager_that_filters_by_request_is_asked_each_time(api, db, settings, monkeypatch):
    # A tenant-scoped manager (django-scopes and the like): its filter is the request's, not the first one's.
    settings.AUTHENTICATION_BACKENDS = STOCK
    tenant = {"staff": False}
    User = get_user_model()
    stock = type(User._default_manager).get_queryset
    monkeypatch.setattr(
        type(User._default_manager), "get_queryset", lambda self: stock(self).filter(is_staff=tenant["staff"])
    )
    User.objects.create_user("dora", password="dora pass phrase 5")
    app = clients.register_client(name="Legacy", confidential=False).application
    assert sign_in(api, app, "dora", "dora pass phrase 5").status_code == 200
    tenant["staff"] = True
    assert authenticate(username="dora", password="dora pass phrase 5") is None
    assert_error(sign_in(api, app, "dora", "dora pass phrase 5"), 400, "invalid_grant")


class LowerCasedUsername(CharField):
    def get_prep_value(self, value):
        return super().get_prep_value(value).lower()


def test_a_username_field_that_rewrites_names_is_used_as_django_uses_it(api, db, settings, monkeypatch):
    settings.AUTHENTICATION_BACKENDS = STOCK
    User = get_user_model()
    monkeypatch.setattr(User._meta.get_field("username"), "__class__", LowerCasedUsername)
    User.objects.create_user("dora", password="dora pass phrase 5")
    app = clients.register_client(name="Legacy", confidential=False).application
    assert authenticate(username="DORA", password="dora pass phrase 5") is not None
    assert sign_in(api, app, "DORA", "dora pass phrase 5").status_code == 200
