"""Two-step sign-in through both doors: the password grant's ``insufficient_authorization`` and the
Authorization Challenge Endpoint of first-party apps (draft-ietf-oauth-first-party-apps), ending
in a code redeemed at the token endpoint. Codes are computed from the enrolled secret."""

import base64
import hashlib
import json
import secrets
import shlex
import subprocess
from datetime import timedelta

import pyotp
import pytest
from django.utils import timezone
from freezegun import freeze_time
from oauth2_provider.models import AccessToken

from ropc_provider import accounts, mfa, signals
from ropc_provider.exceptions import InvalidSession
from ropc_provider.models import Authenticator, AuthorizationCode, AuthSession, Realm, SecurityEvent, Session
from tests.factories import AccountFactory, ClientFactory, RealmFactory
from tests.helpers import INTROSPECT, RacingHasher, assert_error, me, readme_block, require_program, verify

CHALLENGE_URL = "/o/authorize-challenge/"


@pytest.fixture
def factor(alice):
    """Alice's authenticator, enrolled by an operator: its secret and recovery codes."""
    return mfa.enroll(alice.user)


@pytest.fixture
def app(staff):
    return ClientFactory(realms=[staff], default_realm="staff", scopes=["openid", "read"]).application


@pytest.fixture
def clock():
    with freeze_time(timezone.now()) as frozen:
        yield frozen


def otp(enrolment):
    return pyotp.TOTP(enrolment.secret).now()


def challenge(api, client, secret=None, **fields):
    data = {"response_type": "code", **fields}
    if secret is not None:
        return api.post(CHALLENGE_URL, data, basic=(client.client_id, secret))
    return api.post(CHALLENGE_URL, {"client_id": client.client_id, **data})


def redeem(api, client, code, secret=None, **fields):
    data = {"grant_type": "authorization_code", "code": code, **fields}
    if secret is not None:
        return api.token(data, basic=(client.client_id, secret))
    return api.token({"client_id": client.client_id, **data})


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def second_factor_asked(api, app, account):
    """The password grant's answer to a right password when a second factor is due."""
    response = api.password_grant(app, account.login_name, account.password, scope="openid read")
    assert_error(response, 403, "insufficient_authorization")
    return response.data["auth_session"]


# -- the whole flow -------------------------------------------------------------------------------


@pytest.mark.parametrize("with_pkce", [False, True], ids=["plain", "pkce"])
def test_password_grant_then_totp_then_code_then_tokens(api, app, alice, factor, jwks, clock, with_pkce):
    password_checked = timezone.now()
    response = api.password_grant(app, "alice", alice.password, scope="openid read")
    assert_error(response, 403, "insufficient_authorization")
    assert response.data["accepted_factors"] == ["otp", "recovery_code"]
    assert response.data["auth_session_expires_in"] == 300
    assert "access_token" not in response.data
    assert len(base64.urlsafe_b64decode(response.data["auth_session"] + "==")) >= 32  # 256 bits

    clock.tick(20)
    verifier, code_challenge = pkce_pair()
    pkce = {"code_challenge": code_challenge, "code_challenge_method": "S256"} if with_pkce else {}
    answer = challenge(api, app, auth_session=response.data["auth_session"], otp=otp(factor), **pkce)
    assert answer.status_code == 200, answer.content
    assert answer["Cache-Control"] == "no-store"
    assert set(answer.data) == {"authorization_code"}

    tokens = redeem(api, app, answer.data["authorization_code"], **({"code_verifier": verifier} if with_pkce else {}))
    assert tokens.status_code == 200, tokens.content
    assert me(api, tokens.data).json()["username"] == "alice"
    claims = verify(tokens.data["id_token"], jwks, app.client_id)
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["auth_time"] == int(password_checked.timestamp())
    assert claims["realm"] == "staff"
    # A refresh asks for no factor again, and its ID token tells how the session began.
    clock.tick(60)
    refreshed = api.refresh(app, tokens.data["refresh_token"])
    assert refreshed.status_code == 200
    again = verify(refreshed.data["id_token"], jwks, app.client_id)
    assert (again["amr"], again["auth_time"]) == (["pwd", "otp"], claims["auth_time"])


