// The memory page: sign in with an API key, pick a user, read, edit, forget, undo.
// Plain DOM and fetch; text is always inserted as text (never as HTML).
"use strict";
const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("personamem-key") || "";
let current = null;
let memory = null;

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + key } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const msg = (data.error && data.error.message) || r.statusText;
    throw new Error(msg + " (HTTP " + r.status + ")");
  }
  return data;
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const c of children) e.append(c);
  return e;
}

async function signIn(event) {
  if (event) event.preventDefault();
  key = $("key").value.trim() || key;
  try {
    const data = await api("GET", "/v1/users");
    sessionStorage.setItem("personamem-key", key);
    $("app").hidden = false;
    $("signout").hidden = false;
    $("key").value = "";
    renderUsers(data.users);
    status(data.users.length + " user(s)");
  } catch (e) {
    $("app").hidden = true;
    status("Sign-in failed: " + e.message, true);
  }
}

function signOut() {
  sessionStorage.removeItem("personamem-key");
  key = "";
  current = null;
  $("app").hidden = true;
  $("signout").hidden = true;
  status("Signed out");
}

function renderUsers(users) {
  const list = $("users");
  list.replaceChildren();
  for (const u of users) {
    const b = el("button", { type: "button", textContent: u, className: u === current ? "current" : "" });
    b.dataset.user = u;
    b.addEventListener("click", () => pick(u));
    list.append(el("li", {}, b));
  }
}

async function pick(user) {
  current = user;
  for (const b of document.querySelectorAll("#users button")) {
    b.className = b.dataset.user === user ? "current" : "";
  }
  await refresh();
}

async function refresh() {
  if (!current) return;
  try {
    const [mem, hist] = await Promise.all([
      api("GET", "/v1/users/" + encodeURIComponent(current) + "/memory"),
      api("GET", "/v1/users/" + encodeURIComponent(current) + "/history"),
    ]);
    memory = mem;
    renderMemory(mem);
    renderHistory(hist);
    $("edit").disabled = false;
    $("undo").disabled = hist.length === 0;
  } catch (e) {
    status(e.message, true);
  }
}

function renderMemory(mem) {
  $("memory-title").textContent = "Memory of " + mem.user_id;
  $("memory-meta").textContent =
    "v" + mem.version + " · " + mem.lines.length + " lines · " + mem.tokens + " tokens · " +
    mem.messages + " messages (" + mem.pending_messages + " pending)";
  const list = $("memory");
  list.replaceChildren();
  if (mem.lines.length === 0) list.append(el("li", { className: "empty", textContent: "(empty)" }));
  for (const line of mem.lines) {
    const forget = el("button", { type: "button", className: "forget", textContent: "forget" });
    forget.addEventListener("click", () => forgetLine(line.text));
    const item = el("li", { className: "line" }, el("span", { className: "text", textContent: line.text }), forget);
    if (line.messages.length) {
      const details = el("details", {}, el("summary", { textContent: line.messages.length + " message(s) behind this line" }));
      for (const m of line.messages) {
        details.append(el("div", { className: "msg" },
          el("span", { className: "role", textContent: "[" + m.seq + "] " + m.role + ": " }),
          el("span", { textContent: m.content })));
      }
      item.append(details);
    }
    list.append(item);
  }
}

function renderDiff(diff) {
  const pre = el("pre", { className: "diff" });
  for (const line of diff.split("\n")) {
    let cls = "";
    if (line.startsWith("+") && !line.startsWith("+++")) cls = "add";
    else if (line.startsWith("-") && !line.startsWith("---")) cls = "del";
    else if (line.startsWith("@@")) cls = "hunk";
    pre.append(el("span", { className: cls, textContent: line + "\n" }));
  }
  return pre;
}

function renderHistory(versions) {
  const list = $("history");
  list.replaceChildren();
  for (const v of [...versions].reverse()) {
    const when = new Date(v.created_at * 1000).toLocaleString();
    const meta = el("div", { className: "meta",
      textContent: "v" + v.version + " · " + v.source + (v.note ? " · " + v.note : "") + " · " + when });
    const item = el("li", { className: "version" }, meta);
    item.dataset.version = v.version;
    if (v.diff) item.append(renderDiff(v.diff));
    list.append(item);
  }
}

async function forgetLine(text) {
  try {
    await api("POST", "/v1/users/" + encodeURIComponent(current) + "/forget", { what: text });
    status("Forgot: " + text);
    await refresh();
  } catch (e) {
    status(e.message, true);
  }
}

async function undo() {
  try {
    const v = await api("POST", "/v1/users/" + encodeURIComponent(current) + "/undo", {});
    status("Restored: " + v.note);
    await refresh();
  } catch (e) {
    status(e.message, true);
  }
}

function startEdit() {
  // the text with its [msg N] citations, so an edit keeps each line's messages
  $("editor-text").value = memory && memory.lines.length ? memory.text : "";
  $("editor").hidden = false;
}

async function save(event) {
  event.preventDefault();
  try {
    await api("PUT", "/v1/users/" + encodeURIComponent(current) + "/memory", { text: $("editor-text").value });
    $("editor").hidden = true;
    status("Saved a new version");
    await refresh();
  } catch (e) {
    status(e.message, true);
  }
}

$("signin").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
$("edit").addEventListener("click", startEdit);
$("undo").addEventListener("click", undo);
$("editor").addEventListener("submit", save);
$("cancel").addEventListener("click", () => { $("editor").hidden = true; });
if (key) signIn();
