/* The new-dataset page (author helper, issue 16): describe -> draft -> edit (visually or
 * as JSON) -> preview -> confirm, with
 * - the draft kept in this browser (localStorage, per user) across reloads and pages,
 *   until it is confirmed or the user starts over;
 * - a clone (/new?clone=<job id>) opening as a draft of that job's schema and settings;
 * - what changed after drafting never silently ignored: the records and the title are
 *   carried into the preview and the confirm; a changed description, instructions or
 *   mode asks to redraft or to keep the schema;
 * - "Redraft" sending the user's feedback with the schema it is about.
 * Loaded before app.js, which calls initNewDataset() with its helpers defined. */
"use strict";

const DRAFT_KEY = () => `datagems:new-draft:${(BOOT.user && BOOT.user.username) || ""}`;
const ASKS_REDRAFT = { description: "the description", instructions: "the instructions", datasetMode: "the dataset mode" };

function loadSavedDraft() {
  try { return JSON.parse(localStorage.getItem(DRAFT_KEY()) || "null"); } catch (err) { return null; }
}

function initNewDataset() {
  const form = $("#describe-form");
  const select = $("#inference-select");
  const textarea = $("#schema-editor");
  const errorList = $("#schema-errors");
  let draft = null;       // the last draft answer (draftToken, schema, meta)
  let drafted = null;     // the form's values the draft was made from
  let kept = null;        // the changed texts the user chose to keep the schema with
  let restoring = true;   // no saving while the page fills itself
  const editor = SchemaEditor($("#schema-visual"), textarea, { errorList, onChange: () => { showError($("#schema-error"), ""); save(); } });

  for (const counter of document.querySelectorAll(".counter")) {
    const field = form.elements.namedItem(counter.dataset.for);
    const update = () => { counter.textContent = `${field.value.length} / ${field.maxLength}`; };
    field.addEventListener("input", update);
    counter.update = update;
  }
  const counters = () => { for (const c of document.querySelectorAll(".counter")) if (c.update) c.update(); };

  function formValues() {
    const data = Object.fromEntries(new FormData(form));
    return {
      title: data.title || "", totalRecords: data.totalRecords || "", description: data.description || "",
      instructions: data.instructions || "", datasetMode: data.datasetMode || "", inference: data.inference || "",
    };
  }
  function fill(values) {
    for (const [key, value] of Object.entries(values || {})) {
      const field = form.elements.namedItem(key);
      if (field && value !== null && value !== undefined) field.value = String(value);
    }
    counters();
  }
  const steps = (current) => {
    for (const li of document.querySelectorAll("#steps li")) {
      const n = Number(li.dataset.step);
      li.classList.toggle("current", n === current);
      li.classList.toggle("done", n < current);
    }
  };

  /* ----- kept in this browser ----- */
  function save() {
    if (restoring) return;
    const saved = { form: formValues(), draft, drafted, kept, schemaText: draft ? textarea.value : null,
      feedback: $("#redraft-feedback").value, savedAt: Date.now() };
    try {
      localStorage.setItem(DRAFT_KEY(), JSON.stringify(saved));
      $("#draft-saved").textContent = draft ? "Draft kept in this browser" : "";
      $("#start-over-btn").hidden = false;
    } catch (err) { $("#draft-saved").textContent = "This browser cannot keep the draft (storage full or off)"; }
  }
  function forget() { try { localStorage.removeItem(DRAFT_KEY()); } catch (err) { /* nothing kept */ } }

  /* ----- the inference choice ----- */
  const profilesLoaded = api("GET", "/api/user/settings").then((settings) => {
    for (const profile of settings.profiles) {
      select.append(el("option", { value: profile.id, text: `${profile.name || profile.baseUrl}${profile.model ? " · " + profile.model : ""}` }));
    }
    if (settings.activeProfileId && !loadSavedDraft()) select.value = settings.activeProfileId;
  }).catch(() => {});

  function describeBody() {
    const data = formValues();
    const body = {
      title: data.title, totalRecords: Number(data.totalRecords), description: data.description,
      instructions: data.instructions, datasetMode: data.datasetMode || null,
    };
    if (data.inference) { body.useExternalApi = true; body.profileId = data.inference; }
    return body;
  }
  function inferenceBody() {
    const chosen = formValues().inference;
    return chosen ? { useExternalApi: true, profileId: chosen } : { useExternalApi: false };
  }

  /* ----- what changed since the draft ----- */
  function changes() {
    if (!drafted) return { carried: {}, asks: [] };
    const now = formValues();
    const carried = {}, asks = [];
    if (now.title !== drafted.title && now.title.trim()) carried.title = now.title.trim();
    if (String(now.totalRecords) !== String(drafted.totalRecords) && Number(now.totalRecords) > 0) carried.totalRecords = Number(now.totalRecords);
    for (const name of Object.keys(ASKS_REDRAFT)) {
      if (now[name] === drafted[name]) continue;
      if (kept && kept[name] === now[name]) carried[name] = name === "datasetMode" ? now[name] || false : now[name];
      else asks.push(name);
    }
    return { carried, asks };
  }
  function showChanges() {
    const box = $("#draft-changes");
    if (!draft) { box.hidden = true; return; }
    const { carried, asks } = changes();
    const notes = [];
    if (carried.totalRecords !== undefined) notes.push(`Records changed from ${num(drafted.totalRecords)} to ${num(carried.totalRecords)} since drafting: the job will have ${num(carried.totalRecords)}.`);
    if (carried.title !== undefined) notes.push(`The title changed since drafting: the job will be called “${carried.title}”.`);
    if (asks.length) notes.push(`You changed ${asks.map((n) => ASKS_REDRAFT[n]).join(" and ")} after the schema was drafted. Redraft with the new text, or keep this schema?`);
    $("#draft-changes-text").textContent = notes.join(" ");
    $("#draft-changes-actions").hidden = !asks.length;
    box.hidden = !notes.length;
    $("#confirm-btn").textContent = `Confirm · generate ${num(describeBody().totalRecords)} records`;
    $("#confirm-btn").disabled = asks.length > 0;
    $("#preview-btn").disabled = asks.length > 0;
    $("#confirm-btn").title = asks.length ? "Redraft, or keep this schema, first" : "";
  }

  /* ----- the schema step ----- */
  function renderDraft(schemaText) {
    if (schemaText) editor.setText(schemaText); else editor.set(draft.schema);
    const meta = [];
    if (draft.clonedFrom) meta.push("cloned from an earlier dataset");
    else if (draft.schemaDurationMs !== undefined) meta.push(`drafted in ${fmtDuration(draft.schemaDurationMs)}`);
    if (draft.failedAttempts) meta.push(`${draft.failedAttempts} failed attempt${draft.failedAttempts > 1 ? "s" : ""}`);
    if (draft.schemaRefreshes) meta.push(`redrafted ${draft.schemaRefreshes}×`);
    for (const refused of draft.refusedDrafts || []) meta.push(refused);
    for (const warning of draft.warnings || []) meta.push(`check: ${warning}`);
    $("#schema-meta").textContent = meta.join(" · ");
    $("#schema-step").hidden = false;
    showError($("#schema-error"), "");
    showChanges();
    document.dispatchEvent(new CustomEvent("datagems:draft", { detail: draft }));  // variables.js
  }

  async function requestDraft(button, previous) {
    showError($("#describe-error"), "");
    form.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
    const body = describeBody();
    if (previous) {
      body.previousDraftToken = previous;
      const feedback = $("#redraft-feedback").value.trim();
      if (feedback) body.feedback = feedback;
    }
    await busy(button, async () => {
      try {
        draft = await api("POST", "/api/tasks/schema", body);
        drafted = formValues(); kept = null;
        renderDraft(null); steps(2);
        $("#redraft-feedback").value = "";
        $("#preview-step").hidden = true;
        save();
        $("#schema-step").scrollIntoView({ behavior: "smooth", block: "start" });
      } catch (err) {
        const message = describeMessage(err.message);
        showError($("#describe-error"), message);
        if (previous) showError($("#schema-error"), message);
      }
    });
  }

  // "totalRecords must be at most 200" -> "Records must be at most 200" (the field's label
  // on the page), and the field is marked and focused
  function describeMessage(message) {
    const text = message || "";
    const field = Array.from(form.elements).find((node) => node.name && text.startsWith(`${node.name} `));
    if (!field) return text;
    field.setAttribute("aria-invalid", "true"); field.focus();
    const label = field.closest("label");
    const shown = label && label.firstChild ? label.firstChild.textContent.trim() : field.name;
    return shown + text.slice(field.name.length);
  }

  // the schema as edited, or null with its mistakes shown (once, in the one list)
  function editedSchema() {
    const state = editor.check();
    if (state.syntax || state.messages.length) { errorList.scrollIntoView({ block: "nearest" }); return null; }
    return state.schema;
  }

  // a refusal of the server: its field errors in the list, else its message; never both
  function showServerError(err) {
    if (err.errors && err.errors.length) {
      editor.show(err.errors.map((item) => item.message || item.path));
      showError($("#schema-error"), "");
    } else {
      showError($("#schema-error"), err.message === "Invalid or expired draft"
        ? "This draft has expired (drafts last 30 minutes) or was already used: redraft it." : err.message);
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); requestDraft($("#draft-btn"), null); });
  form.addEventListener("input", () => { showChanges(); save(); });
  form.addEventListener("change", () => { showChanges(); save(); });
  $("#redraft-btn").addEventListener("click", () => requestDraft($("#redraft-btn"), draft && draft.draftToken));
  $("#changes-redraft-btn").addEventListener("click", () => requestDraft($("#changes-redraft-btn"), draft && draft.draftToken));
  $("#changes-keep-btn").addEventListener("click", () => {
    const now = formValues();
    kept = { description: now.description, instructions: now.instructions, datasetMode: now.datasetMode };
    showChanges(); save();
  });
  $("#redraft-feedback").addEventListener("input", save);
  $("#start-over-btn").addEventListener("click", () => {
    if (draft && !confirm("Forget this draft and start over?")) return;
    forget();
    location.href = "/new";
  });

  // the per-record variables and seed file of variables.js (vars helper, issue 17)
  const conditioned = () => (window.DatagemsVariables ? window.DatagemsVariables.confirmFields() : {});

  function confirmBody(schema) {
    const { carried } = changes();
    return { draftToken: draft.draftToken, schema, ...carried, ...inferenceBody(), ...conditioned() };
  }

  $("#preview-btn").addEventListener("click", async (event) => {
    const schema = editedSchema(); if (!schema || !draft) return;
    showError($("#schema-error"), "");
    await busy(event.currentTarget, async () => {
      try {
        const { carried } = changes();
        const answer = await api("POST", "/api/tasks/preview", { draftToken: draft.draftToken, schema, ...carried, ...conditioned() });
        const box = clear($("#preview-records"));
        for (const record of answer.records) {
          box.append(el("div", { class: "preview" },
            el("div", { class: "card-head" }, el("strong", { text: `Sample ${record.i + 1}` }),
              el("span", { class: "state state-" + (record.ok ? "ok" : "failed"), text: record.ok ? "valid" : (record.reason || "failed") })),
            record.error ? el("p", { class: "small form-error", text: record.error }) : null,
            record.vars ? el("p", { class: "small muted preview-vars", text: "given: " + Object.entries(record.vars).map(([k, v]) => `${k} = ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ") }) : null,
            record.data !== undefined ? el("pre", { class: "code", text: JSON.stringify(record.data, null, 2) }) : null));
        }
        $("#preview-meta").textContent = `made in ${fmtDuration(answer.durationMs)}`;
        $("#preview-step").hidden = false; steps(3);
        $("#preview-step").scrollIntoView({ behavior: "smooth", block: "start" });
      } catch (err) { showServerError(err); }
    });
  });

  $("#confirm-btn").addEventListener("click", async (event) => {
    const schema = editedSchema(); if (!schema || !draft) return;
    showError($("#schema-error"), "");
    await busy(event.currentTarget, async () => {
      try {
        steps(4);
        const answer = await api("POST", "/api/tasks/confirm", confirmBody(schema));
        forget();
        location.href = "/jobs/" + encodeURIComponent(answer.jobId);
      } catch (err) { showServerError(err); steps(3); }
    });
  });

  /* ----- where the page starts: a kept draft, a clone, or the preset ----- */
  async function start() {
    const params = new URLSearchParams(location.search);
    const cloneOf = params.get("clone");
    const saved = loadSavedDraft();
    await profilesLoaded;
    if (cloneOf && (!saved || !saved.draft || confirm("Replace the draft kept in this browser with a copy of that dataset?"))) {
      try {
        const answer = await api("POST", `/api/tasks/${encodeURIComponent(cloneOf)}/clone`);
        fill({ title: answer.title, totalRecords: answer.totalRecords, description: answer.description,
          instructions: answer.instructions, datasetMode: answer.datasetMode ? "classification" : "",
          inference: answer.profileId || "" });
        draft = answer; drafted = formValues(); kept = null;
        renderDraft(null); steps(2);
        history.replaceState(null, "", "/new");
        restoring = false; save();
        toast("A copy of the dataset's schema and settings: change what you like, then confirm.");
        return;
      } catch (err) { showError($("#describe-error"), `Cannot clone that dataset: ${err.message}`); }
    }
    if (saved) {
      fill(saved.form);
      draft = saved.draft; drafted = saved.drafted; kept = saved.kept;
      $("#redraft-feedback").value = saved.feedback || "";
      if (saved.feedback) $("#redraft-box").open = true;
      if (draft) { renderDraft(saved.schemaText); steps(2); $("#draft-saved").textContent = "Draft restored from this browser"; }
      $("#start-over-btn").hidden = false;
    } else {
      fill(BOOT.preset || {});
    }
    restoring = false;
  }
  start();
}
