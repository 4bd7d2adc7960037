"""The records view and the exports in headless Chromium, on a real fleet (devnode, the
mock gateway answering most calls with text that is not JSON or JSON that breaks the
schema, one replica): a failed record's detail with its attempts, the failed filter and
search, exports with ``_status`` whose CSV, JSONL and Parquet hold the same rows, and the
records as cards at 390 px."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from datagems.bench.procs import wait_until
from tests.fleet import ADMIN_PASSWORD, Fleet
from tests.servers import ARTIFACTS
from tests.web.harness import draft
from tests.web.test_browser import browser as _shared_browser  # noqa: F401 (the fixture)
from tests.web.test_browser import sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium(request: pytest.FixtureRequest) -> Any:
    """The headless Chromium of ``test_browser`` (its fixture, one per module)."""
    return request.getfixturevalue("_shared_browser")


TITLE = "Clinic visits: Q3 / 2026"
RECORDS = 40


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """A finished job of which some records failed after every attempt."""
    fleet = Fleet(
        Path(tmp_path_factory.mktemp("records")),
        peers=["a"],
    )
    with fleet:
        fleet.start_replicas()
        url = fleet.replicas["a"].url
        with httpx.Client(base_url=url, headers={"Origin": url}, timeout=30) as client:
            answer = client.post(
                "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            drafted = draft(client, title=TITLE, totalRecords=RECORDS)
            # then, per call: 45% not JSON, 35% of the rest break the schema (3 attempts each)
            fleet.llm_config(invalidRate=0.45, schemaViolationRate=0.35)
            answer = client.post("/api/tasks/confirm", json={"draftToken": drafted["draftToken"]})
            assert answer.status_code == 200, answer.text
            job_id = answer.json()["jobId"]

            def finished() -> dict[str, Any] | None:
                view = client.get(f"/api/tasks/{job_id}").json()
                return view if view["job"]["status"] in ("succeeded", "failed") else None

            view = wait_until(finished, timeout=180, interval=0.3, what="the job to finish")
        assert view["job"]["totalFailed"] > 0, "the faults made no record fail"
        yield url, job_id, view


def open_job(browser: Any, url: str, job_id: str, **context_args: Any) -> tuple[Any, Any]:
    context = browser.new_context(accept_downloads=True, **context_args)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    sign_in(page, url, "admin", ADMIN_PASSWORD)
    page.goto(f"{url}/jobs/{job_id}")
    page.wait_for_selector("#records-table tbody tr")
    return context, page


def test_a_failed_records_detail_shows_every_attempt_with_its_error_and_raw_answer(
    chromium: Any, faulty: tuple[str, str, dict[str, Any]]
) -> None:
    url, job_id, view = faulty
    context, page = open_job(chromium, url, job_id, viewport={"width": 1280, "height": 900})
    failed = view["job"]["totalFailed"]
    badge = page.text_content("#job-status-wrap .status")
    assert badge == f"Completed — {failed} failed" or view["job"]["totalOk"] == 0, badge

    page.click("#rec-filters [data-show=failed]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#records-table tbody tr')]"
        ".every((tr) => tr.dataset.state === 'failed')"
    )
    row = page.locator("#records-table tbody tr").first
    index = int(row.get_attribute("data-index"))
    assert row.locator("td").first.text_content() == str(index + 1)  # numbered from 1
    row.click()
    page.wait_for_selector("#record-drawer:not([hidden]) .attempt")
    assert page.text_content("#drawer-title") == f"Record {index + 1} (index {index})"
    attempts = page.locator("#record-drawer .attempt")
    assert attempts.count() == 3  # every attempt of the record, none accepted
    assert page.locator("#record-drawer .attempt-ok").count() == 0
    for at in range(3):
        attempt = attempts.nth(at)
        assert attempt.locator(".attempt-error").text_content()
        assert "ms" in attempt.locator(".facts").text_content()
    assert page.locator("#record-drawer .raw-answer").count() >= 1  # what the model said
    assert page.locator("#record-drawer .prompt").count() == 1
    page.screenshot(path=str(ARTIFACTS / "record-detail-failed.png"), full_page=False)
    page.keyboard.press("Escape")
    page.wait_for_selector("#record-drawer", state="hidden")
    page.goto(f"{url}/")  # the datasets list says it too
    page.wait_for_selector(".job-card .status")
    listed = page.locator(".job-card .status").first.text_content()
    assert listed == f"Completed — {failed} failed" or view["job"]["totalOk"] == 0, listed
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    context.close()


def test_the_failed_filter_shows_only_failed_records_and_search_finds_a_record(
    chromium: Any, faulty: tuple[str, str, dict[str, Any]]
) -> None:
    url, job_id, view = faulty
    context, page = open_job(chromium, url, job_id, viewport={"width": 1280, "height": 900})
    failed = view["job"]["totalFailed"]
    page.click("#rec-filters [data-show=failed]")
    page.wait_for_function(
        f"() => document.querySelectorAll('#records-table tbody tr[data-state=failed]').length"
        f" === {min(failed, 50)}"
    )
    assert page.locator("#records-table tbody tr:not([data-state=failed])").count() == 0
    assert page.text_content("#rec-filters [data-show=failed] .count") == str(failed)

    page.click("#rec-filters [data-show=ok]")
    page.wait_for_selector("#records-table tbody tr[data-state=ok]")
    first = page.locator("#records-table tbody tr td.cell").first.text_content()
    page.fill("#rec-search", first)
    page.wait_for_function(
        "(text) => { const rows = [...document.querySelectorAll('#records-table tbody tr')];"
        " return rows.length > 0 && rows.every((tr) => tr.textContent.includes(text)); }",
        arg=first,
    )
    page.screenshot(path=str(ARTIFACTS / "records-search.png"), full_page=False)
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    context.close()


def _download(page: Any, selector: str, into: Path) -> Path:
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    saved = into / download.suggested_filename
    download.save_as(saved)
    return saved


def test_an_export_with_status_has_the_same_rows_in_csv_jsonl_and_parquet(
    chromium: Any, faulty: tuple[str, str, dict[str, Any]], tmp_path: Path
) -> None:
    url, job_id, view = faulty
    context, page = open_job(chromium, url, job_id, viewport={"width": 1280, "height": 900})
    page.click("#export-options summary")
    page.check("#ex-status")
    page.check("#ex-flatten")
    page.wait_for_function("() => document.querySelector('#dl-csv').href.includes('meta=status')")
    as_csv = _download(page, "#dl-csv", tmp_path)
    as_jsonl = _download(page, "#dl-jsonl", tmp_path)
    as_parquet = _download(page, "#dl-parquet", tmp_path)
    assert as_csv.name == f"Clinic-visits-Q3-2026-{job_id[-6:]}.csv"
    assert as_parquet.suffix == ".parquet" and as_jsonl.suffix == ".jsonl"

    def shown(value: Any) -> str:  # a value as CSV text (no formula starts in mock data)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return value
        return orjson.dumps(value).decode()

    table = list(csv.DictReader(io.StringIO(as_csv.read_text())))
    lines = [orjson.loads(line) for line in as_jsonl.read_text().splitlines()]
    frame = pq.read_table(as_parquet).to_pylist()
    assert len(table) == len(lines) == len(frame) == RECORDS  # failed ones included
    assert [row["_status"] for row in table] == [line["_status"] for line in lines]
    assert [row["_status"] for row in frame] == [line["_status"] for line in lines]
    assert sum(row["_status"] == "failed" for row in table) == view["job"]["totalFailed"]
    for row, line, parquet in zip(table, lines, frame, strict=True):
        flat = {k: v for k, v in _flat(line).items()}
        assert set(row) == set(parquet)
        for column in row:
            assert row[column] == shown(flat.get(column)), column
            value = parquet[column]
            assert shown(value) == shown(flat.get(column)) or value == flat.get(column), column
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    context.close()


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            flat.update(_flat(value, name))
        else:
            flat[name] = value
    return flat


def test_at_390_px_the_records_are_cards_not_a_squeezed_table(
    chromium: Any, faulty: tuple[str, str, dict[str, Any]]
) -> None:
    url, job_id, _ = faulty
    context, page = open_job(chromium, url, job_id, viewport={"width": 390, "height": 844})
    assert page.locator("#records-table thead").is_hidden()
    card = page.locator("#records-table tbody tr").first
    assert card.evaluate("(tr) => getComputedStyle(tr).display") == "block"
    box = card.bounding_box()
    assert box is not None and box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    label = card.locator("td").nth(1).evaluate("(td) => getComputedStyle(td, '::before').content")
    assert label == '"State"'
    page.locator("#records-view").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "records-cards-390px.png"))
    card.click()
    page.wait_for_selector("#record-drawer:not([hidden])")
    width = page.locator("#record-drawer").bounding_box()["width"]
    assert width <= 390
    context.close()
