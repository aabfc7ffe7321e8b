import secrets

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class Realm(models.Model):
    """A user directory a client signs people in to. The same login name can exist in several."""

    DIRECTORY = "directory"
    PROJECT = "project"
    SOURCES = [
        (DIRECTORY, _("its own accounts")),
        (PROJECT, _("the project's users, through Django's authenticate()")),
    ]

    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=150)
    source = models.CharField(_("accounts from"), max_length=20, choices=SOURCES, default=DIRECTORY)
    is_active = models.BooleanField(_("active"), default=True)
    allow_email_login = models.BooleanField(
        _("sign in with email address"),
        default=False,
        help_text=_("Accounts may sign in with their email address as well as their login name."),
    )
    MFA_ENROLLED = "enrolled"
    MFA_REQUIRED = "required"
    MFA_POLICIES = [
        (MFA_ENROLLED, _("accounts with a second factor must use it")),
        (MFA_REQUIRED, _("every account must use a second factor")),
    ]
    mfa = models.CharField(
        _("two-step sign-in"),
        max_length=20,
        choices=MFA_POLICIES,
        default=MFA_ENROLLED,
        help_text=_("The project realm follows ROPC_PROVIDER['PROJECT_REALM_MFA'] instead."),
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            # The project's users form one directory; a second door to it would give one user two
            # realms and make "which realm is this token of" ambiguous.
            models.UniqueConstraint(fields=["source"], condition=Q(source="project"), name="ropc_one_project_realm"),
        ]

    def __str__(self):
        return self.slug

    @property
    def is_directory(self):
        return self.source == self.DIRECTORY


class RealmAccount(models.Model):
    """A directory account: its own Django user, known in its realm by a login name."""

    realm = models.ForeignKey(Realm, on_delete=models.PROTECT, related_name="accounts")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="realm_account")
    login_name = models.CharField(_("login name"), max_length=100, help_text=_("As the account was created."))
    # Case-folded NFKC form: what lookups and uniqueness use, so "Alice" and "ａｌｉｃｅ" are one account.
    login_key = models.CharField(max_length=100, editable=False)
    email_key = models.CharField(max_length=254, null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["realm", "login_key"], name="ropc_unique_login_per_realm"),
            models.UniqueConstraint(
                fields=["realm", "email_key"],
                condition=Q(email_key__isnull=False),
                name="ropc_unique_email_per_realm",
            ),
        ]

    def __str__(self):
        return f"{self.login_name} ({self.realm_id and self.realm.slug})"


# Durations of a client's policy: blank (the setting's) or a positive number of seconds.
LIFETIME_FIELDS = ("access_token_lifetime", "refresh_token_lifetime", "session_max_lifetime", "session_idle_timeout")


class ClientPolicy(models.Model):
    """What one DOT Application may do at our endpoint, beyond DOT's own fields.

    A password-grant Application without a policy row is served with the defaults below, so a
    project's existing DOT clients keep working; ``ropc_client create`` always writes one.
    """

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ropc_policy",
    )
    allowed_scopes = models.CharField(
        _("allowed scopes"),
        max_length=1000,
        blank=True,
        help_text=_("Space-separated. Blank allows every scope the project defines."),
    )
    access_token_lifetime = models.PositiveIntegerField(
        _("access token lifetime (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Blank uses ROPC_PROVIDER['ACCESS_TOKEN_LIFETIME']."),
    )
    refresh_token_lifetime = models.PositiveIntegerField(
        _("refresh token lifetime (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Blank uses ROPC_PROVIDER['REFRESH_TOKEN_LIFETIME']."),
    )
    session_max_lifetime = models.PositiveIntegerField(
        _("session maximum lifetime (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("No refresh extends a sign-in past this. Blank uses ROPC_PROVIDER['SESSION_MAX_LIFETIME']."),
    )
    session_idle_timeout = models.PositiveIntegerField(
        _("session idle timeout (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_(
            "A refresh after this long without one is refused. Blank uses ROPC_PROVIDER['SESSION_IDLE_TIMEOUT']."
        ),
    )
    issue_refresh_tokens = models.BooleanField(_("issue refresh tokens"), default=True)
    refresh_grace_seconds = models.PositiveIntegerField(
        _("refresh grace period (seconds)"),
        default=0,
        help_text=_(
            "For mobile clients that lose the answer to a refresh: within this many seconds the "
            "just-rotated refresh token may be presented again, once, for a fresh pair. 0: off."
        ),
    )
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("An inactive client cannot authenticate; its tokens are revoked.")
    )
    realms = models.ManyToManyField(Realm, related_name="client_policies", blank=True, verbose_name=_("realms"))
    default_realm = models.ForeignKey(
        Realm,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("default realm"),
        help_text=_("Used when a token request names no realm. Blank: requests must name one."),
    )
    may_forward_user_ip = models.BooleanField(
        _("may forward the end user's IP address"),
        default=False,
        help_text=_(
            "Confidential server-side clients only: attack protection counts failures against the "
            "address the client names, not the client's own."
        ),
    )
    # Our keyed hash of a confidential client's secret (client_secrets.py). It lives here, not in
    # DOT's Application.client_secret, which DOT's own endpoints would compare as a secret.
    client_secret_verifier = models.CharField(max_length=255, blank=True, editable=False)
    may_introspect = models.BooleanField(
        _("may introspect tokens"),
        default=False,
        help_text=_("A resource server that may call the introspection endpoint (RFC 7662)."),
    )

    class Meta:
        verbose_name = _("password-grant client")
        verbose_name_plural = _("password-grant clients")
        # The database agrees with clients.register_client: a lifetime is blank or positive.
        constraints = [
            models.CheckConstraint(
                condition=Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": 1}), name=f"ropc_{field}_positive"
            )
            for field in (
                "access_token_lifetime",
                "refresh_token_lifetime",
                "session_max_lifetime",
                "session_idle_timeout",
            )
        ]

    def __str__(self):
        return f"Policy of {self.application}"

    @property
    def scope_list(self):
        return self.allowed_scopes.split()


