"""Authoring and managing datasets in headless Chromium (issue 16, author helper):

- the visual schema editor and the JSON follow each other both ways (add, rename,
  retype, require, bound, reorder, remove; nested objects and arrays shown), mistakes
  said in plain words at their line and column, once, and cleared when fixed; Tab
  indents inside the JSON;
- a draft survives a reload, and the records typed after drafting are the job's;
- a job is cloned into a new draft and confirmed again;
- a job is deleted from the list, and its keys and files are gone from the devnode;
- the built-in mock is labelled where it is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagems.bench.procs import wait_until
from datagems.store import keys
from tests.fleet import ADMIN_PASSWORD, Fleet
from tests.servers import ARTIFACTS
from tests.web.harness import USER_PASSWORD, LiveApp, confirm, draft, finish_job
from tests.web.test_browser import browser, sign_in  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    live = LiveApp(Path(tmp_path_factory.mktemp("authoring"))).start()
    yield live
    live.stop()


@pytest.fixture
def page(browser: object, app: LiveApp) -> Iterator[object]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("dialog", lambda dialog: dialog.accept())
    sign_in(opened, app.url, "alice", USER_PASSWORD)
    yield opened
    context.close()
    assert not errors, errors


def describe(page: object, url: str, *, records: int = 5) -> None:
    page.goto(f"{url}/new")
    page.fill("input[name=title]", "Pharmacy incidents")
    page.fill("input[name=totalRecords]", str(records))
    page.fill("textarea[name=description]", "Incident reports for a hospital pharmacy.")
    page.fill("textarea[name=instructions]", "What happened, how severe, which medication.")
    page.click("#draft-btn")
    page.wait_for_selector("#schema-visual .se-field")


def schema_text(page: object) -> dict:
    return json.loads(page.input_value("#schema-editor"))


def row(path: str) -> str:
    return f'.se-field[data-path="{path}"]'


def test_editing_the_schema_visually_moves_the_json_and_the_json_moves_the_fields(
    page: object, app: LiveApp
) -> None:
    from playwright.sync_api import expect

    describe(page, app.url)
    drafted = schema_text(page)
    assert page.locator("#schema-visual > .se-list > .se-fields > .se-field").count() == len(
        drafted["properties"]
    )

    # visual -> JSON: add, rename, retype, require, bound, reorder, remove
    page.click('#schema-visual .se-add[data-path=""]')
    added = f"field_{len(drafted['properties']) + 1}"
    page.fill(f"{row(added)} .se-name", "harm_score")
    page.press(f"{row(added)} .se-name", "Enter")
    taken = next(iter(drafted["properties"]))
    page.fill(f"{row('harm_score')} .se-name", taken)  # a name already used: refused
    page.press(f"{row('harm_score')} .se-name", "Enter")
    expect(page.locator("#schema-errors li")).to_have_text(
        [f'field harm_score: another field is already named "{taken}"']
    )
    assert page.input_value(f"{row('harm_score')} .se-name") == "harm_score"
    page.select_option(f"{row('harm_score')} .se-type", "integer")
    page.click(f"{row('harm_score')} .se-more")
    page.fill(f"{row('harm_score')} .se-minimum", "1")
    page.fill(f"{row('harm_score')} .se-maximum", "5")
    page.fill(f"{row('harm_score')} .se-description", "How bad, 1 to 5")
    edited = schema_text(page)
    assert edited["properties"]["harm_score"] == {
        "type": "integer",
        "description": "How bad, 1 to 5",
        "minimum": 1,
        "maximum": 5,
    }
    assert "harm_score" in edited["required"]
    assert list(edited["properties"])[-1] == "harm_score"
    page.click(f"{row('harm_score')} .se-up")
    assert list(schema_text(page)["properties"])[-2] == "harm_score"
    page.uncheck(f"{row('harm_score')} .se-required")
    assert "harm_score" not in schema_text(page)["required"]
    first = next(iter(drafted["properties"]))
    page.click(f"{row(first)} .se-remove")
    assert first not in schema_text(page)["properties"]
    assert first not in schema_text(page)["required"]

    # JSON -> visual: nested objects and arrays show as nested fields, editable
    nested = {
        "type": "object",
        "properties": {
            "severity": {"type": "integer", "minimum": 1, "maximum": 5},
            "ward": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "floor": {"type": "integer"}},
                "required": ["name"],
                "additionalProperties": False,
            },
            "drugs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "dose_mg": {"type": "number"}},
                },
            },
        },
        "required": ["severity"],
        "additionalProperties": False,
    }
    page.fill("#schema-editor", json.dumps(nested, indent=2))
    expect(page.locator(row("ward/floor"))).to_have_count(1)
    expect(page.locator(row("drugs[]/dose_mg"))).to_have_count(1)
    assert page.input_value(f"{row('severity')} .se-type") == "integer"
    page.select_option(f"{row('ward/floor')} .se-type", "string")
    assert schema_text(page)["properties"]["ward"]["properties"]["floor"] == {"type": "string"}
    page.click('.se-add[data-path="drugs[]"]')
    assert len(schema_text(page)["properties"]["drugs"]["items"]["properties"]) == 3

    # mistakes: in plain words, with line and column, once; cleared when fixed
    good = page.input_value("#schema-editor")
    page.fill("#schema-editor", good.replace('"integer"', '"integr"', 1))
    errors = page.locator("#schema-errors li")
    expect(errors).to_have_text(
        [
            "field severity: type 'integr' is not a JSON type "
            "(string, integer, number, boolean, object, array)"
        ]
    )
    page.fill("#schema-editor", good.replace('"severity": {', '"severity" {', 1))
    expect(errors).to_have_text(
        ["JSON syntax error at line 4, column 16: expected ':' after \"severity\", found '{'"]
    )
    assert page.locator("#schema-error").is_hidden()
    page.fill("#schema-editor", good)
    expect(page.locator("#schema-errors")).to_be_hidden()

    # Tab indents inside the JSON instead of leaving it
    page.focus("#schema-editor")
    page.evaluate("document.querySelector('#schema-editor').setSelectionRange(0, 0)")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "schema-editor"
    assert page.input_value("#schema-editor").startswith("  {")
    page.keyboard.press("Shift+Tab")
    assert page.input_value("#schema-editor").startswith("{")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") != "schema-editor"  # Esc, Tab: out
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "schema-editor.png"), full_page=True)

    # what was edited is what the job gets
    page.click("#confirm-btn")
    page.wait_for_url(f"{app.url}/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    client = app.login("alice")
    stored = client.get(f"/api/tasks/{job_id}").json()["details"]["schema"]
    assert stored["properties"]["ward"]["properties"]["floor"] == {"type": "string"}


def test_a_draft_survives_a_reload_and_the_records_typed_after_it_are_the_jobs(
    page: object, app: LiveApp
) -> None:
    from playwright.sync_api import expect

    describe(page, app.url, records=5)
    page.click('#schema-visual .se-add[data-path=""]')
    edited = schema_text(page)
    page.click("#redraft-box summary")
    page.fill("#redraft-feedback", "add a lot number")

    page.reload()
    page.wait_for_selector("#schema-visual .se-field")
    assert schema_text(page) == edited  # the edit, not only the draft
    assert page.input_value("input[name=title]") == "Pharmacy incidents"
    assert page.input_value("#redraft-feedback") == "add a lot number"
    expect(page.locator("#draft-saved")).to_have_text("Draft restored from this browser")
    page.goto(f"{app.url}/")  # away and back
    page.goto(f"{app.url}/new")
    page.wait_for_selector("#schema-visual .se-field")
    assert schema_text(page) == edited

    # records changed after drafting: said, and used
    page.fill("input[name=totalRecords]", "7")
    expect(page.locator("#draft-changes-text")).to_contain_text("Records changed from 5 to 7")
    expect(page.locator("#confirm-btn")).to_have_text("Confirm · generate 7 records")
    # the description changed: redraft or keep, before anything else
    page.fill("textarea[name=description]", "Incident reports for a hospital pharmacy, 2026.")
    expect(page.locator("#draft-changes-text")).to_contain_text("Redraft with the new text")
    assert page.locator("#confirm-btn").is_disabled()
    page.click("#changes-keep-btn")
    expect(page.locator("#confirm-btn")).to_be_enabled()
    page.click("#confirm-btn")
    page.wait_for_url(f"{app.url}/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    view = app.login("alice").get(f"/api/tasks/{job_id}").json()
    assert view["job"]["totalRecords"] == 7
    assert view["details"]["description"] == "Incident reports for a hospital pharmacy, 2026."
    assert view["details"]["schema"] == edited

    page.goto(f"{app.url}/new")  # confirmed: the kept draft is gone
    assert page.locator("#schema-step").is_hidden()
    assert page.input_value("input[name=title]") == ""


def test_a_job_is_cloned_into_a_new_draft_from_its_page(page: object, app: LiveApp) -> None:
    client = app.login("alice")
    drafted = draft(client, title="Ward rounds", totalRecords=3)
    schema = drafted["schema"]
    schema["properties"]["bed"] = {"type": "integer", "minimum": 1}
    job_id = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "schema": schema}
    ).json()["jobId"]
    finish_job(app, job_id, [{"subject": "a"}] * 3)

    page.goto(f"{app.url}/jobs/{job_id}")
    page.wait_for_selector("#job-status-wrap .status-succeeded")
    assert page.text_content("#job-id-label") == "Ward rounds"  # the title, not the id
    page.click("#clone-btn")
    page.wait_for_url(f"{app.url}/new*")
    page.wait_for_selector(f"{row('bed')}")
    assert page.input_value("input[name=title]") == "Ward rounds"
    assert page.input_value("input[name=totalRecords]") == "3"
    assert schema_text(page) == schema
    page.click("#confirm-btn")
    page.wait_for_url(f"{app.url}/jobs/*")
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != job_id
    assert client.get(f"/api/tasks/{new_id}").json()["details"]["schema"] == schema


def test_the_built_in_mock_is_labelled_where_it_is_used(browser: object, tmp_path: Path) -> None:  # noqa: F811
    mocked = LiveApp(tmp_path, inference_base_url=None).start()
    try:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, mocked.url, "alice", USER_PASSWORD)
        page.goto(f"{mocked.url}/new")
        assert page.text_content("#inference-select option") == (
            "Built-in mock \u2014 placeholder data"
        )
        assert page.is_visible("#mock-hint")
        job_id = confirm(mocked.login("alice"), totalRecords=2)
        page.goto(f"{mocked.url}/jobs/{job_id}")
        page.wait_for_selector("#mock-note:not([hidden])")
        assert "Built-in mock \u2014 placeholder data" in page.text_content("#mock-note")
        context.close()
    finally:
        mocked.stop()


def test_a_job_deleted_from_the_list_is_gone_with_its_keys_and_files(
    browser: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with Fleet(tmp_path, peers=["a"]) as fleet:
        fleet.start_replicas()
        url = fleet.replicas["a"].url
        context = browser.new_context()
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, url, "admin", ADMIN_PASSWORD)
        client = fleet_client(url)
        kept = made_job(client, "Kept dataset")
        gone = made_job(client, "Doomed dataset")
        base = fleet.cstore.hget(keys.JOBS, gone)
        state = fleet.cstore.hget(keys.job_peers(gone), "a")
        cids = [base["jobDetailsCid"], state["resultCid"]]
        assert all(fleet.r1fs.get_file(cid) for cid in cids)

        page.goto(f"{url}/")
        card = page.locator(f'.job-card[data-job="{gone}"]')
        expect(card.locator(".dl-csv")).to_have_count(1)  # downloads on the card
        page.select_option("#job-sort", "title")
        expect(page.locator(".job-card h3").first).to_have_text("Doomed dataset")
        card.locator(".card-delete").click()
        expect(card).to_have_count(0)
        expect(page.locator(f'.job-card[data-job="{kept}"]')).to_have_count(1)

        # gone from the devnode's CStore and R1FS, as their HTTP APIs answer
        assert fleet.cstore.hget(keys.JOBS, gone) is None
        assert fleet.cstore.hgetall(keys.job_peers(gone)) == {}
        assert fleet.cstore.hget(keys.user_jobs("admin"), gone) is None
        for cid in cids:
            answer = client.get(f"{fleet.r1fs_url}/get_file", params={"cid": cid})
            assert answer.status_code == 404
        assert fleet.cstore.hget(keys.JOBS, kept) is not None
        page.reload()
        expect(page.locator(".job-card")).to_have_count(1)
        context.close()


def fleet_client(url: str) -> object:
    import httpx

    client = httpx.Client(base_url=url, headers={"Origin": url}, timeout=60)
    answer = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert answer.status_code == 200, answer.text
    return client


def made_job(client: object, title: str) -> str:
    drafted = client.post(
        "/api/tasks/schema",
        json={
            "title": title,
            "totalRecords": 3,
            "description": "A customer: name and city.",
            "instructions": "Varied.",
        },
    )
    made = client.post("/api/tasks/confirm", json={"draftToken": drafted.json()["draftToken"]})
    job_id = made.json()["jobId"]
    wait_until(
        lambda: client.get(f"/api/tasks/{job_id}").json()["job"]["status"] == "succeeded",
        timeout=60,
        what=f"{title} finishes",
    )
    return job_id


def test_redraft_takes_the_users_feedback_into_the_next_draft(page: object, app: LiveApp) -> None:
    from playwright.sync_api import expect

    describe(page, app.url)
    before = schema_text(page)
    page.click("#redraft-box summary")
    page.fill("#redraft-feedback", "add a lot number; add a score from 1 to 5")
    page.click("#redraft-btn")
    expect(page.locator(row("score"))).to_have_count(1)
    expect(page.locator("#schema-meta")).to_contain_text("redrafted 1\u00d7")
    after = schema_text(page)
    assert set(before["properties"]) | {"lot_number", "score"} == set(after["properties"])
    assert after["properties"]["score"]["maximum"] == 5
    assert page.input_value("#redraft-feedback") == ""  # sent once
