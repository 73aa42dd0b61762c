// The status page of `vigil run --http`. Everything a check, a service or
// its output controls is put on the page with textContent or as an
// attribute value, never as HTML (no innerHTML anywhere in this file).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const SYMBOLS = { ready: "●", running: "◐", starting: "◐", waiting: "…", stopping: "◌",
  backoff: "↻", failed: "✗", exited: "○", stopped: "■" };

let actions = false;
let selected = null;
const rows = new Map(); // service name -> its <tr>
const journal = [];     // the last journal lines shown

// A token given as #token=... is kept for this tab only and taken out of
// the address bar (the fragment never reaches the server or its logs).
let token = sessionStorage.getItem("vigil-token");
if (location.hash.startsWith("#token=")) {
  token = decodeURIComponent(location.hash.slice(7));
  sessionStorage.setItem("vigil-token", token);
  history.replaceState(null, "", location.pathname);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function uptime(secs) {
  if (secs === null || secs === undefined) return "-";
  const s = Math.floor(secs);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + String(Math.floor(s % 86400 / 3600)).padStart(2, "0") + "h";
}

function latency(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms < 10) return ms.toFixed(1) + "ms";
  if (ms < 10000) return ms.toFixed(0) + "ms";
  return (ms / 1000).toFixed(1) + "s";
}

// Latency of the recent checks as a line; failed checks as red dots.
function plot(samples) {
  const w = 160, h = 28;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "plot");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  const list = samples || [];
  const max = Math.max(0, ...list.map((s) => s.latency_ms));
  const title = document.createElementNS(SVG, "title");
  title.textContent = list.length + " checks, max " + latency(max);
  svg.appendChild(title);
  if (list.length === 0) return svg;
  const x = (i) => list.length === 1 ? w - 2 : 2 + (i * (w - 4)) / (list.length - 1);
  const y = (v) => h - 2 - (max > 0 ? (v / max) * (h - 4) : 0);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", list.map((s, i) => x(i).toFixed(1) + "," + y(s.latency_ms).toFixed(1)).join(" "));
  svg.appendChild(line);
  list.forEach((s, i) => {
    if (s.outcome === "ok") return;
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x(i).toFixed(1));
    dot.setAttribute("cy", y(s.latency_ms).toFixed(1));
    dot.setAttribute("r", "2");
    svg.appendChild(dot);
  });
  return svg;
}

function cell(tr, cls, text) {
  const td = el("td", cls, text);
  tr.appendChild(td);
  return td;
}

async function act(name, action) {
  if (action !== "start" && !confirm(action + " " + name + "?")) return;
  if (!token) {
    token = prompt("The token of --http-token-file:");
    if (!token) return;
    sessionStorage.setItem("vigil-token", token);
  }
  const answer = await fetch("/api/services/" + encodeURIComponent(name) + "/" + action, {
    method: "POST",
    headers: { Authorization: "Bearer " + token },
  });
  if (!answer.ok) {
    if (answer.status === 401) { token = null; sessionStorage.removeItem("vigil-token"); }
    alert(action + " " + name + ": " + (await answer.text()));
  }
}