def test_a_recovery_code_signs_in_once(api, app, alice, factor, jwks):
    auth_session = second_factor_asked(api, app, alice)
    code = challenge(api, app, auth_session=auth_session, recovery_code=factor.recovery_codes[3]).data
    tokens = redeem(api, app, code["authorization_code"])
    assert verify(tokens.data["id_token"], jwks, app.client_id)["amr"] == ["pwd", "recovery_code"]
    refreshed = api.refresh(app, tokens.data["refresh_token"])
    assert verify(refreshed.data["id_token"], jwks, app.client_id)["amr"] == ["pwd", "recovery_code"]
    assert mfa.status(alice.user)["recovery_codes_left"] == 9

    auth_session = second_factor_asked(api, app, alice)
    again = challenge(api, app, auth_session=auth_session, recovery_code=factor.recovery_codes[3])
    assert_error(again, 400, "insufficient_authorization")


@pytest.mark.parametrize("confidential", [False, True], ids=["public", "confidential"])
def test_challenge_endpoint_alone_signs_in(api, staff, alice, factor, confidential):
    registered = ClientFactory(realms=[staff], default_realm="staff", confidential=confidential, scopes=["read"])
    client, secret = registered.application, registered.client_secret
    first = challenge(api, client, secret, username="alice", password=alice.password)
    assert_error(first, 400, "insufficient_authorization")
    second = challenge(api, client, secret, auth_session=first.data["auth_session"], otp=otp(factor))
    assert second.status_code == 200, second.content
    tokens = redeem(api, client, second.data["authorization_code"], secret)
    assert tokens.status_code == 200, tokens.content
    assert tokens.data["scope"] == "read"


def test_without_a_factor_the_challenge_endpoint_answers_a_code_at_once(api, app, alice, jwks):
    answer = challenge(api, app, username="alice", password=alice.password, scope="openid")
    assert answer.status_code == 200, answer.content
    tokens = redeem(api, app, answer.data["authorization_code"])
    assert verify(tokens.data["id_token"], jwks, app.client_id)["amr"] == ["pwd"]
    refreshed = api.refresh(app, tokens.data["refresh_token"])
    assert verify(refreshed.data["id_token"], jwks, app.client_id)["amr"] == ["pwd"]


def test_project_users_are_asked_too(api, public_app, user, jwks):
    """Project users come from the project's backends: their factor is found all the same."""
    enrolment = mfa.enroll(user)
    response = api.password_grant(public_app, "alice")
    assert_error(response, 403, "insufficient_authorization")
    assert not AccessToken.objects.exists()
    answer = challenge(api, public_app, auth_session=response.data["auth_session"], otp=otp(enrolment))
    assert redeem(api, public_app, answer.data["authorization_code"]).status_code == 200


# -- refusals -------------------------------------------------------------------------------------


def test_wrong_password_gets_no_auth_session(api, app, alice, factor):
    response = api.password_grant(app, "alice", "not the password")
    assert_error(response, 400, "invalid_grant")
    assert "auth_session" not in response.data
    at_challenge = challenge(api, app, username="alice", password="not the password")
    assert_error(at_challenge, 400, "invalid_grant")
    assert "auth_session" not in at_challenge.data
    assert not AuthSession.objects.exists()


def test_wrong_code_keeps_the_session_usable(api, app, alice, factor):
    auth_session = second_factor_asked(api, app, alice)
    wrong = challenge(api, app, auth_session=auth_session, otp="000000" if otp(factor) != "000000" else "111111")
    assert_error(wrong, 400, "insufficient_authorization")
    assert wrong.data["auth_session"] == auth_session
    assert challenge(api, app, auth_session=auth_session, otp=otp(factor)).status_code == 200


def test_a_totp_code_is_accepted_once(api, app, alice, factor):
    code = otp(factor)
    first = challenge(api, app, auth_session=second_factor_asked(api, app, alice), otp=code)
    assert first.status_code == 200
    replay = challenge(api, app, auth_session=second_factor_asked(api, app, alice), otp=code)
    assert_error(replay, 400, "insufficient_authorization")


def test_codes_of_the_neighbouring_steps_only(api, app, alice, factor, clock):
    totp = pyotp.TOTP(factor.secret)
    now = timezone.now().timestamp()
    for offset, accepted in [(-60, False), (60, False), (-30, True), (30, True)]:
        auth_session = second_factor_asked(api, app, alice)
        answer = challenge(api, app, auth_session=auth_session, otp=totp.at(now + offset))
        assert (answer.status_code == 200) is accepted, (offset, answer.content)


def test_expired_session(api, app, alice, factor, clock):
    auth_session = second_factor_asked(api, app, alice)
    clock.tick(301)
    assert_error(challenge(api, app, auth_session=auth_session, otp=otp(factor)), 400, "invalid_session")


