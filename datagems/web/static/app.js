/* DataGems dashboard. Vanilla JS, no build step.
 * Rule: user data is only ever inserted with textContent (el() below), never innerHTML. */
"use strict";

const BOOT = JSON.parse(document.getElementById("boot").textContent || "{}");
const $ = (sel, root) => (root || document).querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

class ApiError extends Error {
  constructor(status, message, errors) { super(message); this.status = status; this.errors = errors || []; }
}

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try { response = await fetch(path, options); }
  catch (err) { throw new ApiError(0, "The server cannot be reached. Check your connection."); }
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  if (response.status === 401 && BOOT.user) { location.href = "/login?next=" + encodeURIComponent(location.pathname); }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `Request failed (${response.status})`, data && data.errors);
  }
  return data;
}

function toast(message, isError) {
  const box = $("#toast");
  box.textContent = message;
  box.classList.toggle("error", !!isError);
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

function showError(node, message) {
  if (!node) return;
  node.textContent = message || "";
  node.hidden = !message;
}

async function busy(button, work) {
  button.disabled = true; button.classList.add("busy");
  try { return await work(); } finally { button.disabled = false; button.classList.remove("busy"); }
}

/* ---------- formatting ---------- */
const nf = new Intl.NumberFormat();
function num(value) { return nf.format(value || 0); }
function parseTime(iso) { const t = iso ? Date.parse(iso) : NaN; return Number.isNaN(t) ? null : t; }
function fmtTime(iso) {
  const t = parseTime(iso);
  if (t === null) return "—";
  const d = new Date(t);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}
function fmtAgo(iso) {
  const t = parseTime(iso);
  if (t === null) return "—";
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return fmtTime(iso);
}
function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60), rest = Math.round(s % 60);
  if (m < 60) return `${m}m ${rest}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}
function statusBadge(status) {
  const known = ["queued", "running", "succeeded", "failed", "cancelled"];
  return el("span", { class: "status status-" + (known.includes(status) ? status : "queued"), text: status || "unknown" });
}
const ACTIVE = (status) => status === "queued" || status === "running";

/* honest states (records helper): the job view's state says what is true of the job */
function settled(view) { return !view.state || view.state.settled !== false; }
function stateBadge(status, state) {
  const badge = statusBadge(status);
  if (!state) return badge;
  badge.textContent = state.label;
  badge.classList.add("tone-" + state.tone);
  badge.dataset.status = status;
  return badge;
}
function listedBadge(job) {
  // a finished job with failed records is "Completed — N failed", not a green "succeeded"
  const failed = job.totalFailed || 0;
  if (job.status !== "succeeded") return statusBadge(job.status);
  return stateBadge(job.status, failed ? { label: `Completed — ${num(failed)} failed`, tone: "warn" } : { label: "Completed", tone: "ok" });
}
function rangesText(view, peer) {
  const mine = view.state && view.state.ranges ? view.state.ranges[peer.peerId] : null;
  if (mine && mine.ranges.length) return mine.ranges.map(([start, end]) => `${start} – ${end}`).join(", ");
  return `${peer.range ? peer.range.start : 0} – ${peer.range ? peer.range.end : 0}`;
}

function progressBar(ok, failed, total) {
  const bar = el("div", { class: "progress", role: "progressbar", "aria-label": "Records done", "aria-valuemin": 0, "aria-valuemax": total, "aria-valuenow": ok + failed });
  const pct = (n) => (total > 0 ? Math.min(100, (100 * n) / total) : 0) + "%";
  const okBar = el("span", { class: "bar-ok" }); okBar.style.width = pct(ok);
  const failedBar = el("span", { class: "bar-failed" }); failedBar.style.width = pct(failed);
  bar.append(okBar, failedBar);
  return bar;
}

function rate(job) {
  const start = parseTime(job.jobStartedAt);
  if (start === null || !job.totalGenerated) return null;
  const end = parseTime(job.jobFinishedAt) || Date.now();
  const seconds = Math.max(0.001, (end - start) / 1000);
  return job.totalGenerated / seconds;
}

/* ---------- schema viewer ---------- */
function schemaTable(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const names = Object.keys(props);
  if (!names.length) return el("p", { class: "muted small", text: "No properties." });
  const rows = names.map((name) => {
    const sub = props[name] || {};
    let type = Array.isArray(sub.type) ? sub.type.join(" | ") : sub.type || (sub.enum ? "enum" : "any");
    if (sub.format) type += ` (${sub.format})`;
    if (type === "array" && sub.items && sub.items.type) type = `array of ${sub.items.type}`;
    const detail = [sub.description || ""];
    if (Array.isArray(sub.enum)) detail.push("one of: " + sub.enum.map(String).join(", "));
    return el("tr", {},
      el("td", {}, el("code", { text: name }), required.has(name) ? el("span", { class: "req", title: "required", text: " *" }) : null),
      el("td", {}, el("span", { class: "type", text: type })),
      el("td", { class: "small wrap", text: detail.filter(Boolean).join(" · ") }));
  });
  return el("table", { class: "table" },
    el("thead", {}, el("tr", {}, el("th", { text: "Field" }), el("th", { text: "Type" }), el("th", { text: "Notes" }))),
    el("tbody", {}, rows));
}

/* ---------- common ---------- */
function initCommon() {
  const logout = $("#logout");
  if (logout) logout.addEventListener("click", async () => {
    try { await api("POST", "/api/auth/logout"); } catch (err) { /* signed out anyway */ }
    location.href = "/login";
  });
}

/* ---------- login / register ---------- */
function initLogin() {
  const form = $("#login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("#login-error"), "");
    const data = Object.fromEntries(new FormData(form));
    if (!data.username || !data.password) { showError($("#login-error"), "Enter your username and password."); return; }
    await busy(form.querySelector("button[type=submit]"), async () => {
      try {
        await api("POST", "/api/auth/login", { username: data.username, password: data.password });
        location.href = BOOT.next || "/";
      } catch (err) { showError($("#login-error"), err.message); }
    });
  });
}

function initRegister() {
  const form = $("#register-form");
  if (!form) return; // sign-up is off on this server
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("#register-error"), "");
    const data = Object.fromEntries(new FormData(form));
    await busy(form.querySelector("button[type=submit]"), async () => {
      try {
        const answer = await api("POST", "/api/auth/register", data);
        const ok = $("#register-ok");
        ok.textContent = `Account “${answer.username}” created. Your password is on its way to ${answer.email}.`;
        ok.hidden = false;
        form.reset();
      } catch (err) { showError($("#register-error"), err.message); }
    });
  });
  const resend = $("#resend-form");
  if (location.hash === "#forgot") $("#forgot").open = true;
  resend.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(resend));
    await busy(resend.querySelector("button"), async () => {
      try {
        await api("POST", "/api/auth/register/resend", data);
        $("#resend-msg").textContent = "If that address has an account, a link to choose a new password is on its way. Your password stays until you use it.";
      } catch (err) { $("#resend-msg").textContent = err.message; }
    });
  });
}

function initReset() {
  const form = $("#reset-form");
  // the token travels in the fragment: never sent to a server, never in a log
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  history.replaceState(null, "", location.pathname);
  if (!token) showError($("#reset-error"), "This page needs the link from the e-mail. Ask for a new one.");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("#reset-error"), "");
    const data = Object.fromEntries(new FormData(form));
    if (data.password.length < 10) { showError($("#reset-error"), "Use at least 10 characters."); return; }
    if (data.password !== data.again) { showError($("#reset-error"), "The two passwords differ."); return; }
    await busy(form.querySelector("button[type=submit]"), async () => {
      try {
        await api("POST", "/api/auth/reset", { token, password: data.password });
        location.href = "/";
      } catch (err) { showError($("#reset-error"), err.message); }
    });
  });
}

/* ---------- poller: SSE first, polling as the fallback ---------- */
function livePoll(fetcher, onData, isActive, label) {
  let timer = null;
  async function tick() {
    let active = true;
    try { const data = await fetcher(); onData(data); active = isActive(data); }
    catch (err) { if (err.status === 404) return; }
    const seconds = active ? BOOT.activePollSeconds : BOOT.idlePollSeconds;
    if (label) label(seconds);
    timer = setTimeout(tick, seconds * 1000);
  }
  tick();
  return () => clearTimeout(timer);
}

/* ---------- jobs list ---------- */
function unreadableCard(job) {
  const why = job.reason ? `stored in a shape this version cannot read: ${job.reason}` : "stored in a shape this version cannot read";
  return el("div", { class: "job-card job-unreadable", "data-job": job.id },
    el("div", {}, el("h3", { text: job.title || job.id }), el("div", { class: "meta" }, el("span", { text: why }))),
    el("div", {}, el("span", { class: "status status-failed", text: "unreadable" })));
}

function jobCard(job, options) {
  if (job.unreadable) return unreadableCard(job);
  const opts = options || {};
  const ok = job.totalOk || 0, failed = job.totalFailed || 0, total = job.totalRecords || 0;
  const r = rate(job);
  const meta = [el("span", { text: `Created ${fmtAgo(job.createdAt)}` })];
  if (BOOT.user && BOOT.user.role === "admin" && (opts.everyone || job.owner !== BOOT.user.username)) meta.push(el("span", { class: "owner", text: `by ${job.owner}` }));
  if (job.recordsDurationMs) meta.push(el("span", { text: `took ${fmtDuration(job.recordsDurationMs)}` }));
  if (r && ACTIVE(job.status)) meta.push(el("span", { text: `${r.toFixed(1)} rec/s` }));
  const numbers = `${num(ok + failed)} / ${num(total)} records` + (BOOT.showFailures || failed ? ` · ${num(ok)} ok · ${num(failed)} failed` : "");
  return el("div", { class: "job-card", "data-job": job.id },
    el("div", {}, el("h3", {}, el("a", { class: "card-link", href: "/jobs/" + encodeURIComponent(job.id), text: job.title || job.id })),
      el("div", { class: "meta" }, meta)),
    el("div", {}, listedBadge(job)),
    progressBar(ok, failed, total),
    el("div", { class: "numbers", text: numbers }),
    typeof cardActions === "function" ? cardActions(job, opts.onDeleted) : null);
}

function initJobs() {
  const list = $("#jobs");
  const all = $("#show-all");
  const owner = $("#job-owner");
  const form = $("#job-filters");
  const more = $("#load-more");
  // pages of GET /api/tasks: the first is refreshed live, the ones below it are loaded on
  // demand and kept (finished jobs rarely change); a job is shown once, by id
  let older = [];      // jobs of the pages below the first, in order
  let first = [];      // the first page, as last refreshed
  let cursor = null;   // where the next page starts (null: no more)
  let stop = null;
  const query = (extra) => {
    const params = new URLSearchParams();
    const data = new FormData(form);
    for (const name of ["q", "status", "owner", "sort"]) {
      const value = String(data.get(name) || "").trim();
      if (value && !(name === "owner" && (!all || !all.checked))) params.set(name, value);
    }
    if (all && all.checked && !params.get("owner")) params.set("all", "true");
    for (const [key, value] of Object.entries(extra || {})) params.set(key, value);
    const text = params.toString();
    return "/api/tasks" + (text ? "?" + text : "");
  };
  const filtered = () => ["q", "status"].some((name) => String(new FormData(form).get(name) || "").trim());
  const render = () => {
    clear(list);
    const seen = new Set();
    const shown = [...first, ...older].filter((job) => !seen.has(job.id) && seen.add(job.id));
    if (!shown.length) {
      if (filtered()) list.append(el("div", { class: "card empty" }, el("p", { class: "muted", text: "No dataset matches these filters." })));
      else list.append(el("div", { class: "card empty" },
        el("h2", { text: "No dataset yet" }),
        el("p", { class: "muted", text: "Describe one record and DataGems drafts the schema for you." }),
        el("a", { class: "btn btn-primary", href: "/new", text: "Create your first dataset" })));
    }
    const everyone = !!(all && all.checked);
    const onDeleted = (gone) => { first = first.filter((j) => j.id !== gone.id); older = older.filter((j) => j.id !== gone.id); render(); };
    for (const job of shown) list.append(jobCard(job, { everyone, onDeleted }));
    more.hidden = !cursor;
  };
  const start = () => {
    if (stop) stop();
    older = []; first = []; cursor = null;
    if (owner) owner.disabled = !(all && all.checked);
    stop = livePoll(() => api("GET", query()), (data) => {
      first = data.jobs;
      if (!older.length) cursor = data.nextCursor;
      render();
    }, (data) => data.jobs.some((j) => ACTIVE(j.status)),
    (seconds) => { $("#live-note").textContent = `Refreshing every ${seconds}s`; });
  };
  more.addEventListener("click", () => busy(more, async () => {
    try {
      const data = await api("GET", query({ cursor }));
      older = older.concat(data.jobs);
      cursor = data.nextCursor;
      render();
    } catch (err) { toast(err.message, true); }
  }));
  let typing = null;
  form.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(start, 300); });
  form.addEventListener("submit", (event) => { event.preventDefault(); start(); });
  if (all) all.addEventListener("change", start);
  start();
}

/* ---------- new dataset: static/new-dataset.js (initNewDataset) ---------- */

/* ---------- one job, live ---------- */
function initJob() {
  const jobId = BOOT.jobId;
  const base = "/api/tasks/" + encodeURIComponent(jobId);
  let latest = null;

  function stat(name, value) { return el("div", {}, el("dt", { text: name }), el("dd", { text: value })); }

  function render(view) {
    latest = view;
    const job = view.job, details = view.details || {};
    const ok = job.totalOk || 0, failed = job.totalFailed || 0, total = job.totalRecords || 0;
    const done = ok + failed;
    document.title = `${job.title || job.id} · DataGems`;
    if (typeof jobPageActions === "function") jobPageActions(view);
    $("#job-title").textContent = job.title || job.id;
    const sub = [`Created ${fmtTime(job.createdAt)}`, `${job.peerCount || (job.peers || []).length} peer(s)`];
    if (BOOT.user && job.owner !== BOOT.user.username) sub.push(`owner ${job.owner}`);
    if (job.datasetMode) sub.push("dataset mode (labelled)");
    $("#job-sub").textContent = sub.join(" · ");
    clear($("#job-status-wrap")).append(stateBadge(job.status, view.state));
    $("#job-why").textContent = (view.state && view.state.why) || "";
    $("#job-why").hidden = !(view.state && view.state.why);
    $("#progress-text").textContent = `${num(done)} / ${num(total)} records · ${total ? Math.floor((100 * done) / total) : 0}%`;
    const pct = (n) => (total > 0 ? Math.min(100, (100 * n) / total) : 0) + "%";
    $("#bar-ok").style.width = pct(ok);
    $("#bar-failed").style.width = pct(failed);
    $("#progress").setAttribute("aria-valuemax", total); $("#progress").setAttribute("aria-valuenow", done);
    $("#legend-ok").textContent = `${num(ok)} ok`;
    $("#legend-failed").textContent = `${num(failed)} failed`;
    $("#legend-rest").textContent = `${num(Math.max(0, total - done))} to go`;
    showError($("#job-error"), job.error ? `The work could not start: ${job.error}` : "");

    const r = rate(job);
    let eta = "—";
    if (ACTIVE(job.status) && r && r > 0) eta = fmtDuration(((total - done) / r) * 1000);
    else if (!ACTIVE(job.status)) eta = "done";
    const elapsed = job.jobStartedAt ? (parseTime(job.jobFinishedAt) || Date.now()) - parseTime(job.jobStartedAt) : null;
    clear($("#job-stats")).append(
      stat("Records/s", r ? r.toFixed(2) : "—"),
      stat("ETA", eta),
      stat("Started", fmtTime(job.jobStartedAt)),
      stat("Finished", fmtTime(job.jobFinishedAt)),
      stat("Generation", fmtDuration(job.recordsDurationMs || elapsed)),
      stat("Schema drafted", fmtTime(job.schemaGeneratedAt)),
      stat("Schema took", fmtDuration(job.schemaDurationMs)),
      stat("Redrafts", String(job.schemaRefreshes || 0)));

    // usage, from what the gateway reports
    const usage = view.usage || {};
    clear($("#job-usage")).append(
      stat("Tokens in", num(usage.tokensIn)),
      stat("Tokens out", num(usage.tokensOut)),
      stat("Latency / record", usage.avgLatencyMs === null || usage.avgLatencyMs === undefined ? "—" : fmtDuration(usage.avgLatencyMs)),
      stat("Retries", num(usage.retries)),
      stat("Duplicates", num(usage.duplicates)),
      // calls given up on timeout: the server may have computed (and billed) them unseen
      stat("Abandoned calls", num(usage.abandonedCalls || 0)));
    renderControl(view);

    const cancel = $("#cancel-btn");
    cancel.hidden = !ACTIVE(job.status) || !!view.cancel;
    if (view.cancel && !settled(view)) $("#progress-text").textContent += " · cancelling…";

    const uploaded = (view.peers || []).some((p) => p.resultCid);
    const finished = !ACTIVE(job.status);
    const downloads = $("#downloads");
    downloads.hidden = !(uploaded && (finished || done > 0));
    window.DGRecords.exports(view); // the links, with the export options (records.js)

    // in flight, from the peer states
    const flying = [];
    for (const peer of view.peers || []) for (const rec of peer.inFlight || []) flying.push({ ...rec, peer: peer.peerId });
    flying.sort((a, b) => a.i - b.i);
    $("#inflight-count").textContent = String(flying.length);
    $("#inflight-empty").hidden = flying.length > 0;
    const list = clear($("#inflight"));
    for (const rec of flying.slice(0, 200)) {
      const started = parseTime(rec.startedAt);
      list.append(el("li", { "data-index": rec.i, "data-state": rec.state },
        el("span", { class: "idx", text: "#" + rec.i }),
        el("span", { class: "state state-" + rec.state, text: rec.state }),
        el("span", { class: "why", text: `attempt ${rec.attempt || 1}` + (rec.reason ? ` · ${rec.reason}` : "") + ` · ${rec.peer}` }),
        el("span", { class: "age small", text: started ? fmtDuration(Date.now() - started) : "" })));
    }

    // peers and failure reasons
    const tbody = clear($("#peers-table tbody"));
    const reasons = {};
    const coverage = {};
    for (const c of view.coverage || []) coverage[c.peer] = c;
    for (const peer of view.peers || []) {
      const pdone = (peer.generatedOk || 0) + (peer.generatedFailed || 0);
      let state = "waiting";
      if (peer.resultCid) state = "uploaded"; else if (peer.cancelledAt) state = "cancelled"; else if (peer.startedAt) state = "working";
      const cover = coverage[peer.peerId];
      if (cover && cover.takenOver) state = `taken over by ${cover.by}`;
      const u = peer.usage || {};
      const usageText = `${num(u.tokensIn)} in / ${num(u.tokensOut)} out` +
        (u.avgLatencyMs === null || u.avgLatencyMs === undefined ? "" : ` · ${fmtDuration(u.avgLatencyMs)}/rec`) +
        (u.retries ? ` · ${num(u.retries)} retries` : "") + (u.duplicates ? ` · ${num(u.duplicates)} dup` : "") +
        (peer.abandonedCalls ? ` · ${num(peer.abandonedCalls)} abandoned` : "") +
        (peer.pace ? ` · in flight ≤ ${peer.pace.level} of ${peer.pace.cap}: ${peer.pace.reason}` : "");
      const who = el("td", {}, el("code", { text: peer.peerId }));
      if (peer.kind === "original") who.append(" ", el("span", { class: "tag small", title: "a peer of the original DataGems app", text: "original app" }));
      tbody.append(el("tr", { "data-kind": peer.kind || "datagems" },
        who,
        el("td", { class: "nowrap", title: "global indices, end excluded", text: rangesText(view, peer) }),
        el("td", { class: "num", text: `${num(pdone)} / ${num(cover ? cover.assigned : peer.assigned)}` }),
        el("td", { class: "num", text: num(peer.generatedOk) }),
        el("td", { class: "num", text: num(peer.generatedFailed) }),
        el("td", { class: "small nowrap", text: state + (peer.lastUpdateAt ? ` · ${fmtAgo(peer.lastUpdateAt)}` : "") }),
        el("td", { class: "small nowrap", text: usageText })));
      for (const [reason, count] of Object.entries(peer.failureReasons || {})) reasons[reason] = (reasons[reason] || 0) + count;
    }
    const takeovers = clear($("#takeovers"));
    for (const c of view.coverage || []) {
      if (!c.takenOver) continue;
      const how = c.complete ? "finished" : "being finished";
      takeovers.append(el("li", { "data-peer": c.peer, "data-by": c.by,
        text: `${c.peer}'s range ${how} by ${c.by} (${num(c.ok)} ok, ${num(c.failed)} failed of ${num(c.assigned)})` }));
    }
    takeovers.hidden = !takeovers.childElementCount;
    const reasonList = clear($("#reasons"));
    for (const [reason, count] of Object.entries(reasons)) reasonList.append(el("li", { text: `${reason} × ${count}` }));
    $("#failure-reasons").hidden = !Object.keys(reasons).length;

    // what was asked
    $("#job-description").textContent = details.description || "—";
    $("#job-instructions").textContent = details.instructions || "—";
    if (details.schema) {
      clear($("#job-schema-fields")).append(schemaTable(details.schema));
      $("#job-schema").textContent = JSON.stringify(details.schema, null, 2);
    }
    window.DGRecords.update(view); // the records grid (records.js)
  }

  function renderControl(view) {
    const job = view.job, control = view.control || {};
    const failed = job.totalFailed || 0, total = job.totalRecords || 0;
    const finished = job.status === "succeeded" || job.status === "failed";
    const retry = $("#retry-btn");
    if (!retry.classList.contains("busy")) {
      retry.textContent = failed > 0 ? `Retry ${num(failed)} failed record${failed === 1 ? "" : "s"}` : "Retry failed records";
      retry.disabled = !(finished && failed > 0);
      retry.title = !failed ? "No record failed" : finished ? "Call each failed record again, once" : "Possible once the job has finished";
    }
    const room = Math.max(0, (BOOT.maxRecords || 0) - total);
    const canExtend = job.status !== "cancelled" && room > 0;
    const input = $("#extend-n"), extend = $("#extend-btn");
    input.max = String(Math.max(1, room));
    input.disabled = !canExtend;
    if (!extend.classList.contains("busy")) extend.disabled = !canExtend;
    extend.title = job.status === "cancelled" ? "A cancelled job cannot be extended"
      : room <= 0 ? `At most ${num(BOOT.maxRecords)} records per job` : `Up to ${num(room)} more records`;
    const notes = [];
    if (control.retryRound) notes.push(`Retry round ${control.retryRound}` + (control.retryRequestedAt ? ` asked ${fmtTime(control.retryRequestedAt)}` : ""));
    if (control.extendedBy) notes.push(`extended by ${num(control.extendedBy)} records (` + (control.extensions || []).map((r) => `${r.start}–${r.end}`).join(", ") + ")");
    if (job.status === "cancelled") notes.push("a cancelled job cannot be extended");
    $("#control-note").textContent = notes.join(" · ");
    const mixed = clear($("#mixed-notes"));
    for (const note of view.notes || []) mixed.append(el("li", { text: note }));
    mixed.hidden = !mixed.childElementCount;
  }

  async function refresh() {
    try { render(await api("GET", base)); } catch (err) { /* the live updates catch up */ }
    startLive();
  }

  $("#retry-btn").addEventListener("click", async (event) => {
    showError($("#control-error"), "");
    await busy(event.currentTarget, async () => {
      try {
        const answer = await api("POST", `${base}/retry-failed`);
        toast(`Retrying ${num(answer.records)} failed record${answer.records === 1 ? "" : "s"} (round ${answer.retryRound}): one new call each.`);
      } catch (err) { showError($("#control-error"), err.message); }
    });
    await refresh();
  });

  $("#extend-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("#control-error"), "");
    const input = $("#extend-n");
    const n = Number(input.value), room = Number(input.max);
    if (!Number.isInteger(n) || n < 1 || n > room) { showError($("#control-error"), `Enter a whole number of records between 1 and ${num(room)}.`); return; }
    await busy($("#extend-btn"), async () => {
      try {
        const answer = await api("POST", `${base}/extend`, { additionalRecords: n });
        toast(`Adding ${num(n)} records: ${num(answer.totalRecords)} in all.`);
      } catch (err) { showError($("#control-error"), err.message); }
    });
    await refresh();
  });


  $("#cancel-btn").addEventListener("click", async (event) => {
    if (!confirm("Cancel this job? Records already made are kept.")) return;
    await busy(event.currentTarget, async () => {
      try { await api("POST", `${base}/cancel`); toast("Cancel requested: every peer stops at its next check."); }
      catch (err) { toast(err.message, true); }
    });
  });

  const live = $("#live-state");
  function setLive(mode, text) { live.className = "live-dot " + mode; live.textContent = text; }

  function fallbackToPolling() {
    livePoll(() => api("GET", base), render, (view) => ACTIVE(view.job.status) || !settled(view),
      (seconds) => setLive("polling", `polling every ${seconds}s`));
  }

  let source = null, polling = false;
  function startLive() {
    if (polling || (source && source.readyState !== EventSource.CLOSED)) return;
    let opened = false, failures = 0;
    source = new EventSource(`${base}/events`);
    const mine = source;
    mine.addEventListener("open", () => { opened = true; failures = 0; setLive("live", "live"); });
    mine.addEventListener("job", (event) => { render(JSON.parse(event.data)); });
    mine.addEventListener("end", () => { mine.close(); setLive("", "finished"); });
    mine.addEventListener("error", () => {
      failures += 1;
      if (!opened || failures > 3) { mine.close(); polling = true; fallbackToPolling(); }
      else setLive("polling", "reconnecting…");
    });
  }
  if (!window.EventSource) { polling = true; fallbackToPolling(); return; }
  startLive();
}

