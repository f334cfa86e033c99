"""The ccxt execution client with the user-data stream on (ccxt.pro ``watch_my_trades`` / ``watch_orders``)
against the local exchange replaying real candles: every fill booked exactly once through the stream, and
after a dropped stream REST fills the gap so no fill is lost or doubled."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ingest.localexchange.server import LocalExchange
from trader.domain import Fill, Order, OrderStatus, OrderType, Side
from trader.execution.ccxt_client import CcxtExecutionClient

from .conftest import SYMBOLS, make_client

S = OrderStatus
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _orders(client: CcxtExecutionClient) -> list[Order]:
    """A market buy of ETH (fills at once), a BTC limit buy and an ETH limit sell near the last price that the
    replayed prints fill in parts (the venue fills at most 0.07 per print)."""
    def last(symbol: str) -> float:
        return float(client.exchange.fetch_ticker(symbol)["last"])
    t = datetime.now(UTC)
    return [Order("u-000001-entry", "binance", "ETH/USDT", Side.BUY, OrderType.MARKET, 1.0, None, t),
            Order("u-000002-entry", "binance", "BTC/USDT", Side.BUY, OrderType.LIMIT, 0.3,
                  round(last("BTC/USDT") * 0.999, 2), t),
            Order("u-000003-entry", "binance", "ETH/USDT", Side.SELL, OrderType.LIMIT, 0.5,
                  round(last("ETH/USDT") * 1.001, 2), t)]


def _step(venue: LocalExchange, client: CcxtExecutionClient, fills: list[Fill], n: int) -> None:
    for _ in range(n):
        for sid in ("BTCUSDT", "ETHUSDT"):
            venue.step(sid)
        time.sleep(0.03)
        client.poll(fills.append)


def _venue_trade_ids(client: CcxtExecutionClient) -> list[str]:
    return sorted(f"binance-{t['id']}" for s in SYMBOLS for t in client.exchange.fetch_my_trades(s))


def _positions_agree(client: CcxtExecutionClient, fills: list[Fill], venue: LocalExchange, account: str) -> None:
    report = client.reconcile()
    for symbol in SYMBOLS:
        ours = sum(f.qty if f.side is Side.BUY else -f.qty for f in fills if f.symbol == symbol)
        assert report.positions.get(f"binance:{symbol}", 0.0) == pytest.approx(ours, abs=1e-9)
        base = symbol.split("/")[0]
        assert venue.engine.balance(account, base).free + venue.engine.balance(account, base).locked == \
            Decimal(str(report.positions.get(f"binance:{symbol}", 0.0))).quantize(Decimal("1e-8"))
    spent = sum((f.price * f.qty + f.fee) if f.side is Side.BUY else -(f.price * f.qty - f.fee) for f in fills
                if f.symbol == "ETH/USDT")
    # BTC buys pay their fee in BTC (net qty booked): the quote spent is price x gross qty
    spent += sum(f.price * f.qty + f.fee for f in fills if f.symbol == "BTC/USDT")
    assert report.cash["USDT"] == pytest.approx(100000 - spent, abs=1e-6)


def _started(venue: LocalExchange, url: str, fills: list[Fill]) -> CcxtExecutionClient:
    client = make_client(venue, url, user_stream=True, rest_check_s=3600.0)
    assert client.stream is not None
    client.reconcile()  # baseline balances
    _wait(lambda: client.stream is not None and client.stream.state()[0])
    client.poll(fills.append)  # the gap fill after the subscription: REST once
    assert client.rest_polls == 1
    return client


def test_stream_books_every_fill_once_without_rest_and_positions_equal_the_venue(venue, keys, tmp_path) -> None:
    fills: list[Fill] = []
    client = _started(venue, f"sqlite:///{tmp_path}/j.db", fills)
    venue.faults.apply(max_fill_qty=0.07)
    try:
        for o in _orders(client):
            assert client.submit(o, NOW).status in (S.FILLED, S.ACCEPTED)
        for _ in range(100):
            if not client.open_orders():
                break
            _step(venue, client, fills, 1)
        _wait(lambda: (client.poll(fills.append), len(fills) == len(_venue_trade_ids(client)))[1], 5.0)
        assert not client.open_orders()
        assert client.rest_polls == 1  # every fill and order update came over the stream
        assert client.stream is not None and client.stream.drops == 0
        assert client.stream.trades_received >= len(fills) >= 6
        ids = [f.id for f in fills]
        assert len(ids) == len(set(ids)) and sorted(ids) == _venue_trade_ids(client)  # each venue trade, once
        for cid in ("u-000001-entry", "u-000002-entry", "u-000003-entry"):
            o = client.query(cid)
            assert o.status is S.FILLED and o.filled_qty == pytest.approx(o.qty)
        partial = [st for _, st, _ in client.journal.events("u-000002-entry")]
        assert S.PARTIALLY_FILLED in partial and partial[-1] is S.FILLED  # streamed order updates
        _positions_agree(client, fills, venue, keys)
    finally:
        venue.faults.reset()
        client.close()


def test_stream_dropped_mid_run_falls_back_to_rest_and_no_fill_is_lost_or_doubled(venue, keys, tmp_path) -> None:
    fills: list[Fill] = []
    client = _started(venue, f"sqlite:///{tmp_path}/j.db", fills)
    stream = client.stream
    assert stream is not None
    venue.faults.apply(max_fill_qty=0.07)
    try:
        for o in _orders(client):
            client.submit(o, NOW)
        _step(venue, client, fills, 3)
        assert client.rest_polls == 1 and fills  # the stream is carrying the fills
        assert venue.drop_websockets() >= 1
        before = len(venue.engine.fills)
        for _ in range(3):  # fills made while the stream is down
            for sid in ("BTCUSDT", "ETHUSDT"):
                venue.step(sid)
        made_while_down = {f"binance-{f.trade_id}" for f in venue.engine.fills[before:] if f.account == keys}
        assert made_while_down
        _wait(lambda: stream.drops >= 1)
        client.poll(fills.append)
        _wait(lambda: stream.state() == (True, 2))  # reconnected and subscribed again
        polls = client.rest_polls
        client.poll(fills.append)  # the gap fill after the new subscription
        assert client.rest_polls == polls + 1
        assert made_while_down <= {f.id for f in fills}  # REST found what the dropped stream never delivered
        received = stream.trades_received
        for _ in range(100):
            if not client.open_orders():
                break
            _step(venue, client, fills, 1)
        _wait(lambda: (client.poll(fills.append), len(fills) == len(_venue_trade_ids(client)))[1], 5.0)
        assert not client.open_orders()
        assert stream.trades_received > received  # streaming again after the reconnect
        assert client.rest_polls == polls + 1
        ids = [f.id for f in fills]
        assert len(ids) == len(set(ids)) and sorted(ids) == _venue_trade_ids(client)  # none lost, none doubled
        _positions_agree(client, fills, venue, keys)
    finally:
        venue.faults.reset()
        client.close()