def test_used_session(api, app, alice, factor, clock):
    auth_session = second_factor_asked(api, app, alice)
    assert challenge(api, app, auth_session=auth_session, otp=otp(factor)).status_code == 200
    clock.tick(30)
    assert_error(challenge(api, app, auth_session=auth_session, otp=otp(factor)), 400, "invalid_session")


def test_another_clients_session(api, app, staff, alice, factor):
    auth_session = second_factor_asked(api, app, alice)
    other = ClientFactory(realms=[staff], default_realm="staff").application
    answer = challenge(api, other, auth_session=auth_session, otp=otp(factor))
    assert_error(answer, 400, "invalid_session")
    assert "auth_session" not in answer.data


def test_unknown_session(api, app, alice, factor):
    assert_error(challenge(api, app, auth_session="made-up", otp=otp(factor)), 400, "invalid_session")


def test_a_password_change_ends_the_pending_sign_in(api, app, alice, factor):
    auth_session = second_factor_asked(api, app, alice)
    alice.user.set_password("a brand new pass phrase 9")
    alice.user.save()
    assert_error(challenge(api, app, auth_session=auth_session, otp=otp(factor)), 400, "invalid_session")


def test_a_code_used_twice_revokes_what_its_first_use_issued(api, app, alice, factor):
    auth_session = second_factor_asked(api, app, alice)
    code = challenge(api, app, auth_session=auth_session, otp=otp(factor)).data["authorization_code"]
    first = redeem(api, app, code)
    assert first.status_code == 200
    assert_error(redeem(api, app, code), 400, "invalid_grant")
    assert me(api, first.data).status_code == 401
    assert_error(api.refresh(app, first.data["refresh_token"]), 400, "invalid_grant")
    # Its session says why it ended, in the list, the trail and the refresh refusal.
    assert Session.objects.get().end_reason == Session.REUSE_DETECTED
    assert SecurityEvent.objects.filter(type=SecurityEvent.SESSION_ENDED, reason=Session.REUSE_DETECTED).exists()


def test_a_code_used_twice_without_refresh_tokens_revokes_the_access_token(api, staff, alice):
    client = ClientFactory(realms=[staff], default_realm="staff", issue_refresh_tokens=False).application
    code = challenge(api, client, username="alice", password=alice.password).data["authorization_code"]
    first = redeem(api, client, code)
    assert "refresh_token" not in first.data
    assert_error(redeem(api, client, code), 400, "invalid_grant")
    assert me(api, first.data).status_code == 401
    assert Session.objects.get().end_reason == Session.REUSE_DETECTED


def test_codes_expire_after_a_minute(api, app, alice, clock):
    code = challenge(api, app, username="alice", password=alice.password).data["authorization_code"]
    clock.tick(61)
    assert_error(redeem(api, app, code), 400, "invalid_grant")


def test_a_codes_access_token_ends_with_the_session_begun_at_the_password(api, app, alice, factor, clock, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "ACCESS_TOKEN_LIFETIME": 3600, "SESSION_MAX_LIFETIME": 300}
    auth_session = second_factor_asked(api, app, alice)
    clock.tick(20)
    code = challenge(api, app, auth_session=auth_session, otp=otp(factor)).data["authorization_code"]
    clock.tick(40)
    tokens = redeem(api, app, code)
    # The session began when the password was checked, a minute before the code was redeemed.
    assert tokens.data["expires_in"] == 240
    assert AccessToken.objects.get().expires == timezone.now() + timedelta(seconds=240)


def test_a_code_is_bound_to_its_client(api, app, staff, alice):
    code = challenge(api, app, username="alice", password=alice.password).data["authorization_code"]
    other = ClientFactory(realms=[staff], default_realm="staff").application
    assert_error(redeem(api, other, code), 400, "invalid_grant")
    assert redeem(api, app, code).status_code == 200  # the other client's try did not spend it


@pytest.mark.parametrize("sent", ["wrong", "missing", "unasked"])
def test_pkce_verifier_mismatch(api, app, alice, sent):
    verifier, code_challenge = pkce_pair()
    pkce = {} if sent == "unasked" else {"code_challenge": code_challenge, "code_challenge_method": "S256"}
    code = challenge(api, app, username="alice", password=alice.password, **pkce).data["authorization_code"]
    fields = {"missing": {}}.get(sent, {"code_verifier": pkce_pair()[0] if sent == "wrong" else verifier})
    assert_error(redeem(api, app, code, **fields), 400, "invalid_grant")
    assert_error(redeem(api, app, code, code_verifier=verifier), 400, "invalid_grant")  # spent


