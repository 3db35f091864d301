// cairn's dashboard: the ring of nodes as a clock face, lookups drawn as they happen, and the
// node's status, items and routing table. Plain browser JavaScript, no build step: the node
// embeds this file and serves it. Data comes from the node's own API (/v1/status, /v1/ring,
// /v1/items) and its Server-Sent Events (/v1/events).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const RADIUS = 92;          // the ring's radius in the SVG's units
const MAX_ARCS = 400;       // arcs on screen at once; more are skipped, not queued
const ARC_LIFE_MS = 2600;   // how long an arc stays before it has faded
const REFRESH_MS = 3000;    // how often status, ring and items are fetched again

const $ = (id) => document.getElementById(id);
const state = { status: null, ring: null, nodes: new Map(), arcs: 0, queries: new Map() };

// ---- placing things on the ring --------------------------------------------------------

/** The angle of an id or key: its first 32 bits as a fraction of a turn, 0 at twelve. */
function angleOf(hex) {
  const turn = parseInt(hex.slice(0, 8), 16) / 4294967296;
  return turn * 2 * Math.PI - Math.PI / 2;
}
function pointAt(hex, r) {
  const a = angleOf(hex);
  return [r * Math.cos(a), r * Math.sin(a)];
}
/** A colour per bucket: far buckets (most contacts) and near ones differ in hue. */
function bucketColour(bucket) {
  if (bucket === undefined || bucket === null) return "var(--accent)";
  const closeness = Math.max(0, 511 - bucket); // 0: the farthest half of the ring
  const hue = (200 + closeness * 47) % 360;
  return `hsl(${hue} 60% 50%)`;
}
function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}
function short(hex) { return hex ? hex.slice(0, 12) : ""; }

function drawFace() {
  const face = $("face");
  el("circle", { class: "face", r: RADIUS }, face);
  for (let h = 0; h < 12; h++) {
    const a = (h / 12) * 2 * Math.PI - Math.PI / 2;
    const [c, s] = [Math.cos(a), Math.sin(a)];
    el("line", { class: "hour", x1: c * (RADIUS - 8), y1: s * (RADIUS - 8), x2: c * (RADIUS - 4), y2: s * (RADIUS - 4) }, face);
    const label = el("text", { class: "hour-label", x: c * (RADIUS - 14), y: s * (RADIUS - 14) }, face);
    label.textContent = h === 0 ? "0" : (h / 12).toFixed(2).slice(1);
  }
  const centre = el("text", { class: "centre-label", y: 3, id: "centre-label" }, face);
  centre.textContent = "";
}

function drawRing(ring) {
  const nodesLayer = $("nodes-layer");
  const itemsLayer = $("items-layer");
  nodesLayer.replaceChildren();
  itemsLayer.replaceChildren();
  state.nodes.clear();
  const network = !ring.center;
  const most = Math.max(1, ...ring.nodes.map((n) => n.items || 0));
  for (const node of ring.nodes) {
    const self = node.id === ring.center;
    const [x, y] = pointAt(node.id, RADIUS);
    const size = network ? 1.6 + 2.4 * Math.sqrt((node.items || 0) / most) : (self ? 4 : 2.4);
    const dot = el("circle", {
      class: "node" + (self ? " self" : ""), cx: x.toFixed(2), cy: y.toFixed(2), r: size.toFixed(2),
      fill: self || network ? "var(--accent)" : bucketColour(node.bucket),
      "data-id": node.id,
    }, nodesLayer);
    const title = el("title", {}, dot);
    title.textContent = `${self ? "this node " : ""}${node.id.slice(0, 16)}… ${node.addr}` +
      (node.bucket !== undefined ? ` · bucket ${node.bucket}` : "") +
      (node.items !== undefined ? ` · ${node.items} items` : "");
    state.nodes.set(node.id, [x, y]);
  }
  for (const item of ring.items) {
    const [x1, y1] = pointAt(item.key, RADIUS + 6);
    const [x2, y2] = pointAt(item.key, RADIUS + 6 + Math.min(10, 3 + 2 * item.holders));
    const tick = el("line", { class: "item " + item.kind, x1, y1, x2, y2, "data-key": item.key }, itemsLayer);
    el("title", {}, tick).textContent = `${item.kind} ${item.key.slice(0, 16)}… on ${item.holders} node(s)`;
  }
  const what = network ? "the whole test network" : "this node and its contacts";
  $("ring-summary").textContent = `${ring.nodes.length} nodes (${what}) and ${ring.items.length} items.`;
  $("centre-label").textContent = `${ring.nodes.length} nodes`;
  drawLegend(ring);
}