function renderServices(status) {
  const tbody = $("services").tBodies[0];
  const seen = new Set();
  for (const s of status.services) {
    seen.add(s.name);
    const tr = el("tr");
    tr.dataset.name = s.name;
    if (s.name === selected) tr.classList.add("selected");
    cell(tr, "name", s.name);
    let state = (SYMBOLS[s.state] || "?") + " " + s.state;
    if (s.restart_in_secs !== null && s.restart_in_secs !== undefined) state += " " + uptime(Math.ceil(s.restart_in_secs));
    if (s.failing) state += " (failing " + s.failing + ")";
    cell(tr, "state state-" + s.state.replace(/[^a-z-]/g, ""), state);
    cell(tr, "pid", s.pid === null ? "-" : s.pid);
    cell(tr, "uptime", uptime(s.uptime_secs));
    cell(tr, "restarts", s.restarts);
    let check = "-";
    if (s.last_outcome) {
      check = (s.last_phase ? s.last_phase + " " : "") + s.last_outcome;
      if (s.last_reason) check += ": " + s.last_reason;
    }
    if (s.status_text) check += " [" + s.status_text + "]";
    const reason = cell(tr, "reason", check);
    // Its held sockets, and a replace while it runs (both children).
    if (s.sockets && s.sockets.length) {
      const list = s.sockets.map((k) => k.name + " " + k.listen + " fd " + k.fd).join(", ");
      reason.appendChild(el("div", "sockets", "sockets: " + list));
    }
    if (s.replacing_pid !== null && s.replacing_pid !== undefined) {
      reason.appendChild(el("div", "replace", "replacing: pid " + s.pid + " → new pid " + s.replacing_pid));
    }
    if (s.replaced_pid !== null && s.replaced_pid !== undefined) {
      reason.appendChild(el("div", "replace", "replaced: old pid " + s.replaced_pid + " draining"));
    }
    if (s.replace_failed) {
      reason.appendChild(el("div", "replace-failed", "last replace failed: " + s.replace_failed));
    }
    cell(tr, "latency", latency(s.check_latency_ms));
    cell(tr, "plot").appendChild(plot(status.checks[s.name]));
    const buttons = cell(tr, "act");
    if (actions) {
      for (const a of ["restart", "replace", "stop", "start"]) {
        const b = el("button", "do-" + a, a);
        b.addEventListener("click", (ev) => { ev.stopPropagation(); act(s.name, a); });
        buttons.appendChild(b);
      }
    }
    tr.addEventListener("click", () => select(s.name));
    const old = rows.get(s.name);
    if (old) old.replaceWith(tr); else tbody.appendChild(tr);
    rows.set(s.name, tr);
  }
  for (const [name, tr] of rows) {
    if (!seen.has(name)) { tr.remove(); rows.delete(name); }
  }
  const ready = status.services.filter((s) => s.ready).length;
  $("summary").textContent = "pid " + status.pid + " · " + ready + "/" + status.services.length + " ready";
}

function journalText(line) {
  const fields = Object.entries(line)
    .filter(([k, v]) => !["ts", "service", "kind", "start_time"].includes(k) && v !== null)
    .map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v)));
  return fields.join(" ");
}

function addJournal(line) {
  journal.push(line);
  const list = $("journal");
  const li = el("li", "kind-" + String(line.kind).replace(/[^a-z-]/g, ""));
  li.appendChild(el("span", "ts", String(line.ts).slice(11, 19) + " "));
  li.appendChild(el("span", "svc", (line.service || "vigil") + " "));
  li.appendChild(el("b", "kind", line.kind + " "));
  li.appendChild(el("span", "fields", journalText(line)));
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}

async function loadLogs() {
  if (!selected) return;
  const name = selected;
  const answer = await fetch("/api/logs/" + encodeURIComponent(name));
  if (!answer.ok || name !== selected) return;
  const lines = await answer.json();
  $("log-name").textContent = name;
  const pre = $("log");
  const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = lines.join("\n");
  if (follow) pre.scrollTop = pre.scrollHeight;
}

function select(name) {
  selected = name;
  for (const [n, tr] of rows) tr.classList.toggle("selected", n === name);
  loadLogs();
}

function apply(status) {
  actions = status.actions;
  document.body.classList.toggle("actions", actions);
  if (!selected && status.services.length) selected = status.services[0].name;
  renderServices(status);
  loadLogs();
}

async function start() {
  const answer = await fetch("/api/status");
  const status = await answer.json();
  for (const line of status.journal || []) addJournal(line);
  apply(status);
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => {
    $("conn").textContent = "live";
    $("conn").classList.remove("down");
  });
  events.addEventListener("error", () => {
    $("conn").textContent = "vigil is not answering; retrying";
    $("conn").classList.add("down");
  });
  events.addEventListener("status", (e) => apply(JSON.parse(e.data)));
  events.addEventListener("journal", (e) => addJournal(JSON.parse(e.data)));
}

start();