/* ---------- metrics ---------- */
function initStats() {
  const tiles = $("#tiles");
  const names = [
    ["totalJobs", "Jobs"], ["activeJobs", "Active jobs"], ["failedJobs", "Failed jobs"],
    ["totalRecordsRequested", "Records requested"], ["totalRecordsGenerated", "Records generated"],
  ];
  livePoll(() => api("GET", "/api/metrics"), (data) => {
    const m = data.metrics || {};
    clear(tiles);
    for (const [key, label] of names) tiles.append(el("div", { class: "tile" }, el("div", { class: "value", text: num(m[key]) }), el("div", { class: "name", text: label })));
    tiles.append(el("div", { class: "tile" }, el("div", { class: "value", text: m.lastJobAt ? fmtAgo(m.lastJobAt) : "—" }), el("div", { class: "name", text: "Last job" })));
  }, (data) => (data.metrics || {}).activeJobs > 0);
}

/* ---------- settings ---------- */
function initSettings() {
  const form = $("#profile-form");
  function fill(profile) {
    form.reset();
    form.elements.id.value = profile ? profile.id : "";
    if (profile) {
      form.elements.name.value = profile.name || "";
      form.elements.baseUrl.value = profile.baseUrl || "";
      form.elements.path.value = profile.path || "";
      form.elements.model.value = profile.model || "";
      form.elements.apiKey.placeholder = profile.apiKeyMasked ? `${profile.apiKeyMasked} (unchanged)` : "sk-…";
      form.elements.setActive.checked = !!profile.active;
      for (const price of ["priceInPerMillion", "priceOutPerMillion"]) form.elements[price].value = profile[price] ?? "";
      form.elements.temperature.value = profile.temperature ?? "";
      form.elements.maxTokens.value = profile.maxTokens ?? "";
    }
    $("#profile-form-title").textContent = profile ? `Edit “${profile.name || profile.baseUrl}”` : "Add a profile";
  }
  function render(settings) {
    const tbody = clear($("#profiles-table tbody"));
    for (const profile of settings.profiles) {
      tbody.append(el("tr", {},
        el("td", {}, el("strong", { text: profile.name || "—" }), profile.active ? el("span", { class: "badge", text: "active" }) : null),
        el("td", { class: "mono small", text: (profile.baseUrl || "") + (profile.path || "") }),
        el("td", {}, profile.model || "—",
          profile.temperature != null ? el("div", { class: "small muted", text: `temperature ${profile.temperature}` }) : null,
          profile.maxTokens != null ? el("div", { class: "small muted", text: `max ${profile.maxTokens} tokens` }) : null),
        el("td", { class: "mono", text: profile.apiKeyMasked || "none" }),
        el("td", { class: "small", "data-structured-output": profile.structuredOutput || "",
          text: profile.structuredOutput ? `structured output: ${profile.structuredOutput}` : "learned at first use" }),
        el("td", { class: "num" },
          el("button", { class: "btn btn-sm", type: "button", text: "Edit", onclick: () => fill(profile) }), " ",
          profile.active ? null : el("button", { class: "btn btn-sm", type: "button", text: "Use", onclick: () => save({ id: profile.id, setActive: true }) }), " ",
          el("button", { class: "btn btn-sm btn-danger", type: "button", text: "Delete", onclick: () => remove(profile) }))));
    }
    $("#profiles-empty").hidden = settings.profiles.length > 0;
    $("#profiles-limit").textContent = `${settings.profiles.length} of at most ${settings.maxProfiles} profiles`;
  }
  async function load() { try { render(await api("GET", "/api/user/settings")); } catch (err) { toast(err.message, true); } }
  async function save(body) {
    const warning = $("#profile-warning");
    try {
      const answer = await api("POST", "/api/user/settings", body);
      render(answer);
      fill(null);
      showError(warning, (answer.warnings || []).join(" "));
      toast(answer.warnings ? "Saved, with a warning" : "Saved");
      return true;
    }
    catch (err) { showError($("#profile-error"), err.message); return false; }
  }
  async function remove(profile) {
    if (!confirm(`Delete the profile “${profile.name || profile.baseUrl}”?`)) return;
    try { render(await api("DELETE", "/api/user/settings", { id: profile.id })); toast("Deleted"); }
    catch (err) { toast(err.message, true); }
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("#profile-error"), "");
    const data = Object.fromEntries(new FormData(form));
    const body = { name: data.name, baseUrl: data.baseUrl, path: data.path || null, model: data.model, setActive: !!data.setActive };
    if (data.id) body.id = data.id;
    if (data.apiKey) body.apiKey = data.apiKey;
    for (const price of ["priceInPerMillion", "priceOutPerMillion"]) body[price] = data[price] === "" ? null : Number(data[price]);
    body.temperature = data.temperature === "" ? null : Number(data.temperature);
    body.maxTokens = data.maxTokens === "" ? null : Number(data.maxTokens);
    showError($("#profile-warning"), "");
    await busy(form.querySelector("button[type=submit]"), () => save(body));
  });
  $("#profile-reset").addEventListener("click", () => fill(null));
  $("#list-models").addEventListener("click", async (event) => {
    showError($("#profile-error"), "");
    const data = Object.fromEntries(new FormData(form));
    const body = data.apiKey || !data.id ? { baseUrl: data.baseUrl, apiKey: data.apiKey } : { profileId: data.id };
    await busy(event.currentTarget, async () => {
      try {
        const answer = await api("POST", "/api/user/models", body);
        const list = clear($("#model-list"));
        for (const model of answer.models) list.append(el("option", { value: model }));
        toast(`${answer.models.length} models found`);
      } catch (err) { showError($("#profile-error"), err.message); }
    });
  });
  load();
}

