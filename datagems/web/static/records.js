/* DataGems records view (records helper): the job page's grid of records (a column per
   field, nested ones as a.b, numbered from 1), its filters and search, the detail drawer
   (the record, its prompt, every attempt), and the export links with their options.
   Pages are cut on the server (/api/tasks/{id}/rows); app.js calls DGRecords.update(view)
   on every job view and DGRecords.exports(view) to set the download links. */
"use strict";

window.DGRecords = (function () {
  const PAGE = 50;
  const MAX_COLUMNS = 12; // fields shown in the grid; the drawer shows every one
  let base = null, jobId = null;
  let offset = 0, show = "all", query = "";
  let busy = false, again = false, lastLoad = 0, lastKey = "";
  let openIndex = null, lastFocus = null;

  const q = (selector) => document.querySelector(selector);
  function make(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  function empty(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  const fmt = new Intl.NumberFormat();
  function cellText(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }
  function reasonText(row) {
    // the error of a failed record starts with its reason ("invalid_json: ..."): once
    const error = row.error || "", reason = row.reason || "";
    if (!reason || error.startsWith(reason)) return error || reason;
    return error ? `${reason}: ${error}` : reason;
  }
  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    return body;
  }

  function init(id) {
    jobId = id;
    base = "/api/tasks/" + encodeURIComponent(id);
    for (const chip of document.querySelectorAll("#rec-filters .chip")) {
      chip.addEventListener("click", () => {
        show = chip.dataset.show;
        offset = 0;
        for (const other of document.querySelectorAll("#rec-filters .chip")) other.setAttribute("aria-pressed", String(other === chip));
        load(true);
      });
    }
    let timer = null;
    q("#rec-search").addEventListener("input", (event) => {
      clearTimeout(timer);
      timer = setTimeout(() => { query = event.target.value.trim(); offset = 0; load(true); }, 300);
    });
    q("#rec-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(true); });
    q("#rec-next").addEventListener("click", () => { offset += PAGE; load(true); });
    q("#drawer-close").addEventListener("click", close);
    q("#record-backdrop").addEventListener("click", close);
    document.addEventListener("keydown", (event) => { if (event.key === "Escape" && openIndex !== null) close(); });
    q("#record-drawer").addEventListener("keydown", trapFocus);
    for (const id of ["#ex-index", "#ex-status", "#ex-error", "#ex-failed", "#ex-flatten"]) {
      q(id).addEventListener("change", () => { if (latestView) exports(latestView); });
    }
  }

  /* ---------- the grid ---------- */
  function update(view) {
    if (!base) init(view.job.id);
    const job = view.job;
    const key = [job.totalOk, job.totalFailed, job.totalRecords, job.status,
      (view.peers || []).map((p) => (p.inFlight || []).map((r) => r.i + ":" + r.state).join(",")).join("|")].join("/");
    if (key === lastKey && Date.now() - lastLoad < 10000) return;
    lastKey = key;
    load(false);
  }

  async function load(now) {
    if (busy) { again = true; return; }
    const wait = now ? 0 : Math.max(0, 1500 - (Date.now() - lastLoad));
    if (wait) { busy = true; setTimeout(() => { busy = false; load(true); }, wait); return; }
    busy = true;
    lastLoad = Date.now();
    try {
      const params = new URLSearchParams({ offset: String(offset), limit: String(PAGE), show });
      if (query) params.set("q", query);
      render(await getJSON(`${base}/rows?${params}`));
    } catch (err) { /* the next update retries */ }
    finally {
      busy = false;
      if (again) { again = false; setTimeout(() => load(true), 300); }
    }
  }

  function render(page) {
    for (const chip of document.querySelectorAll("#rec-filters .chip")) {
      chip.querySelector(".count").textContent = fmt.format((page.counts || {})[chip.dataset.show] || 0);
    }
    const columns = (page.columns || []).slice(0, MAX_COLUMNS);
    const head = empty(q("#records-table thead"));
    head.append(make("tr", {}, make("th", { scope: "col", text: "#" }), make("th", { scope: "col", text: "State" }),
      make("th", { scope: "col", text: "Attempts" }), ...columns.map((name) => make("th", { scope: "col", text: name }))));
    const tbody = empty(q("#records-table tbody"));
    for (const row of page.rows) {
      const tr = make("tr", {
        "data-index": row.i, "data-state": row.state, "data-retried": row.retried ? "true" : "false",
        tabindex: "0", class: "record-row", "aria-label": `Record ${row.n}, ${row.state}: open its detail`,
      });
      tr.append(
        make("td", { class: "mono", "data-label": "#", text: String(row.n) }),
        make("td", { "data-label": "State" }, make("span", { class: "state state-" + row.state, text: row.state })),
        make("td", { class: "num", "data-label": "Attempts", text: String(row.attempts || 1) }));
      if (row.cells) {
        for (const name of columns) {
          const text = cellText(row.cells[name]);
          tr.append(make("td", { class: "cell", "data-label": name, title: text.length > 60 ? text.slice(0, 2000) : null, text }));
        }
      } else {
        const why = row.state === "ok" ? "data shown once the peer uploads its slice"
          : reasonText(row) || (row.state === "failed" ? "failed" : `${row.state} on ${row.peer || "a peer"}`);
        tr.append(make("td", { class: "cell why", colspan: Math.max(1, columns.length), "data-label": "Why", text: why }));
      }
      tr.addEventListener("click", () => open(row.i, tr));
      tr.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(row.i, tr); } });
      tbody.append(tr);
    }
    const emptyNote = q("#records-empty");
    emptyNote.hidden = page.rows.length > 0;
    emptyNote.textContent = query || show !== "all" ? "No record matches." : "No record finished yet.";
    const matched = page.matched || 0;
    const last = Math.min(matched, page.offset + page.rows.length);
    q("#rec-range").textContent = matched ? `${fmt.format(page.offset + 1)}–${fmt.format(last)} of ${fmt.format(matched)}` : "";
    q("#rec-prev").disabled = page.offset === 0;
    q("#rec-next").disabled = page.offset + PAGE >= matched;
    if (openIndex !== null && !q("#record-drawer").hidden) { /* the drawer keeps its record */ }
  }

  /* ---------- the drawer ---------- */
  async function open(index, from) {
    openIndex = index;
    lastFocus = from || document.activeElement;
    const drawer = q("#record-drawer"), body = empty(q("#drawer-body"));
    q("#drawer-title").textContent = `Record ${index + 1}`;
    body.append(make("p", { class: "muted small", text: "Loading…" }));
    drawer.hidden = false;
    q("#record-backdrop").hidden = false;
    document.body.classList.add("drawer-open");
    q("#drawer-close").focus();
    try {
      const record = await getJSON(`${base}/records/${index}`);
      if (openIndex === index) fill(record);
    } catch (err) {
      empty(body).append(make("p", { class: "form-error", role: "alert", text: err.message }));
    }
  }

  function close() {
    openIndex = null;
    q("#record-drawer").hidden = true;
    q("#record-backdrop").hidden = true;
    document.body.classList.remove("drawer-open");
    if (lastFocus && document.contains(lastFocus)) lastFocus.focus();
  }

  function trapFocus(event) {
    if (event.key !== "Tab") return;
    const focusable = [...q("#record-drawer").querySelectorAll("button, [href], summary, [tabindex]:not([tabindex='-1'])")];
    if (!focusable.length) return;
    const first = focusable[0], last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
  }

  function fact(name, value) { return make("div", {}, make("dt", { text: name }), make("dd", { text: value })); }
  function ms(value) { return value === undefined || value === null ? "—" : `${fmt.format(Math.round(value))} ms`; }
  const ACTIONS = { first: "first call", again: "same question again", resample: "fresh sample", feedback: "fresh sample told the errors" };

  function fill(record) {
    const body = empty(q("#drawer-body"));
    q("#drawer-title").textContent = `Record ${record.n} (index ${record.i})`;
    body.append(make("dl", { class: "facts" },
      fact("State", record.state), fact("Attempts", String(record.attempts || 0)),
      fact("Peer", record.peer || "—"), fact("Round", String(record.round || 0))));
    if (record.error || record.reason) {
      body.append(make("p", { class: "notice notice-error record-error", role: "note", text: reasonText(record) }));
    }
    if (record.data !== undefined && record.data !== null) {
      body.append(make("h3", { class: "label", text: "Record" }), make("pre", { class: "code", text: JSON.stringify(record.data, null, 2) }));
    }
    const tries = record.tries || [];
    body.append(make("h3", { class: "label", text: `Attempts (${tries.length})` }));
    if (!tries.length) {
      body.append(make("p", { class: "small muted", text: record.state === "ok"
        ? "Accepted at the first call: its answer is the record above."
        : record.fromSlice === false ? "Attempts are shown once the peer uploads its slice." : "No attempt was kept." }));
    }
    const list = make("ol", { class: "attempts" });
    for (const attempt of tries) {
      const accepted = attempt.reason === "ok";
      const item = make("li", { class: "attempt" + (accepted ? " attempt-ok" : " attempt-failed"), "data-attempt": attempt.n });
      item.append(make("div", { class: "attempt-head" },
        make("strong", { text: `Attempt ${attempt.n}` }),
        make("span", { class: "state state-" + (accepted ? "ok" : "failed"), text: accepted ? "accepted" : (attempt.reason || "failed") }),
        make("span", { class: "small muted", text: ACTIONS[attempt.do] || attempt.do || "" })));
      item.append(make("dl", { class: "facts small" },
        fact("Latency", ms(attempt.ms)),
        fact("Tokens in", attempt.tokensIn === undefined ? "—" : fmt.format(attempt.tokensIn)),
        fact("Tokens out", attempt.tokensOut === undefined ? "—" : fmt.format(attempt.tokensOut)),
        fact("Seed", attempt.seed === undefined ? "—" : String(attempt.seed))));
      if (attempt.error) item.append(make("p", { class: "attempt-error", text: attempt.error }));
      if (attempt.raw !== undefined) {
        const note = attempt.rawCut ? ` (cut: the first 4 KiB of ${fmt.format(attempt.rawBytes || 0)} bytes)` : "";
        item.append(make("details", { class: "raw", open: !accepted },
          make("summary", { class: "small", text: "Raw answer" + note }),
          make("pre", { class: "code raw-answer", text: attempt.raw })));
      } else if (!accepted) {
        item.append(make("p", { class: "small muted", text: "No answer came back (the call itself failed)." }));
      }
      list.append(item);
    }
    body.append(list);
    for (const past of record.history || []) {
      body.append(make("p", { class: "small muted", text: `Earlier round ${past.round || 0}: ${past.reason || ""} ${past.error || ""} (${past.attempts || 1} attempt(s))` }));
    }
    if (record.prompt) {
      const prompt = make("details", { class: "prompt" }, make("summary", { class: "small", text: "Prompt (rebuilt from the job's details)" }));
      for (const message of record.prompt) {
        prompt.append(make("p", { class: "label", text: message.role }), make("pre", { class: "code prompt-text", text: message.content }));
      }
      body.append(prompt);
    }
  }

  /* ---------- exports ---------- */
  let latestView = null;
  function exports(view) {
    latestView = view;
    if (!base) init(view.job.id);
    const job = view.job;
    const active = job.status === "queued" || job.status === "running" || !(view.state ? view.state.settled : true);
    const partial = active || job.status === "cancelled";
    const params = new URLSearchParams();
    const meta = ["index", "status", "error"].filter((name) => q("#ex-" + name).checked);
    if (meta.length) params.set("meta", meta.join(","));
    if (!q("#ex-failed").checked) params.set("failed", "exclude");
    if (q("#ex-flatten").checked) params.set("flatten", "true");
    if (partial) params.set("partial", "true");
    for (const format of ["json", "jsonl", "csv", "parquet"]) {
      const link = q("#dl-" + format);
      params.set("format", format);
      link.href = `${base}/export?${params}`;
      link.setAttribute("download", ""); // the server names the file (title + id)
    }
    q("#dl-note").textContent = partial ? "partial: the slices uploaded so far" : "";
  }

  return { init, update, exports, open };
})();