class SessionCutoff(models.Model):
    """The moment before which a user's refresh tokens stop working. One row per user, created
    the first time their sessions are revoked."""

    PASSWORD_CHANGED = "password_changed"
    SIGNED_OUT = "signed_out"
    OPERATOR = "operator"
    ACCOUNT_DEACTIVATED = "account_deactivated"
    SECOND_FACTOR_REMOVED = "second_factor_removed"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    REASONS = [
        (PASSWORD_CHANGED, _("password changed")),
        (SIGNED_OUT, _("user signed out everywhere")),
        (OPERATOR, _("revoked by an operator")),
        (ACCOUNT_DEACTIVATED, _("account deactivated")),
        (SECOND_FACTOR_REMOVED, _("second factor removed")),
        (RECOVERY_CODES_REGENERATED, _("recovery codes regenerated")),
    ]

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="session_cutoff")
    refresh_tokens_valid_from = models.DateTimeField(
        _("refresh tokens valid from"),
        help_text=_("Refresh tokens issued before this moment are refused; later ones work."),
    )
    reason = models.CharField(_("why it moved"), max_length=30, choices=REASONS)

    class Meta:
        verbose_name = _("session cutoff")

    def __str__(self):
        return f"{self.user} from {self.refresh_tokens_valid_from:%Y-%m-%d %H:%M:%S} ({self.reason})"


def _new_subject():
    return secrets.token_urlsafe(24)


