"""Settings of ropc_provider, read through one object: ``ropc_settings``.

A project sets ``ROPC_PROVIDER = {...}`` in its Django settings; every key is optional.
Durations (``DURATIONS``) are seconds, or a ``datetime.timedelta``. Values named in
``IMPORT_STRINGS`` are dotted paths (or the callables themselves), imported on first use.
``problems()`` says what is wrong with the configured values; ``manage.py check`` reports it
(``ropc_provider.E008``), so a bad value is found at startup, not at the first request.
"""

from datetime import timedelta
from numbers import Real

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS = {
    # Lifetime of an access token, in seconds, unless the client's policy sets its own.
    "ACCESS_TOKEN_LIFETIME": 3600,
    # Lifetime of a refresh token, in seconds from its issue, unless the client's policy sets its own.
    # Rotation issues a new refresh token on every use, so an active session slides forward.
    "REFRESH_TOKEN_LIFETIME": 14 * 24 * 3600,
    # Seconds from a sign-in after which no refresh extends it (absolute session lifetime), unless
    # the client's policy sets its own.
    "SESSION_MAX_LIFETIME": 30 * 24 * 3600,
    # Seconds without a refresh after which a refresh is refused (idle timeout), unless the client's
    # policy sets its own. None: the refresh token's lifetime, which already ends an idle session.
    "SESSION_IDLE_TIMEOUT": None,
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
    # -- two-step sign-in (see mfa.py and challenges.py) --
    # The project realm's policy: "enrolled" (accounts with a second factor must use it) or
    # "required" (every account must; one without a factor enrols inside the sign-in).
    "PROJECT_REALM_MFA": "enrolled",
    # Seconds an auth_session (password right, second factor due) stays usable.
    "AUTH_SESSION_LIFETIME": 300,
    # Seconds a code from the authorization challenge endpoint stays redeemable.
    "AUTHORIZATION_CODE_LIFETIME": 60,
    # Consecutive wrong second-factor codes of one account, from anywhere, after which its TOTP codes
    # are refused until a recovery code (or an operator's unlock) clears them. The lockout slows
    # guessing down; this ends it.
    "SECOND_FACTOR_MAX_FAILURES": 100,
    # A user enrols their own authenticator (the self-service API) only this many seconds after
    # signing in: a stolen or forgotten access token must not let someone else add a factor.
    "ENROLMENT_SIGN_IN_MAX_AGE": 600,
    # -- the audit trail (see audit.py) --
    # Days a security event is kept; ``manage.py ropc_audit purge`` deletes older ones.
    "AUDIT_RETENTION_DAYS": 90,
    # Also record every successful refresh (one more insert per refresh; off for the volume).
    "AUDIT_REFRESH_SUCCEEDED": False,
    # Generator of access and refresh token values: a callable taking the oauthlib request.
    "TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
}

IMPORT_STRINGS = {"TOKEN_GENERATOR", "CLAIMS_HOOK", "PROJECT_LOCKOUT_KEY"}

# Ten years: any longer is a mistake, and a date that far ahead can run past what datetime holds.
LONGEST_DURATION = 10 * 365 * 24 * 3600

# Seconds or a timedelta; read back as seconds. (smallest allowed value)
DURATIONS = {
    "ACCESS_TOKEN_LIFETIME": 1,
    "SESSION_MAX_LIFETIME": 1,
    "SESSION_IDLE_TIMEOUT": 1,
    "REFRESH_TOKEN_LIFETIME": 1,
    "REFRESH_TOKEN_REUSE_TOLERANCE": 0,
    "LOCKOUT_SECONDS": 1,
    "LOCKOUT_MAX_SECONDS": 1,
    "LOCKOUT_RESET_AFTER": 1,
    "KNOWN_ADDRESS_LIFETIME": 0,
    "IP_FAILURE_WINDOW": 1,
    "AUTH_SESSION_LIFETIME": 1,
    "AUTHORIZATION_CODE_LIFETIME": 1,
    "ENROLMENT_SIGN_IN_MAX_AGE": 1,
}
# Durations that may be None (see their comments).
MAY_BE_NONE = {"SESSION_IDLE_TIMEOUT"}
# Whole seconds where they become a token's expires_in.
WHOLE_SECONDS = {
    "ACCESS_TOKEN_LIFETIME",
    "REFRESH_TOKEN_LIFETIME",
    "AUTH_SESSION_LIFETIME",
    "ENROLMENT_SIGN_IN_MAX_AGE",
}
# Whole numbers: (smallest, largest or None).
COUNTS = {
    "MAX_PARAMETER_LENGTH": (1, None),
    "LOCKOUT_THRESHOLD": (1, None),
    "IP_FAILURE_LIMIT": (1, None),
    "IPV6_PREFIX_LENGTH": (0, 128),
    "TRUSTED_PROXY_COUNT": (0, None),
    "SECOND_FACTOR_MAX_FAILURES": (1, None),
    "AUDIT_RETENTION_DAYS": (1, 36500),
}
FLAGS = {"REFRESH_TOKEN_REUSE_PROTECTION", "UPDATE_LAST_LOGIN", "PROTECTION_FAIL_CLOSED", "AUDIT_REFRESH_SUCCEEDED"}
TEXTS = {"FORWARDED_USER_IP_HEADER": False, "PROTECTION_CACHE": False, "CLIENT_IP_HEADER": True, "ISSUER": True}


