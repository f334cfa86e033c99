"""The local exchange's spot user-data stream (Binance's WebSocket API ``userDataStream.subscribe.signature``
then ``executionReport`` events) through ccxt.pro's own ``binance`` class, on real replayed BTC/USDT candles."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from ingest.exchange.ccxt_compat import point_ccxt_at
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig

KEY, SECRET = "stream-key-0001", "stream-secret-0001"
CANDLES = "market/ohlcv_1h/ingiorn/Binance_BTCUSDT_1h.csv.gz"


@pytest.fixture(scope="module")
def venue(shared_data: Path) -> Iterator[LocalExchange]:
    ex = LocalExchange(LocalExchangeConfig(candle_files={"BTC/USDT": shared_data / CANDLES}, api_keys={KEY: SECRET},
                                           start_paused=True, candle_start_index=2000,
                                           balances={"USDT": "100000", "BTC": "0"}))
    ex.start()
    yield ex
    ex.stop()


async def _collect(watch: Any, out: list[dict[str, Any]]) -> None:
    while True:
        out.extend(dict(x) for x in await watch())  # ccxt updates cached orders in place: keep each update


def test_partial_fills_arrive_as_watch_my_trades_equal_to_fetch_my_trades(venue: LocalExchange) -> None:
    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        pro = point_ccxt_at(ccxtpro.binance({"apiKey": KEY, "secret": SECRET}), venue.base_url)
        rest = point_ccxt_at(ccxt.binance({"apiKey": KEY, "secret": SECRET}), venue.base_url)
        try:
            await pro.load_markets()
            rest.load_markets()
            await pro.authenticate()  # userDataStream.subscribe.signature, acknowledged with a subscriptionId
            trades: list[dict[str, Any]] = []
            orders: list[dict[str, Any]] = []
            tasks = [asyncio.create_task(_collect(lambda: pro.watch_my_trades("BTC/USDT"), trades)),
                     asyncio.create_task(_collect(lambda: pro.watch_orders("BTC/USDT"), orders))]
            await asyncio.sleep(0.2)
            close = float(rest.fetch_ticker("BTC/USDT")["last"])
            price = float(rest.price_to_precision("BTC/USDT", close * 0.995))
            order = rest.create_order("BTC/USDT", "limit", "buy", 0.3, price)
            venue.faults.apply(max_fill_qty=0.07)  # each replayed print fills at most 0.07: partial fills
            for _ in range(300):
                if rest.fetch_order(order["id"], "BTC/USDT")["status"] == "closed":
                    break
                venue.step("BTCUSDT")
            await asyncio.sleep(0.5)
            mine = [t for t in rest.fetch_my_trades("BTC/USDT") if t["order"] == order["id"]]
            for t in tasks:
                t.cancel()
            return trades, orders, mine, order
        finally:
            venue.faults.reset()
            await pro.close()

    streamed, orders, polled, order = asyncio.run(run())
    assert len(polled) >= 3, "the order should fill in several parts"
    assert sum(t["amount"] for t in polled) == pytest.approx(0.3, abs=1e-12)
    key = ("id", "order", "amount", "price", "side", "timestamp", "takerOrMaker")
    ours = [t for t in streamed if t["order"] == order["id"]]
    assert [tuple(t[k] for k in key) for t in ours] == [tuple(t[k] for k in key) for t in polled]
    assert [(t["fee"]["cost"], t["fee"]["currency"]) for t in ours] == \
        [(t["fee"]["cost"], t["fee"]["currency"]) for t in polled]
    assert all(t["fee"]["currency"] == "BTC" and t["takerOrMaker"] == "maker" for t in ours)
    statuses = [o["status"] for o in orders if o["id"] == order["id"]]
    assert statuses[0] == "open" and statuses[-1] == "closed"
    fills = [o["filled"] for o in orders if o["id"] == order["id"]]
    assert fills == sorted(fills) and fills[-1] == pytest.approx(0.3)


def test_cancel_is_streamed_as_an_order_update(venue: LocalExchange) -> None:
    async def run() -> tuple[list[dict[str, Any]], str]:
        pro = point_ccxt_at(ccxtpro.binance({"apiKey": KEY, "secret": SECRET}), venue.base_url)
        rest = point_ccxt_at(ccxt.binance({"apiKey": KEY, "secret": SECRET}), venue.base_url)
        try:
            await pro.load_markets()
            rest.load_markets()
            await pro.authenticate()
            orders: list[dict[str, Any]] = []
            task = asyncio.create_task(_collect(lambda: pro.watch_orders(), orders))
            await asyncio.sleep(0.2)
            close = float(rest.fetch_ticker("BTC/USDT")["last"])
            o = rest.create_order("BTC/USDT", "limit", "buy", 0.01, float(rest.price_to_precision(
                "BTC/USDT", close * 0.5)), {"clientOrderId": "stream-cancel-1"})
            rest.cancel_order(o["id"], "BTC/USDT")
            await asyncio.sleep(0.5)
            task.cancel()
            return orders, str(o["id"])
        finally:
            await pro.close()

    orders, oid = asyncio.run(run())
    mine = [o for o in orders if o["id"] == oid]
    assert [o["status"] for o in mine] == ["open", "canceled"]
    assert mine[-1]["clientOrderId"] == "stream-cancel-1" and mine[-1]["filled"] == 0


def test_a_bad_signature_is_refused_with_binance_1022(venue: LocalExchange) -> None:
    async def run() -> None:
        pro = point_ccxt_at(ccxtpro.binance({"apiKey": KEY, "secret": "not-the-secret"}), venue.base_url)
        try:
            await pro.load_markets()
            await asyncio.wait_for(pro.watch_my_trades("BTC/USDT"), 10)
        finally:
            await pro.close()

    with pytest.raises(ccxt.AuthenticationError) as info:
        asyncio.run(run())
    assert "-1022" in str(info.value)