@pytest.mark.parametrize(
    "fields",
    [
        {"code_challenge": "x" * 43, "code_challenge_method": "plain"},
        {"code_challenge": "short", "code_challenge_method": "S256"},
        {"code_challenge_method": "S256"},
    ],
    ids=["plain", "malformed", "method-alone"],
)
def test_only_s256_pkce(api, app, alice, fields):
    assert_error(challenge(api, app, username="alice", password=alice.password, **fields), 400, "invalid_request")


def test_wrong_codes_end_in_too_many_attempts(api, app, alice, factor, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "LOCKOUT_THRESHOLD": 3}
    auth_session = second_factor_asked(api, app, alice)
    wrong = str((int(otp(factor)) + 500000) % 1000000).zfill(6)
    for _ in range(3):
        assert_error(challenge(api, app, auth_session=auth_session, otp=wrong), 400, "insufficient_authorization")
    locked = challenge(api, app, auth_session=auth_session, otp=otp(factor))
    assert_error(locked, 429, "too_many_attempts")
    assert int(locked["Retry-After"]) > 0
    # Refused before verifying: the right code sent while locked was not spent.
    assert mfa.active_authenticator(type(alice.user).objects.get(pk=alice.user.pk)).last_used_step is None
    assert_error(api.password_grant(app, "alice", alice.password), 429, "too_many_attempts")


def test_wrong_passwords_and_wrong_codes_share_one_count(api, app, alice, factor, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "LOCKOUT_THRESHOLD": 3}
    assert_error(api.password_grant(app, "alice", "nope"), 400, "invalid_grant")
    assert_error(api.password_grant(app, "alice", "nope again"), 400, "invalid_grant")
    auth_session = second_factor_asked(api, app, alice)  # a right password does not forgive them
    wrong = str((int(otp(factor)) + 500000) % 1000000).zfill(6)
    assert_error(challenge(api, app, auth_session=auth_session, otp=wrong), 400, "insufficient_authorization")
    assert_error(challenge(api, app, auth_session=auth_session, otp=otp(factor)), 429, "too_many_attempts")


def test_required_policy_enrols_inside_the_sign_in(api, app, staff, alice):
    staff.mfa = Realm.MFA_REQUIRED
    staff.save()
    response = api.password_grant(app, "alice", alice.password)
    assert_error(response, 403, "insufficient_authorization")
    assert response.data["enrollment_required"] is True
    assert response.data["accepted_factors"] == ["otp"]
    assert response.data["provisioning_uri"].startswith("otpauth://totp/Example%20Staff:alice?")
    assert not AccessToken.objects.exists()

    enrolled = mfa.Enrolment(secret=response.data["totp_secret"], provisioning_uri="")
    answer = challenge(api, app, auth_session=response.data["auth_session"], otp=otp(enrolled))
    assert answer.status_code == 200, answer.content
    assert len(answer.data["recovery_codes"]) == 10
    assert redeem(api, app, answer.data["authorization_code"]).status_code == 200
    assert mfa.status(alice.user)["totp"] is True
    # From now on the enrolled factor is asked, and the codes work.
    auth_session = second_factor_asked(api, app, alice)
    code = challenge(api, app, auth_session=auth_session, recovery_code=answer.data["recovery_codes"][0])
    assert code.status_code == 200


def test_project_realm_follows_its_setting(api, public_app, user, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "PROJECT_REALM_MFA": "required"}
    response = api.password_grant(public_app, "alice")
    assert_error(response, 403, "insufficient_authorization")
    assert response.data["enrollment_required"] is True


def test_challenge_request_errors(api, app, alice, confidential):
    assert_error(
        challenge(api, app, username="alice", password=alice.password, response_type="token"),
        400,
        "unsupported_response_type",
    )
    no_type = api.post(CHALLENGE_URL, {"client_id": app.client_id, "username": "alice", "password": alice.password})
    assert_error(no_type, 400, "invalid_request")
    assert_error(challenge(api, app, username="alice"), 400, "invalid_request")
    assert_error(challenge(api, app, auth_session="x"), 400, "invalid_session")
    application, _ = confidential
    assert_error(challenge(api, application, "not the secret", username="alice", password="x"), 401, "invalid_client")
    assert api.client.get(CHALLENGE_URL).status_code == 405


