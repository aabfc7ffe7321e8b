"""System checks: the deployment facts a password-grant provider must get right."""

from django.conf import settings
from django.core.checks import Error, Info, Tags, Warning, register
from oauth2_provider.settings import oauth2_settings

from . import conf
from .conf import ropc_settings
from .metadata import configured_issuer
from .oidc import enabled


@register(Tags.security, deploy=True)
def password_grant_served_on_purpose(app_configs, **kwargs):
    # DOT warns on every password grant it serves; we serve the grant on purpose, so we say it
    # once, here, and never per request.
    return [
        Info(
            "ropc_provider serves the OAuth 2.0 password grant (RFC 6749 §4.3), which RFC 9700 §2.4 "
            "says must not be used for new work. Keep it for first-party clients that cannot move "
            "to the authorization code grant yet.",
            hint="This endpoint keeps working with OAUTH2_PROVIDER['COMPLIANT_BCP_RFC9700_PASSWORD_GRANT'] "
            "= True, which turns the grant off on DOT's own endpoints.",
            id="ropc_provider.I001",
        )
    ]


@register(Tags.security, deploy=True)
def issuer_configured(app_configs, **kwargs):
    if not enabled() or configured_issuer():
        return []
    return [
        Error(
            "OpenID Connect is on but no issuer is configured: `iss` and discovery follow each request's "
            "Host header, so tokens minted through one host name fail validation through another.",
            hint="Set ROPC_PROVIDER['ISSUER'] (or DOT's OIDC_ISS_ENDPOINT) to the https URL the endpoints "
            "are mounted under, e.g. 'https://id.example.com/o'.",
            id="ropc_provider.E004",
        )
    ]


@register(Tags.security, deploy=True)
def tokens_hashed_at_rest(app_configs, **kwargs):
    if oauth2_settings.COMPLIANT_BCP_RFC9700_TOKEN_STORAGE:
        return []
    return [
        Warning(
            "Access and refresh tokens are stored in plain text: anyone who reads the database can use them.",
            hint="Set OAUTH2_PROVIDER['COMPLIANT_BCP_RFC9700_TOKEN_STORAGE'] = True to store only "
            "their SHA-256 checksums.",
            id="ropc_provider.W001",
        )
    ]


@register(Tags.compatibility)
def required_apps_installed(app_configs, **kwargs):
    errors = []
    if "oauth2_provider" not in settings.INSTALLED_APPS:
        errors.append(Error("ropc_provider needs 'oauth2_provider' in INSTALLED_APPS.", id="ropc_provider.E001"))
    drf = getattr(settings, "REST_FRAMEWORK", {}) or {}
    ours = "ropc_provider.authentication.BearerAuthentication"
    browsable = "rest_framework.renderers.BrowsableAPIRenderer"
    renderers = drf.get("DEFAULT_RENDERER_CLASSES", [browsable])  # DRF's default includes it
    if (
        ours in drf.get("DEFAULT_AUTHENTICATION_CLASSES", ())
        and browsable in renderers
        and "rest_framework" not in settings.INSTALLED_APPS
    ):
        # The browsable API renders every answer, our 401s included, from rest_framework's
        # templates: without the app, a browser gets TemplateDoesNotExist, a 500.
        errors.append(
            Warning(
                "REST_FRAMEWORK protects your API with ropc_provider's BearerAuthentication and renders "
                "the browsable API, but 'rest_framework' is not in INSTALLED_APPS: browsers get a 500.",
                hint="Add 'rest_framework' to INSTALLED_APPS (or render JSON only).",
                id="ropc_provider.W006",
            )
        )
    return errors


@register(Tags.compatibility)
def settings_are_valid(app_configs, **kwargs):
    # The claims hook keeps its own id (E002), which the README has named since it came.
    return [
        Error(message, id="ropc_provider.E002" if key == "CLAIMS_HOOK" else "ropc_provider.E008")
        for key, message in conf.problems()
    ]


