"""Helpers of the live-path tests: a running local exchange, the trader as a real subprocess, checks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from ingest.localexchange.server import LocalExchange
from trader.domain import Instrument
from trader.orders import OrderJournal
from trader.portfolio import Portfolio
from trader.store import TradeStore

ROOT = Path(__file__).resolve().parents[3]
CHURN = "tests/trader/live/churn.py:Churn"


def spawn_trader(venue: LocalExchange, key: str, secret: str, store_url: str, *args: str,
                 account: str = "crash") -> subprocess.Popen[str]:
    """``cryptolake trade run --live`` against ``venue`` in its own process (killable for real)."""
    env = {**os.environ, "CRYPTOLAKE__TRADER__API_KEY": key, "CRYPTOLAKE__TRADER__API_SECRET": secret}
    cmd = [sys.executable, "-m", "cli.main", "trade", "run", "--strategy", CHURN, "--symbols", "BTC/USDT,ETH/USDT",
           "--live", "--account", account, "--base-url", venue.base_url, "--store-url", store_url,
           "--poll-interval", "0.2", "--bar-interval", "1.0", "--stale-bars", "30", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 90.0) -> list[str]:
    """Read the trader's stderr until a line contains ``text``; returns the lines read (fails on timeout)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if text in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        raise AssertionError(f"trader never logged {text!r}: {''.join(lines)[-3000:]}")
    return lines


def venue_orders(venue: LocalExchange, account: str) -> list[Any]:
    return [o for o in venue.engine.orders.values() if o.account == account]


def duplicate_client_ids(venue: LocalExchange, account: str) -> dict[str, int]:
    counts = Counter(o.client_order_id for o in venue_orders(venue, account))
    return {cid: n for cid, n in counts.items() if n > 1}


def journal_positions(store_url: str, account: str) -> dict[str, float]:
    """Positions rebuilt from every fill the journal adopted (what a restarted trader starts from)."""
    j = OrderJournal(TradeStore(store_url), account)
    symbols = ("BTC/USDT", "ETH/USDT")
    p = Portfolio(100_000.0, [Instrument("binance", s, 2, 8) for s in symbols])
    for f in j.fills():
        p.apply(f)
    return {s.split("/")[0]: p.positions[f"binance:{s}"].qty for s in symbols} | {"USDT": p.cash}


def venue_balances(venue: LocalExchange, account: str) -> dict[str, float]:
    bal = venue.engine.balances.get(account, {})
    return {a: float(b.free + b.locked) for a, b in bal.items()}