def test_signals_carry_no_secret(api, app, alice, factor):
    heard = []

    def listen(**kwargs):
        heard.append(kwargs)

    for signal in (signals.challenge_issued, signals.factor_verified, signals.factor_failed):
        signal.connect(listen, weak=False)
    try:
        auth_session = second_factor_asked(api, app, alice)
        right = otp(factor)
        wrong = str((int(right) + 500000) % 1000000).zfill(6)
        challenge(api, app, auth_session=auth_session, otp=wrong)
        code = challenge(api, app, auth_session=auth_session, otp=right).data["authorization_code"]
    finally:
        for signal in (signals.challenge_issued, signals.factor_verified, signals.factor_failed):
            signal.disconnect(listen)
    assert [kwargs["signal"] for kwargs in heard] == [
        signals.challenge_issued,
        signals.factor_failed,
        signals.factor_verified,
    ]
    assert heard[-1]["method"] == "otp"
    shown = repr(heard) + "".join(repr(dict(kwargs["request"].POST)) for kwargs in heard)
    for secret in (auth_session, factor.secret, alice.password, right, wrong, code):
        assert secret not in shown


def test_the_stored_rows_hold_no_value(api, app, alice, factor):
    auth_session = second_factor_asked(api, app, alice)
    code = challenge(api, app, auth_session=auth_session, otp=otp(factor)).data["authorization_code"]
    stored = repr(list(AuthSession.objects.values())) + repr(list(AuthorizationCode.objects.values()))
    assert auth_session not in stored and code not in stored


def test_metadata_names_the_challenge_endpoint(client):
    doc = client.get("/o/.well-known/oauth-authorization-server").json()
    assert doc["authorization_challenge_endpoint"] == "http://testserver/o/authorize-challenge/"
    assert "authorization_code" in doc["grant_types_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]


def test_a_dot_authorization_code_client_cannot_use_the_challenge(api, authorization_code_app, user):
    answer = challenge(api, authorization_code_app, username="alice", password="correct horse battery staple")
    assert_error(answer, 400, "unauthorized_client")


def test_deactivated_account_between_the_steps(api, app, alice, factor):
    auth_session = second_factor_asked(api, app, alice)
    alice.user.is_active = False
    alice.user.save()
    assert_error(challenge(api, app, auth_session=auth_session, otp=otp(factor)), 400, "invalid_session")


def test_expired_session_rows_are_not_needed_for_introspection(api, app, alice, factor, resource_server):
    """Tokens from the code flow are ordinary tokens: introspection describes them."""
    auth_session = second_factor_asked(api, app, alice)
    code = challenge(api, app, auth_session=auth_session, otp=otp(factor)).data["authorization_code"]
    tokens = redeem(api, app, code).data
    AuthSession.objects.all().delete()
    AuthorizationCode.objects.filter(expires__lt=timezone.now() + timedelta(hours=1)).delete()
    server, secret = resource_server
    described = api.post(INTROSPECT, {"token": tokens["access_token"]}, basic=(server.client_id, secret))
    assert described.data["active"] is True


def test_the_readmes_password_grant_flow_runs_as_written(live_server):
    run_curl_lines(live_server, readme_block("# 1. The password is right and a second factor is due"))


def test_the_readmes_flow_off_the_password_grant_runs_as_written(live_server):
    run_curl_lines(live_server, readme_block("# 1. The same login screen, the standards-track endpoint"))


def run_curl_lines(live_server, block):
    """A README block's curl lines against a live server, placeholders filled in as an app would:
    each answer has the keys (and, where shown, the values) the README promises."""
    require_program("curl")
    staff = RealmFactory(slug="staff", name="Example Staff")
    alice = AccountFactory(realm=staff, login_name="alice")
    enrolment = mfa.enroll(alice.user)
    client = ClientFactory(realms=[staff], default_realm="staff", scopes=["read"]).application
    verifier, code_challenge = pkce_pair()
    known = {
        "CLIENT_ID": client.client_id,
        "PASSWORD": shlex.quote(alice.password),
        "CODE_CHALLENGE": code_challenge,
        "CODE_VERIFIER": verifier,
    }
    commands, expected = [], {}
    for line in block.replace("\\\n", " ").splitlines():
        if line.startswith("# {"):
            expected[len(commands) - 1] = json.loads(line[2:].replace('"…"', '"..."'))
        elif line.startswith("curl"):
            commands.append(line.replace("http://127.0.0.1:8000", live_server.url))
    assert len(commands) == 3
    for number, command in enumerate(commands):
        known["OTP"] = otp(enrolment)
        for name in sorted(known, key=len, reverse=True):
            command = command.replace(name, known[name])
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True)
        answer = json.loads(done.stdout)
        for key, value in expected[number].items():
            assert key in answer and value in ("...", answer[key]), (number, answer)
        known.update({name.upper(): answer[name] for name in ("auth_session", "authorization_code") if name in answer})
    assert answer["token_type"] == "Bearer"


