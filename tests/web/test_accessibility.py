"""Every page the app serves, checked with axe-core in headless Chromium: no serious or
critical violation, at desktop width and at 390 px (a phone), where nothing may be clipped.

The pages are not listed here: they are walked from the route table
(``datagems.web.routes.ROUTES``, every ``GET`` of kind ``html``), so a page added later is
checked too. A path parameter needs a sample value (``SAMPLES``); a page whose parameter
has none fails the test with that name, rather than being skipped.

The same walk writes the README's screenshots (``docs/screenshots/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagems.web.routes import ROUTES
from tests.fleet import ADMIN_PASSWORD
from tests.web.harness import LiveApp, confirm, finish_job
from tests.web.test_browser import browser, sign_in  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
BLOCKING = ("serious", "critical")
# a page "settles" when no fetch() it started is pending (its data is drawn)
COUNT_FETCHES = """
(() => {
  window.__pending = 0;
  const original = window.fetch.bind(window);
  window.fetch = (...args) => {
    window.__pending += 1;
    return original(...args).finally(() => { window.__pending -= 1; });
  };
})();
"""
SETTLED = "() => document.readyState === 'complete' && window.__pending === 0"
OVERFLOW = """(width) => {
  const out = [];
  const root = document.documentElement;
  if (root.scrollWidth > width) out.push('page ' + root.scrollWidth);
  const shown = 'header a, header button, nav a, .page-head *, h1, h2';
  for (const node of document.querySelectorAll(shown)) {
    const box = node.getBoundingClientRect();
    const style = getComputedStyle(node);
    const text = node.tagName + ' ' + node.textContent.trim().slice(0, 30);
    if (!box.width || style.visibility === 'hidden') continue;
    if (box.right > width + 1 || box.left < -1) out.push('outside: ' + text);
    else if (node.scrollWidth > node.clientWidth + 1 && style.overflowX !== 'auto'
             && node.closest('.table-wrap, pre, .code') === null) out.push('clipped: ' + text);
  }
  return out;
}"""
LIVE_REGIONS = """() => [...document.querySelectorAll(
    '[aria-live], [role=status], [role=log], [role=alert]')]
  .filter((n) => n.querySelector('table, section, form, .card, h1, h2')
                 || n.textContent.length > 400)
  .map((n) => n.id || n.className)"""


def _record(n: int) -> dict:
    return {"subject": f"Order {n} arrived damaged", "priority": ["low", "normal", "high"][n % 3]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApp, dict[str, str]]]:
    live = LiveApp(Path(tmp_path_factory.mktemp("a11y"))).start()
    admin = live.login("admin", ADMIN_PASSWORD)
    job_id = confirm(admin, title="Support tickets for a bike shop", totalRecords=8)
    finish_job(live, job_id, [_record(n) if n % 4 else None for n in range(8)])
    try:
        yield live, {"id": job_id}
    finally:
        live.stop()


def pages() -> list[tuple[str, str, bool]]:
    """(name, path, public) of every HTML page of the route table."""
    found = []
    for route in ROUTES:
        if route.method == "GET" and route.kind == "html":
            name = route.path.strip("/").replace("/", "-").replace("{", "").replace("}", "")
            found.append((name or "datasets", route.path, route.public))
    return found


def _fill(path: str, samples: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in samples, f"no sample value for the path parameter {{{name}}} of {path}"
        return samples[name]

    return re.sub(r"\{(\w+)\}", value, path)


def _violations(page: object) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in BLOCKING:
            targets = [", ".join(node["target"]) for node in violation["nodes"][:4]]
            found.append(f"{violation['id']} ({violation['impact']}): {targets}")
    return found


def _overflow(page: object, width: int) -> list[str]:
    """What sticks out of a ``width`` px viewport: the page itself, or a visible element
    (text cut by its own box, as "Accounts" shown as "A")."""
    return page.evaluate(OVERFLOW, width)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_every_page_has_no_serious_accessibility_violation_and_nothing_clipped(
    browser: object,  # noqa: F811
    site: tuple[LiveApp, dict[str, str]],
    viewport: dict[str, int],
) -> None:
    live, samples = site
    problems: dict[str, list[str]] = {}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for public in (True, False):
        context = browser.new_context(viewport=viewport)
        context.add_init_script(COUNT_FETCHES)
        page = context.new_page()
        if not public:
            sign_in(page, live.url, "admin", ADMIN_PASSWORD)
        for name, path, is_public in pages():
            if is_public != public:
                continue
            page.goto(live.url + _fill(path, samples))
            page.wait_for_function(SETTLED)
            found = _violations(page) + _overflow(page, viewport["width"])
            if found:
                problems[f"{name} @ {viewport['width']}px"] = found
            suffix = "" if viewport is DESKTOP else "-390px"
            page.screenshot(path=str(SCREENSHOTS / f"{name}{suffix}.png"), full_page=True)
        context.close()
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


@pytest.fixture
def phone(browser: object, site: tuple[LiveApp, dict[str, str]]) -> Iterator[object]:  # noqa: F811
    live, _ = site
    context = browser.new_context(viewport=PHONE)
    context.add_init_script(COUNT_FETCHES)
    page = context.new_page()
    sign_in(page, live.url, "admin", ADMIN_PASSWORD)
    yield page
    context.close()


def test_at_390px_the_nav_is_a_menu_whose_every_link_shows_whole(phone: object) -> None:
    toggle = phone.locator("#nav-toggle")
    assert toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false"
    assert not phone.locator("nav a", has_text="Accounts").is_visible()
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    links = phone.locator("nav a")
    assert links.count() >= 5
    for n in range(links.count()):
        link = links.nth(n)
        assert link.is_visible()
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert link.evaluate("a => a.scrollWidth <= a.clientWidth"), link.text_content()
    phone.screenshot(path=str(SCREENSHOTS / "menu-390px.png"))
    phone.keyboard.press("Escape")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert phone.evaluate("document.activeElement.id") == "nav-toggle"


def test_the_skip_link_is_the_first_tab_stop_and_lands_on_the_content(phone: object) -> None:
    phone.keyboard.press("Tab")
    focused = phone.evaluate(
        "(() => { const a = document.activeElement; const b = a.getBoundingClientRect();"
        " return [a.className, a.textContent, b.top >= 0 && b.bottom <= innerHeight]; })()"
    )
    assert focused == ["skip-link", "Skip to content", True]
    phone.keyboard.press("Enter")
    assert phone.evaluate("document.activeElement.id") == "main"


def test_live_regions_are_narrow_on_every_page(
    browser: object,  # noqa: F811
    site: tuple[LiveApp, dict[str, str]],
) -> None:
    """A live region holds a status line, never a page part (a table, a card, a form)."""
    live, samples = site
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(COUNT_FETCHES)
    page = context.new_page()
    sign_in(page, live.url, "admin", ADMIN_PASSWORD)
    wide: dict[str, list[str]] = {}
    for name, path, _public in pages():
        page.goto(live.url + _fill(path, samples))
        page.wait_for_function(SETTLED)
        found = page.evaluate(LIVE_REGIONS)
        if found:
            wide[name] = found
    context.close()
    assert not wide


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_a_drafted_schema_under_review_has_no_serious_violation(
    browser: object,  # noqa: F811
    site: tuple[LiveApp, dict[str, str]],
    viewport: dict[str, int],
) -> None:
    """The new-dataset page in its second state (a schema to review), which no route shows
    by itself."""
    live, _ = site
    context = browser.new_context(viewport=viewport)
    context.add_init_script(COUNT_FETCHES)
    page = context.new_page()
    sign_in(page, live.url, "admin", ADMIN_PASSWORD)
    page.goto(f"{live.url}/new")
    page.fill("input[name=title]", "Bike shop orders")
    page.fill("input[name=totalRecords]", "25")
    page.fill("textarea[name=description]", "One order at a bike shop: model, size, price.")
    page.fill("textarea[name=instructions]", "Sizes S, M, L. Prices in euros.")
    page.click("#draft-btn")
    page.wait_for_selector("#schema-step:not([hidden])")
    page.wait_for_function(SETTLED)
    problems = _violations(page) + _overflow(page, viewport["width"])
    suffix = "" if viewport is DESKTOP else "-390px"
    page.evaluate("window.scrollTo({top: 0, behavior: 'instant'})")  # the sticky bar on top
    page.wait_for_function("() => window.scrollY === 0")
    page.screenshot(path=str(SCREENSHOTS / f"new-schema{suffix}.png"), full_page=True)
    context.close()
    assert not problems


@pytest.mark.parametrize("width", [500, 800, 861, 1024])
def test_at_any_width_the_nav_shows_every_link_whole_or_is_a_menu(
    browser: object,  # noqa: F811
    site: tuple[LiveApp, dict[str, str]],
    width: int,
) -> None:
    live, _ = site
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    sign_in(page, live.url, "admin", ADMIN_PASSWORD)
    if page.locator("#nav-toggle").is_visible():
        page.click("#nav-toggle")
    fits = page.evaluate(
        "(() => { const n = document.querySelector('nav');"
        " return n.scrollWidth <= n.clientWidth && [...n.querySelectorAll('a')].every("
        " (a) => a.getBoundingClientRect().right <= innerWidth); })()"
    )
    context.close()
    assert fits