def _seconds(value):
    return value.total_seconds() if isinstance(value, timedelta) else value


def _import(name, value):
    try:
        return import_string(value)
    except ImportError as error:
        # As DRF does: the message names the setting, not just the path.
        raise ImportError(f"Could not import {value!r} for ROPC_PROVIDER[{name!r}]: {error}") from error


def _problem(name, value):
    """What is wrong with one setting's value, or None."""
    if name in DURATIONS:
        if value is None and name in MAY_BE_NONE:
            return None
        seconds = _seconds(value)
        if isinstance(seconds, bool) or not isinstance(seconds, Real) or seconds < DURATIONS[name]:
            at_least = "more than 0" if DURATIONS[name] else "0 or more"
            return f"must be {at_least} seconds (a number, or a timedelta), not {value!r}"
        if seconds > LONGEST_DURATION:
            return f"must be at most {LONGEST_DURATION} seconds (ten years), not {value!r}"
    elif name in COUNTS:
        low, high = COUNTS[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            return f"must be a whole number from {low}{f' to {high}' if high is not None else ' up'}, not {value!r}"
    elif name in FLAGS:
        if not isinstance(value, bool):
            return f"must be True or False, not {value!r}"
    elif name == "PROJECT_REALM_MFA":
        if value not in ("enrolled", "required"):
            return f"must be 'enrolled' or 'required', not {value!r}"
    elif name == "REQUIRE_HTTPS":
        if value is not None and not isinstance(value, bool):
            return f"must be True, False or None, not {value!r}"
    elif name in TEXTS:
        if not (isinstance(value, str) and value) and not (TEXTS[name] and value is None):
            return f"must be a non-empty string{' or None' if TEXTS[name] else ''}, not {value!r}"
    elif name in IMPORT_STRINGS and value is not None:
        try:
            found = _import(name, value) if isinstance(value, str) else value
        except ImportError as error:
            return f"cannot be imported: {error.__cause__ or error}"
        if not callable(found):
            return f"must be a callable or the dotted path of one, not {value!r}"
    return None


def problems():
    """Every problem of ``settings.ROPC_PROVIDER``, as ``(key, message)`` pairs."""
    configured = getattr(settings, "ROPC_PROVIDER", None) or {}
    if not isinstance(configured, dict):
        return [(None, f"ROPC_PROVIDER must be a dict, not {type(configured).__name__}.")]
    found = [(key, f"Unknown ROPC_PROVIDER setting {key!r}.") for key in sorted(set(configured) - set(DEFAULTS))]
    for key in sorted(set(configured) & set(DEFAULTS)):
        message = _problem(key, configured[key])
        if message:
            found.append((key, f"ROPC_PROVIDER[{key!r}] {message}."))
    if not found:
        low, high = (_seconds(configured.get(k, DEFAULTS[k])) for k in ("LOCKOUT_SECONDS", "LOCKOUT_MAX_SECONDS"))
        if high < low:
            found.append(
                ("LOCKOUT_MAX_SECONDS", "ROPC_PROVIDER['LOCKOUT_MAX_SECONDS'] must not be less than LOCKOUT_SECONDS.")
            )
    return found


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
            raise ImproperlyConfigured(f"Unknown ROPC_PROVIDER setting(s): {', '.join(sorted(unknown))}")
        return configured

    def __getattr__(self, name):
        if name not in self.defaults:
            raise AttributeError(f"Invalid ROPC_PROVIDER setting: {name!r}")
        if name not in self._cached:
            value = self.user_settings.get(name, self.defaults[name])
            if name in IMPORT_STRINGS and isinstance(value, str):
                value = _import(name, value)
            elif name in DURATIONS:
                value = _seconds(value)
                value = int(value) if name in WHOLE_SECONDS else value
            self._cached[name] = value
        return self._cached[name]

    def reload(self):
        self._cached = {}


ropc_settings = RopcSettings()


def _reload(*, setting, **kwargs):
    if setting == "ROPC_PROVIDER":
        ropc_settings.reload()


setting_changed.connect(_reload)
