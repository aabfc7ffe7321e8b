"""Second factors of an account: enrolment by an operator (CLI) and by the user (API), removal and
new recovery codes ending sessions, and the realm policy. The sign-in with them is
test_authorization_challenge.py."""

import io
import json
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from freezegun import freeze_time

from ropc_provider import mfa, signals
from ropc_provider.models import Authenticator, Realm, RecoveryCode, SessionCutoff
from ropc_provider.testing.factories import issue_tokens
from tests.factories import ClientFactory
from tests.helpers import assert_error, me


@pytest.fixture
def app(staff):
    return ClientFactory(realms=[staff], default_realm="staff", scopes=["read"]).application


def mfa_command(*args):
    out = io.StringIO()
    call_command("ropc_mfa", *args, stdout=out)
    return json.loads(out.getvalue())


def bearer(tokens):
    return {"HTTP_AUTHORIZATION": tokens.authorization}


def other_than(code):
    return str((int(code) + 500000) % 1000000).zfill(6)


# -- operators ------------------------------------------------------------------------------------


def test_cli_enrolment_is_active_at_once(api, app, alice):
    enrolled = mfa_command("enroll", "--realm", "staff", "--username", "Alice")
    assert enrolled["realm"] == "staff" and enrolled["username"] == "alice"
    uri = urlsplit(enrolled["provisioning_uri"])
    assert (uri.scheme, uri.netloc, unquote(uri.path)) == ("otpauth", "totp", "/Example Staff:alice")
    assert parse_qs(uri.query) == {"secret": [enrolled["secret"]], "issuer": ["Example Staff"]}
    assert len(set(enrolled["recovery_codes"])) == 10
    assert_error(api.password_grant(app, "alice", alice.password), 403, "insufficient_authorization")

    status = mfa_command("status", "--realm", "staff", "--username", "alice")
    assert status["totp"] is True and status["recovery_codes_left"] == 10
    assert enrolled["secret"] not in json.dumps(status)
    with pytest.raises(CommandError, match="remove it first"):
        mfa_command("enroll", "--realm", "staff", "--username", "alice")


def test_cli_removal_ends_sessions_and_the_second_step(api, app, alice):
    mfa_command("enroll", "--realm", "staff", "--username", "alice")
    tokens = issue_tokens(alice, app)
    assert mfa_command("remove", "--realm", "staff", "--username", "alice")["removed"] is True
    assert alice.user.session_cutoff.reason == SessionCutoff.SECOND_FACTOR_REMOVED
    assert api.client.get("/api/me/", **bearer(tokens)).status_code == 401
    assert api.password_grant(app, "alice", alice.password).status_code == 200
    assert not RecoveryCode.objects.exists()
    assert mfa_command("remove", "--realm", "staff", "--username", "alice")["removed"] is False


def test_cli_errors(db, staff):
    with pytest.raises(CommandError, match="no account"):
        mfa_command("status", "--realm", "staff", "--username", "nobody")
    with pytest.raises(CommandError, match="No realm"):
        mfa_command("enroll", "--realm", "nowhere", "--username", "alice")


def test_project_users_enrol_too(api, public_app, user):
    enrolled = mfa_command("enroll", "--realm", "project", "--username", "alice")
    assert enrolled["username"] == "alice"
    assert_error(api.password_grant(public_app, "alice"), 403, "insufficient_authorization")


def test_realm_policy_from_the_cli(db, api):
    out = io.StringIO()
    call_command("ropc_realm", "create", "partners", "--mfa", "required", stdout=out)
    assert json.loads(out.getvalue())["mfa"] == "required"
    assert Realm.objects.get(slug="partners").mfa == Realm.MFA_REQUIRED
    with pytest.raises(CommandError, match="PROJECT_REALM_MFA"):
        call_command("ropc_realm", "create", "people", "--source", "project", "--mfa", "required", stdout=out)


