"""A client's rules live in one service (``clients``): the CLI, the admin and code all go through
it, so a rule holds whichever face writes the client."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from oauth2_provider.models import get_application_model

from ropc_provider import clients, realms
from ropc_provider.exceptions import InvalidInput
from ropc_provider.models import ClientPolicy
from tests.factories import UserFactory
from tests.helpers import assert_error


def through_code(name, realm_slugs):
    clients.register_client(name=name, confidential=False, realms=realm_slugs)


def through_the_cli(name, realm_slugs):
    call_command("ropc_client", "create", "--name", name, "--public",
                 *[arg for slug in realm_slugs for arg in ("--realm", slug)], stdout=io.StringIO())  # fmt: skip


def through_the_admin(name, realm_slugs):

    operator = Client()
    operator.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    pks = [realms.get_realm(slug).pk for slug in realm_slugs]
    form = {"name": name, "client_type": "public", "realms": pks, "refresh_grace_seconds": 0}
    response = operator.post(reverse("admin:ropc_provider_clientpolicy_add"), form)
    assert response.status_code == 200 and b'id="client-id"' in response.content, response.content[-2000:]


FACES = [through_code, through_the_cli, through_the_admin]


@pytest.mark.parametrize("face", FACES)
def test_every_face_takes_the_realm_rules_from_the_service(face, db, monkeypatch):
    asked, rule = [], clients.realms_of
    monkeypatch.setattr(clients, "realms_of", lambda *args, **kwargs: asked.append(args) or rule(*args, **kwargs))
    face("Everyone's app", [])
    policy = ClientPolicy.objects.get(application__name="Everyone's app")
    assert asked, "the realm rules were worked out outside the service"
    # No realms: the project's own users, which is then the default realm.
    assert list(policy.realms.all()) == [realms.project_realm()] == [policy.default_realm]


@pytest.mark.parametrize("face", FACES)
def test_one_realm_is_the_default_whichever_face_registers_the_client(face, db):
    realms.create_realm(slug="staff")
    face("Staff app", ["staff"])
    assert ClientPolicy.objects.get(application__name="Staff app").default_realm.slug == "staff"


def test_a_default_realm_outside_the_clients_realms_is_refused_by_name(db):
    realms.create_realm(slug="staff")
    realms.create_realm(slug="shop")
    with pytest.raises(InvalidInput, match="The default realm 'shop' must be one of the client's realms"):
        clients.register_client(name="App", confidential=False, realms=["staff"], default_realm="shop")
    out = io.StringIO()
    call_command("ropc_client", "list", stdout=out)
    assert json.loads(out.getvalue())["clients"] == []  # nothing written


def test_editing_a_client_in_the_admin_goes_through_the_service(db, monkeypatch, api):

    realms.create_realm(slug="staff")
    realms.create_realm(slug="shop")
    policy = clients.register_client(name="App", confidential=False, realms=["staff", "shop"]).application.ropc_policy
    updated, rule = [], clients.update_client
    monkeypatch.setattr(clients, "update_client", lambda *args, **kw: updated.append(kw) or rule(*args, **kw))
    operator = Client()
    operator.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    form = {"name": "Renamed", "client_type": "public", "realms": [realms.get_realm("staff").pk],
            "refresh_grace_seconds": 0, "issue_refresh_tokens": "on"}  # fmt: skip
    response = operator.post(reverse("admin:ropc_provider_clientpolicy_change", args=[policy.pk]), form)
    assert response.status_code == 302, response.content[-1500:]
    policy.refresh_from_db()
    assert updated and policy.application.name == "Renamed"
    assert [realm.slug for realm in policy.realms.all()] == ["staff"] and policy.default_realm.slug == "staff"


@pytest.mark.parametrize("lifetime", [0, -5])
def test_a_lifetime_is_positive_whichever_face_writes_it(db, lifetime):

    with pytest.raises(InvalidInput, match="positive number of seconds"):
        clients.register_client(name="App", confidential=False, access_token_lifetime=lifetime)
    policy = clients.register_client(name="App", confidential=False).application.ropc_policy
    with pytest.raises(InvalidInput, match="positive number of seconds"):
        clients.update_client(policy, name="App", scopes=[], realms=[], default_realm=None,
                              access_token_lifetime=None, refresh_token_lifetime=lifetime, issue_refresh_tokens=True,
                              refresh_grace_seconds=0, may_forward_user_ip=False)  # fmt: skip
    if lifetime == 0:  # the database agrees (a negative one is refused by the column type already)
        with pytest.raises(IntegrityError), transaction.atomic():
            ClientPolicy.objects.filter(pk=policy.pk).update(access_token_lifetime=0)


def test_a_lifetime_longer_than_ten_years_is_refused_before_a_grant_could_break_on_it(api, user):
    with pytest.raises(CommandError, match="at most 315360000 seconds"):
        call_command("ropc_client", "create", "--name", "Long", "--public", "--session-max-lifetime", "1000000000000")
    assert not get_application_model().objects.exists()  # nothing written
    longest = clients.register_client(name="Long", confidential=False, session_max_lifetime=315360000).application
    assert api.password_grant(longest, "alice").status_code == 200


def test_deleting_a_clients_policy_deletes_the_client(api, employees_app):

    _realm, app = employees_app
    clients.set_active(app.ropc_policy, False)
    app.ropc_policy.delete()
    assert not get_application_model().objects.filter(pk=app.pk).exists()
    assert_error(api.password_grant(app, "alice"), 401, "invalid_client")
