"""The controls end to end: the API writes them to the journal, a live session on the local exchange acts.

A real :class:`~trader.session.TradingSession` (the churn test strategy, real Binance candles) trades on the
local exchange; pause, resume, a parameter change, flatten and kill go through the API, are audited, and
change what the session does on its next step. A viewer is refused (403) and the refusal is audited too.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from ingest.localexchange.server import LocalExchange
from tests.api.conftest import make_api
from tests.trader.live.conftest import SYMBOLS, venue_config
from tests.trader.live.trading import CHURN
from trader.config import TraderConfig
from trader.domain import OrderStatus
from trader.execution.ccxt_client import CcxtVenueConfig
from trader.killswitch import KillSwitchConfig
from trader.risk import TradingState
from trader.session import SessionConfig, TradingSession
from trader.store import TradeStore


@pytest.fixture(scope="module")
def venue(shared_data):
    ex = LocalExchange(venue_config(shared_data))
    ex.start()
    yield ex
    ex.stop()


def session(venue: LocalExchange, store_url: str, account: str = "desk") -> TradingSession:
    trader = TraderConfig(exchange="binance", symbols=tuple(SYMBOLS), timeframe="1h",
                          strategies=({"kind": CHURN, "markup": 0.05},))
    cfg = SessionConfig(account_id=account, mode="live", venue=CcxtVenueConfig(base_url=venue.base_url),
                        poll_interval_s=0.05, kill=KillSwitchConfig(stale_bars=None))
    s = TradingSession(trader, cfg, TradeStore(store_url))
    s._stop = threading.Event()
    s.start()
    return s


def bar(venue: LocalExchange, s: TradingSession) -> None:
    for sid in ("BTCUSDT", "ETHUSDT"):
        venue.step(sid)
    step(s)


def step(s: TradingSession) -> None:
    """One loop of :meth:`TradingSession.run`: step, then persist."""
    s.step()
    s._persist()


def settle(s: TradingSession, fills: int, timeout: float = 15.0) -> None:
    """Loop until the node holds ``fills`` fills: the venue's fills reach the session through its user
    stream, asynchronously, so one loop right after the orders may not have them yet."""
    deadline = time.monotonic() + timeout
    while len(s.node.fills) < fills and time.monotonic() < deadline:
        time.sleep(0.05)
        step(s)


@pytest.fixture
def webhook():
    from http.server import HTTPServer

    from tests.cryptolake.test_alerts import _Hook

    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"json://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()
    server.server_close()


def test_controls_reach_the_session_through_the_journal(tmp_path, venue, monkeypatch, webhook, request) -> None:
    key = "k-controls"
    venue.add_account(key, "s-controls")
    monkeypatch.setenv("CRYPTOLAKE__TRADER__API_KEY", key)
    monkeypatch.setenv("CRYPTOLAKE__TRADER__API_SECRET", "s-controls")
    monkeypatch.setenv("CRYPTOLAKE_ALERT_URLS", webhook[0])  # the session's alerts go to a local webhook
    api = make_api(tmp_path)
    s = session(venue, api.store_url)
    request.addfinalizer(s.client.close)  # the user stream's thread stops even when an assertion fails
    trader, viewer = api.bearer("tess"), api.bearer("vic")
    bar(venue, s)  # churn buys both symbols at market: fills on the venue, adopted into the journal
    settle(s, fills=2)
    accounts = api.client.get("/api/v1/accounts", headers=viewer).json()
    assert [a["account"] for a in accounts] == ["desk"] and accounts[0]["state"] == "active"
    assert accounts[0]["strategies"][0]["name"] == "churn" and accounts[0]["strategies"][0]["config"]["markup"] == 0.05
    fills = api.client.get("/api/v1/accounts/desk/fills", headers=viewer).json()
    assert len(fills) == len(s.node.fills) >= 2 and {f["side"] for f in fills} == {"buy"}

    # A viewer may read but not control; the refusal is audited.
    r = api.client.post("/api/v1/accounts/desk/controls/pause", json={"reason": "x"}, headers=viewer)
    assert r.status_code == 403 and "needs 'trader'" in r.json()["detail"]

    r = api.client.post("/api/v1/accounts/desk/controls/pause", json={"reason": "lunch"}, headers=trader)
    assert r.status_code == 202 and r.json()["reason"] == "lunch (by tess)"
    assert api.client.get("/api/v1/accounts/desk", headers=viewer).json()["pending"] == ["pause"]
    bar(venue, s)  # churn rests limit sells on this bar, then the loop reads the pause
    assert s.node.risk.state is TradingState.HALTED and s.node.risk.halt_reason == "paused by operator: lunch (by tess)"
    resting = s.client.open_orders()
    assert resting and {o.side for o in resting} == {"sell"}  # a pause cancels nothing
    state = api.client.get("/api/v1/accounts/desk", headers=viewer).json()
    assert state["state"] == "halted" and state["pending"] == [] and "lunch" in state["halt_reason"]

    r = api.client.post("/api/v1/accounts/desk/controls/resume", json={"reason": "back"}, headers=trader)
    assert r.status_code == 202
    bar(venue, s)
    assert s.node.risk.state is TradingState.ACTIVE

    # A parameter change is validated by the strategy's own config class, then applied by the session.
    bad = api.client.put("/api/v1/accounts/desk/strategies/churn/params", json={"values": {"markup": -1}},
                         headers=trader)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "values.markup"
    assert "-1" not in json.dumps(bad.json()["errors"])
    fixed = api.client.put("/api/v1/accounts/desk/strategies/churn/params", json={"values": {"kind": "x"}},
                           headers=trader)
    assert fixed.status_code == 422 and fixed.json()["errors"][0]["field"] == "values.kind"
    missing = api.client.put("/api/v1/accounts/desk/strategies/nope/params", json={"values": {"markup": 0.1}},
                             headers=trader)
    assert missing.status_code == 404
    seq = s.strategies[0].seq
    ok = api.client.put("/api/v1/accounts/desk/strategies/churn/params", json={"values": {"notional": 80.0}},
                        headers=trader)
    assert ok.status_code == 202 and ok.json()["config"]["notional"] == 80.0 and ok.json()["config"]["markup"] == 0.05
    bar(venue, s)
    assert s.strategies[0].config.notional == 80.0 and s.strategies[0].seq >= seq

    # Flatten: halt, cancel what rests, close every position at market.
    r = api.client.post("/api/v1/accounts/desk/controls/flatten", json={"reason": "risk off"}, headers=trader)
    assert r.status_code == 202
    step(s)
    step(s)
    assert s.node.risk.state is TradingState.HALTED and "flattened by operator" in s.node.risk.halt_reason
    assert s.client.open_orders() == []
    held = {k: p.qty for k, p in s.node.portfolio.positions.items()}
    assert all(abs(q) < 1e-5 for q in held.values()), held  # only venue dust below one lot can remain

    # Resume, then pause again while flat: the strategy's next buy is refused, nothing reaches the venue.
    api.client.post("/api/v1/accounts/desk/controls/resume", json={"reason": "flat again"}, headers=trader)
    step(s)
    assert s.node.risk.state is TradingState.ACTIVE
    api.client.post("/api/v1/accounts/desk/controls/pause", json={"reason": "hold"}, headers=trader)
    step(s)
    orders_before, venue_before = len(s.node.orders), len(venue.engine.orders)
    bar(venue, s)
    buys = [o for o in list(s.node.orders.values())[orders_before:] if o.side == "buy"]
    assert len(buys) == 2 and all(o.status is OrderStatus.REJECTED and "paused by operator: hold" in o.reason
                                  for o in buys)
    assert len(venue.engine.orders) == venue_before

    r = api.client.post("/api/v1/accounts/desk/controls/kill", json={"reason": "done"}, headers=trader)
    assert r.status_code == 202
    step(s)
    assert api.client.get("/api/v1/accounts/desk", headers=viewer).json()["pending"] == ["kill"]
    audit = api.client.get("/api/v1/audit", headers=api.bearer("ada")).json()
    actions = [(a["action"], a["outcome"], a["username"]) for a in audit if a["action"].startswith("control")]
    assert actions[::-1] == [("control", "denied", "vic"), ("control.pause", "ok", "tess"),
                             ("control.resume", "ok", "tess"), ("control.params", "invalid", "tess"),
                             ("control.params", "invalid", "tess"), ("control.params", "ok", "tess"),
                             ("control.flatten", "ok", "tess"), ("control.resume", "ok", "tess"),
                             ("control.pause", "ok", "tess"), ("control.kill", "ok", "tess")]
    nobody = api.client.post("/api/v1/accounts/nobody/controls/kill", json={"reason": "x"}, headers=trader)
    assert nobody.status_code == 404
    s.alerts.flush()
    titles = [h["title"] for h in webhook[1]]
    assert titles.count("Trading halted: desk") == 3  # two pauses and the flatten (the kill came while halted)
    assert len([t for t in titles if t.startswith("Fill ")]) == len(s.node.fills)  # each fill once
    s.stop()
