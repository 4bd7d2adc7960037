/* Visual schema editor (author helper, issue 16): the record's fields as rows (add,
 * remove, rename, reorder; type, required, enum, bounds, pattern, format; nested objects
 * and arrays), kept in sync with the JSON Schema textarea both ways, with JSON syntax
 * errors at their line and column and schema mistakes in plain words, each said once.
 * Loaded before app.js; uses its helpers (el, clear) only when called.
 * Rule as app.js: user data is only ever inserted as text or as an input's value. */
"use strict";

const SE_TYPES = ["string", "integer", "number", "boolean", "object", "array"];
const SE_FORMATS = ["", "email", "date", "date-time", "time", "uri", "uuid", "hostname", "ipv4", "ipv6"];
const SE_TYPE_WORDS = "string, integer, number, boolean, object, array";
// the keywords each type keeps when the type changes (the others are removed)
const SE_KEEP = {
  string: ["minLength", "maxLength", "pattern", "format", "enum"],
  integer: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "enum"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "enum"],
  boolean: [],
  object: ["properties", "required", "additionalProperties"],
  array: ["items", "minItems", "maxItems", "uniqueItems"],
};
const SE_TYPED = ["minLength", "maxLength", "pattern", "format", "enum", "minimum", "maximum",
  "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "properties", "required",
  "additionalProperties", "items", "minItems", "maxItems", "uniqueItems"];
const SE_BOUNDS = {
  string: [["minLength", "Min length"], ["maxLength", "Max length"]],
  integer: [["minimum", "Minimum"], ["maximum", "Maximum"]],
  number: [["minimum", "Minimum"], ["maximum", "Maximum"]],
  array: [["minItems", "Min items"], ["maxItems", "Max items"]],
};

/* ---------- JSON text: where the first syntax error is ---------- */

// A strict JSON reader that only looks for the first mistake (JSON.parse's messages
// differ by browser and seldom say the line): {line, column, message} or null.
function jsonProblem(text) {
  let i = 0;
  const fail = (message, at) => { throw { at: at === undefined ? i : at, message }; };
  const space = () => { while (i < text.length && " \t\n\r".includes(text[i])) i++; };
  const word = (w, value) => { if (text.startsWith(w, i)) { i += w.length; return value; } fail(`expected ${w} (strings take double quotes)`); };
  const shown = (at) => (at >= text.length ? "end of text" : `'${text[at]}'`);
  function string() {
    const start = i; i++;
    let out = "";
    while (i < text.length && text[i] !== '"') {
      const c = text[i];
      if (c === "\n") fail("a string runs past the end of its line (a closing \" is missing)", start);
      if (c === "\\") {
        const next = text[i + 1];
        if (next === "u") { if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("a \\u escape needs 4 hex digits"); i += 6; out += "?"; continue; }
        if (!'"\\/bfnrt'.includes(next)) fail(`'\\${next || ""}' is not a JSON escape`);
        i += 2; out += next; continue;
      }
      if (c < " ") fail("a control character inside a string (escape it)");
      out += c; i++;
    }
    if (i >= text.length) fail("a string is never closed (a \" is missing)", start);
    i++;
    return out;
  }
  function number() {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail(`unexpected ${shown(i)}`);
    i += m[0].length;
  }
  function value() {
    space();
    const c = text[i];
    if (c === "{") return object();
    if (c === "[") return array();
    if (c === '"') return string();
    if (c === "t") return word("true", true);
    if (c === "f") return word("false", false);
    if (c === "n") return word("null", null);
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    if (c === "'") fail("JSON strings take double quotes (\"), not single ones");
    if (c === undefined) fail("the text ends where a value was expected");
    fail(`unexpected ${shown(i)} where a value was expected`);
  }
  function object() {
    i++; space();
    const seen = new Set();
    if (text[i] === "}") { i++; return; }
    for (;;) {
      space();
      if (text[i] === "}") fail("a comma before '}' (remove the last comma)");
      if (text[i] !== '"') fail(`expected a field name in double quotes, found ${shown(i)}`);
      const at = i;
      const name = string();
      if (seen.has(name)) fail(`the name "${name}" appears twice in one object`, at);
      seen.add(name);
      space();
      if (text[i] !== ":") fail(`expected ':' after "${name}", found ${shown(i)}`);
      i++;
      value(); space();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "}") { i++; return; }
      fail(`expected ',' or '}' after the value of "${name}", found ${shown(i)}`);
    }
  }
  function array() {
    i++; space();
    if (text[i] === "]") { i++; return; }
    for (;;) {
      space();
      if (text[i] === "]") fail("a comma before ']' (remove the last comma)");
      value(); space();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "]") { i++; return; }
      fail(`expected ',' or ']' in a list, found ${shown(i)}`);
    }
  }
  try {
    value(); space();
    if (i < text.length) fail(`unexpected ${shown(i)} after the end of the schema`);
    return null;
  } catch (err) {
    if (!err || err.at === undefined) throw err;
    const before = text.slice(0, err.at).split("\n");
    return { line: before.length, column: before[before.length - 1].length + 1, message: err.message };
  }
}

