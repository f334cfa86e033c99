"""The trader's Prometheus /metrics endpoint, scraped over HTTP from a live session on the local exchange:
every series equals what the session's books say."""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trader.config import TraderConfig
from trader.domain import OrderStatus
from trader.execution.ccxt_client import CcxtVenueConfig
from trader.killswitch import KillSwitchConfig
from trader.risk import RiskConfig, SymbolLimits
from trader.session import SessionConfig, TradingSession
from trader.store import TradeStore

from .conftest import SYMBOLS
from .trading import CHURN


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "account"))
            out[(s.name, labels)] = s.value
    return out


def test_metrics_endpoint_serves_orders_fills_rejects_latencies_equity_exposure_and_risk_state(
        venue, keys, tmp_path) -> None:
    # ETH orders above 10 USDT are refused by risk: the churn strategy's ETH buys (60 USDT) are rejects
    risk = RiskConfig(per_symbol={"ETH/USDT": SymbolLimits(max_order_notional=10.0)})
    trader = TraderConfig(exchange="binance", symbols=tuple(SYMBOLS), timeframe="1h", risk=risk,
                          strategies=({"kind": CHURN},))
    cfg = SessionConfig(account_id="metrics", mode="live", venue=CcxtVenueConfig(base_url=venue.base_url),
                        poll_interval_s=0.05, metrics_port=0, kill=KillSwitchConfig(stale_bars=None))
    s = TradingSession(trader, cfg, TradeStore(f"sqlite:///{tmp_path}/j.db"))
    s._stop = threading.Event()
    s.start()
    try:
        for _ in range(3):
            for sid in ("BTCUSDT", "ETHUSDT"):
                venue.step(sid)
            s.step()
            s._persist()
        assert s.metrics_port
        m = _scrape(s.metrics_port)
        node, client = s.node, s.client
        by_state = Counter(str(o.status) for o in node.orders.values())
        for st in OrderStatus:
            assert m[("cryptolake_trader_orders", (("state", str(st)),))] == by_state.get(str(st), 0), st
        assert by_state["rejected"] == 3 and by_state["filled"] >= 3  # three ETH buys refused, BTC trades
        assert m[("cryptolake_trader_fills_total", ())] == len(node.fills) > 0
        assert m[("cryptolake_trader_rejects_total", ())] == 3
        sent, acks = len(client.sent_marks), len(client.ack_latency_s)  # type: ignore[attr-defined]
        assert sent >= 3 and m[("cryptolake_trader_signal_to_sent_seconds_count", ())] == sent
        assert 0 < m[("cryptolake_trader_signal_to_sent_seconds_sum", ())] < sent * 1.0
        assert m[("cryptolake_trader_sent_to_ack_seconds_count", ())] == acks == sent
        fills_timed = len(client.fill_latency_s)  # type: ignore[attr-defined]
        assert m[("cryptolake_trader_ack_to_fill_seconds_count", ())] == fills_timed == len(node.fills)
        assert m[("cryptolake_trader_ack_to_fill_seconds_bucket", (("le", "+Inf"),))] == fills_timed
        p = node.portfolio
        assert m[("cryptolake_trader_equity", ())] == pytest.approx(p.equity(), abs=1e-6)
        gross = sum(abs(q.qty) * p.last_prices[k] for k, q in p.positions.items())
        assert gross > 0 and m[("cryptolake_trader_gross_exposure", ())] == pytest.approx(gross, abs=1e-6)
        assert m[("cryptolake_trader_risk_state", (("state", "active"),))] == 1.0
        assert m[("cryptolake_trader_risk_state", (("state", "halted"),))] == 0.0
        assert m[("cryptolake_trader_consecutive_venue_errors", ())] == 0.0
        s.journal.put(kill="metrics test")
        s.step()
        s._persist()
        m = _scrape(s.metrics_port)
        assert m[("cryptolake_trader_risk_state", (("state", "halted"),))] == 1.0
        assert m[("cryptolake_trader_risk_state", (("state", "active"),))] == 0.0
    finally:
        s.stop()
    with pytest.raises(OSError):  # stopped: the endpoint is gone
        _scrape(s.metrics_port)