def test_an_auth_session_keeps_the_code_challenge_it_was_opened_with(api, app, alice, factor):
    verifier, code_challenge = pkce_pair()
    pkce = {"code_challenge": code_challenge, "code_challenge_method": "S256"}
    first = challenge(api, app, username="alice", password=alice.password, **pkce)
    other = {"code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}
    swapped = challenge(api, app, auth_session=first.data["auth_session"], otp=otp(factor), **other)
    assert_error(swapped, 400, "invalid_request")
    answer = challenge(api, app, auth_session=first.data["auth_session"], otp=otp(factor))
    assert redeem(api, app, answer.data["authorization_code"], code_verifier=verifier).status_code == 200


def test_right_passwords_at_the_challenge_endpoint_settle_their_attempts(api, app, alice, settings):
    """Each right password is a success, as at the token endpoint: none holds a place in the
    lockout's count or the address's window."""
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "LOCKOUT_THRESHOLD": 3, "IP_FAILURE_LIMIT": 3}
    for _ in range(6):
        assert challenge(api, app, username="alice", password=alice.password).status_code == 200
    assert api.password_grant(app, "alice", alice.password).status_code == 200


def test_a_password_change_during_the_hash_ends_the_pending_sign_in(api, public_app, racing):
    enrolment = mfa.enroll(racing)

    def change_password():
        racing.set_password("changed while hashing 1")
        racing.save()

    RacingHasher.during_verify = change_password
    response = api.password_grant(public_app, "racer")
    assert_error(response, 403, "insufficient_authorization")
    answer = challenge(api, public_app, auth_session=response.data["auth_session"], otp=otp(enrolment))
    assert_error(answer, 400, "invalid_session")


def test_the_password_grant_ignores_pkce_parameters(api, app, alice, factor):
    """PKCE belongs to the challenge endpoint, which checks it; at the token endpoint it is a
    parameter the password grant does not read."""
    response = api.password_grant(app, "alice", alice.password, code_challenge="x" * 300, code_challenge_method="plain")
    assert_error(response, 403, "insufficient_authorization")
    answer = challenge(api, app, auth_session=response.data["auth_session"], otp=otp(factor))
    assert redeem(api, app, answer.data["authorization_code"]).status_code == 200


def test_an_enrolment_is_bound_to_the_sign_in_that_offered_it(api, app, staff, alice):
    """Under required, a second sign-in with the password (an attacker's) cannot swap its own
    secret into the account's enrolment, before or after."""
    staff.mfa = Realm.MFA_REQUIRED
    staff.save()
    users = api.password_grant(app, "alice", alice.password).data
    attackers = api.password_grant(app, "alice", alice.password).data
    assert users["totp_secret"] != attackers["totp_secret"]
    their_code = otp(mfa.Enrolment(secret=attackers["totp_secret"], provisioning_uri=""))
    swapped = challenge(api, app, auth_session=users["auth_session"], otp=their_code)
    assert_error(swapped, 400, "insufficient_authorization")
    mine = challenge(api, app, auth_session=users["auth_session"], otp=otp(mfa.Enrolment(users["totp_secret"], "")))
    assert mine.status_code == 200, mine.content
    late = challenge(api, app, auth_session=attackers["auth_session"], otp=their_code)
    assert_error(late, 400, "insufficient_authorization")
    assert mfa.active_authenticator(type(alice.user).objects.get(pk=alice.user.pk)).secret == users["totp_secret"]


