// fleetd dashboard: renders GET /fleet/v1/summary and refreshes it on every watch event.
// All text goes through textContent (never as markup), so names and metadata cannot inject markup.
"use strict";

const API = "/fleet/v1";
const WATCH = API + "/watch?kinds=units,states,machines,assignments,pending,leader,alarms,machine-states";
const EVENTS = ["snapshot", "units", "states", "machines", "assignments", "pending", "leader", "alarms",
  "machine-states"];
const MAX_BACKOFF = 30000;
const PAGE = 500;  // units one summary lists; the totals count every unit
const view = {offset: 0, glob: ""};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setText(id, text) { document.getElementById(id).textContent = text; }

function short(id) { return id ? id.slice(0, 12) : ""; }

function cpu(millis) { return Number((millis / 1000).toFixed(3)) + " CPU"; }

function bytes(n) {
  const units = ["B", "K", "M", "G", "T", "P"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i && n < 10 ? n.toFixed(1).replace(/\.0$/, "") : Math.round(n)) + units[i];
}

function requests(d) {
  const parts = [];
  if (d && d.cpu) parts.push(cpu(d.cpu));
  if (d && d.memory) parts.push(bytes(d.memory));
  return parts.join(" · ") || "—";
}

function meter(label, used, capacity, fmt) {
  const share = capacity ? Math.min(used / capacity, 1) : 0;
  const fill = el("span", {style: undefined});
  fill.style.width = (share * 100).toFixed(1) + "%";
  if (share >= 1) fill.className = "full"; else if (share >= 0.8) fill.className = "high";
  const text = capacity ? fmt(used) + " / " + fmt(capacity) : fmt(used) + " / ?";
  return el("div", {class: "meter", title: capacity ? Math.round(share * 100) + "% requested" : "capacity unknown"},
    label, el("div", {class: "bar"}, fill), text);
}

function machineCard(m, leader) {
  const cap = m.capacity || {cpu: 0, memory: 0};
  const load = m.load || {units: 0, cpu: 0, memory: 0};
  const chips = Object.keys(m.metadata || {}).sort().map(
    (k) => el("span", {class: "chip"}, el("b", {}, k), "=" + m.metadata[k]));
  return el("article", {class: "card", "data-machine": m.id},
    el("header", {},
      el("span", {class: "id mono", title: m.id}, short(m.id)),
      m.id === leader ? el("span", {class: "badge"}, "leader") : null,
      m.state && m.state !== "ready" ? el("span", {class: "badge state", title: "machine state"}, m.state) : null,
      el("span", {class: "ip mono"}, m.primaryIP || "")),
    el("div", {class: "chips"}, ...(chips.length ? chips : [el("span", {class: "muted"}, "no metadata")])),
    meter("CPU", load.cpu, cap.cpu, cpu),
    meter("Memory", load.memory, cap.memory, bytes),
    el("div", {class: "count"}, load.units + (load.units === 1 ? " unit" : " units")));
}

function systemdText(u) {
  if (!u.hosts || !u.hosts.length) return el("span", {class: "muted"}, "—");
  const shown = u.hosts.filter((h) => !u.machineID || h.machineID === u.machineID);
  const list = shown.length ? shown : u.hosts;
  return el("div", {}, ...list.map((h) => el("div", {},
    el("span", {class: "state " + h.activeState}, h.activeState + " (" + h.subState + ")"),
    u.global ? el("span", {class: "muted mono"}, " " + short(h.machineID)) : null)));
}

function hostCell(u, ips) {
  if (u.machineID) return el("span", {class: "mono", title: u.machineID}, short(u.machineID),
    ips[u.machineID] ? el("span", {class: "muted"}, " " + ips[u.machineID]) : null);
  if (u.global) return el("span", {class: "muted"}, "global: every matching machine");
  return el("span", {class: "muted"}, "—");
}

function unitRow(u, ips) {
  const pending = Boolean(u.pendingReason);
  return el("tr", {class: pending ? "pending" : null, "data-unit": u.name},
    el("td", {}, el("div", {class: "mono"}, u.name),
      pending ? el("div", {class: "reason"}, "pending: " + u.pendingReason) : null),
    el("td", {}, el("span", {class: "state " + u.desiredState}, u.desiredState)),
    el("td", {}, el("span", {class: "state " + u.currentState}, u.currentState)),
    el("td", {}, hostCell(u, ips)),
    el("td", {}, systemdText(u)),
    el("td", {class: "muted"}, requests(u.demand)));
}

