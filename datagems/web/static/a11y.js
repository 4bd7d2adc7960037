/* DataGems, site-wide accessibility helpers (access helper, issue 16). No build step.
 * - the nav menu at narrow widths (a button that opens and closes it, Escape closes it);
 * - scrollable regions (wide tables, code) reachable by keyboard: tabindex=0 and a name;
 * - one narrow live region (#announce): an element with data-announce="Label" is read out
 *   as "Label: text" when its text changes, instead of a whole page being a live region. */
"use strict";
(() => {
  const toggle = document.getElementById("nav-toggle");
  const menu = document.getElementById("topbar-menu");
  if (toggle && menu) {
    const setOpen = (open) => {
      menu.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", String(open));
    };
    toggle.addEventListener("click", () => setOpen(!menu.classList.contains("open")));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && menu.classList.contains("open")) { setOpen(false); toggle.focus(); }
    });
  }

  const SCROLLERS = ".table-wrap, pre.code, .code";
  function nameOf(node) {
    const box = node.closest("section, .card, details") || document.body;
    const heading = box.querySelector("h1, h2, h3, summary, caption");
    return (heading && heading.textContent.trim()) || "Scrollable content";
  }
  function focusableScrollers(root) {
    for (const node of (root || document).querySelectorAll(SCROLLERS)) {
      if (node.tagName === "TEXTAREA" || node.hasAttribute("tabindex")) continue;
      node.tabIndex = 0;
      if (!node.hasAttribute("role")) node.setAttribute("role", "region");
      if (!node.hasAttribute("aria-label")) node.setAttribute("aria-label", nameOf(node));
    }
  }

  const announce = document.getElementById("announce");
  const said = new WeakMap();
  function announceChanges() {
    if (!announce) return;
    for (const node of document.querySelectorAll("[data-announce]")) {
      const text = node.textContent.trim();
      if (!text || said.get(node) === text) continue;
      const first = !said.has(node);
      said.set(node, text);
      if (!first) announce.textContent = `${node.dataset.announce}: ${text}`;
    }
  }

  let queued = false;
  const observer = new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; focusableScrollers(); announceChanges(); });
  });
  const start = () => {
    focusableScrollers();
    announceChanges();
    const main = document.getElementById("main");
    if (main) observer.observe(main, { childList: true, subtree: true, characterData: true });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