/* ---------- schema mistakes, in plain words ---------- */

function seWhere(path) { return path.length ? "field " + path.join(".") : "the schema"; }

function schemaProblems(schema) {
  const found = [];
  if (!schema || typeof schema !== "object" || Array.isArray(schema)) return ["the schema must be a JSON object ({...})"];
  if (schema.type !== "object") found.push('the schema: the root must be "type": "object"');
  const isNum = (v) => typeof v === "number";
  function walk(node, path) {
    if (!node || typeof node !== "object" || Array.isArray(node)) {
      found.push(`${seWhere(path)}: must be a JSON object describing the field`);
      return;
    }
    const who = seWhere(path);
    const types = Array.isArray(node.type) ? node.type : node.type === undefined ? [] : [node.type];
    for (const t of types) {
      if (!SE_TYPES.includes(t) && t !== "null") found.push(`${who}: type '${t}' is not a JSON type (${SE_TYPE_WORDS})`);
    }
    if (node.enum !== undefined && (!Array.isArray(node.enum) || !node.enum.length)) found.push(`${who}: enum lists no value (list at least one, or remove it)`);
    for (const [low, high] of [["minimum", "maximum"], ["minLength", "maxLength"], ["minItems", "maxItems"]]) {
      for (const key of [low, high]) if (node[key] !== undefined && !isNum(node[key])) found.push(`${who}: ${key} must be a number, not ${JSON.stringify(node[key])}`);
      if (isNum(node[low]) && isNum(node[high]) && node[low] > node[high]) found.push(`${who}: ${low} ${node[low]} is above ${high} ${node[high]}`);
    }
    if (node.pattern !== undefined) {
      try { new RegExp(node.pattern, "u"); } catch (err) { found.push(`${who}: pattern is not a valid regular expression`); }
    }
    const props = node.properties;
    if (props !== undefined && (typeof props !== "object" || Array.isArray(props) || props === null)) found.push(`${who}: properties must be an object of fields`);
    else if (props) {
      if (Array.isArray(node.required)) {
        for (const name of node.required) if (!(name in props) && node.additionalProperties === false) found.push(`${who}: required lists "${name}", which is not a field`);
      }
      for (const [name, sub] of Object.entries(props)) walk(sub, [...path, name]);
    }
    if (node.items && typeof node.items === "object" && !Array.isArray(node.items)) {
      walk(node.items, [...path.slice(0, -1), (path[path.length - 1] || "items") + "[]"]);
    }
  }
  walk(schema, []);
  return found;
}

/* ---------- the editor ---------- */

