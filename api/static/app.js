// cryptolake dashboard: no framework, no inline code (the CSP forbids it), tokens kept in memory only.
"use strict";
const API = "/api/v1";
const state = { token: null, role: null, user: null, run: null, account: null, ws: null, equity: [], fills: [],
  fillIds: new Set(), strategies: [], ticket: 0 };
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
  if (!state.account) $("stat-risk").textContent = last && last.risk_state ? last.risk_state : "-";
}

function renderFills(newIds) {
  $("stat-fills").textContent = String(state.fills.length);
  const rows = state.fills.slice(-200).reverse();
  table("fills", [["Time", (f) => time(f.ts)], ["Symbol", (f) => f.symbol], ["Side", (f) => f.side, (f) => f.side],
    ["Qty", (f) => fmt(f.qty, 6)], ["Price", (f) => fmt(f.price)], ["Fee", (f) => fmt(f.fee, 4)]], rows, newIds);
}

async function loadRun(runId) {
  const ticket = ++state.ticket;  // a later choice wins over a slower earlier load
  state.run = runId; state.account = null;
  $("controls-card").hidden = true;
  document.querySelectorAll(".run-only").forEach((el) => { el.hidden = false; });
  const [eq, fills, pos, orders] = await Promise.all(["equity", "fills", "positions", "orders"].map(
    (what) => api(`/runs/${encodeURIComponent(runId)}/${what}`).then((r) => (r.ok ? r.json() : []))));
  if (ticket !== state.ticket) return;
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
  connect({ run_id: runId });
}

async function loadAccount(account) {
  const ticket = ++state.ticket;
  state.account = account; state.run = null;
  const [info, fills] = await Promise.all([`/accounts/${encodeURIComponent(account)}`,
    `/accounts/${encodeURIComponent(account)}/fills`].map((p) => api(p).then((r) => (r.ok ? r.json() : null))));
  if (ticket !== state.ticket) return;
  state.equity = []; state.fills = fills || []; state.fillIds = new Set(state.fills.map((f) => f.id));
  renderEquity(); renderFills();
  table("positions", [], []); table("orders", [], []);
  $("controls-card").hidden = false;
  // A session's journal has no equity curve: its equity is in the trader's metrics, not drawn here.
  document.querySelectorAll(".run-only").forEach((el) => { el.hidden = true; });
  $("account-name").textContent = account;
  if (info) renderAccount(info);
  connect({ account });
}

function renderAccount(a) {
  $("account-state").textContent = a.state;
  $("account-state").dataset.state = a.state;
  $("stat-risk").textContent = a.state;
  $("halt-reason").textContent = a.halt_reason ? `(${a.halt_reason})` : "";
  $("pending").textContent = a.pending.length ? `requested: ${a.pending.join(", ")}` : "";
  state.strategies = a.strategies;
  const select = $("param-strategy");
  if (select) {
    const chosen = select.value;
    select.replaceChildren(...a.strategies.map((s) => Object.assign(document.createElement("option"),
      { value: s.name, textContent: s.name })));
    if (chosen) select.value = chosen;
  }
  $("strategy-config").textContent = a.strategies.map((s) =>
    `${s.name}: ${JSON.stringify(Object.assign({}, s.config, a.params[s.name] || {}))}`).join("\n");
}

function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-reason").value = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () =>
    resolve(dialog.returnValue === "ok" ? $("confirm-reason").value.trim() : null), { once: true }));
}

function problems(body) {
  if (body && Array.isArray(body.errors)) return body.errors.map((e) => `${e.field}: ${e.problem}`).join("; ");
  return body && typeof body.detail === "string" ? body.detail : "refused";
}

async function control(action) {
  const account = state.account;
  const reason = await confirmAction(`${action[0].toUpperCase()}${action.slice(1)} trading of ${account}?`);
  if (!reason) return;
  const r = await api(`/accounts/${encodeURIComponent(account)}/controls/${action}`, { method: "POST",
    body: JSON.stringify({ reason }) });
  const body = await r.json().catch(() => ({}));
  $("control-result").textContent = r.ok ? `${action} requested by ${body.requested_by}` : problems(body);
}

