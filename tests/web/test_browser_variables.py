"""Per-record variables in headless Chromium: the draft's proposals are shown in the
editor, the user removes them and declares one of their own, confirms, and the job page
shows the value each record was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet import ADMIN_PASSWORD, Fleet
from tests.servers import ARTIFACTS
from tests.web.test_browser import browser, sign_in  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser
RECORDS = 12


def test_a_user_declares_a_variable_in_the_editor_and_sees_each_records_value(
    browser: object,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Fleet(tmp_path, peers=["a"], mock_args=("--latency-ms", "50")) as fleet:
        fleet.start_replicas()
        url = fleet.replicas["a"].url
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, url, "admin", ADMIN_PASSWORD)

        page.goto(f"{url}/new")
        page.fill("input[name=title]", "Bike shop customers")
        page.fill("input[name=totalRecords]", str(RECORDS))
        page.fill(
            "textarea[name=description]",
            "A customer of a bike shop: name, city and the bike they bought.",
        )
        page.fill("textarea[name=instructions]", "Realistic customers.")
        page.click("#draft-btn")
        page.wait_for_selector("#schema-step:not([hidden])")
        page.wait_for_selector("#variables-editor .var-row")  # the draft's proposals
        proposed = page.locator("#variables-editor .var-row").count()
        assert proposed >= 1
        for _ in range(proposed):  # the user removes them all...
            page.locator("#variables-editor .var-remove").first.click()
        assert page.locator("#variables-editor .var-row").count() == 0
        assert page.is_visible("#variables-empty")

        page.click("#variable-add")  # ...and declares one of their own
        row = page.locator("#variables-editor .var-row").first
        row.locator("[data-key=name]").fill("city")
        assert row.locator("[data-key=kind]").input_value() == "category"
        row.locator("[data-key=values]").fill("Lyon, Pune")
        row.locator("[data-key=weights]").fill("1, 1")
        page.screenshot(path=str(ARTIFACTS / "new-dataset-variables.png"), full_page=True)

        page.click("#confirm-btn")
        page.wait_for_url(f"{url}/jobs/*")
        job_id = page.url.rsplit("/", 1)[-1]
        page.wait_for_selector("#variables-card:not([hidden])")
        assert "city · category · Lyon (1), Pune (1)" in page.text_content("#variables-declared")
        from playwright.sync_api import expect

        expect(page.locator("#variables-records tbody tr")).to_have_count(RECORDS, timeout=90_000)
        shown = page.locator("#variables-records td[data-var=city]").all_text_contents()
        assert len(shown) == RECORDS and set(shown) <= {"Lyon", "Pune"}
        page.screenshot(path=str(ARTIFACTS / "job-variables.png"), full_page=True)

        # what the page shows is what the records were given
        api = context.request
        details = api.get(f"{url}/api/tasks/{job_id}").json()["details"]
        assert details["variables"] == [
            {"name": "city", "kind": "category", "values": ["Lyon", "Pune"], "weights": [1, 1]}
        ]
        records = api.get(f"{url}/api/tasks/{job_id}/records?offset=0&limit=50").json()
        assert [r["vars"]["city"] for r in records["records"]] == shown
        assert all(r["data"]["city"] == r["vars"]["city"] for r in records["records"])
        assert not errors
        context.close()