class Subject(models.Model):
    """A user's OpenID Connect ``sub``: random, so it reveals no database id or order, and
    stored, so it never changes. Created the first time an ID token names the user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_subject")
    sub = models.CharField(max_length=64, unique=True, default=_new_subject, editable=False)

    def __str__(self):
        return self.sub


class GraceRetry(models.Model):
    """A refresh token already honoured once by its client's grace period (see refresh.py)."""

    refresh_token = models.OneToOneField(
        oauth2_settings.REFRESH_TOKEN_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    retried = models.DateTimeField(auto_now_add=True)


# -- second factors (mfa.py) and the first-party sign-in challenge (challenges.py) ---------------


class Authenticator(models.Model):
    """A user's TOTP authenticator (RFC 6238). Active once confirmed; until then an enrolment in
    progress, which a new enrolment replaces."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="authenticator")
    # Base32, as authenticator apps take it. Stored as is: TOTP needs the secret itself to compute
    # codes (unlike a password, it cannot be hashed); the database's protection is its protection.
    secret = models.CharField(max_length=64, editable=False)
    confirmed_at = models.DateTimeField(_("active since"), null=True, blank=True)
    # The time step of the last code accepted: a code is accepted at most once (RFC 6238 §5.2).
    last_used_step = models.BigIntegerField(null=True, blank=True, editable=False)
    # Consecutive wrong codes, cleared by a right one (mfa.SECOND_FACTOR_MAX_FAILURES).
    failed_attempts = models.PositiveIntegerField(default=0, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("authenticator")

    def __str__(self):
        return f"Authenticator of {self.user}"


class RecoveryCode(models.Model):
    """One single-use recovery code, stored as a keyed hash only."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("recovery code")


class AuthSession(models.Model):
    """A sign-in whose password was right and whose second factor is due (the draft's
    ``auth_session``). Known by the SHA-256 of its value only; bound to client, realm and account."""

    digest = models.CharField(max_length=64, unique=True, editable=False)
    application = models.ForeignKey(oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+")
    realm = models.ForeignKey(Realm, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    login_name = models.CharField(max_length=254)
    # What attack protection counted the password under, so wrong codes count there too.
    login_key = models.CharField(max_length=254)
    account_key = models.CharField(max_length=100, blank=True)
    scope = models.TextField(blank=True)
    code_challenge = models.CharField(max_length=128, blank=True)
    # The secret this sign-in offered an account that must enrol (a required realm's): only a code
    # of it enrols, so another sign-in with the password cannot swap in its own.
    enrolment_secret = models.CharField(max_length=64, blank=True)
    # When the password was checked: the ID token's auth_time.
    auth_time = models.DateTimeField()
    expires = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)


class AuthorizationCode(models.Model):
    """A code the challenge endpoint minted, redeemed once at the token endpoint. Not DOT's Grant:
    the host's own DOT token endpoint would redeem that."""

    digest = models.CharField(max_length=64, unique=True, editable=False)
    application = models.ForeignKey(oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+")
    realm = models.ForeignKey(Realm, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    login_name = models.CharField(max_length=254)
    scope = models.TextField(blank=True)
    code_challenge = models.CharField(max_length=128, blank=True)
    auth_time = models.DateTimeField()
    # Authentication methods (space-separated amr values), e.g. "pwd otp".
    methods = models.CharField(max_length=100)
    expires = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    # What its first use issued, which a second use revokes (RFC 6749 §4.1.2): the token family,
    # and the access token for a client that gets no refresh tokens.
    token_family = models.UUIDField(null=True, blank=True)
    # A checksum, not a foreign key: a relation to access tokens would cost every refresh's delete
    # of its old access token a collector pass (tokens._plain_access_token_delete).
    access_token_checksum = models.CharField(max_length=64, blank=True)


# -- sessions (sessions.py) and the audit trail (audit.py) ----------------------------------------


class Session(models.Model):
    """One sign-in and the refresh-token family that descends from it. Its id is the family's id,
    so a refresh token names its session with no lookup."""

    SIGNED_OUT = "signed_out"
    CUT_OFF = "cut_off"
    REUSE_DETECTED = "reuse_detected"
    OPERATOR = "operator"
    EXPIRED = "expired"
    IDLE = "idle"
    CLIENT_DEACTIVATED = "client_deactivated"
    REALM_DEACTIVATED = "realm_deactivated"
    USER_DELETED = "user_deleted"
    END_REASONS = [
        (SIGNED_OUT, _("signed out")),
        (CUT_OFF, _("ended with all the user's sessions")),
        (REUSE_DETECTED, _("refresh token reuse detected")),
        (OPERATOR, _("ended by an operator")),
        (EXPIRED, _("expired")),
        (IDLE, _("idle too long")),
        (CLIENT_DEACTIVATED, _("client deactivated or no longer allowed the realm")),
        (REALM_DEACTIVATED, _("realm deactivated")),
        (USER_DELETED, _("its user was deleted")),
    ]

    id = models.UUIDField(primary_key=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ropc_sessions")
    realm = models.ForeignKey(Realm, on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="ropc_sessions"
    )
    login_name = models.CharField(_("login name"), max_length=254)
    # When the password was checked: the ID token's auth_time.
    started_at = models.DateTimeField(_("started"))
    # Set when it ends; while it lives, its newest refresh token's issue says it (sessions.py).
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=200, blank=True)
    # For a client that gets no refresh tokens, the one access token the session has. A checksum,
    # not a foreign key: see AuthorizationCode.access_token_checksum.
    access_token_checksum = models.CharField(max_length=64, blank=True, db_index=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    end_reason = models.CharField(_("why it ended"), max_length=30, choices=END_REASONS, blank=True)

    class Meta:
        verbose_name = _("session")
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["user", "ended_at"], name="ropc_session_user_open")]

    def __str__(self):
        return f"{self.login_name} on {self.application_id} since {self.started_at:%Y-%m-%d %H:%M:%S}"


class SecurityEvent(models.Model):
    """One entry of the audit trail. Never holds a password, secret, token, code or auth_session."""

    SIGN_IN_SUCCEEDED = "sign_in_succeeded"
    SIGN_IN_FAILED = "sign_in_failed"
    LOCKOUT_STARTED = "lockout_started"
    ADDRESS_THROTTLED = "address_throttled"
    REFRESH_SUCCEEDED = "refresh_succeeded"
    REFRESH_REFUSED = "refresh_refused"
    REUSE_DETECTED = "reuse_detected"
    SESSION_ENDED = "session_ended"
    CUTOFF_MOVED = "cutoff_moved"
    CLIENT_REGISTERED = "client_registered"
    CLIENT_SECRET_ROTATED = "client_secret_rotated"
    CLIENT_CHANGED = "client_changed"
    CLIENT_DEACTIVATED = "client_deactivated"
    REALM_CHANGED = "realm_changed"
    ACCOUNT_CHANGED = "account_changed"
    SECOND_FACTOR_ENROLLED = "second_factor_enrolled"
    SECOND_FACTOR_REMOVED = "second_factor_removed"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    SECOND_FACTOR_FAILED = "second_factor_failed"
    CLIENT_AUTHENTICATION_FAILED = "client_authentication_failed"
    SESSION_ADOPTED = "session_adopted"
    TYPES = [
        (SIGN_IN_SUCCEEDED, _("sign-in succeeded")),
        (SIGN_IN_FAILED, _("sign-in failed")),
        (LOCKOUT_STARTED, _("lockout started")),
        (ADDRESS_THROTTLED, _("address throttled")),
        (REFRESH_SUCCEEDED, _("refresh succeeded")),
        (REFRESH_REFUSED, _("refresh refused")),
        (REUSE_DETECTED, _("refresh token reuse detected")),
        (SESSION_ENDED, _("session ended")),
        (CUTOFF_MOVED, _("session cutoff moved")),
        (CLIENT_REGISTERED, _("client registered")),
        (CLIENT_SECRET_ROTATED, _("client secret rotated")),
        (CLIENT_CHANGED, _("client changed")),
        (CLIENT_DEACTIVATED, _("client deactivated")),
        (REALM_CHANGED, _("realm changed")),
        (ACCOUNT_CHANGED, _("account changed")),
        (SECOND_FACTOR_ENROLLED, _("second factor enrolled")),
        (SECOND_FACTOR_REMOVED, _("second factor removed")),
        (RECOVERY_CODES_REGENERATED, _("recovery codes regenerated")),
        (SECOND_FACTOR_FAILED, _("second factor refused")),
        (CLIENT_AUTHENTICATION_FAILED, _("client authentication failed")),
        (SESSION_ADOPTED, _("session taken over from DOT's endpoint")),
    ]

    time = models.DateTimeField(_("time"), db_index=True)
    type = models.CharField(_("event"), max_length=40, choices=TYPES)
    # Why: a failure's category, a session's end reason, a cutoff's reason, what changed.
    reason = models.CharField(_("reason"), max_length=60, blank=True)
    # Plain values, not foreign keys: the trail outlives the realms, users and clients it names.
    realm = models.CharField(_("realm"), max_length=40, blank=True)
    login_name = models.CharField(_("login name"), max_length=254, blank=True)
    user_id = models.CharField(_("user id"), max_length=64, blank=True)
    client_id = models.CharField(_("client id"), max_length=100, blank=True)
    client_name = models.CharField(_("client"), max_length=255, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=200, blank=True)
    session_id = models.UUIDField(_("session"), null=True, blank=True)
    # Who made an operator's change: the admin user, or "command line".
    actor = models.CharField(_("by"), max_length=254, blank=True)

    class Meta:
        verbose_name = _("security event")
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["type", "time"], name="ropc_event_type_time"),
            models.Index(fields=["login_name"], name="ropc_event_login"),
            models.Index(fields=["ip_address"], name="ropc_event_ip"),
        ]

    def __str__(self):
        return f"{self.get_type_display()} at {self.time:%Y-%m-%d %H:%M:%S}"
