/* Per-record variables and seed data (datagems.quality), beside the schema editor.
 * New dataset: the draft's proposed variables, to accept, edit or remove, a seed file to
 * upload; confirm sends them (window.DatagemsVariables.confirmFields()).
 * Job page: the job's variables and the values each record was given.
 * Runs after app.js (its helpers el, $, clear, api, BOOT), at DOMContentLoaded. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (BOOT.page === "new") initVariablesEditor();
  if (BOOT.page === "job") initVariablesView();
});

const VARIABLE_KINDS = ["category", "number", "date", "person", "subset"];
const PERSON_ATTRIBUTES = ["name", "first_name", "last_name", "city", "country", "email", "phone", "job", "company", "address", "postcode", "age"];

function listOf(text) {
  return String(text || "").split(",").map((part) => part.trim()).filter((part) => part !== "");
}

function scalarOf(text) {  // "3" -> 3, "true" -> true, else the text
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}

function describeVariable(v) {
  switch (v.kind) {
    case "category": return (v.values || []).map((value, n) => v.weights ? `${value} (${v.weights[n]})` : value).join(", ");
    case "number": return `${v.min} – ${v.max}${v.distribution === "normal" ? ", normal" : ""}${v.integer ? ", integer" : ""}`;
    case "date": return `${v.start} – ${v.end}`;
    case "person": return `${(v.attributes || ["name"]).join(", ")} (${v.locale || "en_US"})`;
    case "subset": return `${v.min_size ?? 1}–${v.max_size ?? (v.values || []).length} of ${(v.values || []).join(", ")}`;
    default: return "";
  }
}

function shownValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return Array.isArray(value) ? value.join(", ") : Object.values(value).join(", ");
  return String(value);
}

/* ---------- new dataset: the editor ---------- */
function initVariablesEditor() {
  const host = $("#variables-editor");
  if (!host) return;
  let rows = [];       // [{name, kind, ...params}] as edited
  let seed = null;     // the uploaded seed file's answer {cid, rows, columns, filename}

  function field(label, input) { return el("label", { class: "var-field" }, label, input); }

  function input(row, key, attrs, read, write) {
    const node = el("input", { ...attrs, "data-key": key });
    node.value = write ? write(row[key]) : (row[key] ?? "");
    node.addEventListener("input", () => { row[key] = read ? read(node.value) : node.value; });
    return node;
  }

  function numberInput(row, key, label) {
    return field(label, input(row, key, { type: "number", step: "any", class: "var-num" },
      (text) => text === "" ? undefined : Number(text)));
  }

  function params(row) {
    switch (row.kind) {
      case "category":
        return [
          field("Values", input(row, "values", { placeholder: "Lisbon, Osaka, Nairobi", class: "var-list" }, (t) => listOf(t).map(scalarOf), (v) => (v || []).join(", "))),
          field("Weights", input(row, "weights", { placeholder: "optional: 50, 30, 20", class: "var-list" },
            (t) => listOf(t).length ? listOf(t).map(Number) : undefined, (v) => (v || []).join(", "))),
        ];
      case "number": {
        const dist = el("select", { "data-key": "distribution" }, el("option", { value: "uniform", text: "uniform" }), el("option", { value: "normal", text: "normal" }));
        dist.value = row.distribution || "uniform";
        dist.addEventListener("change", () => { row.distribution = dist.value; });
        const integer = el("input", { type: "checkbox", "data-key": "integer" });
        integer.checked = !!row.integer;
        integer.addEventListener("change", () => { row.integer = integer.checked; });
        return [numberInput(row, "min", "Min"), numberInput(row, "max", "Max"), field("Distribution", dist), field("Whole numbers", integer)];
      }
      case "date":
        return [field("From", input(row, "start", { type: "date" })), field("To", input(row, "end", { type: "date" }))];
      case "person":
        return [
          field("Attributes", input(row, "attributes", { placeholder: PERSON_ATTRIBUTES.slice(0, 4).join(", "), class: "var-list" }, listOf, (v) => (v || ["name"]).join(", "))),
          field("Locale", input(row, "locale", { placeholder: "en_US", class: "var-num" }, (t) => t.trim() || undefined)),
        ];
      case "subset":
        return [
          field("Values", input(row, "values", { placeholder: "wifi, parking, pool", class: "var-list" }, (t) => listOf(t).map(scalarOf), (v) => (v || []).join(", "))),
          numberInput(row, "min_size", "At least"), numberInput(row, "max_size", "At most"),
        ];
      default: return [];
    }
  }

  function render() {
    clear(host);
    rows.forEach((row, n) => {
      const kind = el("select", { "data-key": "kind", "aria-label": "Kind" }, VARIABLE_KINDS.map((k) => el("option", { value: k, text: k })));
      kind.value = row.kind;
      kind.addEventListener("change", () => { rows[n] = { name: row.name, kind: kind.value }; render(); });
      host.append(el("li", { class: "var-row", "data-name": row.name || "" },
        field("Name", input(row, "name", { placeholder: "city", class: "var-name", maxlength: "40" })),
        field("Kind", kind),
        ...params(row),
        el("button", { type: "button", class: "btn btn-sm var-remove", text: "Remove", onclick: () => { rows.splice(n, 1); render(); } })));
    });
    $("#variables-empty").hidden = rows.length > 0;
  }

  document.addEventListener("datagems:draft", (event) => {
    rows = ((event.detail && event.detail.variables) || []).map((v) => ({ ...v }));
    render();
  });
  $("#variable-add").addEventListener("click", () => { rows.push({ name: "", kind: "category" }); render(); });

  const file = $("#seed-file");
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    seed = null;
    showError($("#seed-error"), "");
    $("#seed-meta").textContent = "";
    if (!chosen) return;
    try {
      const response = await fetch(`/api/seeds?filename=${encodeURIComponent(chosen.name)}`, {
        method: "POST", credentials: "same-origin", body: chosen,
        headers: { Accept: "application/json", "Content-Type": "application/octet-stream" },
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(answer.error || `upload failed (${response.status})`);
      seed = answer;
      $("#seed-meta").textContent = `${answer.rows} rows · ${answer.columns.join(", ")}`;
    } catch (err) { showError($("#seed-error"), `${chosen.name}: ${err.message}`); }
  });

  function clean(row) {
    const out = {};
    for (const [key, value] of Object.entries(row)) if (value !== undefined && value !== "") out[key] = value;
    return out;
  }

  window.DatagemsVariables = {
    confirmFields() {
      const fields = {};
      if (rows.length) fields.variables = rows.map(clean);
      if (seed) fields.seedData = { cid: seed.cid, token: seed.token, mode: $("#seed-mode").value };
      return fields;
    },
  };
}