async function changeParam(event) {
  event.preventDefault();
  const strategy = $("param-strategy").value, field = $("param-field").value.trim();
  let value = $("param-value").value.trim();
  try { value = JSON.parse(value); } catch (_) { /* a bare string */ }
  const reason = await confirmAction(`Set ${strategy}.${field} = ${JSON.stringify(value)}?`);
  if (!reason) return;
  const r = await api(`/accounts/${encodeURIComponent(state.account)}/strategies/${encodeURIComponent(strategy)}/params`,
    { method: "PUT", body: JSON.stringify({ values: { [field]: value } }) });
  const body = await r.json().catch(() => ({}));
  $("control-result").textContent = r.ok ? `${strategy}.${field} change requested` : problems(body);
}

async function loadHealth() {
  const get = (p) => api(p).then(async (r) => ({ ok: r.ok, body: await r.json().catch(() => ({})) }));
  const [models, regime, fresh, alerts] = await Promise.all(["/models", "/regime", "/pipeline/freshness", "/alerts"]
    .map(get));
  if (models.ok) {
    const m = models.body;
    $("model-champion").textContent = m.champion ? m.champion.version : "none";
    $("model-drift").textContent = m.drift.psi === null ? m.drift.status : `${m.drift.status} (PSI ${fmt(m.drift.psi, 3)})`;
    $("model-drift-detail").textContent = m.drift.detail;
    table("models", [["Version", (v) => v.version], ["Trained", (v) => time(v.trained_at)],
      ["Promoted", (v) => (v.promoted ? "yes" : "no")], ["Gate", (v) => (v.gate_passed ? "passed" : "failed")]],
    m.versions.slice().reverse());
  }
  if (regime.ok) {
    const g = regime.body;
    $("regime").textContent = `${g.regime} (${g.symbol})`;
    $("selected").textContent = g.selected;
    $("regime-reason").textContent = `${g.reason}; prefers ${g.preferred}`;
    table("regime-timeline", [["Time", (c) => time(c.ts)], ["Regime", (c) => c.regime], ["Chosen", (c) => c.chosen]],
      g.timeline.slice().reverse());
  } else {
    $("regime-reason").textContent = problems(regime.body);
  }
  if (fresh.ok) table("freshness", [["Table", (t) => t.table], ["Version", (t) => String(t.version)],
    ["Age", (t) => `${fmt(t.age_s / 3600, 1)} h`]], fresh.body);
  if (alerts.ok) {
    state.alerts = alerts.body;
    table("alerts", [["Time", (a) => time(a.ts)], ["Alert", (a) => a.title]], alerts.body);
  }
  await loadBacktests();
}

async function loadBacktests() {
  const r = await api("/backtests");
  if (!r.ok) return;
  const body = await r.json();
  const byRun = new Map(body.runs.map((b) => [b.run_id, b]));
  const rows = body.jobs.map((j) => ({ id: j.run_id || j.id, status: j.status, when: j.started_at,
    what: `${j.strategy} ${j.symbols.join(",")}`, error: j.error, sheet: j.run_id && byRun.has(j.run_id) && byRun.get(j.run_id).tearsheet }));
  for (const b of body.runs) if (!rows.some((x) => x.id === b.run_id)) {
    rows.push({ id: b.run_id, status: b.status, when: b.last_event, what: b.run_id, sheet: b.tearsheet });
  }
  table("backtests", [["Backtest", (b) => b.what], ["Started", (b) => time(b.when)],
    ["Status", (b) => (b.error ? `${b.status}: ${b.error}` : b.status)], ["Tearsheet", (b) => (b.sheet ? "open" : "-")]], rows);
  $("backtests").querySelectorAll("tbody tr").forEach((tr, i) => {
    const cell = tr.lastChild;
    if (!rows[i].sheet) return;
    cell.replaceChildren(Object.assign(document.createElement("button"), { className: "link", textContent: "open",
      onclick: () => openTearsheet(rows[i].id) }));
  });
  if (body.jobs.some((j) => j.status === "running")) setTimeout(loadBacktests, 2000);
}

