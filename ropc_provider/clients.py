"""Registering password-grant clients and authenticating them: the one place these rules live."""

from dataclasses import dataclass, field

from django.db import transaction
from django.views.decorators.debug import sensitive_variables
from oauth2_provider.models import AbstractApplication, get_application_model
from oauth2_provider.scopes import get_scopes_backend

from . import audit, client_secrets, protection, sessions, statements
from .conf import LONGEST_DURATION, ropc_settings
from .exceptions import InvalidInput
from .models import ClientPolicy, SecurityEvent
from .realms import get_realm, project_realm
from .sessions import revoke_client_tokens

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = ["RegisteredClient", "register_client", "update_client", "rotate_secret", "set_active", "describe_client"]


@dataclass(frozen=True)
class RegisteredClient:
    application: AbstractApplication
    # The plain secret, for the one showing at creation; None for public clients. Out of repr, so
    # no traceback or log line shows it.
    client_secret: str | None = field(repr=False)


def known_scopes():
    return set(get_scopes_backend().get_all_scopes())


def _check_scopes(scopes):
    unknown = sorted(set(scopes) - known_scopes())
    if unknown:
        raise InvalidInput(
            f"Unknown scope(s): {', '.join(unknown)}. Known scopes: {', '.join(sorted(known_scopes()))}."
        )


def register_client(
    *,
    name,
    confidential,
    scopes=(),
    issue_refresh_tokens=True,
    access_token_lifetime=None,
    refresh_token_lifetime=None,
    resource_server=False,
    realms=(),
    default_realm=None,
    may_forward_user_ip=False,
    refresh_grace_seconds=0,
    session_max_lifetime=None,
    session_idle_timeout=None,
):
    """Create a client and its policy. A resource server is a confidential client that may only
    introspect tokens; it can never use the password grant.

    ``realms`` are slugs; without any the client signs in the project's own users. With one realm
    it is the default; with several, token requests must name one unless ``default_realm`` is set.
    """
    name, scopes = _checked_details(
        name,
        scopes,
        access_token_lifetime=access_token_lifetime,
        refresh_token_lifetime=refresh_token_lifetime,
        session_max_lifetime=session_max_lifetime,
        session_idle_timeout=session_idle_timeout,
    )
    check_policy(confidential=confidential, resource_server=resource_server, may_forward_user_ip=may_forward_user_ip)
    realm_objects, default = realms_of(
        [get_realm(slug) for slug in realms],
        default_realm,
        resource_server=resource_server,
    )

    Application = get_application_model()
    secret = client_secrets.generate_secret() if confidential else None
    with transaction.atomic():
        application = Application.objects.create(
            name=name,
            client_type=(Application.CLIENT_CONFIDENTIAL if confidential else Application.CLIENT_PUBLIC),
            # Resource servers get a grant type our token endpoint never serves.
            authorization_grant_type=(
                Application.GRANT_CLIENT_CREDENTIALS if resource_server else Application.GRANT_PASSWORD
            ),
            hash_client_secret=True,
            client_secret=client_secrets.unknown_to_dot() if secret else "",
            redirect_uris="",
        )
        policy = ClientPolicy.objects.create(
            application=application,
            allowed_scopes=" ".join(scopes),
            issue_refresh_tokens=issue_refresh_tokens,
            access_token_lifetime=access_token_lifetime,
            refresh_token_lifetime=refresh_token_lifetime,
            may_introspect=resource_server,
            default_realm=default,
            may_forward_user_ip=may_forward_user_ip,
            refresh_grace_seconds=refresh_grace_seconds,
            session_max_lifetime=session_max_lifetime,
            session_idle_timeout=session_idle_timeout,
            client_secret_verifier=client_secrets.make_verifier(secret) if secret else "",
        )
        policy.realms.set(realm_objects)
    return RegisteredClient(application=application, client_secret=secret)


LIFETIMES = {
    "access_token_lifetime": "The access token lifetime",
    "refresh_token_lifetime": "The refresh token lifetime",
    "session_max_lifetime": "The session maximum lifetime",
    "session_idle_timeout": "The session idle timeout",
}