@register(Tags.security, deploy=True)
def cleartokens_keeps_revoked_refresh_tokens(app_configs, **kwargs):
    if oauth2_settings.REFRESH_TOKEN_REUSE_PROTECTION:
        return []
    return [
        Warning(
            "With OAUTH2_PROVIDER['REFRESH_TOKEN_REUSE_PROTECTION'] off, DOT's cleartokens deletes revoked "
            "refresh tokens at once, and a replayed token can no longer be recognised as one.",
            hint="Set OAUTH2_PROVIDER['REFRESH_TOKEN_REUSE_PROTECTION'] = True before scheduling cleartokens.",
            id="ropc_provider.W002",
        )
    ]


_PER_PROCESS_CACHES = ("LocMemCache",)
_NO_CACHES = ("DummyCache",)
_NON_ATOMIC_CACHES = ("FileBasedCache", "DatabaseCache")


@register(Tags.security, deploy=True)
def protection_cache_is_shared_and_atomic(app_configs, **kwargs):
    alias = ropc_settings.PROTECTION_CACHE
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    name = backend.rsplit(".", 1)[-1]
    where = f"ROPC_PROVIDER['PROTECTION_CACHE'] ({alias!r}, {name})"
    hint = "Use Redis (django.core.cache.backends.redis.RedisCache) or Memcached, shared by every process."
    if name in _NO_CACHES:
        return [Error(f"{where} keeps nothing: no lockout, no throttling.", hint=hint, id="ropc_provider.E003")]
    if name in _PER_PROCESS_CACHES:
        return [
            Warning(
                f"{where} lives in each process: every server process counts failures apart, and "
                "manage.py ropc_unlock cannot reach a lock.",
                hint=hint,
                id="ropc_provider.W003",
            )
        ]
    if name in _NON_ATOMIC_CACHES:
        return [
            Warning(
                f"{where} does not increment atomically across processes: concurrent guesses can be under-counted.",
                hint=hint,
                id="ropc_provider.W004",
            )
        ]
    return []


# Hashers a first-listed PASSWORD_HASHERS entry must not be: Django keeps them for old hashes only.
_WEAK_HASHERS = ("MD5PasswordHasher", "UnsaltedMD5PasswordHasher", "UnsaltedSHA1PasswordHasher", "SHA1PasswordHasher")


@register(Tags.security, deploy=True)
def new_passwords_hashed_strongly(app_configs, **kwargs):
    first = (getattr(settings, "PASSWORD_HASHERS", None) or [""])[0]
    if first.rsplit(".", 1)[-1] not in _WEAK_HASHERS:
        return []
    return [
        Warning(
            f"PASSWORD_HASHERS starts with {first}: new and upgraded password hashes are fast to crack, "
            "and sign-in's cost no longer slows down a guesser.",
            hint="List Django's default (PBKDF2PasswordHasher) or Argon2/scrypt first; keep weak ones after it "
            "only to verify old hashes.",
            id="ropc_provider.W005",
        )
    ]


@register(Tags.security, deploy=True)
def openid_connect_has_a_key(app_configs, **kwargs):
    if not oauth2_settings.OIDC_ENABLED or oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        return []
    return [
        Error(
            "OAUTH2_PROVIDER['OIDC_ENABLED'] is on without OIDC_RSA_PRIVATE_KEY: no ID token is issued, and "
            "discovery, keys and userinfo answer 404.",
            hint="Set OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY'] to a PEM RSA key, or turn OIDC_ENABLED off.",
            id="ropc_provider.E005",
        )
    ]


# The sign-in and rotation statements are written out by hand (signin.py, tokens.py) and run
# by the suite on these only; no untested claim of portability.
_TESTED_DATABASE_ENGINES = ("sqlite3", "spatialite", "postgresql", "postgis")


