"""factory-boy factories that build realms, accounts, clients and tokens through the app's own
services, so what they make obeys the same rules as what the CLI and the admin make."""

from dataclasses import dataclass, field

import factory
from django.db import transaction
from django.utils import timezone
from oauthlib.common import Request

from .. import accounts, clients, realms, sessions, tokens
from ..conf import ropc_settings
from ..exceptions import InvalidInput
from ..models import Realm, RealmAccount

# Long enough for Django's password validators; tests read it from the account, not from here.
ACCOUNT_PASSWORD = "ropc test password 7f3k"  # noqa: S105


class RealmFactory(factory.django.DjangoModelFactory):
    """A directory realm (its own user list)."""

    class Meta:
        model = Realm

    slug = factory.Sequence(lambda n: f"realm{n}")
    name = factory.LazyAttribute(lambda realm: realm.slug)
    source = Realm.DIRECTORY
    allow_email_login = False

    @classmethod
    def _create(cls, model_class, *, slug, **kwargs):
        # The realm of that slug if a test made it already: realms are looked up by slug.
        return Realm.objects.filter(slug=slug).first() or realms.create_realm(slug=slug, **kwargs)


class AccountFactory(factory.django.DjangoModelFactory):
    """An account of a directory realm, with its Django user. ``account.password`` is its
    password in clear (hashed with the project's first hasher)."""

    class Meta:
        model = RealmAccount

    realm = factory.SubFactory(RealmFactory)
    login_name = factory.Sequence(lambda n: f"user{n}")
    email = None
    password = ACCOUNT_PASSWORD

    @classmethod
    def _create(cls, model_class, *, realm, login_name, email, password, **kwargs):
        account = accounts.create_account(realm, login_name, password, email=email)
        account.password = password
        return account


class ClientFactory(factory.Factory):
    """A password-grant client on the given realms (slugs, or Realm objects); a
    ``clients.RegisteredClient`` whose ``client_secret`` is set for confidential ones."""

    class Meta:
        model = clients.RegisteredClient

    name = factory.Sequence(lambda n: f"Test client {n}")
    confidential = False
    scopes = ()
    realms = ()

    @classmethod
    def _create(cls, model_class, *, realms, **kwargs):
        slugs = [getattr(realm, "slug", realm) for realm in realms]
        return clients.register_client(realms=slugs, **kwargs)

    @classmethod
    def _build(cls, model_class, **kwargs):
        raise NotImplementedError("A client exists only once registered: use ClientFactory() or .create().")


@dataclass(frozen=True)
class TokenPair:
    # Out of repr: a failing test's output or a log line must not show a working token.
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    scope: str

    @property
    def authorization(self):
        """The value of an ``Authorization`` header carrying the access token."""
        return f"Bearer {self.access_token}"


def issue_tokens(user, client, scope=None):
    """A token pair for ``user`` (a Django user or a realm account) from ``client`` (a
    ``RegisteredClient`` or an Application), as a password grant would issue it, without the
    password check: for tests of the APIs those tokens open. ``scope`` defaults to every scope
    the client may have."""
    user = getattr(user, "user", user)
    application = getattr(client, "application", client)
    # What the password grant would refuse, refused here too, so a test cannot pass on a state
    # production never reaches.
    if not user.is_active:
        raise InvalidInput("An inactive user gets no tokens.")
    if not clients.may_use_password_grant(application) or not clients.policy_of(application).is_active:
        raise InvalidInput("This client cannot use the password grant.")
    realm = realms.realm_for_refresh(clients.policy_of(application), user)
    if realm is None:
        raise InvalidInput("This client may not sign in users of this user's realm.")
    if scope is None:
        scope = " ".join(sorted(clients.allowed_scopes(application)))
    # The project's generator, as the grant uses it, so tests see the token format production does.
    oauth_request = Request("/o/token/")
    oauth_request.user, oauth_request.client, oauth_request.scopes = user, application, scope.split()
    generate = ropc_settings.TOKEN_GENERATOR
    access_token = generate(oauth_request)
    refresh_token = generate(oauth_request) if clients.policy_of(application).issue_refresh_tokens else None
    # A session as the grant starts one, so the session endpoints, limits and sign-out see it.
    started_at = timezone.now()
    family = tokens.new_family(started_at)
    with transaction.atomic():
        access = tokens.issue(
            user=user,
            application=application,
            scope=scope,
            access_token=access_token,
            # Capped as the grant caps it, so no token outlives the session it belongs to.
            expires_in=clients.session_capped_access_token_lifetime(application, started_at=started_at, now=started_at),
            refresh_token=refresh_token,
            family=family,
        )
        sessions.start(
            session_id=family,
            user=user,
            realm=realm,
            application=application,
            login_name=accounts.identity_of(user).login_name,
            started_at=started_at,
            ip=None,
            user_agent="",
            access_token=None if refresh_token else access,
        )
    return TokenPair(access_token=access_token, refresh_token=refresh_token, scope=scope)