def _checked_details(name, scopes, **lifetimes):
    """A client's name and scopes as stored, after the rules on them and on its lifetimes."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A client needs a name.")
    if len(name) > 255:
        raise InvalidInput("A client name is at most 255 characters.")
    for field_name, value in lifetimes.items():
        if value is not None and value <= 0:
            raise InvalidInput(f"{LIFETIMES[field_name]} must be a positive number of seconds.")
        if value is not None and value > LONGEST_DURATION:
            raise InvalidInput(f"{LIFETIMES[field_name]} must be at most {LONGEST_DURATION} seconds (ten years).")
    scopes = list(dict.fromkeys(scopes))
    _check_scopes(scopes)
    return name, scopes


def update_client(
    policy,
    *,
    name,
    scopes,
    realms,
    default_realm,
    access_token_lifetime,
    refresh_token_lifetime,
    issue_refresh_tokens,
    refresh_grace_seconds,
    may_forward_user_ip,
    session_max_lifetime=None,
    session_idle_timeout=None,
):
    """Change a client's policy by the rules ``register_client`` follows (its kind stays).
    ``realms``: Realm objects or slugs. A realm taken away ends the client's sessions in it (the
    receiver of the realms relation)."""
    name, scopes = _checked_details(
        name,
        scopes,
        access_token_lifetime=access_token_lifetime,
        refresh_token_lifetime=refresh_token_lifetime,
        session_max_lifetime=session_max_lifetime,
        session_idle_timeout=session_idle_timeout,
    )
    application = policy.application
    check_policy(
        confidential=is_confidential(application),
        resource_server=policy.may_introspect,
        may_forward_user_ip=may_forward_user_ip,
    )
    realm_objects = [get_realm(realm) if isinstance(realm, str) else realm for realm in realms]
    realm_objects, default = realms_of(realm_objects, default_realm, resource_server=policy.may_introspect)
    with transaction.atomic():
        policy.allowed_scopes = " ".join(scopes)
        policy.access_token_lifetime = access_token_lifetime
        policy.refresh_token_lifetime = refresh_token_lifetime
        policy.session_max_lifetime = session_max_lifetime
        policy.session_idle_timeout = session_idle_timeout
        policy.issue_refresh_tokens = issue_refresh_tokens
        policy.refresh_grace_seconds = refresh_grace_seconds or 0
        policy.may_forward_user_ip = may_forward_user_ip
        policy.default_realm = default
        policy.save()
        policy.realms.set(realm_objects)
        if application.name != name:
            application.name = name
            application.save(update_fields=["name"])
    return policy


def check_policy(*, confidential, resource_server=False, may_forward_user_ip=False):
    """The rules of a client's kind, whoever writes it (CLI, admin, code). Raises ``InvalidInput``."""
    if resource_server and not confidential:
        raise InvalidInput("A resource server must be a confidential client.")
    if may_forward_user_ip and not confidential:
        # Anyone can send any header from a public client; only a server we authenticate may.
        raise InvalidInput("Only a confidential client may forward its end user's IP address.")


def realms_of(realms, default_realm=None, *, resource_server=False):
    """The realms a client signs people in to, and its default realm (Realm objects out; the
    default may come as a slug), by the rules every face follows: a resource server takes none;
    none means the project's own users; a client with one realm has it as default; a default is
    one of the client's realms. Raises ``InvalidInput``."""
    realms = list(dict.fromkeys(realms))
    if resource_server:
        if realms or default_realm:
            raise InvalidInput("A resource server signs nobody in: it takes no realms.")
        return [], None
    realms = realms or [project_realm()]
    if default_realm is None:
        return realms, realms[0] if len(realms) == 1 else None
    wanted = getattr(default_realm, "slug", default_realm)
    default = next((realm for realm in realms if realm.slug == wanted), None)
    if default is None:
        raise InvalidInput(f"The default realm {wanted!r} must be one of the client's realms.")
    return realms, default


# Every request to the token endpoint looks its client up: a statement written once (statements.py).
_CLIENT = statements.Lookup(
    get_application_model(),
    lambda client_id: (
        get_application_model()
        .objects.select_related("ropc_policy", "ropc_policy__default_realm")
        .filter(client_id=client_id)[:1]
    ),
)


def load_client(client_id):
    """The Application with this client_id, its policy and default realm in one query, or None."""
    if not client_id or len(client_id) > 255:
        return None
    application = _CLIENT.first(client_id)
    if application is None:
        return None
    # A deactivated client is no client: it authenticates as nothing, as an unknown one would.
    return application if policy_of(application).is_active else None


def policy_of(application):
    """The client's policy; an unsaved default one for DOT clients registered without us."""
    try:
        return application.ropc_policy
    except ClientPolicy.DoesNotExist:
        return ClientPolicy(application=application)


def is_confidential(application):
    return application.client_type == application.CLIENT_CONFIDENTIAL


def may_use_password_grant(application):
    return application.authorization_grant_type == application.GRANT_PASSWORD


def may_forward_user_ip(application):
    """Whether this (authenticated) client may name its end user's address for attack protection."""
    return is_confidential(application) and policy_of(application).may_forward_user_ip


@sensitive_variables()
def verify_client_secret(application, provided):
    if not is_confidential(application):
        # A public client has no secret; one sent anyway never makes it confidential.
        return False
    policy = policy_of(application)
    if policy.pk is None or not policy.client_secret_verifier:
        # DOT's own client (or one given a policy in the admin): its secret as DOT stores it,
        # checked as DOT checks it and never rewritten, so DOT's endpoints keep accepting it.
        return client_secrets.check_dot_secret(provided, application.client_secret)
    matched, renewed = client_secrets.check_verifier(provided, policy.client_secret_verifier)
    if renewed:
        ClientPolicy.objects.filter(pk=policy.pk).update(client_secret_verifier=renewed)
        policy.client_secret_verifier = renewed
    return matched