def test_regenerated_recovery_codes_replace_the_old_and_end_sessions(api, app, alice):
    enrolment = mfa.enroll(alice.user)
    tokens = issue_tokens(alice, app)
    fresh = mfa.regenerate_recovery_codes(alice.user)
    assert set(fresh).isdisjoint(enrolment.recovery_codes)
    assert api.client.get("/api/me/", **bearer(tokens)).status_code == 401
    assert alice.user.session_cutoff.reason == SessionCutoff.RECOVERY_CODES_REGENERATED
    assert mfa.verify(alice.user, recovery_code=enrolment.recovery_codes[0]) is None
    # Typed as people type them: upper case, without the dash.
    assert mfa.verify(alice.user, recovery_code=fresh[0].replace("-", "").upper()) == mfa.RECOVERY_CODE


def test_secrets_are_stored_as_they_must_be(alice):
    enrolment = mfa.enroll(alice.user)
    stored = repr(list(RecoveryCode.objects.values()))
    assert not any(code in stored or code.replace("-", "") in stored for code in enrolment.recovery_codes)
    # A TOTP secret cannot be hashed: the code is computed from it.
    assert Authenticator.objects.get(user=alice.user).secret == enrolment.secret


def test_enrolment_and_removal_signals(alice):
    heard = []

    def listen(**kwargs):
        heard.append(kwargs)

    signals.second_factor_enrolled.connect(listen, weak=False)
    signals.second_factor_removed.connect(listen, weak=False)
    try:
        enrolment = mfa.enroll(alice.user)
        mfa.remove(alice.user)
    finally:
        signals.second_factor_enrolled.disconnect(listen)
        signals.second_factor_removed.disconnect(listen)
    assert [kwargs["signal"] for kwargs in heard] == [signals.second_factor_enrolled, signals.second_factor_removed]
    assert all(kwargs["user"] == alice.user for kwargs in heard)
    assert enrolment.secret not in repr(heard)


# -- the user's own factor (self-service API) -----------------------------------------------------


def test_self_service_enrolment(api, app, alice):
    tokens = issue_tokens(alice, app)
    begun = api.post("/o/mfa/totp/", {}, **bearer(tokens))
    assert begun.status_code == 200, begun.content
    assert begun["Cache-Control"] == "no-store"
    assert begun.data["provisioning_uri"].startswith("otpauth://totp/Example%20Staff:alice?")
    # Pending: the password alone still signs in.
    assert api.password_grant(app, "alice", alice.password).status_code == 200
    assert api.client.get("/o/mfa/", **bearer(tokens)).json()["enrolment_pending"] is True

    totp = pyotp.TOTP(begun.data["secret"])
    assert_error(
        api.post("/o/mfa/totp/confirm/", {"otp": other_than(totp.now())}, **bearer(tokens)), 400, "invalid_request"
    )
    confirmed = api.post("/o/mfa/totp/confirm/", {"otp": totp.now()}, **bearer(tokens))
    assert confirmed.status_code == 200, confirmed.content
    assert len(confirmed.data["recovery_codes"]) == 10
    assert api.client.get("/o/mfa/", **bearer(tokens)).json()["totp"] is True
    assert_error(api.password_grant(app, "alice", alice.password), 403, "insufficient_authorization")
    # A second enrolment would replace the first behind the user's back: remove it first.
    assert_error(api.post("/o/mfa/totp/", {}, **bearer(tokens)), 400, "invalid_request")


def test_self_service_enrolment_needs_a_recent_sign_in(api, app, alice):
    """A stolen or forgotten access token must not let someone else add a factor; refreshing it
    keeps its sign-in's time (RFC 9470 step-up)."""
    with freeze_time(timezone.now()) as clock:
        signed_in = api.password_grant(app, "alice", alice.password).data
        clock.tick(601)
        refreshed = api.refresh(app, signed_in["refresh_token"]).data
        stale = api.post("/o/mfa/totp/", {}, HTTP_AUTHORIZATION=f"Bearer {refreshed['access_token']}")
        assert_error(stale, 401, "insufficient_user_authentication")
        assert 'max_age="600"' in stale["WWW-Authenticate"]
        assert not Authenticator.objects.exists()
        fresh = api.password_grant(app, "alice", alice.password).data
        begun = api.post("/o/mfa/totp/", {}, HTTP_AUTHORIZATION=f"Bearer {fresh['access_token']}")
        assert begun.status_code == 200
        clock.tick(601)
        late = api.post(
            "/o/mfa/totp/confirm/",
            {"otp": pyotp.TOTP(begun.data["secret"]).now()},
            HTTP_AUTHORIZATION=f"Bearer {fresh['access_token']}",
        )
        assert_error(late, 401, "insufficient_user_authentication")
        assert mfa.status(alice.user)["totp"] is False


