"""The Accounts and Settings pages in headless Chromium: an admin makes an account and
gives it a new password without mail; a profile keeps its temperature and max tokens and
is saved with a warning when its host does not resolve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import ADMIN_PASSWORD
from tests.web.harness import LiveApp
from tests.web.test_browser import browser, sign_in  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = LiveApp(Path(tmp_path_factory.mktemp("admin-ui"))).start()
    yield app
    app.stop()


@pytest.fixture
def page(browser: object, live_app: LiveApp) -> Iterator[object]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, live_app.url, "admin", ADMIN_PASSWORD)
    yield page
    context.close()


def test_an_admin_creates_an_account_and_resets_its_password_on_the_accounts_page(
    page: object, live_app: LiveApp
) -> None:
    page.goto(f"{live_app.url}/admin")
    page.fill("#create-account-form input[name=name]", "Gina")
    page.fill("#create-account-form input[name=email]", "gina@example.com")
    page.click("#create-account-form button[type=submit]")
    page.wait_for_selector("#account-secret:not([hidden])")
    first = page.text_content("#account-secret-password")
    username = page.locator("#accounts-table code", has_text="gina_").text_content()
    assert first and username in page.text_content("#account-secret-text")
    assert live_app.login(username, first).get("/api/auth/me").status_code == 200

    page.click("#account-secret-hide")
    row = page.locator("#accounts-table tr", has=page.locator("code", has_text=username))
    row.get_by_role("button", name="Reset password").click()
    page.wait_for_selector("#account-secret:not([hidden])")
    second = page.text_content("#account-secret-password")
    assert second and second != first
    assert live_app.login(username, second).get("/api/auth/me").status_code == 200

    again = page.locator("#create-account-form")
    again.locator("input[name=name]").fill("Gina again")
    again.locator("input[name=email]").fill("GINA@example.com")
    again.locator("button[type=submit]").click()
    page.wait_for_selector("#create-account-error:not([hidden])")
    assert "already exists" in page.text_content("#create-account-error")


def test_a_profile_keeps_temperature_and_max_tokens_and_warns_on_an_unresolvable_host(
    page: object, live_app: LiveApp
) -> None:
    page.goto(f"{live_app.url}/settings")
    form = page.locator("#profile-form")
    form.locator("input[name=name]").fill("Offline for now")
    form.locator("input[name=baseUrl]").fill("https://no-such-host.invalid/v1")
    form.locator("input[name=temperature]").fill("0.4")
    form.locator("input[name=maxTokens]").fill("256")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#profile-warning:not([hidden])")
    assert "no-such-host.invalid" in page.text_content("#profile-warning")
    row = page.locator("#profiles-table tr", has_text="Offline for now")
    assert "temperature 0.4" in row.text_content() and "max 256 tokens" in row.text_content()
    row.get_by_role("button", name="Edit").click()
    assert form.locator("input[name=temperature]").input_value() == "0.4"
    assert form.locator("input[name=maxTokens]").input_value() == "256"