def authentication_failed(application, *, ip):
    """Put a client's failed authentication on record: a known client with a wrong (or no) secret,
    or an id no live client has. Guessing costs the sender nothing, so once a minute per client
    and address. What was sent as the id of no client is not kept: it may be a secret pasted there."""
    if protection.worth_recording("client_authentication", application.pk if application else "", ip=ip):
        reason = "wrong_secret" if application is not None else "unknown_client"
        audit.record(SecurityEvent.CLIENT_AUTHENTICATION_FAILED, client=application, reason=reason, ip=ip)


def access_token_lifetime(application):
    return policy_of(application).access_token_lifetime or ropc_settings.ACCESS_TOKEN_LIFETIME


def session_capped_access_token_lifetime(application, *, started_at, now):
    """The client's access-token lifetime, cut to what a session begun at ``started_at`` could
    have left at ``now``: no token outlives its session."""
    return sessions.capped_to_session(
        access_token_lifetime(application),
        started_at=started_at,
        now=now,
        max_lifetime=session_max_lifetime(application),
        idle_timeout=session_idle_timeout(application),
        refresh_lifetime=refresh_token_lifetime(application) if policy_of(application).issue_refresh_tokens else None,
    )


def refresh_token_lifetime(application):
    return policy_of(application).refresh_token_lifetime or ropc_settings.REFRESH_TOKEN_LIFETIME


def session_max_lifetime(application):
    return policy_of(application).session_max_lifetime or ropc_settings.SESSION_MAX_LIFETIME


def session_idle_timeout(application):
    """Seconds without a refresh that end a session, or None (the refresh token's lifetime does)."""
    return policy_of(application).session_idle_timeout or ropc_settings.SESSION_IDLE_TIMEOUT


def allowed_scopes(application):
    """Scopes this client may request: its policy's list, or every scope the project defines."""
    return set(policy_of(application).scope_list) or known_scopes()


def default_scopes(application):
    defaults = get_scopes_backend().get_default_scopes(application=application, request=None)
    return [scope for scope in defaults if scope in allowed_scopes(application)]


def registered_clients():
    Application = get_application_model()
    return (
        Application.objects.filter(ropc_policy__isnull=False)
        .select_related("ropc_policy", "ropc_policy__default_realm")
        .prefetch_related("ropc_policy__realms")
        .order_by("pk")
    )


def describe_client(application):
    """What an operator may see of a client: never its secret."""
    policy = policy_of(application)
    return {
        "client_id": application.client_id,
        "name": application.name,
        "client_type": application.client_type,
        "resource_server": policy.may_introspect,
        "may_forward_user_ip": policy.may_forward_user_ip,
        "realms": [realm.slug for realm in policy.realms.all()] if policy.pk else [],
        "default_realm": policy.default_realm.slug if policy.default_realm_id else None,
        # What it may ask for now; "all_scopes": its list is the project's, new scopes included.
        "scopes": sorted(allowed_scopes(application)),
        "all_scopes": not policy.scope_list,
        "refresh_tokens": policy.issue_refresh_tokens,
        "refresh_grace_seconds": policy.refresh_grace_seconds,
        "access_token_lifetime": access_token_lifetime(application),
        "refresh_token_lifetime": refresh_token_lifetime(application),
        "session_max_lifetime": session_max_lifetime(application),
        "session_idle_timeout": session_idle_timeout(application),
    }


def rotate_secret(application):
    """Give a confidential client a new secret; the old one stops working at once. Returns the
    new secret for its one showing."""
    if not is_confidential(application):
        raise InvalidInput(f"{application.name!r} is a public client: it has no secret.")
    secret = client_secrets.generate_secret()
    with transaction.atomic():
        policy = policy_of(application)
        if policy.pk is None:
            raise InvalidInput(f"{application.name!r} is not one of our clients; change its secret in DOT's admin.")
        ClientPolicy.objects.filter(pk=policy.pk).update(client_secret_verifier=client_secrets.make_verifier(secret))
        # A client that DOT could still authenticate (adopted with its DOT secret) no longer can.
        application.client_secret, application.hash_client_secret = client_secrets.unknown_to_dot(), True
        application.save(update_fields=["client_secret", "hash_client_secret"])
        audit.record(SecurityEvent.CLIENT_SECRET_ROTATED, client=application)
    return secret


def set_active(policy, active):
    """Activate or deactivate a client; deactivating revokes every token it holds."""

    with transaction.atomic():
        policy.is_active = active
        policy.save(update_fields=["is_active"])
        event = SecurityEvent.CLIENT_CHANGED if active else SecurityEvent.CLIENT_DEACTIVATED
        audit.record(event, client=policy.application, reason="activated" if active else "")
        if not active:
            revoke_client_tokens(policy.application)