def test_self_service_removal_needs_a_current_code_and_moves_the_cutoff(api, app, alice):
    enrolment = mfa.enroll(alice.user)
    tokens, other_session = issue_tokens(alice, app), issue_tokens(alice, app)
    code = pyotp.TOTP(enrolment.secret).now()
    assert_error(api.post("/o/mfa/totp/remove/", {}, **bearer(tokens)), 400, "invalid_request")
    assert_error(api.post("/o/mfa/totp/remove/", {"otp": other_than(code)}, **bearer(tokens)), 400, "invalid_request")
    assert mfa.status(alice.user)["totp"] is True
    removed = api.post("/o/mfa/totp/remove/", {"otp": code}, **bearer(tokens))
    assert removed.status_code == 204, removed.content
    assert mfa.status(alice.user)["totp"] is False
    alice.user.refresh_from_db()
    assert SessionCutoff.objects.get(user=alice.user).reason == SessionCutoff.SECOND_FACTOR_REMOVED
    assert api.client.get("/api/me/", **bearer(other_session)).status_code == 401


def test_self_service_recovery_codes(api, app, alice):
    enrolment = mfa.enroll(alice.user)
    tokens = issue_tokens(alice, app)
    renewed = api.post("/o/mfa/recovery-codes/", {"recovery_code": enrolment.recovery_codes[0]}, **bearer(tokens))
    assert renewed.status_code == 200, renewed.content
    assert set(renewed.data["recovery_codes"]).isdisjoint(enrolment.recovery_codes)


def test_guessing_removal_codes_with_a_stolen_token_locks_like_a_password(api, app, alice, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "LOCKOUT_THRESHOLD": 2}
    enrolment = mfa.enroll(alice.user)
    tokens = issue_tokens(alice, app)
    wrong = other_than(pyotp.TOTP(enrolment.secret).now())
    for _ in range(2):
        assert_error(api.post("/o/mfa/totp/remove/", {"otp": wrong}, **bearer(tokens)), 400, "invalid_request")
    assert_error(api.post("/o/mfa/totp/remove/", {"otp": wrong}, **bearer(tokens)), 429, "too_many_attempts")
    assert_error(api.password_grant(app, "alice", alice.password), 429, "too_many_attempts")


def test_self_service_needs_a_users_bearer_token(api, token_of_no_user, alice):
    assert_error(api.post("/o/mfa/totp/", {}), 401, "unauthorized")
    assert_error(api.post("/o/mfa/totp/", {}, HTTP_AUTHORIZATION="Bearer nope"), 401, "invalid_token")
    assert_error(api.post("/o/mfa/totp/", {}, HTTP_AUTHORIZATION=f"Bearer {token_of_no_user}"), 401, "invalid_token")
    assert api.client.post("/o/mfa/").status_code == 405
    assert api.client.get("/o/mfa/totp/").status_code == 405


def test_me_still_works_for_an_enrolled_user(api, app, alice):
    mfa.enroll(alice.user)
    tokens = issue_tokens(alice, app)
    assert me(api, {"access_token": tokens.access_token}).status_code == 200


def test_a_third_party_apps_token_cannot_manage_factors(api, alice, authorization_code_app):
    """An app the user authorised at the host's own DOT endpoints (any grant but ours) must not
    add a factor it would then hold."""
    from oauth2_provider.models import AccessToken

    token = AccessToken.objects.create(
        user=alice.user, application=authorization_code_app, token="third-party-token-1", scope="read",
        expires=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    refused = api.post("/o/mfa/totp/", {}, HTTP_AUTHORIZATION=f"Bearer {token.token}")
    assert_error(refused, 403, "insufficient_scope")
    assert not Authenticator.objects.exists()