async function openTearsheet(runId) {
  const r = await api(`/backtests/${encodeURIComponent(runId)}/tearsheet`);
  if (!r.ok) return;
  const url = URL.createObjectURL(await r.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: `${runId}-tearsheet.html` });
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function startBacktest(event) {
  event.preventDefault();
  const r = await api("/backtests", { method: "POST", body: JSON.stringify({ strategy: { kind: $("bt-strategy").value.trim() } }) });
  const body = await r.json().catch(() => ({}));
  $("bt-result").textContent = r.ok ? `backtest ${body.id} started` : problems(body);
  await loadBacktests();
}

function connect(target) {
  if (state.ws) state.ws.close();
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${API}/ws`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify(Object.assign({ token: state.token }, target)));
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") { $("live").textContent = "live"; $("live").classList.add("on"); }
    if (msg.type === "fill" && !state.fillIds.has(msg.data.id)) {
      const f = Object.assign({}, msg.data, { ts: msg.data.ts_ms });
      state.fillIds.add(f.id); state.fills.push(f); renderFills(new Set([f.id]));
    }
    if (msg.type === "state" && state.account === msg.data.account) renderAccount(msg.data);
    if (msg.type === "alert") {
      state.alerts = [msg.data].concat(state.alerts || []).slice(0, 200);
      table("alerts", [["Time", (x) => time(x.ts)], ["Alert", (x) => x.title]], state.alerts);
    }
    if (msg.type === "equity") {
      const seen = new Set(state.equity.map((p) => Date.parse(p.ts)));
      for (const p of msg.data) if (!seen.has(p.ts_ms)) state.equity.push(Object.assign({}, p, { ts: p.ts_ms }));
      renderEquity();
    }
  };
  ws.onclose = () => { $("live").textContent = "offline"; $("live").classList.remove("on");
    if (state.ws === ws && state.token) setTimeout(() => state.ws === ws && connect(target), 2000); };
}

async function start() {
  const me = await api("/auth/me");
  if (!me.ok) { show(false); return; }
  const who = await me.json();
  state.user = who.username; state.role = who.role;
  $("who").textContent = `${who.username} (${who.role})`;
  document.body.dataset.role = who.role;
  // Least privilege on the page too: a viewer's page has no control at all (the API refuses them anyway).
  if (who.role === "viewer") document.querySelectorAll(".control").forEach((el) => el.remove());
  show(true);
  const [runs, accounts] = await Promise.all(["/runs", "/accounts"].map((p) => api(p).then((r) => (r.ok ? r.json() : []))));
  const group = (label) => Object.assign(document.createElement("optgroup"), { label });
  const runsGroup = group("Runs"), sessions = group("Sessions");
  runsGroup.append(...runs.map((r) => Object.assign(document.createElement("option"),
    { value: `run:${r.run_id}`, textContent: `${r.run_id} · ${r.mode} · ${r.status}` })));
  sessions.append(...accounts.map((a) => Object.assign(document.createElement("option"),
    { value: `account:${a.account}`, textContent: `${a.account} · session · ${a.state}` })));
  $("run").replaceChildren(...[runsGroup, sessions].filter((g) => g.children.length));
  loadHealth();
  if (runs.length) await loadRun(runs[0].run_id);
  else if (accounts.length) await loadAccount(accounts[0].account);
}

function choose(value) {
  const [kind, ...rest] = value.split(":");
  const id = rest.join(":");
  return kind === "account" ? loadAccount(id) : loadRun(id);
}

window.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("run").addEventListener("change", (e) => choose(e.target.value));
  document.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => control(b.dataset.action)));
  $("params-form").addEventListener("submit", changeParam);
  $("backtest-form").addEventListener("submit", startBacktest);
  window.addEventListener("resize", renderEquity);
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
  if (csrf() && await refresh()) await start(); else show(false);
});
