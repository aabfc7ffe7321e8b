"""Settings of ropc_provider, read through one object: ``ropc_settings``.

A project sets ``ROPC_PROVIDER = {...}`` in its Django settings; every key is optional.
Values named in ``IMPORT_STRINGS`` are dotted paths imported on first use.
"""

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS = {
    # Lifetime of an access token, in seconds, unless the client's policy sets its own.
    "ACCESS_TOKEN_LIFETIME": 3600,
    # Lifetime of a refresh token, in seconds from its issue, unless the client's policy sets its own.
    # Rotation issues a new refresh token on every use, so an active session slides forward.
    "REFRESH_TOKEN_LIFETIME": 14 * 24 * 3600,
    # Presenting a refresh token that was already rotated away revokes its whole family
    # (RFC 9700 §4.14.2): a replayed token means it leaked.
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # Seconds after a rotation during which the rotated-away token, presented again, is refused
    # without revoking its family: a client that fires two refreshes at once (two API calls hit
    # an expired access token together) is not a thief. Later reuse revokes the family. 0 makes
    # every reuse revoke it, which signs out such clients.
    "REFRESH_TOKEN_REUSE_TOLERANCE": 1.0,
    # Set the user's last_login on every successful password grant.
    "UPDATE_LAST_LOGIN": True,
    # No single request parameter may be longer than this (characters); longer is invalid_request.
    # Bounds the work a request can cause (a 1 MB "password" is not a password).
    "MAX_PARAMETER_LENGTH": 4096,
    # Dotted path to a callable adding claims to ID tokens and userinfo, called as
    # hook(user=, realm=, client=, scopes=, request=) and returning a dict. It cannot set the
    # claims that identify the token or the user (see claims.PROTECTED_CLAIMS).
    "CLAIMS_HOOK": None,
    # -- attack protection (see protection.py) --
    # Consecutive failures for one login name in one realm before it is locked.
    "LOCKOUT_THRESHOLD": 10,
    # First lock, in seconds; each further lock doubles it, up to LOCKOUT_MAX_SECONDS.
    "LOCKOUT_SECONDS": 60,
    "LOCKOUT_MAX_SECONDS": 900,
    # Seconds after the first failure of a series at which its failures and the doubling are
    # forgotten (a success forgets them at once).
    "LOCKOUT_RESET_AFTER": 12 * 3600,
    # Seconds an address an account signed in from stays known to it (0: off). Failures from a
    # known address are counted apart from everyone else's, so an attacker elsewhere cannot lock a
    # user out of the device they use; the attacker stays locked out.
    "KNOWN_ADDRESS_LIFETIME": 30 * 24 * 3600,
    # In the project realm, the key failures are counted under, from the username as typed: a
    # dotted path to a callable, or None for the username exactly as typed (ModelBackend matches
    # it exactly). A project whose backend matches usernames case-insensitively sets
    # "ropc_provider.accounts.normalize_login", so case variants share one counter.
    "PROJECT_LOCKOUT_KEY": None,
    # Failed attempts from one client address, across all accounts and realms, in any stretch of
    # IP_FAILURE_WINDOW seconds; attempts still running count too.
    "IP_FAILURE_LIMIT": 100,
    "IP_FAILURE_WINDOW": 300,
    # An IPv6 address counts with the others of its prefix: a /56 is what one subscriber commonly
    # gets (a /64 lets an attacker with a /56 try 256 times as often).
    "IPV6_PREFIX_LENGTH": 56,
    # Behind proxies: how many to trust in X-Forwarded-For, or a META key one of them sets
    # (e.g. "HTTP_X_REAL_IP"). Neither: the socket's address, and X-Forwarded-For is ignored.
    "TRUSTED_PROXY_COUNT": 0,
    "CLIENT_IP_HEADER": None,
    # Header in which a confidential client flagged for it names its end user's address.
    "FORWARDED_USER_IP_HEADER": "X-End-User-IP",
    # The cache alias counters live in; Redis in production, so all app servers share them.
    "PROTECTION_CACHE": "default",
    # With the cache unreachable: serve without protection and log an error (False), or refuse
    # password grants with 503 temporarily_unavailable (True).
    "PROTECTION_FAIL_CLOSED": False,
    # Refuse requests that did not arrive over HTTPS (400, never a redirect: the credentials were
    # already sent). None: required whenever DEBUG is off. Behind a TLS proxy, Django must know it
    # (SECURE_PROXY_SSL_HEADER).
    "REQUIRE_HTTPS": None,
    # The issuer identifier (RFC 8414, OpenID Connect): the https URL under which the endpoints
    # are mounted, e.g. "https://id.example.com/o". It is the `iss` of every ID token and the base
    # of every URL that discovery publishes, whatever Host header a request carries. None: DOT's
    # OIDC_ISS_ENDPOINT, else built from each request (development only; check --deploy says so).
    "ISSUER": None,
    # Generator of access and refresh token values: a callable taking the oauthlib request.
    "TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
}

IMPORT_STRINGS = {"TOKEN_GENERATOR", "CLAIMS_HOOK", "PROJECT_LOCKOUT_KEY"}


class RopcSettings:
    """Lazy view of ``settings.ROPC_PROVIDER`` over ``DEFAULTS``; reloaded when tests change settings."""

    def __init__(self, defaults=None):
        self.defaults = defaults or DEFAULTS
        self._cached = {}

    @property
    def user_settings(self):
        configured = getattr(settings, "ROPC_PROVIDER", {}) or {}
        unknown = set(configured) - set(self.defaults)
        if unknown:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"Unknown ROPC_PROVIDER setting(s): {', '.join(sorted(unknown))}")
        return configured

    def __getattr__(self, name):
        if name not in self.defaults:
            raise AttributeError(f"Invalid ROPC_PROVIDER setting: {name!r}")
        if name not in self._cached:
            value = self.user_settings.get(name, self.defaults[name])
            if name in IMPORT_STRINGS and isinstance(value, str):
                value = import_string(value)
            self._cached[name] = value
        return self._cached[name]

    def reload(self):
        self._cached = {}


ropc_settings = RopcSettings()


def _reload(*, setting, **kwargs):
    if setting == "ROPC_PROVIDER":
        ropc_settings.reload()


setting_changed.connect(_reload)
