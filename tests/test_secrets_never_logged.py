"""No password, client secret or token value reaches a log record, even at DEBUG."""

import io
import json
import logging
import re
import sys

import pyotp
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.management import call_command
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter

from ropc_provider import clients, realms, signals, signin
from ropc_provider.models import ClientPolicy, RealmAccount
from tests.factories import PASSWORD, UserFactory
from tests.helpers import Api


@pytest.fixture
def every_log_record(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("oauthlib", "oauth2_provider", "ropc_provider", "django"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    return caplog


def test_no_secret_in_logs(api, user, confidential, every_log_record):
    application, secret = confidential
    issued = api.password_grant(application, "alice", secret=secret, basic=True).data
    api.password_grant(application, "alice", password="wrong-password-value", secret=secret)
    api.password_grant(application, "alice", secret="wrong-secret-value")
    refreshed = api.refresh(application, issued["refresh_token"], secret=secret).data
    api.refresh(application, issued["refresh_token"], secret=secret)
    api.post("/o/revoke_token/", {"token": refreshed["access_token"]}, basic=(application.client_id, secret))

    logged = "\n".join(record.getMessage() for record in every_log_record.records)
    assert every_log_record.records, "nothing was logged: the test would prove nothing"
    for value in (
        PASSWORD,
        "wrong-password-value",
        "wrong-secret-value",
        secret,
        issued["access_token"],
        issued["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
    ):
        assert value not in logged


def _everything_in(request):
    """All a receiver can reach through the request it was given."""
    seen = []
    for name in dir(request):
        try:
            value = getattr(request, name)
        except Exception:  # noqa: BLE001 - a property that needs what the copy leaves out
            continue
        if callable(value) and name not in ("get_full_path", "build_absolute_uri", "read", "readlines"):
            continue
        if callable(value):
            try:
                value = value()
            except Exception:  # noqa: BLE001
                continue
        seen.append(repr(value))
    return "\n".join(seen)


def test_sign_in_signals_and_backends_get_no_credentials(api, user, confidential, db):

    application, secret = confidential
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    for signal in (signals.sign_in_succeeded, signals.sign_in_failed, user_login_failed):
        signal.connect(receiver, dispatch_uid="inspect")
    try:
        grant = {"grant_type": "password", "username": "alice", "client_id": application.client_id}
        ok = api.token({**grant, "password": PASSWORD, "client_secret": secret}, HTTP_USER_AGENT="Tester/1")
        refused = api.token(
            {**grant, "password": "wrong-password-value", "client_secret": secret}, HTTP_USER_AGENT="Tester/1"
        )
    finally:
        for signal in (signals.sign_in_succeeded, signals.sign_in_failed, user_login_failed):
            signal.disconnect(dispatch_uid="inspect")
    assert ok.status_code == 200 and refused.status_code == 400
    requests = [kwargs["request"] for kwargs in received]
    assert len(requests) == 3  # ours twice, Django's own once
    for request in requests:
        everything = _everything_in(request) + repr(received)
        assert "Tester/1" in everything and "alice" in everything  # what receivers are for
        for value in (PASSWORD, "wrong-password-value", secret):
            assert value not in everything


def test_no_secret_anywhere_after_every_flow(api, client, db, caplog, monkeypatch):
    """Every flow once — CLI, grants, refresh, reuse, revocation, introspection, userinfo, sign-out,
    the admin's actions, a crash — with every logger at DEBUG, signal receivers listening, admin
    history written and Django's error report taken with DEBUG off: no password, client secret or
    token value appears in any of them."""

    caplog.set_level(logging.DEBUG)
    heard, reports = [], []

    def listen(sender, **kwargs):
        heard.append(repr(kwargs) + "".join(_everything_in(v) for v in kwargs.values() if hasattr(v, "META")))

    all_signals = [getattr(signals, name) for name in ("sign_in_succeeded", "sign_in_failed", "sessions_revoked")]
    all_signals += [signals.locked_out, signals.throttled, user_login_failed, user_logged_in]
    all_signals += [getattr(signals, name) for name in ("second_factor_enrolled", "second_factor_removed")]
    all_signals += [signals.challenge_issued, signals.factor_verified, signals.factor_failed]
    for signal in all_signals:
        signal.connect(listen, dispatch_uid="everything")

    def report(sender, request, **kwargs):
        reporter = ExceptionReporter(request, *sys.exc_info())
        reports.append(reporter.get_traceback_html() + reporter.get_traceback_text())

    got_request_exception.connect(report, dispatch_uid="everything")
    secrets = ["account pass phrase 1", "wrong pass phrase 2", "admin's new pass phrase 3"]
    try:
        out = io.StringIO()
        call_command("ropc_realm", "create", "staff", stdout=out)
        call_command(
            "ropc_user", "create", "--realm", "staff", "carol", "--password-stdin",
            stdin=io.StringIO(secrets[0] + "\n"), stdout=out,
        )  # fmt: skip
        cli = io.StringIO()
        call_command("ropc_client", "create", "--name", "CLI app", "--confidential", "--realm", "staff", stdout=cli)
        app = clients.load_client(json.loads(cli.getvalue())["client_id"])
        secret = json.loads(cli.getvalue())["client_secret"]
        rs = clients.register_client(name="API", confidential=True, resource_server=True)
        secrets += [secret, rs.client_secret]

        issued = api.password_grant(app, "carol", password=secrets[0], secret=secret, basic=True, scope="openid").data
        api.password_grant(app, "carol", password=secrets[1], secret=secret, basic=True)
        api.password_grant(app, "carol", password=secrets[0], secret="not-the-secret", basic=True)
        refreshed = api.refresh(app, issued["refresh_token"], secret=secret).data
        api.refresh(app, issued["refresh_token"], secret=secret)  # reuse
        resource_server = (rs.application.client_id, rs.client_secret)
        api.post("/o/introspect/", {"token": refreshed["access_token"]}, basic=resource_server)
        api.client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {refreshed['access_token']}")
        api.post("/o/revoke_token/", {"token": refreshed["refresh_token"]}, basic=(app.client_id, secret))
        again = api.password_grant(app, "carol", password=secrets[0], secret=secret, basic=True).data
        api.client.post("/o/revoke_sessions/", HTTP_AUTHORIZATION=f"Bearer {again['access_token']}")
        secrets += [issued[k] for k in ("access_token", "refresh_token")]
        secrets += [refreshed[k] for k in ("access_token", "refresh_token")]
        secrets += [again[k] for k in ("access_token", "refresh_token")]

        operator = Client()
        operator.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
        policies = reverse("admin:ropc_provider_clientpolicy_changelist")
        rotate = {"action": "rotate_secret", "_selected_action": [app.ropc_policy.pk], "confirmed": "yes"}
        rotated = operator.post(policies, rotate).content.decode()
        secrets.append(rotated.split('id="client-secret">')[1].split("<")[0])
        basic = (app.client_id, secrets[-1])
        account = RealmAccount.objects.get(login_name="carol")
        operator.post(
            reverse("admin:ropc_provider_realmaccount_password", args=[account.pk]),
            {"password1": secrets[2], "password2": secrets[2], "usable_password": "true"},
        )
        added = operator.post(
            reverse("admin:ropc_provider_clientpolicy_add"),
            {"name": "Admin app", "client_type": "confidential", "realms": [realms.get_realm("staff").pk]},
        ).content.decode()
        secrets.append(added.split('id="client-secret">')[1].split("<")[0])
        assert ClientPolicy.objects.filter(application__name="Admin app").exists()

        # Two steps: the CLI enrols carol (its output is the one place her secret is shown), then
        # every second-factor flow once, wrong codes and a reused code included.
        enrolled = io.StringIO()
        call_command("ropc_mfa", "enroll", "--realm", "staff", "--username", "carol", stdout=enrolled)
        enrolment = json.loads(enrolled.getvalue())
        secrets += [enrolment["secret"], *enrolment["recovery_codes"]]
        totp = pyotp.TOTP(enrolment["secret"])
        asked = api.token({"grant_type": "password", "username": "carol", "password": secrets[2]}, basic=basic).data
        challenge = {"response_type": "code", "auth_session": asked["auth_session"]}
        wrong_code = str((int(totp.now()) + 1) % 1000000).zfill(6)
        api.post("/o/authorize-challenge/", {**challenge, "otp": wrong_code}, basic=basic)
        code = api.post("/o/authorize-challenge/", {**challenge, "otp": totp.now()}, basic=basic).data
        code = code["authorization_code"]
        second = api.token({"grant_type": "authorization_code", "code": code}, basic=basic).data
        api.token({"grant_type": "authorization_code", "code": code}, basic=basic)  # reuse
        again_asked = api.post(
            "/o/authorize-challenge/",
            {"response_type": "code", "username": "carol", "password": secrets[2]},
            basic=basic,
        ).data
        recovered = api.post(
            "/o/authorize-challenge/",
            {"response_type": "code", "auth_session": again_asked["auth_session"], "recovery_code": secrets[-1]},
            basic=basic,
        ).data
        secrets += [asked["auth_session"], again_asked["auth_session"], code, recovered["authorization_code"]]
        secrets += [second["access_token"], second["refresh_token"], totp.now(), wrong_code]
        mfa_account = RealmAccount.objects.get(login_name="carol")
        shown = operator.post(
            reverse("admin:ropc_provider_realmaccount_mfa_recovery_codes", args=[mfa_account.pk]), {"confirmed": "yes"}
        ).content.decode()
        secrets += re.findall(r"<li><code>([^<]+)</code></li>", shown)
        operator.post(
            reverse("admin:ropc_provider_realmaccount_mfa_remove", args=[mfa_account.pk]), {"confirmed": "yes"}
        )

        def crash(*args, **kwargs):
            raise RuntimeError("backend exploded")

        monkeypatch.setattr(signin, "_burn_a_hash", crash)
        crashing = Api(Client(raise_request_exception=False))
        crashed = crashing.password_grant(app, "nobody", password=secrets[1], secret=basic[1], basic=True)
        assert crashed.status_code == 500
    finally:
        for signal in all_signals:
            signal.disconnect(dispatch_uid="everything")
        got_request_exception.disconnect(dispatch_uid="everything")

    logged = [f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records]
    history = [f"{entry.object_repr} {entry.change_message}" for entry in LogEntry.objects.all()]
    assert logged and heard and history and reports, "a channel heard nothing: the test would prove nothing"
    everything = "\n".join(logged + heard + history + reports)
    for value in secrets:
        assert value not in everything


@pytest.mark.parametrize("lookup", ["written once", "Django's authenticate()"])
def test_error_reports_do_not_show_passwords_or_secrets(user, confidential, monkeypatch, settings, lookup):
    """What Django mails to ADMINS (and shows any reporter) after a crash mid-grant, with
    DEBUG off as in production: in our lookup of a project user, or in a backend of the project's."""

    application, secret = confidential

    def broken(*args, **credentials):
        raise RuntimeError("backend exploded")

    if lookup == "written once":
        monkeypatch.setattr(signin._PROJECT_USER, "first", broken)
    else:
        settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "tests.test_realms.PassphraseBackend"]
        monkeypatch.setattr(signin, "django_authenticate", broken)
    reports = []

    def report(sender, request, **kwargs):
        reporter = ExceptionReporter(request, *sys.exc_info())
        reports.append(reporter.get_traceback_html() + reporter.get_traceback_text())

    got_request_exception.connect(report)
    try:
        api = Api(Client(raise_request_exception=False))
        response = api.password_grant(application, "nobody", password="my-secret-password-42", secret=secret)
    finally:
        got_request_exception.disconnect(report)
    assert response.status_code == 500
    (page,) = reports
    assert "backend exploded" in page and "Local vars" in page  # the report with every frame
    assert "my-secret-password-42" not in page
    assert secret not in page


def test_error_reports_of_the_two_step_sign_in_show_no_code(api, alice, monkeypatch):
    """A crash mid-challenge: the report shows no auth_session, code or recovery code, nor a code
    redeemed at the token endpoint."""
    from ropc_provider import challenges, mfa

    factor = mfa.enroll(alice.user)
    app = clients.register_client(name="App", confidential=False, realms=["staff"], default_realm="staff")
    app = app.application
    asked = api.password_grant(app, "alice", password=alice.password).data
    code = api.post(
        "/o/authorize-challenge/",
        {
            "response_type": "code",
            "client_id": app.client_id,
            "auth_session": asked["auth_session"],
            "otp": pyotp.TOTP(factor.secret).now(),
        },
    ).data["authorization_code"]
    second = api.password_grant(app, "alice", password=alice.password).data

    def broken(*args, **kwargs):
        raise RuntimeError("backend exploded")

    monkeypatch.setattr(mfa, "verify", broken)
    monkeypatch.setattr(challenges, "complete", broken)
    reports = []

    def report(sender, request, **kwargs):
        reporter = ExceptionReporter(request, *sys.exc_info())
        reports.append(reporter.get_traceback_html() + reporter.get_traceback_text())

    got_request_exception.connect(report)
    crashing = Api(Client(raise_request_exception=False))
    try:
        sent = {"response_type": "code", "client_id": app.client_id, "auth_session": second["auth_session"]}
        crashing.post("/o/authorize-challenge/", {**sent, "recovery_code": factor.recovery_codes[0]})
        crashing.token({"grant_type": "authorization_code", "code": code, "client_id": app.client_id})
    finally:
        got_request_exception.disconnect(report)
    assert len(reports) == 2 and all("backend exploded" in page and "Local vars" in page for page in reports)
    for value in (second["auth_session"], factor.recovery_codes[0], code, factor.secret):
        assert not any(value in page for page in reports), value