function SchemaEditor(root, textarea, options) {
  const opts = options || {};
  let schema = null;           // the model, as last parsed or edited
  const open = new Set();      // paths whose details are shown
  const errorList = opts.errorList;
  let typing = null;

  function write() {
    textarea.value = JSON.stringify(schema, null, 2);
    check();
    if (opts.onChange) opts.onChange(textarea.value);
  }

  // what the textarea holds: {schema} or {syntax} (JSON not readable)
  function read() {
    const problem = jsonProblem(textarea.value);
    if (problem) return { syntax: problem };
    try { return { schema: JSON.parse(textarea.value) }; }
    catch (err) { return { syntax: { line: 1, column: 1, message: err.message } }; }
  }

  // the mistakes of the text now: shown in the one list, replaced at every change
  function check() {
    const state = read();
    const messages = state.syntax
      ? [`JSON syntax error at line ${state.syntax.line}, column ${state.syntax.column}: ${state.syntax.message}`]
      : schemaProblems(state.schema);
    show(messages);
    return { ...state, messages };
  }

  let shown = "";
  function show(messages) {
    if (!errorList) return;
    const key = JSON.stringify(messages);
    if (key === shown) return;  // the same mistakes: not announced again
    shown = key;
    clear(errorList);
    for (const text of messages) errorList.append(el("li", { text }));
    errorList.hidden = messages.length === 0;
  }

  function fromText() {
    const state = check();
    root.classList.toggle("se-stale", !!state.syntax);
    if (state.syntax) return;
    schema = state.schema;
    render();
    if (opts.onChange) opts.onChange(textarea.value);
  }

  textarea.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(fromText, 200); });

  // Tab indents (Shift+Tab: back); Esc, then Tab, leaves the field (no keyboard trap)
  let leaving = false;
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { leaving = true; return; }
    if (event.key !== "Tab" || leaving || event.ctrlKey || event.altKey || event.metaKey) { if (event.key !== "Shift") leaving = false; return; }
    event.preventDefault();
    const { selectionStart: start, selectionEnd: end, value } = textarea;
    const lineStart = value.lastIndexOf("\n", start - 1) + 1;
    if (!event.shiftKey && start === end) {
      textarea.setRangeText("  ", start, end, "end");
    } else {
      const block = value.slice(lineStart, end);
      const changed = event.shiftKey ? block.replace(/^ {1,2}/gm, "") : block.replace(/^/gm, "  ");
      textarea.setRangeText(changed, lineStart, end, "select");
      if (start === end) textarea.setSelectionRange(Math.max(lineStart, start + (changed.length - block.length)), Math.max(lineStart, start + (changed.length - block.length)));
    }
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  });
  textarea.addEventListener("blur", () => { leaving = false; });

  /* ----- operations on an object node (one that has "properties") ----- */
  function names(node) { return Object.keys(node.properties || {}); }
  function rebuild(node, entries) { node.properties = Object.fromEntries(entries); }
  function isRequired(node, name) { return Array.isArray(node.required) && node.required.includes(name); }
  function setRequired(node, name, on) {
    const list = (Array.isArray(node.required) ? node.required : []).filter((n) => n !== name);
    if (on) { const order = names(node); list.push(name); list.sort((a, b) => order.indexOf(a) - order.indexOf(b)); }
    node.required = list;
  }
  function rename(node, from, to) {
    rebuild(node, Object.entries(node.properties).map(([n, sub]) => [n === from ? to : n, sub]));
    if (Array.isArray(node.required)) node.required = node.required.map((n) => (n === from ? to : n));
  }
  function move(node, name, delta) {
    const entries = Object.entries(node.properties);
    const at = entries.findIndex(([n]) => n === name);
    const to = at + delta;
    if (at < 0 || to < 0 || to >= entries.length) return false;
    const [item] = entries.splice(at, 1);
    entries.splice(to, 0, item);
    rebuild(node, entries);
    return true;
  }
  function remove(node, name) {
    rebuild(node, Object.entries(node.properties).filter(([n]) => n !== name));
    if (Array.isArray(node.required)) node.required = node.required.filter((n) => n !== name);
  }
  function add(node) {
    node.properties = node.properties || {};
    let n = names(node).length + 1, name = `field_${n}`;
    while (name in node.properties) name = `field_${++n}`;
    node.properties[name] = { type: "string", description: "" };
    setRequired(node, name, true);
    return name;
  }
  function setType(sub, type) {
    const keep = SE_KEEP[type] || [];
    for (const key of SE_TYPED) if (!keep.includes(key)) delete sub[key];
    sub.type = type;
    if (type === "object" && !sub.properties) { sub.properties = {}; sub.required = []; sub.additionalProperties = false; }
    if (type === "array" && !sub.items) sub.items = { type: "string" };
  }

  /* ----- rendering ----- */
  function typeOf(sub) {
    if (Array.isArray(sub.type)) return sub.type.find((t) => t !== "null") || "string";
    return sub.type || (sub.properties ? "object" : sub.items ? "array" : "");
  }

  function structural(focus) {
    write();
    render();
    if (focus) {
      const target = root.querySelector(focus);
      if (target) target.focus();
    }
  }

  function fieldRow(node, name, path, depth) {
    const sub = node.properties[name] || {};
    const key = path.join("/");
    const type = typeOf(sub);
    const label = path.join(".");
    const row = el("li", { class: "se-field", "data-path": key, "data-depth": depth });
    const css = (s) => `[data-path="${CSS.escape(key)}"] > .se-row ${s}`;

    const nameInput = el("input", { class: "se-name", value: name, "aria-label": `Name of field ${label}`, maxlength: 200, spellcheck: "false" });
    nameInput.addEventListener("change", () => {
      const to = nameInput.value.trim();
      if (to === name) return;
      if (!to || to in node.properties) {
        show([`${seWhere(path)}: ${to ? `another field is already named "${to}"` : "a field needs a name"}`]);
        nameInput.value = name;
        return;
      }
      const wasOpen = open.has(key);
      rename(node, name, to);
      const moved = [...path.slice(0, -1), to].join("/");
      if (wasOpen) { open.delete(key); open.add(moved); }
      structural(`[data-path="${CSS.escape(moved)}"] > .se-row .se-type`);
    });
    nameInput.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); nameInput.dispatchEvent(new Event("change")); } });

    const typeSelect = el("select", { class: "se-type", "aria-label": `Type of field ${label}` },
      (SE_TYPES.includes(type) ? SE_TYPES : [type || "any", ...SE_TYPES]).map((t) => el("option", { value: t, text: t, selected: t === type })));
    typeSelect.addEventListener("change", () => { setType(sub, typeSelect.value); structural(css(".se-type")); });

    const required = el("input", { type: "checkbox", class: "se-required", checked: isRequired(node, name), "aria-label": `Field ${label} is required` });
    required.addEventListener("change", () => { setRequired(node, name, required.checked); write(); });

    const button = (cls, text, aria, action) => el("button", { type: "button", class: "btn btn-sm btn-ghost " + cls, text, "aria-label": aria, title: aria, onclick: action });
    const up = button("se-up", "↑", `Move ${label} up`, () => { if (move(node, name, -1)) structural(css(".se-up")); });
    const down = button("se-down", "↓", `Move ${label} down`, () => { if (move(node, name, 1)) structural(css(".se-down")); });
    const more = button("se-more", "Details", `Details of ${label}`, () => { if (open.has(key)) open.delete(key); else open.add(key); render(); const again = root.querySelector(css(".se-more")); if (again) again.focus(); });
    more.setAttribute("aria-expanded", open.has(key) ? "true" : "false");
    const drop = button("se-remove btn-danger", "Remove", `Remove field ${label}`, () => { remove(node, name); open.delete(key); structural(null); });

    row.append(el("div", { class: "se-row" },
      nameInput, typeSelect,
      el("label", { class: "se-req small" }, required, " required"),
      el("span", { class: "se-actions" }, up, down, more, drop)));
    if (sub.description) row.append(el("p", { class: "se-desc small muted", text: sub.description }));
    if (open.has(key)) row.append(details(sub, type, path));
    if (type === "object") row.append(fieldList(sub, path, depth + 1, `Fields of ${label}`));
    if (type === "array") row.append(itemsPart(sub, path, depth));
    return row;
  }

  // the field's other keywords: description, enum, bounds, pattern, format
  function details(sub, type, path) {
    const label = path.join(".");
    const box = el("div", { class: "se-details" });
    const text = (cls, caption, value, apply, attrs) => {
      const input = el("input", { class: cls, value: value === undefined ? "" : String(value), "aria-label": `${caption} of ${label}`, ...(attrs || {}) });
      input.addEventListener("input", () => { apply(input.value); write(); });
      box.append(el("label", { class: "small" }, caption, input));
      return input;
    };
    text("se-description", "Description", sub.description, (v) => { if (v) sub.description = v; else delete sub.description; }, { maxlength: 500 });
    if (["string", "integer", "number"].includes(type)) {
      const numeric = type !== "string";
      text("se-enum", "Allowed values (comma-separated)",
        Array.isArray(sub.enum) ? sub.enum.join(", ") : "",
        (v) => {
          const items = v.split(",").map((s) => s.trim()).filter(Boolean);
          if (!items.length) { delete sub.enum; return; }
          sub.enum = numeric ? items.map((s) => (Number.isFinite(Number(s)) ? Number(s) : s)) : items;
        });
    }
    for (const [keyword, caption] of SE_BOUNDS[type] || []) {
      text("se-" + keyword, caption, sub[keyword], (v) => {
        if (v.trim() === "") delete sub[keyword];
        else sub[keyword] = Number.isFinite(Number(v)) ? Number(v) : v;
      }, { inputmode: "decimal", "data-keyword": keyword });
    }
    if (type === "string") {
      text("se-pattern", "Pattern (regular expression)", sub.pattern, (v) => { if (v) sub.pattern = v; else delete sub.pattern; }, { spellcheck: "false" });
      const format = el("select", { class: "se-format", "aria-label": `Format of ${label}` },
        (SE_FORMATS.includes(sub.format || "") ? SE_FORMATS : [sub.format, ...SE_FORMATS]).map((f) => el("option", { value: f, text: f || "none", selected: (sub.format || "") === f })));
      format.addEventListener("change", () => { if (format.value) sub.format = format.value; else delete sub.format; write(); });
      box.append(el("label", { class: "small" }, "Format", format));
    }
    return box;
  }

  function itemsPart(sub, path, depth) {
    const label = path.join(".");
    sub.items = sub.items && typeof sub.items === "object" && !Array.isArray(sub.items) ? sub.items : { type: "string" };
    const items = sub.items;
    const itemType = typeOf(items);
    const select = el("select", { class: "se-items-type", "aria-label": `Type of the items of ${label}` },
      (SE_TYPES.includes(itemType) ? SE_TYPES : [itemType || "any", ...SE_TYPES]).map((t) => el("option", { value: t, text: t, selected: t === itemType })));
    select.addEventListener("change", () => {
      setType(items, select.value);
      structural(`[data-path="${CSS.escape(path.join("/"))}"] > .se-items .se-items-type`);
    });
    const part = el("div", { class: "se-items" }, el("label", { class: "small" }, "Each item is ", select));
    if (itemType === "object") part.append(fieldList(items, [...path.slice(0, -1), path[path.length - 1] + "[]"], depth + 1, `Fields of each item of ${label}`));
    return part;
  }

  function fieldList(node, path, depth, caption) {
    node.properties = node.properties && typeof node.properties === "object" ? node.properties : {};
    const list = el("ul", { class: "se-fields", "aria-label": caption });
    for (const name of names(node)) list.append(fieldRow(node, name, [...path, name], depth));
    const addButton = el("button", { type: "button", class: "btn btn-sm se-add", text: depth ? "Add nested field" : "Add field",
      "data-path": path.join("/"),
      onclick: () => {
        const name = add(node);
        structural(`[data-path="${CSS.escape([...path, name].join("/"))}"] > .se-row .se-name`);
      } });
    return el("div", { class: "se-list" }, list, addButton);
  }

  function render() {
    clear(root);
    if (!schema || typeof schema !== "object" || Array.isArray(schema)) {
      root.append(el("p", { class: "muted small", text: "Fix the JSON to edit the fields here." }));
      return;
    }
    root.append(fieldList(schema, [], 0, "Fields of a record"));
  }

  return {
    set(value) { schema = JSON.parse(JSON.stringify(value)); textarea.value = JSON.stringify(schema, null, 2); root.classList.remove("se-stale"); render(); check(); },
    setText(text) { textarea.value = text; fromText(); },
    check,   // {schema | syntax, messages}
    show,    // replace the shown mistakes (the server's, after a preview or confirm)
  };
}
