"""Admin screens without a browser: permissions, what pages never show, form errors."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin import AdminSite
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone

from ropc_provider import accounts, clients, mfa, realms
from ropc_provider.admin import MFA_ACTIONS, RealmAccountAdmin, record_operators
from ropc_provider.models import ClientPolicy, Realm, RealmAccount, SecurityEvent, Session, SessionCutoff
from tests.factories import UserFactory

PASSWORD = "account pass phrase 1"


@pytest.fixture
def realm(db):
    realm = realms.create_realm(slug="customers")
    accounts.create_account(realm, "carol", PASSWORD)
    return realm


@pytest.fixture
def operator(client, db):
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    return client


def our_admin_urls(realm, api):
    registered = clients.register_client(name="App", confidential=True, realms=["customers"])
    policy = registered.application.ropc_policy
    account = RealmAccount.objects.get()
    api.password_grant(registered.application, "carol", password=PASSWORD, secret=registered.client_secret)
    urls = []
    for model, obj in ((ClientPolicy, policy), (Realm, realm), (RealmAccount, account)):
        name = model._meta.model_name
        urls += [
            reverse(f"admin:ropc_provider_{name}_changelist"),
            reverse(f"admin:ropc_provider_{name}_add"),
            reverse(f"admin:ropc_provider_{name}_change", args=[obj.pk]),
            reverse(f"admin:ropc_provider_{name}_delete", args=[obj.pk]),
        ]
    urls.append(reverse("admin:ropc_provider_realmaccount_password", args=[account.pk]))
    urls += [reverse(f"admin:ropc_provider_realmaccount_mfa_{action}", args=[account.pk]) for action in MFA_ACTIONS]
    urls.append(end_session_url(account, Session.objects.get().pk))
    urls += [
        reverse("admin:ropc_provider_securityevent_changelist"),
        reverse("admin:ropc_provider_securityevent_change", args=[SecurityEvent.objects.first().pk]),
    ]
    return urls


def end_session_url(account, session_id):
    return reverse("admin:ropc_provider_realmaccount_end_session", args=[account.pk, session_id])


def test_staff_without_our_permissions_gets_403_everywhere(client, realm, api):
    staff = UserFactory(username="staff", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(staff)
    for url in our_admin_urls(realm, api):
        assert client.get(url).status_code == 403, url
    index = client.get(reverse("admin:index")).content.decode()
    assert "Password-grant clients" not in index and "Realm accounts" not in index


def test_operator_reaches_every_page(operator, realm, api):
    for url in our_admin_urls(realm, api):
        assert operator.get(url).status_code == 200, url


def test_secret_shown_once_then_never(operator, realm):
    response = operator.post(
        reverse("admin:ropc_provider_clientpolicy_add"),
        {"name": "Backend", "client_type": "confidential", "realms": [realm.pk], "issue_refresh_tokens": "on"},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    policy = ClientPolicy.objects.get(application__name="Backend")
    secret = page.split('id="client-secret">')[1].split("<")[0]
    assert len(secret) >= 43
    assert clients.verify_client_secret(policy.application, secret)
    for url in (
        reverse("admin:ropc_provider_clientpolicy_changelist"),
        reverse("admin:ropc_provider_clientpolicy_change", args=[policy.pk]),
        reverse("admin:oauth2_provider_application_changelist"),
        reverse("admin:oauth2_provider_application_change", args=[policy.application.pk]),
        reverse("admin:index"),
    ):
        assert secret not in operator.get(url).content.decode(), url
    for entry in LogEntry.objects.all():
        assert secret not in f"{entry.object_repr} {entry.change_message}"


def test_rotating_the_secret_shows_the_new_one_once(operator, realm, api):
    registered = clients.register_client(name="Backend", confidential=True, realms=["customers"])
    url = reverse("admin:ropc_provider_clientpolicy_changelist")
    selected = {"action": "rotate_secret", "_selected_action": [registered.application.ropc_policy.pk]}
    confirm = operator.post(url, selected)
    assert "stops working at once" in confirm.content.decode()
    page = operator.post(url, {**selected, "confirmed": "yes"}).content.decode()
    new_secret = page.split('id="client-secret">')[1].split("<")[0]
    assert new_secret != registered.client_secret
    application = registered.application
    application.refresh_from_db()
    assert not clients.verify_client_secret(application, registered.client_secret)
    assert api.password_grant(application, "carol", password=PASSWORD, secret=new_secret, basic=True).status_code == 200


def test_forward_ip_on_a_public_client_is_a_form_error(operator, realm):
    response = operator.post(
        reverse("admin:ropc_provider_clientpolicy_add"),
        {"name": "App", "client_type": "public", "realms": [realm.pk], "may_forward_user_ip": "on"},
    )
    assert response.status_code == 200
    assert "Only a confidential client may forward" in response.content.decode()
    assert not ClientPolicy.objects.exists()


def test_account_form_applies_password_validators_and_normalised_uniqueness(operator, realm):
    add = reverse("admin:ropc_provider_realmaccount_add")
    weak = operator.post(add, {"realm": realm.pk, "login_name": "dave", "password1": "123", "password2": "123"})
    assert "Password rejected" in weak.content.decode()
    twin = operator.post(add, {"realm": realm.pk, "login_name": "CAROL", "password1": PASSWORD, "password2": PASSWORD})
    assert "already has an account" in twin.content.decode()
    good = operator.post(add, {"realm": realm.pk, "login_name": "dave", "password1": PASSWORD, "password2": PASSWORD})
    assert good.status_code == 302
    assert RealmAccount.objects.filter(login_key="dave").exists()
    for url in (reverse("admin:ropc_provider_realmaccount_changelist"), good["Location"]):
        assert PASSWORD not in operator.get(url).content.decode()


def test_changing_an_accounts_password_in_the_admin_ends_its_sessions(operator, realm, api):
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    issued = api.password_grant(app, "carol", password=PASSWORD).data
    account = RealmAccount.objects.get()
    response = operator.post(
        reverse("admin:ropc_provider_realmaccount_password", args=[account.pk]),
        {"password1": "a new pass phrase 22", "password2": "a new pass phrase 22", "usable_password": "true"},
    )
    assert response.status_code == 302
    assert SessionCutoff.objects.get(user=account.user).reason == SessionCutoff.PASSWORD_CHANGED
    assert api.refresh(app, issued["refresh_token"]).status_code == 400
    page = operator.get(reverse("admin:ropc_provider_realmaccount_change", args=[account.pk])).content.decode()
    assert "password changed" in page and "not locked" in page


def test_deactivating_a_realm_says_what_it_affects_first(operator, realm, api):
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    issued = api.password_grant(app, "carol", password=PASSWORD).data
    url = reverse("admin:ropc_provider_realm_changelist")
    selected = {"action": "deactivate", "_selected_action": [realm.pk]}
    confirm = operator.post(url, selected).content.decode()
    assert "customers: 1 accounts, 1 live tokens" in confirm
    realm.refresh_from_db()
    assert realm.is_active
    operator.post(url, {**selected, "confirmed": "yes"})
    realm.refresh_from_db()
    assert not realm.is_active
    assert api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {issued['access_token']}").status_code == 401


def test_deactivating_a_client_revokes_its_tokens(operator, realm, api):
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    issued = api.password_grant(app, "carol", password=PASSWORD).data
    url = reverse("admin:ropc_provider_clientpolicy_changelist")
    operator.post(url, {"action": "deactivate", "_selected_action": [app.ropc_policy.pk], "confirmed": "yes"})
    assert api.client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {issued['access_token']}").status_code == 401
    response = api.password_grant(app, "carol", password=PASSWORD)
    assert response.status_code == 401 and response.data["error"] == "invalid_client"


def test_unlock_from_the_admin(operator, realm, api):
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    for _ in range(10):
        api.password_grant(app, "carol", password="wrong")
    assert api.password_grant(app, "carol", password=PASSWORD).status_code == 429
    account = RealmAccount.objects.get()
    page = operator.get(reverse("admin:ropc_provider_realmaccount_change", args=[account.pk])).content.decode()
    assert "locked for" in page
    url = reverse("admin:ropc_provider_realmaccount_changelist")
    operator.post(url, {"action": "unlock", "_selected_action": [account.pk], "confirmed": "yes"})
    assert api.password_grant(app, "carol", password=PASSWORD).status_code == 200


def test_confirmed_actions_keep_select_all_across_pages(operator, realm, settings, monkeypatch):

    monkeypatch.setattr(RealmAccountAdmin, "list_per_page", 2)
    for n in range(4):
        accounts.create_account(realm, f"user{n}", PASSWORD)
    url = reverse("admin:ropc_provider_realmaccount_changelist")
    first_page = list(RealmAccount.objects.order_by("-pk").values_list("pk", flat=True)[:2])
    selected = {"action": "sign_out_everywhere", "_selected_action": first_page, "select_across": "1"}
    confirm = operator.post(url, selected).content.decode()
    assert 'name="select_across" value="1"' in confirm
    operator.post(url, {**selected, "confirmed": "yes"})
    assert SessionCutoff.objects.count() == RealmAccount.objects.count() == 5


def test_email_sign_in_over_at_signs_is_a_form_error(operator, realm):
    accounts.create_account(realm, "x@y", PASSWORD)
    url = reverse("admin:ropc_provider_realm_change", args=[realm.pk])
    response = operator.post(url, {"name": realm.name, "allow_email_login": "on", "is_active": "on"})
    assert response.status_code == 200
    assert "ambiguous with email addresses" in response.content.decode()
    realm.refresh_from_db()
    assert not realm.allow_email_login


def test_the_realm_form_does_not_deactivate_without_the_confirmation(operator, realm):
    url = reverse("admin:ropc_provider_realm_change", args=[realm.pk])
    response = operator.post(url, {"slug": "customers", "name": "Renamed", "source": "directory", "mfa": "enrolled"})
    assert response.status_code == 302, response.content
    realm.refresh_from_db()
    assert realm.is_active and realm.name == "Renamed"
    realms.set_realm_active(realm, False)
    operator.post(
        url, {"slug": "customers", "name": "Renamed", "source": "directory", "mfa": "enrolled", "is_active": "on"}
    )
    realm.refresh_from_db()
    assert realm.is_active  # reactivating needs no confirmation


def mfa_url(action, account):
    return reverse(f"admin:ropc_provider_realmaccount_mfa_{action}", args=[account.pk])


def test_second_factor_actions_ask_first_and_show_secrets_once(operator, realm, api):
    account = RealmAccount.objects.get()
    asked = operator.get(mfa_url("enroll", account))
    assert "active at once" in asked.content.decode()
    assert mfa.status(account.user)["totp"] is False  # a GET changes nothing
    assert operator.post(mfa_url("enroll", account), {}).status_code == 200
    assert mfa.status(account.user)["totp"] is False  # nor an unconfirmed POST

    shown = operator.post(mfa_url("enroll", account), {"confirmed": "yes"})
    assert "no-store" in shown["Cache-Control"]
    secret = account.user.authenticator.secret
    page = shown.content.decode()
    assert secret in page and "<svg" in page and page.count("<li><code>") == 10
    change_page = operator.get(reverse("admin:ropc_provider_realmaccount_change", args=[account.pk])).content.decode()
    assert secret not in change_page and "10 recovery codes left" in change_page

    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    assert api.password_grant(app, "carol", password=PASSWORD).status_code == 403
    again = operator.post(mfa_url("enroll", account), {"confirmed": "yes"}, follow=True)
    assert "remove it first" in again.content.decode()

    renewed = operator.post(mfa_url("recovery_codes", account), {"confirmed": "yes"}).content.decode()
    assert renewed.count("<li><code>") == 10 and secret not in renewed
    assert SessionCutoff.objects.get(user=account.user).reason == SessionCutoff.RECOVERY_CODES_REGENERATED

    removed = operator.post(mfa_url("remove", account), {"confirmed": "yes"})
    assert removed.status_code == 302
    assert SessionCutoff.objects.get(user=account.user).reason == SessionCutoff.SECOND_FACTOR_REMOVED
    assert api.password_grant(app, "carol", password=PASSWORD).status_code == 200
    assert LogEntry.objects.filter(change_message__contains="authenticator").count() == 2


def test_realm_policy_in_the_admin(operator, realm):
    response = operator.post(
        reverse("admin:ropc_provider_realm_add"),
        {"slug": "partners", "name": "Partners", "source": "directory", "mfa": "required", "is_active": "on"},
    )
    assert response.status_code == 302, response.content
    assert Realm.objects.get(slug="partners").mfa == Realm.MFA_REQUIRED
    refused = operator.post(
        reverse("admin:ropc_provider_realm_add"),
        {"slug": "people", "name": "People", "source": "project", "mfa": "required", "is_active": "on"},
    )
    assert "PROJECT_REALM_MFA" in refused.content.decode()


def test_session_limits_in_the_client_form(operator, realm):
    url = reverse("admin:ropc_provider_clientpolicy_add")
    fields = {"name": "Kiosk", "client_type": "public", "realms": [realm.pk]}
    refused = operator.post(url, {**fields, "session_idle_timeout": "0"})
    assert refused.status_code == 200 and not ClientPolicy.objects.exists()
    response = operator.post(url, {**fields, "session_max_lifetime": "3600", "session_idle_timeout": "300"})
    assert response.status_code == 200, response.content  # the page that shows the client once
    policy = ClientPolicy.objects.get()
    assert (policy.session_max_lifetime, policy.session_idle_timeout) == (3600, 300)
    change = reverse("admin:ropc_provider_clientpolicy_change", args=[policy.pk])
    edited = operator.post(change, {**fields, "session_max_lifetime": "7200", "refresh_grace_seconds": "0"})
    assert edited.status_code == 302, edited.content
    policy.refresh_from_db()
    assert (policy.session_max_lifetime, policy.session_idle_timeout) == (7200, None)


# -- sessions and the audit trail ------------------------------------------------------------------


def signed_in(api, app, login_name="carol"):
    """A real sign-in through the token endpoint: its token response and its session."""
    response = api.password_grant(app, login_name, password=PASSWORD)
    assert response.status_code == 200, response.content
    event = SecurityEvent.objects.filter(type=SecurityEvent.SIGN_IN_SUCCEEDED).order_by("-time", "-id").first()
    return response.data, Session.objects.get(pk=event.session_id)


def account_page(client, account):
    return client.get(reverse("admin:ropc_provider_realmaccount_change", args=[account.pk])).content.decode()


def test_operator_ends_one_session_of_an_account(operator, realm, api):
    phone_app = clients.register_client(name="Phone app", confidential=False, realms=["customers"]).application
    web_app = clients.register_client(name="Web app", confidential=False, realms=["customers"]).application
    phone, phone_session = signed_in(api, phone_app)
    web, web_session = signed_in(api, web_app)
    account = RealmAccount.objects.get()
    page = account_page(operator, account)
    assert "Live sessions" in page and "Phone app" in page and "Web app" in page
    url = end_session_url(account, phone_session.pk)
    assert url in page and end_session_url(account, web_session.pk) in page

    asked = operator.get(url).content.decode()
    assert "signed out of Phone app" in asked and "other sessions go on" in asked
    assert operator.post(url, {}).status_code == 200  # unconfirmed: the question again
    phone_session.refresh_from_db()
    assert phone_session.ended_at is None  # neither a GET nor an unconfirmed POST ends it

    ended = operator.post(url, {"confirmed": "yes"}, follow=True)
    assert "Ended the session of carol on Phone app" in ended.content.decode()
    page = ended.content.decode()
    assert url not in page and end_session_url(account, web_session.pk) in page
    phone_session.refresh_from_db()
    assert phone_session.end_reason == Session.OPERATOR  # marked ended, the row kept

    refused = api.refresh(phone_app, phone["refresh_token"])
    assert refused.status_code == 400 and refused.data["error"] == "invalid_grant"
    assert api.refresh(web_app, web["refresh_token"]).status_code == 200
    event = SecurityEvent.objects.get(type=SecurityEvent.SESSION_ENDED, session_id=phone_session.pk)
    assert (event.reason, event.actor, event.login_name) == ("operator", "operator", "carol")
    assert LogEntry.objects.filter(change_message__contains="Ended the session").count() == 1

    again = operator.post(url, {"confirmed": "yes"}, follow=True)
    assert "had ended already" in again.content.decode()
    assert SecurityEvent.objects.filter(type=SecurityEvent.SESSION_ENDED).count() == 1


def test_a_session_of_another_account_is_not_ended_from_this_one(operator, realm, api):
    accounts.create_account(realm, "dave", PASSWORD)
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    daves, daves_session = signed_in(api, app, "dave")
    carol = RealmAccount.objects.get(login_name="carol")
    url = end_session_url(carol, daves_session.pk)
    assert operator.get(url).status_code == 404
    assert operator.post(url, {"confirmed": "yes"}).status_code == 404
    assert operator.post(end_session_url(carol, "not-a-session"), {"confirmed": "yes"}).status_code == 404
    daves_session.refresh_from_db()
    assert daves_session.ended_at is None
    assert api.refresh(app, daves["refresh_token"]).status_code == 200
    assert not SecurityEvent.objects.filter(type=SecurityEvent.SESSION_ENDED).exists()


def test_ending_a_session_needs_the_change_permission(client, realm, api):
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    issued, session = signed_in(api, app)
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_realmaccount"))
    client.force_login(viewer)
    account = RealmAccount.objects.get()
    page = account_page(client, account)
    assert "Live sessions" in page and "App" in page and "End session" not in page
    assert client.post(end_session_url(account, session.pk), {"confirmed": "yes"}).status_code == 403
    assert api.refresh(app, issued["refresh_token"]).status_code == 200


def test_the_client_page_counts_its_live_sessions(operator, realm, api):
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    signed_in(api, app)
    _, session = signed_in(api, app)
    url = reverse("admin:ropc_provider_clientpolicy_change", args=[app.ropc_policy.pk])

    def shown():
        page = operator.get(url).content.decode()
        return re.search(r'field-live_sessions.*?<div class="readonly">(\d+)</div>', page, re.S).group(1)

    assert shown() == "2"
    operator.post(end_session_url(RealmAccount.objects.get(), session.pk), {"confirmed": "yes"})
    assert shown() == "1"
    assert operator.get(reverse("admin:ropc_provider_clientpolicy_add")).status_code == 200  # none to count


def test_changes_made_in_the_admin_name_the_operator(operator, realm):
    operator.post(
        reverse("admin:ropc_provider_clientpolicy_add"),
        {"name": "Backend", "client_type": "confidential", "realms": [realm.pk], "issue_refresh_tokens": "on"},
    )
    account = RealmAccount.objects.get()
    url = reverse("admin:ropc_provider_realmaccount_changelist")
    operator.post(url, {"action": "sign_out_everywhere", "_selected_action": [account.pk], "confirmed": "yes"})
    operator.post(
        reverse("admin:ropc_provider_realmaccount_password", args=[account.pk]),
        {"password1": "a new pass phrase 22", "password2": "a new pass phrase 22", "usable_password": "true"},
    )
    registered = SecurityEvent.objects.get(type=SecurityEvent.CLIENT_REGISTERED)
    assert registered.actor == "operator" and registered.client_name == "Backend"
    cutoffs = SecurityEvent.objects.filter(type=SecurityEvent.CUTOFF_MOVED)
    assert {(event.reason, event.actor) for event in cutoffs} == {
        (SessionCutoff.OPERATOR, "operator"),
        (SessionCutoff.PASSWORD_CHANGED, "operator"),
    }
    # Outside the admin nobody is named.
    clients.register_client(name="Elsewhere", confidential=False, realms=["customers"])
    assert SecurityEvent.objects.get(client_name="Elsewhere").actor == ""


def test_deactivating_a_user_in_djangos_own_user_admin_names_the_operator(operator, db):
    # The project realm's users are edited on Django's screens, not ours: the cutoff it moves is
    # still on record as the operator's.
    alice = UserFactory(username="alice")
    page = operator.get(reverse("admin:auth_user_change", args=[alice.pk]))
    form = {
        name: value
        for name, value in page.context["adminform"].form.initial.items()
        if name not in ("is_active", "groups", "user_permissions", "password") and value is not None
    }
    response = operator.post(
        reverse("admin:auth_user_change", args=[alice.pk]),
        {**form, "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = SecurityEvent.objects.get(type=SecurityEvent.CUTOFF_MOVED)
    assert (event.login_name, event.reason, event.actor) == ("alice", SessionCutoff.ACCOUNT_DEACTIVATED, "operator")


def test_an_admin_site_of_the_projects_own_names_the_operator_once_recorded(rf, realm):
    site = AdminSite(name="back_office")
    record_operators(site)
    wrapped = site.admin_view
    record_operators(site)
    assert site.admin_view is wrapped  # twice is once

    def rotate(request):
        clients.register_client(name="Back office", confidential=True, realms=["customers"])
        return HttpResponse()

    request = rf.get("/back-office/")
    request.user = UserFactory(username="office", is_staff=True)
    assert site.admin_view(rotate)(request).status_code == 200
    assert SecurityEvent.objects.get(type=SecurityEvent.CLIENT_REGISTERED).actor == "office"


def test_security_events_are_listed_filtered_and_searched(operator, realm, api):
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    other = clients.register_client(name="Other", confidential=False, realms=["customers"]).application
    signed_in(api, app)
    api.password_grant(app, "carol", password="not her password")
    api.password_grant(other, "nobody", password="a guess")
    url = reverse("admin:ropc_provider_securityevent_changelist")

    def listed(**query):
        response = operator.get(url, query)
        assert response.status_code == 200, query
        return response

    page = listed().content.decode()
    for column in ("time", "type", "reason", "realm", "login_name", "client_name", "ip_address", "session_id", "actor"):
        assert f"column-{column}" in page, column
    assert PASSWORD not in page and "not her password" not in page
    failed = listed(type__exact=SecurityEvent.SIGN_IN_FAILED).context["cl"]
    assert [event.login_name for event in failed.result_list] == ["nobody", "carol"]
    carols = SecurityEvent.objects.filter(login_name="carol").count()
    assert carols >= 2
    assert {event.login_name for event in listed(q="carol").context["cl"].result_list} == {"carol"}
    assert listed(q="carol").context["cl"].result_count == carols
    assert listed(q="car").context["cl"].result_count == carols  # a prefix finds them too
    by_address = listed(q="127.0.0.").context["cl"]
    assert by_address.result_count == SecurityEvent.objects.filter(ip_address="127.0.0.1").count() == 3
    by_client = listed(client_id=other.client_id).context["cl"]
    assert {event.client_name for event in by_client.result_list} == {"Other"}
    assert listed(realm="customers").context["cl"].result_count > 0
    recent = SecurityEvent.objects.count()
    SecurityEvent.objects.create(time=timezone.now() - timedelta(days=3), type=SecurityEvent.SIGN_IN_FAILED)
    # As the filter's "Today" link asks it.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    since_today = listed(time__gte=str(today), time__lt=str(today + timedelta(days=1))).context["cl"]
    assert since_today.result_count == recent


def test_security_events_are_read_only(operator, realm, api):
    app = clients.register_client(name="App", confidential=False, realms=["customers"]).application
    signed_in(api, app)
    event = SecurityEvent.objects.get(type=SecurityEvent.SIGN_IN_SUCCEEDED)
    change = reverse("admin:ropc_provider_securityevent_change", args=[event.pk])
    shown = operator.get(change)
    assert shown.status_code == 200 and 'name="_save"' not in shown.content.decode()
    assert operator.get(reverse("admin:ropc_provider_securityevent_add")).status_code == 403
    assert operator.post(change, {"type": "sign_in_failed", "login_name": "mallory"}).status_code == 403
    assert operator.get(reverse("admin:ropc_provider_securityevent_delete", args=[event.pk])).status_code == 403
    deleted = operator.post(reverse("admin:ropc_provider_securityevent_delete", args=[event.pk]), {"post": "yes"})
    assert deleted.status_code == 403
    listing = reverse("admin:ropc_provider_securityevent_changelist")
    operator.post(listing, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    event.refresh_from_db()
    assert (event.type, event.login_name) == (SecurityEvent.SIGN_IN_SUCCEEDED, "carol")
