/* A dataset's life after its job (author helper, issue 16): download, clone and delete
 * from a card of the list or from the job page; the list's sort. Loaded before app.js;
 * uses its helpers (el, api, toast, busy) only when called. */
"use strict";

const LIFECYCLE_FORMATS = ["json", "jsonl", "csv"];

function datasetFileName(job, fmt) {
  const base = String(job.title || job.id).normalize("NFKD").replace(/[^\w.-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 80);
  return `${base || job.id}.${fmt}`;
}

function canDelete(job) { return job.status === "succeeded" || job.status === "failed" || job.status === "cancelled"; }

async function deleteDataset(job, button) {
  if (!canDelete(job)) { toast("Cancel the job first; delete it once it has stopped.", true); return false; }
  if (!confirm(`Delete “${job.title || job.id}” with its records? Its files are removed and it cannot be undone.`)) return false;
  let done = false;
  await busy(button, async () => {
    try {
      await api("DELETE", `/api/tasks/${encodeURIComponent(job.id)}`);
      toast(`Deleted “${job.title || job.id}”.`);
      done = true;
    } catch (err) { toast(err.message, true); }
  });
  return done;
}

function cloneHref(job) { return `/new?clone=${encodeURIComponent(job.id)}`; }

// the actions row of a card: downloads (when there is something to download), clone, delete
function cardActions(job, onDeleted) {
  const row = el("div", { class: "card-actions" });
  const ok = job.totalOk || 0;
  if (ok > 0 && canDelete(job)) {
    const partial = job.status === "cancelled" ? "&partial=true" : "";
    row.append(el("span", { class: "small muted", text: "Download" }));
    for (const fmt of LIFECYCLE_FORMATS) {
      row.append(el("a", { class: "btn btn-sm dl-" + fmt, href: `/api/tasks/${encodeURIComponent(job.id)}/export?format=${fmt}${partial}`,
        download: datasetFileName(job, fmt), text: fmt.toUpperCase(), "aria-label": `Download ${job.title || job.id} as ${fmt.toUpperCase()}` }));
    }
  }
  row.append(el("a", { class: "btn btn-sm card-clone", href: cloneHref(job), text: "Clone", title: "Run again with this schema and settings",
    "aria-label": `Clone ${job.title || job.id}` }));
  if (canDelete(job)) {
    const remove = el("button", { type: "button", class: "btn btn-sm btn-danger card-delete", text: "Delete", "aria-label": `Delete ${job.title || job.id}` });
    remove.addEventListener("click", async () => { if (await deleteDataset(job, remove) && onDeleted) onDeleted(job); });
    row.append(remove);
  }
  return row;
}

// the job page's actions: clone always, delete once the job has stopped
function jobPageActions(view) {
  const job = view.job;
  const clone = document.getElementById("clone-btn");
  const remove = document.getElementById("delete-btn");
  if (clone) clone.href = cloneHref(job);
  if (remove) {
    remove.hidden = !canDelete(job);
    remove.onclick = async () => { if (await deleteDataset(job, remove)) location.href = "/"; };
  }
  const crumb = document.getElementById("job-id-label");
  if (crumb) { crumb.textContent = job.title || job.id; crumb.title = job.id; crumb.classList.remove("mono"); }
  const mock = document.getElementById("mock-note");
  const details = view.details || {};
  if (mock) mock.hidden = !(details.meta && details.meta.builtinMock);
}
