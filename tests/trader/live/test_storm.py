"""A 60-second storm of 429 and 503 answers: bounded back-off, no duplicate order, the reject-rate switch."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from trader.domain import Order, OrderStatus, OrderType, Side
from trader.killswitch import KillSwitchConfig, KillSwitches

from .conftest import make_client

STORM_S = 60.0


@pytest.mark.slow
def test_storm_backs_off_boundedly_sends_nothing_twice_and_trips_the_reject_rate(venue, keys, tmp_path) -> None:
    client = make_client(venue, f"sqlite:///{tmp_path}/j.db", recv_window_ms=1000, max_attempts=4,
                         base_delay_s=0.5, max_delay_s=4.0)
    client._sleep = time.sleep  # real back-off
    switches = KillSwitches(KillSwitchConfig(stale_bars=None, max_reject_rate=0.5, reject_window=4), 60.0)
    venue.faults.reset()
    venue.faults.apply(storm_s=STORM_S, storm_5xx_every=3, retry_after_s=1)
    t0, n, tripped = time.monotonic(), 0, None
    outcomes: Counter[str] = Counter()
    while time.monotonic() - t0 < STORM_S - 5:
        n += 1
        o = client.submit(Order(f"st-{n:06d}-entry", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, 0.001,
                                None, datetime.now(UTC)), datetime.now(UTC))
        outcomes[str(o.status)] += 1
        switches.on_order(o.status in (OrderStatus.REJECTED, OrderStatus.UNKNOWN))  # not accepted
        tripped = tripped or switches.check()
    log = [(t, s) for t, _, s in venue.faults.request_log if t >= t0]
    assert {s for _, s in log} <= {429, 503} and len(log) > 10
    gaps = [b[0] - a[0] for a, b in pairwise(log)]
    assert max(gaps) <= 4.0 * 1.1 + 1.5  # never longer than the capped back-off (+ one request's time)
    assert len(log) / (log[-1][0] - log[0][0]) < 4.0  # backed off: no hammering the venue
    assert tripped is not None and tripped.startswith("reject rate")
    while time.monotonic() - t0 < STORM_S + 2:
        time.sleep(0.5)
    client.poll(lambda f: None)  # the storm is over: doubtful submits are looked up by client id
    time.sleep(1.5)
    client.poll(lambda f: None)
    mine = [x for x in venue.engine.orders.values() if x.account == keys]
    assert mine == []  # every answer was an error: nothing reached the matching engine, nothing twice
    assert all(o.status is OrderStatus.REJECTED for o in client.journal.orders.values())
    print(f"storm: {len(log)} requests in {log[-1][0] - log[0][0]:.1f}s, max gap {max(gaps):.2f}s, "
          f"submits {n} -> {dict(outcomes)}, switch: {tripped}")
