/* DataGems: the job page's quality report (issue 17). Plain JS, no network but our API:
 * charts are inline SVG built here. User data only ever goes in with textContent. */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const POLL_MS = 4000;
  const TERMINAL = ["succeeded", "failed", "cancelled"];

  function node(tag, attrs, ...children) {
    const made = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") made.className = value;
      else if (key === "text") made.textContent = String(value);
      else made.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      made.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return made;
  }
  function svg(tag, attrs, text) {
    const made = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) made.setAttribute(key, String(value));
    if (text !== undefined) made.textContent = String(text);
    return made;
  }
  function empty(target) { while (target.firstChild) target.removeChild(target.firstChild); return target; }
  function pct(share) { return `${(100 * (share || 0)).toFixed(1)}%`; }
  function short(value) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > 28 ? text.slice(0, 27) + "…" : text;
  }
  function fmt(value) {
    if (typeof value !== "number") return String(value);
    return Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+$/, "");
  }

  /* A bar chart: rows [{label, values: [number...], title}], one colour per series. */
  function barChart(rows, series, label) {
    const width = 320, barRow = 18, pad = 110, height = Math.max(1, rows.length) * barRow + 6;
    const max = Math.max(1e-9, ...rows.flatMap((r) => r.values));
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label });
    chart.append(svg("title", {}, label));
    rows.forEach((row, y) => {
      const top = y * barRow + 3;
      chart.append(svg("text", { x: pad - 6, y: top + 11, "text-anchor": "end", class: "chart-label" }, short(row.label)));
      const each = (barRow - 4) / row.values.length;
      row.values.forEach((value, k) => {
        const w = Math.max(value > 0 ? 1 : 0, ((width - pad - 40) * value) / max);
        const bar = svg("rect", { x: pad, y: top + k * each, width: w, height: Math.max(2, each - 1), class: `bar bar-${series[k]}` });
        bar.append(svg("title", {}, `${row.label}: ${row.titles ? row.titles[k] : fmt(value)}`));
        chart.append(bar);
      });
      chart.append(svg("text", { x: width - 36, y: top + 11, class: "chart-value" }, row.note || fmt(row.values[0])));
    });
    return chart;
  }

  function histRows(bins, day) {
    return bins.map((b) => ({
      label: day ? b.from : (b.hi - b.lo === 1 || b.lo === b.hi ? fmt(b.lo) : `${fmt(b.lo)}–${fmt(b.hi)}`),
      values: [b.count], note: String(b.count),
    }));
  }

  function fieldCard(field) {
    const card = node("figure", { class: "quality-chart", "data-field": field.name });
    const facts = [`${field.present} present`, `missing ${pct(field.missingRate)}`, `empty ${pct(field.emptyRate)}`,
      `${field.distinct}${field.distinctEstimated ? "≈" : ""} distinct`];
    card.append(node("figcaption", {}, node("strong", { text: field.name }), " ",
      node("span", { class: "muted small", text: `${field.kind} · ${facts.join(" · ")}` })));
    if (field.histogram && field.histogram.length) {
      card.append(barChart(histRows(field.histogram, field.kind === "date"), ["ok"], `${field.name}: histogram`));
    } else if (field.top && field.top.length && !field.text) {
      card.append(barChart(field.top.map((t) => ({ label: t.value, values: [t.share], note: pct(t.share) })), ["ok"],
        `${field.name}: top values`));
    } else if (field.length && field.length.histogram.length) {
      card.append(node("p", { class: "small muted", text: `length in characters (mean ${fmt(field.length.mean)})` }));
      card.append(barChart(histRows(field.length.histogram), ["ok"], `${field.name}: length`));
    }
    return card;
  }

  function variableCard(variable) {
    const card = node("figure", { class: "quality-chart", "data-variable": variable.name });
    const caption = `${variable.kind}` + (variable.maxDeviation !== undefined ? ` · largest gap ${pct(variable.maxDeviation)}` : "");
    card.append(node("figcaption", {}, node("strong", { text: variable.name }), " ",
      node("span", { class: "muted small", text: caption })));
    let rows = [];
    if (variable.values) rows = variable.values.map((v) => ({ label: v.value, values: [v.requested, v.observed],
      titles: [`requested ${pct(v.requested)}`, `observed ${pct(v.observed)}`], note: pct(v.observed) }));
    else if (variable.bins) rows = variable.bins.map((b) => ({ label: b.label, values: [b.requested, b.observed],
      titles: [`requested ${pct(b.requested)}`, `observed ${pct(b.observed)}`], note: pct(b.observed) }));
    if (rows.length) {
      card.append(barChart(rows, ["requested", "observed"], `${variable.name}: requested and observed`));
      card.append(node("p", { class: "small legend" }, node("span", { class: "key key-requested" }), "requested ",
        node("span", { class: "key key-observed" }, ""), "observed"));
    } else if (variable.attributes) {
      for (const [name, seen] of Object.entries(variable.attributes)) {
        if (seen.histogram) card.append(barChart(histRows(seen.histogram), ["ok"], `${variable.name}.${name}`));
        else card.append(node("p", { class: "small", text: `${name}: ${seen.distinct} distinct` }));
      }
    }
    return card;
  }

  function start() {
    const boot = JSON.parse(document.getElementById("boot").textContent || "{}");
    if (!boot.jobId) return;
    const base = "/api/tasks/" + encodeURIComponent(boot.jobId);
    const $ = (id) => document.getElementById(id);
    $("report-download").href = `${base}/report?download=true`;
    let timer = null, latest = null, keepUntil = 0;

    function stat(name, value) { return node("div", {}, node("dt", { text: name }), node("dd", { text: value })); }

    function render(report) {
      latest = report;
      const r = report.records;
      $("report-basis").textContent = report.partial
        ? `Live: ${r.ok + r.failed} of ${r.total} records so far (slices uploaded and the latest records); updated ${new Date(report.generatedAt).toLocaleTimeString()}.`
        : `${r.ok} ok, ${r.failed} failed of ${r.total} records, merged from ${report.basis.slices} slice(s).`;
      const usage = report.usage || {};
      const summary = empty($("report-summary"));
      summary.append(stat("Near-duplicates", `${report.nearDuplicates.duplicates} (${pct(report.nearDuplicates.rate)})`));
      summary.append(stat("Tokens in / out", `${usage.tokensIn || 0} / ${usage.tokensOut || 0}`));
      if (usage.cost) summary.append(stat("Cost", usage.cost.total.toFixed(4)));
      summary.append(stat("Failed", String(r.failed)));

      const near = report.nearDuplicates;
      $("report-neardup").hidden = false;
      $("neardup-text").textContent = near.pairCount
        ? `${near.pairCount} pair(s) at similarity ≥ ${near.threshold}: ${near.duplicates} record(s) repeat an earlier one.`
        : `No near-duplicates at similarity ≥ ${near.threshold} among ${near.records} records with text.`;
      const pairs = $("neardup-pairs");
      const body = empty(pairs.querySelector("tbody"));
      for (const pair of near.pairs.slice(0, 20)) {
        body.append(node("tr", {}, node("td", { class: "mono", text: `#${pair.b}` }),
          node("td", { class: "mono", text: `#${pair.a}` }), node("td", { text: pair.similarity.toFixed(2) })));
      }
      pairs.hidden = near.pairs.length === 0;
      const finished = TERMINAL.includes(report.status) && report.status !== "cancelled";
      const done = report.resamples && report.resamples.records ? ` ${report.resamples.records} resampled so far (each record once).` : "";
      $("resample-btn").disabled = !finished || near.duplicates === 0;
      $("resample-btn").textContent = `Resample near-duplicates (up to ${report.resampleBudget})`;
      $("resample-note").textContent = (finished ? "" : "Once the job has finished.") + done;

      const fields = empty($("report-fields"));
      for (const field of report.fields) fields.append(fieldCard(field));
      const variables = empty($("report-variables"));
      for (const variable of report.variables || []) variables.append(variableCard(variable));
      $("report-variables-wrap").hidden = !(report.variables || []).length;
      const reasons = Object.entries(report.failures.reasons || {});
      $("report-failures-wrap").hidden = reasons.length === 0;
      const failures = empty($("report-failures"));
      if (reasons.length) {
        failures.append(barChart(reasons.map(([reason, count]) => ({ label: reason, values: [count], note: String(count) })),
          ["failed"], "failure reasons"));
      }
    }

    async function load() {
      clearTimeout(timer);
      try {
        const response = await fetch(`${base}/report`, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) render(await response.json());
        else $("report-basis").textContent = `The report is not available (${response.status}).`;
      } catch (err) {
        $("report-basis").textContent = "The report could not be loaded; trying again.";
      }
      if (!latest || !TERMINAL.includes(latest.status) || Date.now() < keepUntil) timer = setTimeout(load, POLL_MS);
    }

    $("resample-btn").addEventListener("click", async (event) => {
      const button = event.currentTarget;
      const error = $("resample-error");
      error.hidden = true;
      button.disabled = true;
      try {
        const response = await fetch(`${base}/resample-near-duplicates`, {
          method: "POST", credentials: "same-origin",
          headers: { Accept: "application/json", "Content-Type": "application/json" }, body: "{}",
        });
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(answer.error || `Request failed (${response.status})`);
        $("resample-note").textContent = `${answer.records} record(s) are being generated again.`;
        keepUntil = Date.now() + 60000;
        timer = setTimeout(load, 1000);
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        button.disabled = false;
      }
    });
    load();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
