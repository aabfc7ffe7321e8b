import pytest
from django.contrib.auth import get_user_model
from django.core import checks

from ropc_provider.checks import database_is_supported, required_apps_installed


def _ids(deploy=True):
    # Ours only: Django 6.1's model checks open a database cursor, which these tests do not need.
    ours = [checks.Tags.security, checks.Tags.compatibility]
    return {message.id for message in checks.run_checks(tags=ours, include_deployment_checks=deploy)}


def test_plaintext_token_storage_is_flagged(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": False}
    assert "ropc_provider.W001" in _ids()


def test_hashed_token_storage_is_not_flagged(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True}
    assert "ropc_provider.W001" not in _ids()


def test_the_password_grant_is_announced_once_at_deploy_check():
    assert "ropc_provider.I001" in _ids(deploy=True)
    assert "ropc_provider.I001" not in _ids(deploy=False)


def test_missing_dot_is_an_error(settings):
    assert required_apps_installed(None) == []
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "oauth2_provider"]
    assert [m.id for m in required_apps_installed(None)] == ["ropc_provider.E001"]


def test_our_drf_authentication_with_the_browsable_api_but_no_drf_app_is_flagged(settings):
    ours = "ropc_provider.authentication.BearerAuthentication"
    settings.REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": [ours]}
    assert required_apps_installed(None) == []
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    assert [m.id for m in required_apps_installed(None)] == ["ropc_provider.W006"]
    json_only = ["rest_framework.renderers.JSONRenderer"]  # renders no template: no 500
    settings.REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": [ours], "DEFAULT_RENDERER_CLASSES": json_only}
    assert required_apps_installed(None) == []
    settings.REST_FRAMEWORK = {}  # a project that does not use it needs no DRF app
    assert required_apps_installed(None) == []


def test_cleartokens_without_dot_reuse_protection_is_flagged(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "REFRESH_TOKEN_REUSE_PROTECTION": False}
    assert "ropc_provider.W002" in _ids()
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "REFRESH_TOKEN_REUSE_PROTECTION": True}
    assert "ropc_provider.W002" not in _ids()


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("django.core.cache.backends.dummy.DummyCache", "ropc_provider.E003"),
        ("django.core.cache.backends.locmem.LocMemCache", "ropc_provider.W003"),
        ("django.core.cache.backends.filebased.FileBasedCache", "ropc_provider.W004"),
        ("django.core.cache.backends.redis.RedisCache", None),
    ],
)
def test_the_protection_cache_must_be_shared_and_atomic(settings, tmp_path, backend, expected):
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": str(tmp_path)}}
    found = _ids() & {"ropc_provider.E003", "ropc_provider.W003", "ropc_provider.W004"}
    assert found == ({expected} if expected else set())
    assert not _ids(deploy=False) & {"ropc_provider.E003", "ropc_provider.W003", "ropc_provider.W004"}


def test_openid_connect_without_an_issuer_is_an_error(settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "ISSUER": None}
    assert "ropc_provider.E004" in _ids()
    assert "ropc_provider.E004" not in _ids(deploy=False)
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": "https://id.example.com/o"}
    assert "ropc_provider.E004" not in _ids()


def test_the_test_settings_configure_an_issuer():
    assert "ropc_provider.E004" not in _ids()


def test_a_weak_first_password_hasher_is_flagged(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert "ropc_provider.W005" in _ids()
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert "ropc_provider.W005" not in _ids()


def test_openid_connect_without_a_key_is_an_error(settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}
    assert "ropc_provider.E005" in _ids()
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ENABLED": False}
    assert "ropc_provider.E005" not in _ids()


def test_an_untested_database_backend_is_refused():

    assert database_is_supported(None) == []  # the suite's own: SQLite, or PostgreSQL in its second pass
    legacy = {"legacy": {"ENGINE": "django.db.backends.mysql", "NAME": "x"}}
    assert [message.id for message in database_is_supported(None, configured=legacy)] == ["ropc_provider.E006"]


def test_dots_token_endpoint_routed_without_our_validator_is_an_error(settings):
    # tests/urls.py routes DOT's own endpoints at /dot/, as a host project may.
    assert "ropc_provider.E009" not in _ids()
    stock = "oauth2_provider.oauth2_validators.OAuth2Validator"
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OAUTH2_VALIDATOR_CLASS": stock}
    assert "ropc_provider.E009" in _ids()
    settings.ROOT_URLCONF = "example_project.urls"  # DOT's endpoints not routed: nothing to keep out
    assert "ropc_provider.E009" not in _ids()


class StaffUser(get_user_model()):
    class Meta:
        proxy = True
        app_label = "tests"


def test_an_admin_site_of_the_projects_own_that_names_no_operator_is_flagged(db):
    from django.contrib.admin import AdminSite
    from django.contrib.auth.models import Group

    from ropc_provider.admin import record_operators
    from ropc_provider.models import Realm

    assert "ropc_provider.W007" not in _ids()  # admin.site names its operators from the start
    unrelated = AdminSite(name="shop")
    unrelated.register(Group)
    assert "ropc_provider.W007" not in _ids()  # it changes nothing of ours
    back_office = AdminSite(name="back_office")
    back_office.register(Realm)
    assert "ropc_provider.W007" in _ids()  # its changes would be on record with no actor
    record_operators(back_office)
    assert "ropc_provider.W007" not in _ids()
    staff_office = AdminSite(name="staff_office")
    staff_office.register(StaffUser)  # a proxy of the user model changes passwords all the same
    assert "ropc_provider.W007" in _ids()


def test_djangos_model_backend_letting_directory_accounts_in_is_flagged_at_deploy(settings):
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    assert "ropc_provider.W008" in _ids(deploy=True)
    assert "ropc_provider.W008" not in _ids(deploy=False)
    settings.AUTHENTICATION_BACKENDS = ["ropc_provider.backends.ModelBackend"]
    assert "ropc_provider.W008" not in _ids(deploy=True)
