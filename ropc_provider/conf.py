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
    # Generator of access and refresh token values: a callable taking the oauthlib request.
    "TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
}

IMPORT_STRINGS = {"TOKEN_GENERATOR", "CLAIMS_HOOK"}


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
