"""An operator in a real browser (Debian's Chromium, driven by Playwright) against a live server:
registers clients, reads what the admin shows once, signs an account out everywhere."""

import os
from pathlib import Path

import pyotp
import pytest
import requests
from playwright.sync_api import expect

from ropc_provider import accounts, clients, realms
from tests.factories import UserFactory

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "admin-screenshots"
CUSTOMER_PASSWORD = "customer pass phrase 1"


@pytest.fixture
def operator_site(live_server, transactional_db):
    UserFactory(username="operator", is_staff=True, is_superuser=True, password="operator pass phrase 9")
    customers = realms.create_realm(slug="customers", name="Customers")
    accounts.create_account(customers, "carol", CUSTOMER_PASSWORD)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return live_server.url


def sign_in(page, base):
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator pass phrase 9")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def add_client(page, base, *, name, confidential=False, forward_ip=False, screenshot=None):
    page.goto(f"{base}/admin/ropc_provider/clientpolicy/add/")
    page.fill("#id_name", name)
    page.check(f"input[name=client_type][value={'confidential' if confidential else 'public'}]")
    page.get_by_label("customers", exact=True).check()
    if forward_ip:
        page.check("#id_may_forward_user_ip")
    if screenshot:
        page.screenshot(path=SCREENSHOTS / screenshot, full_page=True)
    page.click("input[name=_save]")


def token(base, data, **kwargs):
    return requests.post(f"{base}/o/token/", data=data, timeout=30, **kwargs)


