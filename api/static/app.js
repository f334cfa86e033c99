// cryptolake dashboard: no framework, no inline code (the CSP forbids it), tokens kept in memory only.
"use strict";
const API = "/api/v1";
const state = { token: null, role: null, user: null, run: null, ws: null, equity: [], fills: [], fillIds: new Set() };
const $ = (id) => document.getElementById(id);

function csrf() {
  const m = document.cookie.match(/(?:^|; )cl_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ "content-type": "application/json" }, options.headers || {});
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  let r = await fetch(API + path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  if (r.status === 401 && state.token && !options.retried && await refresh()) {
    return api(path, Object.assign({}, options, { retried: true }));
  }
  return r;
}

async function refresh() {
  const r = await fetch(`${API}/auth/refresh`, { method: "POST", credentials: "same-origin",
    headers: { "x-csrf-token": csrf() } });
  if (!r.ok) return false;
  const body = await r.json();
  signedIn(body);
  return true;
}

function signedIn(body) {
  state.token = body.access_token;
  state.role = body.role;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const r = await fetch(`${API}/auth/login`, { method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }) });
  $("password").value = "";
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    $("login-error").textContent = typeof body.detail === "string" ? body.detail : "login failed";
    return;
  }
  signedIn(await r.json());
  await start();
}

async function logout() {
  await fetch(`${API}/auth/logout`, { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": csrf() } });
  state.token = null;
  if (state.ws) state.ws.close();
  show(false);
}

function show(app) {
  $("login").hidden = app;
  $("app").hidden = !app;
}

const fmt = (x, d = 2) => (x === null || x === undefined ? "-" : Number(x).toLocaleString(undefined,
  { minimumFractionDigits: d, maximumFractionDigits: d }));
const time = (t) => (t ? new Date(t).toISOString().replace("T", " ").slice(0, 16) : "-");

function table(id, columns, rows, newIds) {
  const el = $(id);
  el.replaceChildren();
  const head = el.createTHead().insertRow();
  for (const [title] of columns) head.appendChild(Object.assign(document.createElement("th"), { textContent: title }));
  const body = el.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    if (newIds && newIds.has(row.id)) tr.className = "new";
    for (const [, get, cls] of columns) {
      const td = tr.insertCell();
      td.textContent = get(row);
      if (cls) td.className = cls(row);
    }
  }
}

function drawLine(canvas, values, color, fill) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight || Number(canvas.getAttribute("height"));
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, h);
  if (values.length < 2) return;
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  const x = (i) => (i / (values.length - 1)) * (w - 8) + 4;
  const y = (v) => h - 6 - ((v - lo) / span) * (h - 12);
  ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.stroke();
  if (fill) { ctx.lineTo(x(values.length - 1), y(hi)); ctx.lineTo(x(0), y(hi)); ctx.closePath();
    ctx.fillStyle = fill; ctx.fill(); }
  ctx.fillStyle = "#94a3b8"; ctx.font = "11px system-ui";
  ctx.fillText(fmt(hi), 6, 12); ctx.fillText(fmt(lo), 6, h - 4);
}

function renderEquity() {
  const eq = state.equity.map((p) => p.equity);
  let peak = -Infinity;
  const dd = eq.map((v) => { peak = Math.max(peak, v); return peak > 0 ? (v / peak - 1) * 100 : 0; });
  drawLine($("equity-chart"), eq, "#38bdf8");
  drawLine($("drawdown-chart"), dd, "#ef4444", "rgba(239,68,68,0.15)");
  const last = state.equity[state.equity.length - 1];
  $("stat-equity").textContent = last ? fmt(last.equity) : "-";
  $("stat-return").textContent = eq.length ? `${fmt((eq[eq.length - 1] / eq[0] - 1) * 100)}%` : "-";
  $("stat-dd").textContent = dd.length ? `${fmt(Math.min(...dd))}%` : "-";
  $("stat-risk").textContent = last && last.risk_state ? last.risk_state : "-";
}

function renderFills(newIds) {
  $("stat-fills").textContent = String(state.fills.length);
  const rows = state.fills.slice(-200).reverse();
  table("fills", [["Time", (f) => time(f.ts)], ["Symbol", (f) => f.symbol], ["Side", (f) => f.side, (f) => f.side],
    ["Qty", (f) => fmt(f.qty, 6)], ["Price", (f) => fmt(f.price)], ["Fee", (f) => fmt(f.fee, 4)]], rows, newIds);
}

async function loadRun(runId) {
  state.run = runId;
  const [eq, fills, pos, orders] = await Promise.all(["equity", "fills", "positions", "orders"].map(
    (what) => api(`/runs/${encodeURIComponent(runId)}/${what}`).then((r) => (r.ok ? r.json() : []))));
  state.equity = eq;
  state.fills = fills;
  state.fillIds = new Set(fills.map((f) => f.id));
  renderEquity();
  renderFills();
  table("positions", [["Instrument", (p) => p.instrument], ["Qty", (p) => fmt(p.qty, 6)],
    ["Avg price", (p) => fmt(p.avg_price)], ["Realized", (p) => fmt(p.realized_pnl)]], pos);
  table("orders", [["Created", (o) => time(o.created_at)], ["Symbol", (o) => o.symbol],
    ["Side", (o) => o.side, (o) => o.side], ["Type", (o) => o.type], ["Qty", (o) => fmt(o.qty, 6)],
    ["Price", (o) => fmt(o.price)], ["Status", (o) => o.status]], orders.slice(-200).reverse());
  connect(runId);
}

function connect(runId) {
  if (state.ws) state.ws.close();
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${API}/ws`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ token: state.token, run_id: runId }));
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") { $("live").textContent = "live"; $("live").classList.add("on"); }
    if (msg.type === "fill" && !state.fillIds.has(msg.data.id)) {
      const f = Object.assign({}, msg.data, { ts: msg.data.ts_ms });
      state.fillIds.add(f.id); state.fills.push(f); renderFills(new Set([f.id]));
    }
    if (msg.type === "equity") {
      const seen = new Set(state.equity.map((p) => Date.parse(p.ts)));
      for (const p of msg.data) if (!seen.has(p.ts_ms)) state.equity.push(Object.assign({}, p, { ts: p.ts_ms }));
      renderEquity();
    }
  };
  ws.onclose = () => { $("live").textContent = "offline"; $("live").classList.remove("on");
    if (state.ws === ws && state.token) setTimeout(() => state.ws === ws && connect(runId), 2000); };
}

async function start() {
  const me = await api("/auth/me");
  if (!me.ok) { show(false); return; }
  const who = await me.json();
  state.user = who.username; state.role = who.role;
  $("who").textContent = `${who.username} (${who.role})`;
  document.body.dataset.role = who.role;
  show(true);
  const runs = await (await api("/runs")).json();
  const select = $("run");
  select.replaceChildren(...runs.map((r) => Object.assign(document.createElement("option"),
    { value: r.run_id, textContent: `${r.run_id} · ${r.mode} · ${r.status}` })));
  if (runs.length) await loadRun(runs[0].run_id);
}

window.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("run").addEventListener("change", (e) => loadRun(e.target.value));
  window.addEventListener("resize", renderEquity);
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
  if (csrf() && await refresh()) await start(); else show(false);
});