def test_wrong_codes_from_anywhere_end_in_a_hard_stop(api, app, alice, factor, settings):
    """The lockout slows guessing down; past SECOND_FACTOR_MAX_FAILURES consecutive wrong codes,
    from any address and through any sign-in, TOTP codes are refused until a recovery code or an
    operator's unlock. A right password in between forgives nothing."""
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SECOND_FACTOR_MAX_FAILURES": 4}
    wrong = str((int(otp(factor)) + 500000) % 1000000).zfill(6)
    for number in range(4):
        address = {"REMOTE_ADDR": f"198.51.100.{number}"}
        response = api.password_grant(app, "alice", alice.password, **address)
        assert_error(response, 403, "insufficient_authorization")
        refused = api.post(
            CHALLENGE_URL,
            {
                "response_type": "code",
                "client_id": app.client_id,
                "auth_session": response.data["auth_session"],
                "otp": wrong,
            },
            **address,
        )
        assert_error(refused, 400, "insufficient_authorization")
    auth_session = second_factor_asked(api, app, alice)
    stopped = challenge(api, app, auth_session=auth_session, otp=otp(factor))
    assert_error(stopped, 400, "insufficient_authorization")
    assert "recovery code" in stopped.data["error_description"]
    # A recovery code signs in, and lifts the stop.
    assert challenge(api, app, auth_session=auth_session, recovery_code=factor.recovery_codes[0]).status_code == 200
    assert challenge(api, app, auth_session=second_factor_asked(api, app, alice), otp=otp(factor)).status_code == 200


def test_an_operator_unlock_lifts_the_hard_stop(api, app, staff, alice, factor, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SECOND_FACTOR_MAX_FAILURES": 1}
    auth_session = second_factor_asked(api, app, alice)
    wrong = str((int(otp(factor)) + 500000) % 1000000).zfill(6)
    assert_error(challenge(api, app, auth_session=auth_session, otp=wrong), 400, "insufficient_authorization")
    assert "recovery code" in challenge(api, app, auth_session=auth_session, otp=otp(factor)).data["error_description"]
    assert accounts.unlock(staff, "alice") is True
    assert challenge(api, app, auth_session=auth_session, otp=otp(factor)).status_code == 200


def test_sign_ins_do_not_pile_rows_up(api, app, alice, factor, clock):
    sessions = [second_factor_asked(api, app, alice) for _ in range(7)]
    assert AuthSession.objects.count() == 5
    assert_error(challenge(api, app, auth_session=sessions[0], otp=otp(factor)), 400, "invalid_session")
    assert challenge(api, app, auth_session=sessions[-1], otp=otp(factor)).status_code == 200
    clock.tick(24 * 3600 + 120)
    second_factor_asked(api, app, alice)
    assert AuthSession.objects.count() == 1 and not AuthorizationCode.objects.exists()


def test_a_password_change_after_the_code_was_minted_refuses_it(api, app, alice):
    code = challenge(api, app, username="alice", password=alice.password).data["authorization_code"]
    alice.user.set_password("a brand new pass phrase 9")
    alice.user.save()
    assert_error(redeem(api, app, code), 400, "invalid_grant")


def test_a_realm_deactivated_between_the_steps_ends_the_sign_in(api, app, staff, alice, factor):
    auth_session = second_factor_asked(api, app, alice)
    staff.is_active = False
    staff.save()
    assert_error(challenge(api, app, auth_session=auth_session, otp=otp(factor)), 400, "invalid_session")


def test_an_account_locked_through_another_name_refuses_codes_silently(api, settings, alice, factor):
    """As for passwords: a lock of the account's other name (its email) answers like a wrong code,
    so no answer links the names, and the right code is not spent."""
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "LOCKOUT_THRESHOLD": 2}
    mail = RealmFactory(slug="mail", name="Mail", allow_email_login=True)
    carol = AccountFactory(realm=mail, login_name="carol", email="carol@example.com")
    enrolment = mfa.enroll(carol.user)
    client = ClientFactory(realms=[mail], default_realm="mail").application
    asked = api.password_grant(client, "carol", carol.password)
    assert_error(asked, 403, "insufficient_authorization")
    for _ in range(2):
        assert_error(api.password_grant(client, "carol@example.com", "wrong"), 400, "invalid_grant")
    refused = challenge(api, client, auth_session=asked.data["auth_session"], otp=otp(enrolment))
    assert_error(refused, 400, "insufficient_authorization")
    assert mfa.active_authenticator(type(carol.user).objects.get(pk=carol.user.pk)).last_used_step is None


def test_two_requests_with_one_session_make_one_code(api, app, alice, factor):
    from ropc_provider import challenges

    auth_session = second_factor_asked(api, app, alice)
    session = challenges.find_session(auth_session, app)
    AuthSession.objects.filter(pk=session.pk).update(used_at=timezone.now())  # the other request won
    with pytest.raises(InvalidSession):
        challenges.second_step(session, otp=otp(factor), ip="127.0.0.1")
    assert mfa.active_authenticator(type(alice.user).objects.get(pk=alice.user.pk)).last_used_step is None