/* ---------- admin ---------- */
function initAdmin() {
  async function load() {
    const data = await api("GET", "/api/admin/accounts");
    const tbody = clear($("#accounts-table tbody"));
    for (const account of data.accounts) {
      const self = BOOT.user && account.username === BOOT.user.username;
      tbody.append(el("tr", {},
        el("td", {}, el("code", { text: account.username })),
        el("td", {}, account.role === "admin" ? el("span", { class: "badge", text: "admin" }) : "user"),
        el("td", { text: account.name || "—" }),
        el("td", { text: account.email || "—" }),
        el("td", { text: account.country || "—" }),
        el("td", { class: "small", text: fmtTime(account.createdAt) }),
        el("td", { class: "num" }, self ? null : el("span", { class: "row-actions" },
          el("button", {
            class: "btn btn-sm", type: "button", text: "Reset password",
            title: "A new password, shown here once; its sessions end",
            onclick: async () => {
              if (!confirm(`Give “${account.username}” a new password? Its current password and sessions stop working.`)) return;
              try {
                const done = await api("POST", "/api/admin/accounts/password", { username: account.username });
                showSecret(`New password of “${done.username}” (shown once):`, done.password);
              } catch (err) { toast(err.message, true); }
            },
          }),
          el("button", {
            class: "btn btn-sm btn-danger", type: "button", text: "Delete",
            title: "No one signs in as it again; its datasets and settings are kept, its name and address stay taken",
            onclick: async () => {
              if (!confirm(`Delete the account “${account.username}”? No one can sign in as it again; its datasets and saved settings are kept.`)) return;
              try { await api("DELETE", "/api/admin/accounts", { username: account.username }); toast("Account deleted"); load(); }
              catch (err) { toast(err.message, true); }
            },
          }),
          el("button", {
            class: "btn btn-sm btn-danger", type: "button", text: "Delete with data",
            title: "Also removes its saved API keys (first), its datasets and its personal details; its address can register again",
            onclick: async () => {
              if (!confirm(`Delete “${account.username}” with its data: saved API keys, datasets (running ones are cancelled) and personal details? This cannot be undone.`)) return;
              try {
                const done = await api("DELETE", "/api/admin/accounts", { username: account.username, purge: true });
                toast(`Account deleted with ${done.jobsRemoved} datasets${done.jobsCancelled ? `; ${done.jobsCancelled} running ones cancelled` : ""}`);
                load();
              } catch (err) { toast(err.message, true); }
            },
          })))));
    }
  }
  function showSecret(text, password) {
    $("#account-secret-text").textContent = text;
    $("#account-secret-password").textContent = password;
    $("#account-secret").hidden = false;
    $("#account-secret-copy").focus();
  }
  $("#account-secret-copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("#account-secret-password").textContent); toast("Copied"); }
    catch (err) { toast("Select the password and copy it", true); }
  });
  $("#account-secret-hide").addEventListener("click", () => {
    $("#account-secret").hidden = true;
    $("#account-secret-password").textContent = "";
  });
  const create = $("#create-account-form");
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("#create-account-error"), "");
    const data = Object.fromEntries(new FormData(create));
    await busy(create.querySelector("button[type=submit]"), async () => {
      try {
        const made = await api("POST", "/api/admin/accounts", data);
        create.reset();
        showSecret(`Account “${made.username}” created for ${made.email}. Its password (shown once):`, made.password);
        load();
      } catch (err) { showError($("#create-account-error"), err.message); }
    });
  });
  load().catch((err) => toast(err.message, true));
}

const PAGES = { login: initLogin, register: initRegister, reset: initReset, jobs: initJobs, new: () => initNewDataset(), job: initJob, stats: initStats, settings: initSettings, admin: initAdmin };
initCommon();
if (PAGES[BOOT.page]) PAGES[BOOT.page]();