function drawLegend(ring) {
  const entries = [["var(--accent)", ring.center ? "this node" : "nodes sized by items held"]];
  if (ring.center) entries.push([bucketColour(511), "contacts, coloured by bucket"]);
  entries.push(["var(--signed)", "signed item"], ["var(--immutable)", "immutable item"], ["var(--tombstone)", "deleted"]);
  $("legend").replaceChildren(...entries.map(([colour, text]) => {
    const li = document.createElement("li");
    const dot = document.createElement("i");
    dot.style.background = colour;
    li.append(dot, text);
    return li;
  }));
}

// ---- live lookups -------------------------------------------------------------------------

/** Where a node sits: on the ring if known, else at its id's angle just inside it. */
function placeOf(id) {
  return state.nodes.get(id) || pointAt(id, RADIUS - 3);
}

function drawHop(event) {
  if (state.arcs >= MAX_ARCS || document.hidden) return;
  const [x1, y1] = placeOf(event.from || event.node);
  const [x2, y2] = placeOf(event.to);
  // A curve bent towards the centre: hops cut across the clock face.
  const path = el("path", { class: "hop", d: `M${x1.toFixed(1)},${y1.toFixed(1)} Q${((x1 + x2) / 4).toFixed(1)},${((y1 + y2) / 4).toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`, "data-query": event.query }, $("hops-layer"));
  state.arcs++;
  requestAnimationFrame(() => requestAnimationFrame(() => path.classList.add("fade")));
  setTimeout(() => { path.remove(); state.arcs--; }, ARC_LIFE_MS);
}

function drawTarget(event) {
  const [x, y] = pointAt(event.target, RADIUS - 10);
  const key = `${event.node}/${event.query}`;
  const mark = el("circle", { class: "target", cx: x, cy: y, r: 1.8 }, $("targets-layer"));
  state.queries.set(key, mark);
  setTimeout(() => { mark.remove(); state.queries.delete(key); }, 15000);
}

function endQuery(event) {
  const key = `${event.node}/${event.query}`;
  const mark = state.queries.get(key);
  if (mark) { mark.remove(); state.queries.delete(key); }
  if (["get", "put", "delete", "find_node", "bootstrap"].includes(event.operation)) addOperation(event);
}

function addOperation(event) {
  const list = $("operations");
  const li = document.createElement("li");
  li.className = event.outcome;
  const when = new Date(event.at).toLocaleTimeString();
  li.innerHTML = `<span class="op"></span><span class="what"></span><span class="num"></span>`;
  li.querySelector(".op").textContent = event.operation;
  li.querySelector(".what").textContent = `${short(event.target)}… ${event.outcome.replace("_", " ")}`;
  li.querySelector(".num").textContent = `${event.ms.toFixed(1)} ms · ${event.hops} hop${event.hops === 1 ? "" : "s"} · ${when}`;
  li.dataset.operation = event.operation;
  li.dataset.outcome = event.outcome;
  list.prepend(li);
  while (list.children.length > 50) list.lastChild.remove();
}

function listen() {
  const source = new EventSource("/v1/events");
  source.onopen = () => { $("live").textContent = "live"; $("live").classList.add("on"); };
  source.onerror = () => { $("live").textContent = "reconnecting"; $("live").classList.remove("on"); };
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "hop") drawHop(event);
    else if (event.type === "lookup") drawTarget(event);
    else if (event.type === "done") endQuery(event);
    else if (event.type === "reply" && !event.ok) flagFailure(event.from);
  };
}

function flagFailure(id) {
  const dot = document.querySelector(`#nodes-layer [data-id="${id}"]`);
  if (!dot) return;
  dot.classList.add("failed");
  setTimeout(() => dot.classList.remove("failed"), 2000);
}

// ---- status, items, routing table -------------------------------------------------------

async function fetchJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

// "server (auto), public: 4 probes received" from /v1/status's mode and reachability.
function reachability(status) {
  const r = status.reachability || {};
  const mode = `${r.mode || status.mode}${r.setting ? ` (${r.setting})` : ""}`;
  const probes = r.probes ? `: ${r.probes.received} of ${r.probes.asked} probes received` : "";
  return `${mode}, ${r.status || "unknown"}${probes}`;
}

function drawStatus(status) {
  $("subtitle").textContent = `${status.node_id.slice(0, 32)}… on ${status.listen}`;
  const rows = [
    ["node id", status.node_id.slice(0, 24) + "…"],
    ["network", status.network],
    ["peers", status.peers],
    ["items", status.items],
    ["network size", `~${status.network_size} nodes`],
    ["mode", reachability(status)],
    ["uptime", duration(status.uptime_s)],
    ["requests", `${status.requests_sent} sent, ${status.requests_handled} served`],
    ["watches", status.watches],
    ["version", status.version],
  ];
  $("status").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = String(v);
    dd.dataset.field = k;
    return [dt, dd];
  }));
}