def test_the_auth_session_names_its_client(api, app, alice, factor):
    """draft §5.1: client_id may be left out when the auth_session identifies the client."""
    auth_session = second_factor_asked(api, app, alice)
    answer = api.post(CHALLENGE_URL, {"response_type": "code", "auth_session": auth_session, "otp": otp(factor)})
    assert answer.status_code == 200, answer.content
    # A session that is gone says so, whether or not the request named its client.
    assert_error(api.post(CHALLENGE_URL, {"response_type": "code", "auth_session": "unknown"}), 400, "invalid_session")


def test_a_confidential_client_still_authenticates_with_an_auth_session(api, staff, alice, factor):
    registered = ClientFactory(realms=[staff], default_realm="staff", confidential=True)
    client, secret = registered.application, registered.client_secret
    first = challenge(api, client, secret, username="alice", password=alice.password)
    unauthenticated = api.post(
        CHALLENGE_URL, {"response_type": "code", "auth_session": first.data["auth_session"], "otp": otp(factor)}
    )
    assert_error(unauthenticated, 401, "invalid_client")


def test_an_empty_code_is_missing_not_wrong(api, app, alice, factor, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "LOCKOUT_THRESHOLD": 1}
    auth_session = second_factor_asked(api, app, alice)
    for field in ("otp", "recovery_code"):
        assert_error(challenge(api, app, auth_session=auth_session, **{field: ""}), 400, "invalid_request")
    assert challenge(api, app, auth_session=auth_session, otp=otp(factor)).status_code == 200


def test_an_error_after_the_code_was_spent_does_not_hand_the_session_back(api, app, alice, factor):
    def broken(**kwargs):
        raise RuntimeError("receiver exploded")

    auth_session = second_factor_asked(api, app, alice)
    signals.factor_verified.connect(broken, weak=False)
    try:
        with pytest.raises(RuntimeError):
            challenge(api, app, auth_session=auth_session, recovery_code=factor.recovery_codes[0])
    finally:
        signals.factor_verified.disconnect(broken)
    assert_error(challenge(api, app, auth_session=auth_session, otp=otp(factor)), 400, "invalid_session")


def test_the_hard_stop_does_not_lock_the_user_out_of_recovery_codes(api, app, alice, factor, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SECOND_FACTOR_MAX_FAILURES": 1, "LOCKOUT_THRESHOLD": 3}
    auth_session = second_factor_asked(api, app, alice)
    wrong = str((int(otp(factor)) + 500000) % 1000000).zfill(6)
    assert_error(challenge(api, app, auth_session=auth_session, otp=wrong), 400, "insufficient_authorization")
    for _ in range(4):  # the user's right codes, refused by the stop: not counted as guesses
        assert_error(challenge(api, app, auth_session=auth_session, otp=otp(factor)), 400, "insufficient_authorization")
    assert challenge(api, app, auth_session=auth_session, recovery_code=factor.recovery_codes[0]).status_code == 200


def test_an_operator_unlock_by_email_lifts_the_hard_stop(api, db, settings):
    settings.ROPC_PROVIDER = {**settings.ROPC_PROVIDER, "SECOND_FACTOR_MAX_FAILURES": 1}
    mail = RealmFactory(slug="mail", name="Mail", allow_email_login=True)
    carol = AccountFactory(realm=mail, login_name="carol", email="carol@example.com")
    enrolment = mfa.enroll(carol.user)
    client = ClientFactory(realms=[mail], default_realm="mail").application
    auth_session = second_factor_asked(api, client, carol)
    wrong = str((int(otp(enrolment)) + 500000) % 1000000).zfill(6)
    assert_error(challenge(api, client, auth_session=auth_session, otp=wrong), 400, "insufficient_authorization")
    assert accounts.unlock(mail, "carol@example.com") is True
    assert challenge(api, client, auth_session=auth_session, otp=otp(enrolment)).status_code == 200


def test_codes_sent_to_an_exhausted_factor_cannot_flood_the_trail(api, app, alice, factor):
    Authenticator.objects.filter(user=alice.user).update(failed_attempts=100)
    auth_session = second_factor_asked(api, app, alice)
    for _ in range(5):
        assert_error(challenge(api, app, auth_session=auth_session, otp="123456"), 400, "insufficient_authorization")
    refusals = SecurityEvent.objects.filter(type=SecurityEvent.SECOND_FACTOR_FAILED)
    assert list(refusals.values_list("reason", flat=True)) == ["exhausted"]
