"""Crash test: the live trader SIGKILLed at random points of its orders' lives, 20+ times in one test.

The trader runs ``cryptolake trade run --live`` in a real process (forked from a server that imported its
modules once, see ``trading.spawn_trader``) against the local exchange (real
Binance BTC/USDT and ETH/USDT hourly candles replayed one per second, partial fills by a capped
replayed print, when a limit
order rests long enough). After each kill it restarts, reconciles, adopts what happened while it was down and
trades on. Afterwards: no client order id reached the venue twice, every venue trade is a journal
fill, and the journal's positions and cash equal the venue's balances. The printed summary says in
which journal state each kill landed (the points actually hit vary with the machine's speed).
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest

from ingest.localexchange.server import LocalExchange
from trader.execution.ccxt_client import CcxtExecutionClient, CcxtVenueConfig
from trader.orders import OrderJournal
from trader.store import TradeStore

from .conftest import venue_config
from .trading import (
    duplicate_client_ids,
    journal_positions,
    spawn_trader,
    venue_balances,
    venue_orders,
    wait_for,
)

KILLS = 20


@pytest.mark.slow
def test_sigkill_at_random_points_then_restart_reconciles_everything(shared_data, tmp_path, monkeypatch) -> None:
    ex = LocalExchange(venue_config(shared_data, start_paused=False, candle_step_s=1.0))
    ex.start()
    try:
        account = ex.add_account("crash-key", "crash-secret")
        ex.faults.apply(max_fill_qty=0.0005)  # resting limit sells fill in parts over several candles
        url = f"sqlite:///{tmp_path}/journal.db"
        rng = random.Random(20261202)
        last_states: Counter[str] = Counter()
        for i in range(KILLS):
            proc = spawn_trader(ex, "crash-key", "crash-secret", url)
            if i % 5 == 4:  # during start-up: restore, resolution of doubtful orders, reconciliation
                time.sleep(rng.uniform(0.3, 2.5))
            else:  # while trading: submits, partial fills, cancels and venue fills are all in flight
                wait_for(proc, "node.started", timeout=300)
                time.sleep(rng.uniform(0.2, 4.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            assert proc.returncode == -signal.SIGKILL
            events = OrderJournal(TradeStore(url), "crash").events()
            if events:
                last_states[str(events[-1][1])] += 1
        # a clean run after the last kill: it reconciles, trades a few bars and stops on SIGTERM with exit 0
        proc = spawn_trader(ex, "crash-key", "crash-secret", url)
        wait_for(proc, "node.started", timeout=300)
        time.sleep(4)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        halt = OrderJournal(TradeStore(url), "crash").get("halt_reason")
        assert "state=active" in out, f"{out}\nhalt: {halt}\n{err[-3000:]}"  # a string: shown in full
        # the next start resumes from the stored state: no client id is sent twice
        proc = spawn_trader(ex, "crash-key", "crash-secret", url)
        wait_for(proc, "node.started", timeout=300)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "state=active" in out, err[-3000:]
        # the venue kept filling resting orders after the stop: freeze it, then do what the next start does
        ex.pause()
        time.sleep(1.0)
        monkeypatch.setenv("CRYPTOLAKE__TRADER__API_KEY", "crash-key")
        monkeypatch.setenv("CRYPTOLAKE__TRADER__API_SECRET", "crash-secret")
        journal = OrderJournal(TradeStore(url), "crash")
        CcxtExecutionClient(CcxtVenueConfig(base_url=ex.base_url, user_stream=False), ["BTC/USDT", "ETH/USDT"],
                            journal).poll(lambda f: None)
        orders = venue_orders(ex, account)
        assert len(orders) >= 20, f"only {len(orders)} orders reached the venue"
        assert duplicate_client_ids(ex, account) == {}
        ours = {o.id for o in journal.orders.values()}
        assert {str(o.order_id) for o in orders} <= ours  # every venue order is in the journal
        venue_trades = {f"binance-{f.trade_id}" for f in ex.engine.fills if f.account == account}
        assert venue_trades == journal.fill_ids  # every venue fill adopted exactly once
        pos, bal = journal_positions(url, "crash"), venue_balances(ex, account)
        for asset in ("BTC", "ETH"):
            assert pos[asset] == pytest.approx(bal.get(asset, 0.0), abs=1e-8), (asset, pos, bal)
        assert pos["USDT"] == pytest.approx(bal["USDT"], abs=1e-6)
        statuses = Counter(str(o.status) for o in journal.orders.values())
        print(f"kills={KILLS} last journal state at each kill={dict(last_states)} venue orders={len(orders)} "
              f"fills={len(venue_trades)} journal statuses={dict(statuses)} "
              f"partial fills={sum(1 for o in orders if 0 < o.executed_qty < o.orig_qty)}")
    finally:
        ex.stop()