function drawItems(items) {
  const now = Date.now() / 1000;
  $("items-count").textContent = `(${items.length}${items.length >= 200 ? "+" : ""})`;
  $("items").tBodies[0].replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.key = item.key;
    tr.dataset.kind = item.kind;
    const expires = item.expires === 0 ? "never" : `in ${duration(Math.max(0, Math.round(item.expires - now)))}`;
    for (const [text, cls] of [[short(item.key) + "…", "key"], [item.kind + (item.own ? " (own)" : "")], [item.seq ?? "–"], [expires], [`${item.size} B`]]) {
      const td = document.createElement("td");
      td.textContent = String(text);
      if (cls) { td.className = cls; td.title = item.key; }
      tr.appendChild(td);
    }
    return tr;
  }));
}

function drawBuckets(ring) {
  const buckets = new Map();
  for (const node of ring.nodes) {
    if (node.bucket === undefined) continue;
    if (!buckets.has(node.bucket)) buckets.set(node.bucket, []);
    buckets.get(node.bucket).push(node);
  }
  const sorted = [...buckets.entries()].sort((a, b) => b[0] - a[0]);
  if (sorted.length === 0) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = ring.center ? "No contacts yet." : "A whole network has no single routing table: open one node's API to see its own.";
    $("buckets").replaceChildren(p);
    return;
  }
  $("buckets").replaceChildren(...sorted.map(([bucket, nodes]) => {
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.innerHTML = `<i></i>`;
    summary.firstChild.style.cssText = `display:inline-block;width:.6rem;height:.6rem;border-radius:50%;margin-right:.4rem;background:${bucketColour(bucket)}`;
    summary.append(`bucket ${bucket}: ${nodes.length} contact${nodes.length === 1 ? "" : "s"}`);
    const ul = document.createElement("ul");
    for (const n of nodes) {
      const li = document.createElement("li");
      li.textContent = `${short(n.id)}… ${n.addr}`;
      ul.appendChild(li);
    }
    details.append(summary, ul);
    return details;
  }));
}

async function refresh() {
  try {
    const [status, ring, items] = await Promise.all([
      fetchJson("/v1/status"), fetchJson("/v1/ring"), fetchJson("/v1/items?limit=200"),
    ]);
    state.status = status;
    drawStatus(status);
    drawRing(ring);
    drawItems(items);
    drawBuckets(ring);
  } catch (error) {
    $("subtitle").textContent = `cannot reach the node: ${error.message}`;
  }
}

// ---- the form --------------------------------------------------------------------------

function show(text, isError) {
  const out = $("result");
  out.textContent = text;
  out.classList.toggle("error", Boolean(isError));
}

async function call(method, path, body) {
  const response = await fetch(path, { method, body });
  const type = response.headers.get("content-type") || "";
  if (!response.ok) {
    const data = type.includes("json") ? await response.json() : { error: { message: response.statusText } };
    throw new Error(`${response.status}: ${data.error ? data.error.message : response.statusText}`);
  }
  return type.includes("json") ? response.json() : response.text();
}

const isKey = (text) => /^[0-9a-f]{128}$/i.test(text);

/** Runs one of the form's actions on the name typed: `verb` names it while it runs and in
 *  its error, `act` does it and returns the text to show. */
async function act(verb, act) {
  const name = $("name").value.trim();
  if (!name) { $("name").focus(); return; }
  show(`${verb}…`);
  try { show(await act(name)); } catch (error) { show(`${verb} failed: ${error.message}`, true); }
}

function put(event) {
  event.preventDefault();
  return act("putting", async (name) => {
    const done = await call("PUT", `/v1/items/${encodeURIComponent(name)}`, $("value").value);
    refresh();
    return `stored “${name}” on ${done.replicas} nodes\nkey ${done.key}\nseq ${done.seq}`;
  });
}

function get() {
  return act("getting", async (name) => {
    const path = isKey(name) ? `/v1/keys/${name}` : `/v1/items/${state.status.public_key}/${encodeURIComponent(name)}`;
    return `found: ${await call("GET", path)}`;
  });
}

function remove() {
  return act("deleting", async (name) => {
    const done = await call("DELETE", `/v1/items/${encodeURIComponent(name)}`);
    refresh();
    return `deleted “${name}” (tombstone seq ${done.seq}, on ${done.replicas} nodes)`;
  });
}

// ---- theme -------------------------------------------------------------------------------

function toggleTheme() {
  const root = document.documentElement;
  const dark = root.dataset.theme ? root.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  root.dataset.theme = dark ? "light" : "dark";
  try { localStorage.setItem("cairn-theme", root.dataset.theme); } catch (_) { /* private mode */ }
}

function start() {
  try {
    const saved = localStorage.getItem("cairn-theme");
    if (saved) document.documentElement.dataset.theme = saved;
  } catch (_) { /* private mode */ }
  drawFace();
  $("put-form").addEventListener("submit", put);
  $("get").addEventListener("click", get);
  $("delete").addEventListener("click", remove);
  $("theme").addEventListener("click", toggleTheme);
  refresh();
  setInterval(refresh, REFRESH_MS);
  listen();
}

start();
