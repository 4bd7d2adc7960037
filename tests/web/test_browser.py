"""The dashboard in headless Chromium (Debian's, driven by Playwright).

- the whole flow on a real fleet (devnode + mock-llm with latency + one replica): log in,
  draft, preview, confirm, watch in-flight records change state, download the CSV, with
  screenshots mid-job under tests/artifacts/;
- hostile strings in every user-provided place are shown as text, never run.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagems.job import lifecycle, listing
from tests.fleet import ADMIN_PASSWORD, Fleet
from tests.servers import ARTIFACTS
from tests.web.harness import USER_PASSWORD, LiveApp, draft, finish_job

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCRIPT = "<script>window.__xss = 1</script>"
IMG = '"><img src=x onerror="window.__xss = 2">'


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def sign_in(page: object, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


WATCH_IN_FLIGHT = """
() => {
  window.__seen = [];
  const list = document.querySelector('#inflight');
  const note = () => {
    for (const li of list.querySelectorAll('li')) {
      window.__seen.push(li.dataset.index + ':' + li.dataset.state);
    }
  };
  new MutationObserver(note).observe(list, {childList: true, subtree: true});
  note();
}
"""


def test_a_user_drafts_previews_confirms_watches_and_downloads_in_the_browser(
    browser: object, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(
        tmp_path,
        peers=["a"],
        mock_args=("--latency-ms", "300", "--jitter-ms", "200", "--invalid-rate", "0.15"),
        replica_env={"DATAGEN_MAX_IN_FLIGHT_PER_JOB": "4"},
    )
    with fleet:
        fleet.start_replicas()
        url = fleet.replicas["a"].url
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        sign_in(page, url, "admin", ADMIN_PASSWORD)

        page.goto(f"{url}/new")
        page.fill("input[name=title]", "Coffee shop orders")
        page.fill("input[name=totalRecords]", "100001")
        page.fill("textarea[name=description]", "One order at a coffee shop: drink, size, price.")
        page.fill("textarea[name=instructions]", "Sizes small, medium, large. Prices in euros.")
        page.click("#draft-btn")
        page.wait_for_selector("#describe-error:not([hidden])")
        assert page.text_content("#describe-error").startswith("Records must be at most")
        assert page.get_attribute("input[name=totalRecords]", "aria-invalid") == "true"
        page.fill("input[name=totalRecords]", "40")
        page.click("#draft-btn")
        page.wait_for_selector("#schema-step:not([hidden])")
        assert "properties" in page.input_value("#schema-editor")
        assert page.locator("#schema-visual .se-field").count() >= 1

        page.click("#preview-btn")
        page.wait_for_selector("#preview-step:not([hidden])")
        assert page.locator("#preview-records .preview").count() == 3
        page.screenshot(path=str(ARTIFACTS / "new-dataset-preview.png"), full_page=True)

        page.click("#confirm-btn")
        page.wait_for_url(f"{url}/jobs/*")
        page.wait_for_selector("#live-state.live")
        page.evaluate(WATCH_IN_FLIGHT)
        page.wait_for_selector("#inflight li", timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector('#bar-ok').style.width !== '0%'", timeout=30_000
        )
        page.screenshot(path=str(ARTIFACTS / "dashboard-mid-job.png"), full_page=True)
        phone = context.new_page()
        phone.set_viewport_size({"width": 375, "height": 800})
        phone.goto(page.url)
        phone.wait_for_selector("#inflight li, #downloads:not([hidden])")
        phone.screenshot(path=str(ARTIFACTS / "dashboard-mid-job-375px.png"), full_page=True)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
        phone.close()

        page.wait_for_selector("#job-status-wrap .status-succeeded", timeout=90_000)
        seen = page.evaluate("window.__seen")
        indices = {item.split(":")[0] for item in seen}
        assert len(indices) >= 4, seen  # records came and went while we watched
        assert page.locator("#inflight li").count() == 0
        finished = page.locator("#records-table tbody tr[data-state=ok]").first
        assert finished.get_attribute("data-index") in indices | {
            r.get_attribute("data-index") for r in page.locator("#records-table tbody tr").all()
        }
        page.wait_for_selector("#downloads:not([hidden])")
        with page.expect_download() as download_info:
            page.click("#dl-csv")
        download = download_info.value
        saved = tmp_path / "export.csv"
        download.save_as(saved)
        table = list(csv.reader(io.StringIO(saved.read_text())))
        assert len(table) >= 2 and table[0]
        page.screenshot(path=str(ARTIFACTS / "dashboard-finished.png"), full_page=True)
        page.goto(f"{url}/")
        page.wait_for_selector(".job-card")
        page.screenshot(path=str(ARTIFACTS / "datasets.png"), full_page=True)
        assert not errors, errors
        context.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApp, str]]:
    app = LiveApp(Path(tmp_path_factory.mktemp("xss"))).start()
    client = app.login("alice")
    drafted = draft(
        client, title=f"{SCRIPT} {IMG}", description=f"desc {IMG}", instructions=f"inst {SCRIPT}"
    )
    schema = dict(drafted["schema"])
    schema["properties"] = {
        **schema["properties"],
        '<img src=x onerror="window.__xss=3">': {"type": "string", "description": SCRIPT},
    }
    answer = client.post(
        "/api/tasks/confirm", json={"draftToken": drafted["draftToken"], "schema": schema}
    )
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["jobId"]
    finish_job(app, job_id, [{"name": SCRIPT, "note": IMG}] * 5 + [None])
    yield app, job_id
    app.stop()


def test_hostile_strings_are_shown_as_text_and_never_run(
    browser: object, hostile: tuple[LiveApp, str]
) -> None:
    app, job_id = hostile
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, app.url, "alice", USER_PASSWORD)
    page.wait_for_selector(".job-card h3")
    assert page.text_content(".job-card h3") == f"{SCRIPT} {IMG}"

    page.goto(f"{app.url}/jobs/{job_id}")
    page.wait_for_selector("#records-table tbody tr")
    assert page.text_content("#job-title") == f"{SCRIPT} {IMG}"
    assert page.text_content("#job-description") == f"desc {IMG}"
    assert page.text_content("#job-instructions") == f"inst {SCRIPT}"
    assert SCRIPT in page.text_content("#records-table tbody")
    assert '<img src=x onerror="window.__xss=3">' in page.text_content("#job-schema-fields")
    assert page.evaluate("window.__xss") is None
    assert page.locator("img").count() == 0
    assert page.locator("main script").count() == 0
    assert not dialogs
    context.close()


def test_the_job_page_falls_back_to_polling_when_live_events_fail(
    browser: object, hostile: tuple[LiveApp, str]
) -> None:
    app, job_id = hostile
    context = browser.new_context()
    page = context.new_page()
    page.route("**/events", lambda route: route.abort())
    sign_in(page, app.url, "alice", USER_PASSWORD)
    page.goto(f"{app.url}/jobs/{job_id}")
    page.wait_for_selector("#live-state.polling")
    assert page.text_content("#live-state") == "polling every 30s"  # finished: idle seconds
    assert page.text_content("#job-title") == f"{SCRIPT} {IMG}"
    page.wait_for_selector("#job-status-wrap .status-succeeded")
    context.close()


def test_the_job_page_retries_failed_records_and_adds_records(
    browser: object, hostile: tuple[LiveApp, str]
) -> None:
    from playwright.sync_api import expect

    app, _ = hostile
    client = app.login("alice")
    drafted = draft(client, totalRecords=3)
    answer = client.post("/api/tasks/confirm", json={"draftToken": drafted["draftToken"]})
    job_id = answer.json()["jobId"]
    finish_job(app, job_id, [{"subject": "ok"}, None, {"subject": "ok"}])
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, app.url, "alice", USER_PASSWORD)
    page.goto(f"{app.url}/jobs/{job_id}")
    page.wait_for_selector("#job-status-wrap .status-succeeded")
    retry = page.locator("#retry-btn")
    assert retry.text_content() == "Retry 1 failed record" and retry.is_enabled()
    assert "Tokens in" in page.text_content("#job-usage")

    retry.click()
    expect(page.locator("#control-note")).to_contain_text("Retry round 1")
    page.wait_for_selector("#job-status-wrap .status-running")
    assert page.locator("#retry-btn").is_disabled()  # running again: not before it ends
    assert "Retrying 1 failed record (round 1)" in page.text_content("#toast")

    page.fill("#extend-n", "0")
    page.click("#extend-btn")
    expect(page.locator("#control-error")).to_contain_text("between 1 and")
    page.fill("#extend-n", "4")
    page.click("#extend-btn")
    expect(page.locator("#control-note")).to_contain_text("extended by 4 records (3\u20137)")
    assert page.locator("#control-error").is_hidden()
    assert "/ 7 records" in page.text_content("#progress-text")
    control = client.get(f"/api/tasks/{job_id}").json()["control"]
    assert control["retryRound"] == 1 and control["extendedBy"] == 4
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "job-control.png"), full_page=True)
    assert not errors, errors
    context.close()


def test_the_dashboard_pages_through_the_jobs_and_filters_them(
    browser: object, tmp_path: Path
) -> None:
    import uuid

    from playwright.sync_api import expect

    app = LiveApp(tmp_path).start()
    try:
        made = []
        for n in range(listing.PAGE_SIZE + 7):
            job_id = str(uuid.uuid4())
            draft_ = {"title": f"Batch {n:02d}", "totalRecords": 1, "schema": {"type": "object"}}
            lifecycle.create_job(app.services, owner="alice", job_id=job_id, draft=draft_)
            made.append(job_id)
        context = browser.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, app.url, "alice", USER_PASSWORD)
        cards = page.locator(".job-card")
        expect(cards).to_have_count(listing.PAGE_SIZE)
        assert page.text_content(".job-card h3") == f"Batch {len(made) - 1:02d}"  # newest first
        page.click("#load-more")
        expect(cards).to_have_count(len(made))
        assert page.is_hidden("#load-more")
        page.fill("#job-search", "batch 07")
        expect(cards).to_have_count(1)
        assert page.text_content(".job-card h3") == "Batch 07"
        page.fill("#job-search", "")
        page.select_option("#job-status", "succeeded")
        page.wait_for_selector("text=No dataset matches these filters.")
        assert not errors, errors
        context.close()
    finally:
        app.stop()


def test_the_mailed_reset_link_sets_a_new_password_in_the_browser(
    browser: object, live: LiveApp
) -> None:
    """The link from "Forgot your password?" (issue 13 item 7): its token stays in the
    fragment, the page posts it with the chosen password, and the owner is signed in."""
    import httpx

    from datagems.accounts.tokens import issue_reset
    from tests.fleet import SESSION_SECRET

    live.accounts.create("rosa", USER_PASSWORD)
    account = live.accounts.get("rosa")
    assert account is not None
    token = issue_reset(SESSION_SECRET, "rosa", account.credential)
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live.url}/reset#token={token}")
    assert "#token" not in page.url  # taken out of the address bar and the history
    page.fill("input[name=password]", "rosas-New-passw0rd")
    page.fill("input[name=again]", "rosas-Other-passw0rd")
    page.click("button[type=submit]")
    page.wait_for_selector("#reset-error:not([hidden])")
    assert "differ" in page.text_content("#reset-error")
    page.fill("input[name=again]", "rosas-New-passw0rd")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/")
    assert "rosa" in page.text_content("body")
    old = httpx.post(
        f"{live.url}/api/auth/login", json={"username": "rosa", "password": USER_PASSWORD}
    )
    assert old.status_code == 401
    assert not errors, errors
    context.close()


def test_the_pages_say_what_a_peer_of_the_original_app_will_not_do_and_which_job_is_unreadable(
    browser: object, hostile: tuple[LiveApp, str]
) -> None:
    from playwright.sync_api import expect

    from datagems.models import PeerState, Range, ReplicaBeat, now_iso
    from datagems.store import keys
    from datagems.web.keys import READ_CACHE

    app, _ = hostile
    services = app.services
    assert services is not None and app.app is not None
    client = app.login("alice")
    job_id = client.post(
        "/api/tasks/confirm", json={"draftToken": draft(client, totalRecords=4)["draftToken"]}
    ).json()["jobId"]
    # the job is shared with a peer that never beats (the original app's), this one beats
    base = services.jobs.get(job_id)
    assert base is not None
    base.peers, base.peer_count = [services.settings.host_addr, "ts"], 2
    services.jobs.put(base)
    services.peers.put(job_id, PeerState(peer_id="ts", assigned=2, range=Range(start=4, end=6)))
    services.replicas.beat(ReplicaBeat(peer_id=services.settings.host_addr, last_seen_at=now_iso()))
    services.cstore.hset(keys.JOBS, "job_odd", {"id": "job_odd", "owner": "admin", "peers": 3})
    # and its owner's summary, which every writer (the original too) writes with the base
    services.cstore.hset(keys.user_jobs("admin"), "job_odd", {"id": "job_odd", "title": "Odd"})
    app.app[READ_CACHE].jobs_changed()

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, app.url, "alice", USER_PASSWORD)
    page.goto(f"{app.url}/jobs/{job_id}")
    expect(page.locator("#mixed-notes")).to_contain_text("ts runs the original DataGems app")
    expect(page.locator("#mixed-notes")).to_contain_text("keep generating after a cancel")
    expect(page.locator("#peers-table tr[data-kind=original]")).to_contain_text("original app")
    context.close()

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, app.url, "admin", ADMIN_PASSWORD)
    card = page.locator(".job-unreadable[data-job=job_odd]")
    expect(card).to_contain_text("unreadable")
    expect(card).to_contain_text("peers")  # why, for an admin
    context.close()