@register(Tags.compatibility)
def database_is_supported(app_configs, configured=None, **kwargs):
    errors = []
    for alias, database in (settings.DATABASES if configured is None else configured).items():
        engine = database.get("ENGINE", "")
        if engine.rsplit(".", 1)[-1] not in _TESTED_DATABASE_ENGINES:
            errors.append(
                Error(
                    f"Database {alias!r} uses {engine}: ropc_provider's sign-in and refresh statements are tested on "
                    "SQLite and PostgreSQL only.",
                    hint="Use PostgreSQL (or SQLite for development); other backends are not supported yet.",
                    id="ropc_provider.E006",
                )
            )
    return errors


def _routes_dot_token_view(patterns):
    from django.urls import URLResolver
    from oauth2_provider.views import TokenView

    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if _routes_dot_token_view(pattern.url_patterns):
                return True
        elif getattr(pattern.callback, "view_class", None) is not None and issubclass(
            pattern.callback.view_class, TokenView
        ):
            return True
    return False


def _url_patterns():
    """The project's URL patterns (loading its URLconf), or none where it fails to load: Django's
    own URL checks report that."""
    from django.urls import get_resolver

    try:
        return get_resolver().url_patterns
    except Exception:  # noqa: BLE001
        return []


@register(Tags.security, Tags.urls)
def dot_refresh_keeps_our_sessions_out(app_configs, **kwargs):
    from .dot import KeepsOurSessionsOut

    if issubclass(oauth2_settings.OAUTH2_VALIDATOR_CLASS, KeepsOurSessionsOut):
        return []
    if not _routes_dot_token_view(_url_patterns()):
        return []
    return [
        Error(
            "DOT's own token endpoint is routed, and its refresh grant would renew sessions of ours past their "
            "limits, realm and cutoff.",
            hint="Set OAUTH2_PROVIDER['OAUTH2_VALIDATOR_CLASS'] = 'ropc_provider.dot.OAuth2Validator', or mix "
            "ropc_provider.dot.KeepsOurSessionsOut into your own validator.",
            id="ropc_provider.E009",
        )
    ]


def _changes_what_we_audit(model):
    """Whether an admin of this model makes changes the audit trail names an operator for: our
    models, the clients, and the users (their screens move the session cutoff), proxies of them too."""
    model = model._meta.concrete_model
    return model._meta.app_label == "ropc_provider" or model._meta.label in (
        oauth2_settings.APPLICATION_MODEL,
        settings.AUTH_USER_MODEL,
    )


@register(Tags.security, Tags.admin)
def admin_sites_name_their_operators(app_configs, **kwargs):
    from django.contrib.admin.sites import all_sites

    _url_patterns()  # a project's own sites are made where its URLs are
    return [
        Warning(
            f"The admin site {site.name!r} changes users, clients or realms, and its changes would be on the "
            "audit trail with no operator named.",
            hint=f"Call ropc_provider.admin.record_operators(site) for the site {site.name!r}.",
            id="ropc_provider.W007",
        )
        for site in sorted(all_sites, key=lambda site: site.name)
        if not getattr(site, "records_operators", False) and any(map(_changes_what_we_audit, site._registry))
    ]


@register(Tags.security, deploy=True)
def directory_accounts_kept_from_other_login_pages(app_configs, **kwargs):
    from django.contrib.auth.backends import ModelBackend as DjangosModelBackend
    from django.utils.module_loading import import_string

    from .backends import ModelBackend

    letting_in = []
    for path in settings.AUTHENTICATION_BACKENDS:
        try:
            backend = import_string(path)
        except ImportError:  # Django reports it where it is used
            continue
        if issubclass(backend, DjangosModelBackend) and not issubclass(backend, ModelBackend):
            letting_in.append(path)
    return [
        Warning(
            f"{path} signs directory accounts in at the project's own login pages by their internal username "
            "(login@realm), without their realm's lockout or second factor.",
            hint="Use 'ropc_provider.backends.ModelBackend' instead: Django's, for the project's users only.",
            id="ropc_provider.W008",
        )
        for path in letting_in
    ]