function renderAlarms(alarms) {
  const box = document.getElementById("alarms");
  box.hidden = !alarms.length;
  box.replaceChildren(...alarms.map((a) => el("div", {class: "alarm"},
    el("strong", {}, a.kind), a.message, a.since ? el("span", {class: "muted"}, " (since " + a.since + ")") : null)));
}

function render(s) {
  const ips = Object.fromEntries(s.machines.map((m) => [m.id, m.primaryIP]));
  setText("stat-machines", s.machines.length);
  const totals = s.totals;
  setText("stat-units", totals.units);
  setText("stat-active", totals.active);
  setText("stat-pending", totals.pending);
  const leader = document.getElementById("stat-leader");
  leader.textContent = s.leader ? short(s.leader) : "none";
  leader.title = s.leader || "no engine leads now";
  renderAlarms(s.alarms || []);
  const machines = document.getElementById("machines");
  machines.replaceChildren(...(s.machines.length ? s.machines.map((m) => machineCard(m, s.leader))
    : [el("p", {class: "empty"}, "No machines are registered.")]));
  const units = document.getElementById("units");
  const none = totals.units ? "No unit matches." : "No units. Start one with fleetctl start.";
  units.replaceChildren(...(s.units.length ? s.units.map((u) => unitRow(u, ips))
    : [el("tr", {}, el("td", {colspan: "6", class: "empty"}, none))]));
  const first = s.units.length ? s.unitsOffset + 1 : 0;
  setText("units-window", first + "–" + (s.unitsOffset + s.units.length) + " of " + totals.matching);
  document.getElementById("prev").disabled = s.unitsOffset === 0;
  document.getElementById("next").disabled = s.unitsOffset + s.units.length >= totals.matching;
  setText("updated", "updated " + new Date().toLocaleTimeString());
}

const refresher = {running: false, again: false, took: 0};

async function refresh() {
  if (refresher.running) { refresher.again = true; return; }
  refresher.running = true;
  try {
    do {
      refresher.again = false;
      const started = performance.now();
      const query = new URLSearchParams({unitsOffset: view.offset, unitsLimit: PAGE});
      if (view.glob) query.set("unit", view.glob.includes("*") ? view.glob : "*" + view.glob + "*");
      const resp = await fetch(API + "/summary?" + query, {credentials: "same-origin", cache: "no-store"});
      if (resp.status === 401) { window.location.assign("/"); return; }
      if (resp.ok) render(await resp.json());
      refresher.took = performance.now() - started;
    } while (refresher.again);
  } catch (err) {
    setLive("reconnecting", "reconnecting");
  } finally {
    refresher.running = false;
  }
}

function setLive(state, text) {
  const box = document.getElementById("live");
  box.dataset.state = state;
  setText("live-text", text);
}

let timer = null;
// Events coalesce for 150 ms, or for twice what the last refresh took: a big cluster that
// changes all the time is shown every few seconds instead of keeping its fleetd busy.
function soon() {
  if (timer === null) timer = setTimeout(() => { timer = null; refresh(); }, Math.max(150, 2 * refresher.took));
}

function page(step) {
  view.offset = Math.max(0, view.offset + step * PAGE);
  refresh();
}

function connect(backoff) {
  const source = new EventSource(WATCH);
  source.addEventListener("snapshot", () => { backoff = 1000; setLive("live", "live"); });
  for (const name of EVENTS) source.addEventListener(name, soon);
  source.onerror = () => {
    source.close();
    setLive("reconnecting", "reconnecting in " + Math.round(backoff / 1000) + "s");
    setTimeout(() => connect(Math.min(backoff * 2, MAX_BACKOFF)), backoff);
  };
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("prev").addEventListener("click", () => page(-1));
  document.getElementById("next").addEventListener("click", () => page(1));
  document.getElementById("filter").addEventListener("input", (event) => {
    view.glob = event.target.value.trim();
    view.offset = 0;
    soon();
  });
  refresh();
  connect(1000);
});