def test_operator_registers_clients_and_signs_an_account_out(operator_site, browser_page):
    base, page = operator_site, browser_page
    sign_in(page, base)
    # Our screens lead the admin index, before DOT's own.
    headings = page.locator("#content-main caption, #content-main .app-caption, #content-main table caption")
    assert headings.first.inner_text().lower() == "access: password grant"

    # A public client for realm customers: its client_id, read off the page, signs carol in.
    add_client(page, base, name="Shop app", screenshot="add-form.png")
    client_id = page.locator("#client-id").inner_text()
    assert page.locator("#client-secret").count() == 0
    signed_in = token(
        base, {"grant_type": "password", "username": "carol", "password": CUSTOMER_PASSWORD, "client_id": client_id}
    )
    assert signed_in.status_code == 200, signed_in.text
    refresh_token = signed_in.json()["refresh_token"]

    # A confidential client: the secret is shown once, and it authenticates.
    add_client(page, base, name="Shop backend", confidential=True)
    page.screenshot(path=SCREENSHOTS / "secret-shown.png", full_page=True)
    assert "never be shown again" in page.locator("#copy-now").inner_text()
    backend_id, secret = page.locator("#client-id").inner_text(), page.locator("#client-secret").inner_text()
    backend = token(
        base, {"grant_type": "password", "username": "carol", "password": CUSTOMER_PASSWORD}, auth=(backend_id, secret)
    )
    assert backend.status_code == 200, backend.text

    page.goto(f"{base}/admin/ropc_provider/clientpolicy/")
    page.screenshot(path=SCREENSHOTS / "client-list.png", full_page=True)
    listing = page.content()
    assert backend_id in listing and client_id in listing and secret not in listing
    page.get_by_role("link", name="Shop backend").click()
    assert secret not in page.content()

    # "Sign out everywhere" on carol's account, confirmed: her refresh token stops working.
    page.goto(f"{base}/admin/ropc_provider/realmaccount/")
    page.get_by_role("row", name="carol").locator("input[type=checkbox]").check()
    page.select_option("select[name=action]", "sign_out_everywhere")
    page.click("button[name=index]")
    assert "stop working now" in page.locator("#confirm-question").inner_text()
    page.click("input[type=submit][value^='Yes']")
    assert "Signed out 1 account" in page.locator(".messagelist").inner_text()
    refreshed = token(base, {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_operator_enrols_an_authenticator(operator_site, browser_page):
    """The QR code, the secret and the recovery codes are shown once, on the page that answers the
    confirmation; what they show signs carol in with a second factor."""
    base, page = operator_site, browser_page
    client_id = clients.register_client(
        name="Shop app", confidential=False, realms=["customers"], default_realm="customers"
    ).application.client_id
    sign_in(page, base)
    page.goto(f"{base}/admin/ropc_provider/realmaccount/")
    page.get_by_role("link", name="carol").click()
    page.click("a.ropc-mfa-enroll")
    assert "active at once" in page.locator("#question").inner_text()
    page.click("input[type=submit]")
    assert page.locator("#totp-qr svg").is_visible()
    page.screenshot(path=SCREENSHOTS / "mfa-enrolled.png", full_page=True)
    secret = page.locator("#totp-secret").inner_text()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and "only time" in page.locator("#shown-once").inner_text()

    page.get_by_role("link", name="Back to carol").click()
    assert secret not in page.content() and not any(code in page.content() for code in codes)
    assert "10 recovery codes left" in page.locator(".field-second_factor").inner_text()

    password = {"grant_type": "password", "username": "carol", "password": CUSTOMER_PASSWORD, "client_id": client_id}
    asked = token(base, password)
    assert asked.status_code == 403 and asked.json()["error"] == "insufficient_authorization"
    challenge = {"response_type": "code", "client_id": client_id, "auth_session": asked.json()["auth_session"]}
    answer = requests.post(
        f"{base}/o/authorize-challenge/", data={**challenge, "otp": pyotp.TOTP(secret).now()}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    code = {"grant_type": "authorization_code", "code": answer.json()["authorization_code"], "client_id": client_id}
    assert token(base, code).status_code == 200

    # Removing it, confirmed, goes back to the password alone.
    page.click("a.ropc-mfa-remove")
    page.click("input[type=submit]")
    assert "Removed the authenticator" in page.locator(".messagelist").inner_text()
    assert token(base, password).status_code == 200


def test_operator_ends_one_session_of_an_account(operator_site, browser_page):
    """Carol is signed in on two apps; the operator ends one session from her account's page,
    confirmed, and the other goes on."""
    base, page = operator_site, browser_page
    refresh_tokens = {}
    for name in ("Phone app", "Web app"):
        client_id = clients.register_client(name=name, confidential=False, realms=["customers"]).application.client_id
        password = {"grant_type": "password", "username": "carol", "password": CUSTOMER_PASSWORD}
        signed_in = token(base, {**password, "client_id": client_id})
        assert signed_in.status_code == 200, signed_in.text
        refresh_tokens[name] = (client_id, signed_in.json()["refresh_token"])

    sign_in(page, base)
    page.goto(f"{base}/admin/ropc_provider/realmaccount/")
    page.get_by_role("link", name="carol").click()
    listed = page.locator("#live-sessions tr.ropc-session")
    expect(listed).to_have_count(2)
    listed.filter(has_text="Phone app").get_by_role("link", name="End session").click()
    assert "signed out of Phone app" in page.locator("#question").inner_text()
    page.click("input[type=submit][value^='Yes']")
    assert "Ended the session of carol on Phone app" in page.locator(".messagelist").inner_text()
    expect(listed).to_have_count(1)
    assert "Web app" in listed.inner_text()
    page.screenshot(path=SCREENSHOTS / "account-sessions.png", full_page=True)

    def refresh(name):
        client_id, refresh_token = refresh_tokens[name]
        return token(base, {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id})

    ended = refresh("Phone app")
    assert ended.status_code == 400 and ended.json()["error"] == "invalid_grant"
    assert refresh("Web app").status_code == 200


def test_forwarding_the_user_ip_is_refused_for_a_public_client(operator_site, browser_page):
    base, page = operator_site, browser_page
    sign_in(page, base)
    add_client(page, base, name="Sneaky app", forward_ip=True)
    error = page.locator(".errornote, .errorlist").first.inner_text()
    page.screenshot(path=SCREENSHOTS / "forward-ip-error.png", full_page=True)
    assert "Only a confidential client may forward" in page.content(), error
    assert page.url.endswith("/add/")


def test_screenshots_land_in_the_named_folder():
    # Written by the test above into a folder it names, for a reviewer; never committed.
    assert str(SCREENSHOTS).endswith(os.path.join("var", "admin-screenshots"))
