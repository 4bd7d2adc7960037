"""The quality report on the job page, in headless Chromium: a finished job's charts are
drawn (inline SVG, no request leaves the app), the variables show requested against
observed, the near-duplicates are listed and can be resampled; hostile strings stay text.

The records are written by the test through the store layer (no engine runs in the
in-process app): each with the variables' values under ``vars``, as the replicas write
them, and the job's details declaring those variables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from datagems.models import now_iso
from tests.servers import ARTIFACTS
from tests.web.harness import USER_PASSWORD, LiveApp, draft
from tests.web.test_browser import CHROMIUM, IMG, browser, sign_in  # noqa: F401

pytestmark = pytest.mark.browser
REVIEW = "A sturdy commuter bike that survived three winters without a single repair."
VARIABLES = [
    {"name": "city", "kind": "category", "values": ["Oslo", "Rome", "Lima"], "weights": [5, 3, 2]},
    {"name": "age", "kind": "number", "min": 18, "max": 30, "integer": True},
]


def record(i: int) -> dict:
    city = ["Oslo", "Oslo", "Rome", "Lima", "Oslo", "Rome", "Oslo", "Lima", "Rome", "Oslo"][i % 10]
    review = REVIEW if i in (3, 17) else f"Review number {i}: {'great' if i % 2 else 'fine'} ride."
    return {
        "i": i,
        "ok": True,
        "data": {
            "name": f"Rider {i % 7}",
            "age": 18 + i % 13,
            "city": city,
            "review": review,
            IMG: "x",
        },
        "vars": {"city": city, "age": 18 + i % 13},
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApp, str]]:
    app = LiveApp(Path(tmp_path_factory.mktemp("report"))).start()
    client = app.login("alice")
    drafted = draft(client, totalRecords=24)
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "city": {"type": "string"},
            "review": {"type": "string"},
        },
    }
    answer = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "schema": schema}
    )
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["jobId"]
    services = app.services
    assert services is not None
    job = services.jobs.get(job_id)
    details = services.details.get(job.job_details_cid)
    wire = {**details.wire(), "variables": VARIABLES}
    job.job_details_cid = services.r1fs.add_json(wire, filename=f"{job_id}_details.json")
    services.jobs.put(job)
    lines = [record(i) for i in range(22)] + [
        {"i": 22, "ok": False, "error": "bad", "reason": "schema_violation"},
        {"i": 23, "ok": False, "error": "bad", "reason": "invalid_json"},
    ]
    state = services.peers.get(job_id, services.settings.host_addr)
    state.generated_ok, state.generated_failed = 22, 2
    state.tokens_in, state.tokens_out = 12_000, 3_400
    state.started_at = state.finished_at = now_iso()
    body = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    state.result_cid = services.r1fs.add_file(body, f"{job_id}_a.jsonl")
    services.peers.put(job_id, state)
    yield app, job_id
    app.stop()


def test_a_finished_job_shows_its_quality_charts_without_any_outside_request(
    browser: object,  # noqa: F811
    finished: tuple[LiveApp, str],
) -> None:
    from playwright.sync_api import expect

    app, job_id = finished
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(app.url) else outside.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, app.url, "alice", USER_PASSWORD)
    page.goto(f"{app.url}/jobs/{job_id}")

    page.wait_for_selector("#report-fields svg.chart")
    expect(page.locator("#report-basis")).to_contain_text("22 ok, 2 failed of 24 records")
    age = page.locator('#report-fields [data-field="age"] svg.chart rect.bar')
    assert age.count() == 13  # 18..30: one bar per whole number
    city = page.locator('#report-fields [data-field="city"]')
    assert "Oslo" in city.text_content()
    review = page.locator('#report-fields [data-field="review"]')
    assert "length in characters" in review.text_content()
    shown = (
        "(name) => [...document.querySelectorAll('#report-fields figure')].some((f) =>"
        " f.dataset.field === name && f.querySelector('figcaption strong').textContent === name)"
    )
    assert page.evaluate(shown, IMG)  # a hostile field name is shown as text
    assert page.locator("img").count() == 0

    variable = page.locator('#report-variables [data-variable="city"]')
    assert variable.locator("rect.bar-requested").count() == 3
    assert variable.locator("rect.bar-observed").count() == 3
    assert page.locator('#report-variables [data-variable="age"] rect.bar-observed').count() == 13
    failures = page.locator("#report-failures svg.chart")
    assert "schema_violation" in failures.text_content()

    expect(page.locator("#neardup-text")).to_contain_text("1 record(s) repeat an earlier one")
    assert page.locator("#neardup-pairs tbody tr").count() == 1
    assert page.text_content("#neardup-pairs tbody tr td") == "#17"
    resample = page.locator("#resample-btn")
    assert resample.is_enabled() and "up to 50" in resample.text_content()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "quality-report.png"), full_page=True)

    resample.click()
    expect(page.locator("#resample-note")).to_contain_text("1 record(s) are being generated again")
    report = app.login("alice").get(f"/api/tasks/{job_id}/report").json()
    assert report["resamples"]["records"] == 1
    assert page.get_attribute("#report-download", "href").endswith("/report?download=true")
    assert not outside, outside
    assert not errors, errors
    context.close()


EDITOR_RECORDS = 12


def test_a_variable_declared_in_the_editor_shows_its_observed_distribution_in_the_report(
    browser: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The whole path of a variable, in the browser on a real replica: declared in the
    new-dataset editor, drawn per record by the engine, and drawn in the report as
    requested against observed, the observed shares being those of the records' values."""
    from playwright.sync_api import expect

    from tests.fleet import ADMIN_PASSWORD, Fleet

    with Fleet(tmp_path, peers=["a"], mock_args=("--latency-ms", "20")) as fleet:
        fleet.start_replicas()
        url = fleet.replicas["a"].url
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, url, "admin", ADMIN_PASSWORD)

        page.goto(f"{url}/new")
        page.fill("input[name=title]", "Bike shop customers")
        page.fill("input[name=totalRecords]", str(EDITOR_RECORDS))
        page.fill(
            "textarea[name=description]",
            "A customer of a bike shop: name, city and the bike they bought.",
        )
        page.fill("textarea[name=instructions]", "Realistic customers.")
        page.click("#draft-btn")
        page.wait_for_selector("#schema-step:not([hidden])")
        page.wait_for_selector("#variables-editor .var-row")  # the draft's proposals
        for _ in range(page.locator("#variables-editor .var-row").count()):
            page.locator("#variables-editor .var-remove").first.click()
        page.click("#variable-add")
        row = page.locator("#variables-editor .var-row").first
        row.locator("[data-key=name]").fill("city")
        row.locator("[data-key=values]").fill("Lyon, Pune")
        row.locator("[data-key=weights]").fill("3, 1")
        page.click("#confirm-btn")
        page.wait_for_url(f"{url}/jobs/*")
        job_id = page.url.rsplit("/", 1)[-1]

        expect(page.locator("#report-basis")).to_contain_text(
            f"{EDITOR_RECORDS} ok, 0 failed of {EDITOR_RECORDS} records", timeout=120_000
        )
        chart = page.locator('#report-variables [data-variable="city"]')
        expect(chart.locator("rect.bar-observed")).to_have_count(2)
        assert chart.locator("rect.bar-requested").count() == 2
        records = context.request.get(f"{url}/api/tasks/{job_id}/records?offset=0&limit=50").json()[
            "records"
        ]
        given = [r["vars"]["city"] for r in records]
        assert len(given) == EDITOR_RECORDS
        for city in ("Lyon", "Pune"):  # the observed share shown is that of the records
            share = f"{100 * given.count(city) / EDITOR_RECORDS:.1f}%"
            title = chart.locator("rect.bar-observed title").filter(has_text=f"{city}:")
            assert title.text_content() == f"{city}: observed {share}"
        requested = chart.locator("rect.bar-requested title").all_text_contents()
        assert requested == ["Lyon: requested 75.0%", "Pune: requested 25.0%"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "quality-report-variable.png"), full_page=True)
        assert not errors, errors
        context.close()