/* ---------- one job: the values per record ---------- */
function initVariablesView() {
  const base = "/api/tasks/" + encodeURIComponent(BOOT.jobId);
  const card = $("#variables-card");
  if (!card) return;
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);
  const PAGE = 100;

  async function load() {
    const view = await api("GET", base);
    const details = view.details || {};
    const declared = details.variables || [];
    if (!declared.length && !details.seedData) return;  // nothing of ours: the card stays hidden
    card.hidden = false;
    const list = clear($("#variables-declared"));
    for (const v of declared) list.append(el("li", {}, el("strong", { text: v.name }), ` · ${v.kind} · ${describeVariable(v)}`));
    if (details.seedData) list.append(el("li", {}, el("strong", { text: "seed file" }), ` · ${details.seedData.rows} rows, ${details.seedData.mode.replace(/_/g, " ")}`));
    const page = await api("GET", `${base}/records?offset=0&limit=${PAGE}`);
    const head = el("tr", {}, el("th", { text: "#" }), declared.map((v) => el("th", { text: v.name })), details.seedData ? el("th", { text: "seed row" }) : null);
    const body = el("tbody");
    for (const record of page.records || []) {
      if (!record.vars && record.seedRow === undefined) continue;
      body.append(el("tr", { "data-index": record.i },
        el("td", { class: "num", text: record.i + 1 }),  // as the records view numbers them
        declared.map((v) => el("td", { "data-var": v.name, text: shownValue((record.vars || {})[v.name]) })),
        details.seedData ? el("td", { class: "num", text: record.seedRow ?? "" }) : null));
    }
    clear($("#variables-records")).append(el("thead", {}, head), body);
    $("#variables-note").textContent = body.children.length
      ? `the values given to the first ${body.children.length} finished records`
      : "values appear here as records finish";
    if (!FINAL.has(view.job.status)) setTimeout(() => load().catch(() => {}), 3000);
  }
  load().catch(() => {});
}
