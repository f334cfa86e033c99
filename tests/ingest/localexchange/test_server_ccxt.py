"""ccxt's own binance class (sync and async) against the local exchange replaying real captures."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt
import ccxt.pro as ccxtpro
import pytest

from cryptolake import errors
from ingest.exchange.ccxt_compat import point_ccxt_at, translate
from ingest.localexchange.data import load_capture, parse_cdd_csv
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig
from tests.ingest.conftest import BINANCE_CAPTURE, reference_book

KEY, SECRET = "test-key-0001", "test-secret-0001"


@pytest.fixture(scope="module")
def paths(shared_data):
    return {"capture": shared_data / BINANCE_CAPTURE,
            "candles": shared_data / "market/ohlcv_1h/ingiorn/Binance_BTCUSDT_1h.csv.gz"}


@pytest.fixture(scope="module")
def exchange(paths):
    ex = LocalExchange(LocalExchangeConfig(captures=(paths["capture"],), candle_files={"BTC/USDT": paths["candles"]},
                                           api_keys={KEY: SECRET}, speed=3.0))
    ex.start()
    yield ex
    ex.stop()


def _client(ex, **kw):
    return point_ccxt_at(ccxt.binance({"apiKey": KEY, "secret": SECRET, "enableRateLimit": True, **kw}), ex.base_url)


def test_point_ccxt_at_rewrites_every_api_url(exchange):
    client = _client(exchange)
    urls = []

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        else:
            urls.append(node)

    walk(point_ccxt_at(ccxtpro.binance(), exchange.base_url).urls["api"])
    walk(client.urls["api"])
    assert urls and all(u.startswith((exchange.base_url, exchange.ws_url)) for u in urls)


def test_ccxt_sync_market_data_matches_replayed_data(exchange, paths):
    client = _client(exchange)
    markets = client.load_markets()
    assert markets["BTC/USDT"]["precision"]["price"] == 0.01

    # OHLCV: the real candles, in order, as recorded.
    expected = parse_cdd_csv(paths["candles"])
    since = expected[1000].open_time
    got = client.fetch_ohlcv("BTC/USDT", "1h", since=since, limit=5)
    assert [r[0] for r in got] == [c.open_time for c in expected[1000:1005]]
    assert [r[4] for r in got] == [c.close for c in expected[1000:1005]]

    # Order book: ccxt's snapshot equals the server's replayed book at the same update id.
    book = client.fetch_order_book("BTC/USDT", 20)
    assert book["nonce"] >= 50093239218
    assert book["bids"][0][0] < book["asks"][0][0]
    assert len(book["bids"]) == 20

    # Trades: every id ccxt returns is a recorded trade with the recorded price and size.
    recorded = {int(e.data["t"]): e.data for e in load_capture(paths["capture"]).of_kind("trade")}
    trades = client.fetch_trades("BTC/USDT", limit=50)
    assert trades
    for t in trades:
        rec = recorded[int(t["id"])]
        assert t["price"] == float(rec["p"]) and t["amount"] == float(rec["q"])
        assert t["timestamp"] == rec["T"]


def test_ccxt_sync_orders_fill_against_replayed_liquidity(exchange):
    client = _client(exchange)
    client.load_markets()
    before = client.fetch_balance()
    resting = client.create_order("BTC/USDT", "limit", "buy", 0.01, 30000)
    assert resting["status"] == "open"
    assert client.fetch_balance()["USDT"]["used"] == pytest.approx(300.0)
    assert client.cancel_order(resting["id"], "BTC/USDT")["status"] == "canceled"
    assert client.fetch_order(resting["id"], "BTC/USDT")["status"] == "canceled"

    asks = client.fetch_order_book("BTC/USDT", 5)["asks"]
    order = client.create_order("BTC/USDT", "market", "buy", 0.002)
    assert order["status"] == "closed" and order["filled"] == pytest.approx(0.002)
    assert asks[0][0] - 50 <= order["average"] <= asks[-1][0] + 50  # taken from the replayed asks
    after = client.fetch_balance()
    fee = 0.002 * 0.001
    assert after["BTC"]["total"] == pytest.approx(before["BTC"]["total"] + 0.002 - fee, abs=1e-9)
    assert after["USDT"]["total"] == pytest.approx(before["USDT"]["total"] - order["cost"], rel=1e-9)
    mine = client.fetch_my_trades("BTC/USDT")
    assert {t["order"] for t in mine} >= {order["id"]}
    assert all(t["fee"]["currency"] == "BTC" for t in mine if t["order"] == order["id"])


def test_wrong_secret_is_rejected_with_binance_1022(exchange):
    bad = point_ccxt_at(ccxt.binance({"apiKey": KEY, "secret": "wrong-secret"}), exchange.base_url)
    with pytest.raises(ccxt.AuthenticationError) as info:
        bad.fetch_balance()
    assert "-1022" in str(info.value)
    assert isinstance(translate(info.value, "fetch_balance", bad), errors.AuthenticationError)


def test_matching_engine_partial_fill_and_fees_between_accounts(exchange):
    """Price-time priority own book: a resting sell far above the replayed book fills a later buy."""
    engine = exchange.engine
    from ingest.localexchange.matching import MarketSpec, MatchingEngine

    eng = MatchingEngine({"BTCUSDT": MarketSpec("BTCUSDT", "BTC", "USDT")})
    for acct in ("a", "b", "c"):
        eng.fund(acct, "BTC", Decimal("1"))
        eng.fund(acct, "USDT", Decimal("100000"))
    eng.reset_replay_book("BTCUSDT", {Decimal("100"): Decimal("1")}, {Decimal("200"): Decimal("0.5")})
    s1 = eng.place("a", "BTCUSDT", "SELL", "LIMIT", qty=Decimal("0.3"), price=Decimal("150"), time_ms=1)
    s2 = eng.place("b", "BTCUSDT", "SELL", "LIMIT", qty=Decimal("0.3"), price=Decimal("150"), time_ms=2)
    buy = eng.place("c", "BTCUSDT", "BUY", "LIMIT", qty=Decimal("0.4"), price=Decimal("160"), time_ms=3)
    assert buy.status == "FILLED" and buy.cumm_quote == Decimal("60.0")
    assert (s1.status, s2.status) == ("FILLED", "PARTIALLY_FILLED")  # time priority at one price
    assert s2.executed_qty == Decimal("0.1")
    assert eng.balance("c", "BTC").free == Decimal("1") + Decimal("0.4") * Decimal("0.999")
    assert eng.balance("a", "USDT").free == Decimal("100000") + Decimal("45") * Decimal("0.999")
    assert engine is exchange.engine


def test_commissions_are_booked_at_the_eight_decimals_the_venue_reports():
    """A fee with more than 8 decimals is rounded once; the balance moves by exactly what the fill reports."""
    from ingest.localexchange.matching import MarketSpec, MatchingEngine

    eng = MatchingEngine({"ETHUSDT": MarketSpec("ETHUSDT", "ETH", "USDT")}, taker_fee=Decimal("0.00075"))
    eng.fund("a", "USDT", Decimal("1000"))
    eng.reset_replay_book("ETHUSDT", {Decimal("100.01"): Decimal("1")}, {Decimal("100.03"): Decimal("1")})
    buy = eng.place("a", "ETHUSDT", "BUY", "MARKET", qty=Decimal("0.12347"), time_ms=1)
    (fill,) = buy.fills
    assert fill.commission == Decimal("0.00009260")  # 0.12347 * 0.00075 = 0.0000926025
    assert eng.balance("a", "ETH").free == Decimal("0.12347") - Decimal("0.00009260")
    sell = eng.place("a", "ETHUSDT", "SELL", "MARKET", qty=Decimal("0.12337"), time_ms=2)
    assert sell.fills[0].commission == Decimal("0.00925368")  # 12.3382337 * 0.00075 = 0.009253675275
    assert eng.balance("a", "ETH").free == Decimal("0.0000074")
    assert eng.balance("a", "USDT").free == (Decimal("1000") - Decimal("0.12347") * Decimal("100.03")
                                             + Decimal("0.12337") * Decimal("100.01") - Decimal("0.00925368"))


def test_ccxt_async_watch_trades_and_order_book(exchange, paths):
    capture = load_capture(paths["capture"])
    recorded = {int(e.data["t"]) for e in capture.of_kind("trade")}

    async def go():
        client = point_ccxt_at(ccxtpro.binance({"enableRateLimit": True}), exchange.base_url)
        try:
            trades = await client.watch_trades("BTC/USDT")
            books = []
            for _ in range(5):
                ob = await client.watch_order_book("BTC/USDT")
                books.append((ob["nonce"], [list(x) for x in ob["bids"][:10]], [list(x) for x in ob["asks"][:10]]))
            return trades, books
        finally:
            await client.close()

    trades, books = asyncio.run(go())
    assert trades and all(int(t["id"]) in recorded for t in trades)
    nonces = [b[0] for b in books]
    assert nonces == sorted(nonces) and len(set(nonces)) == len(nonces)
    # Reference: snapshot + recorded diffs up to the book's nonce, applied independently here.
    nonce, bids, asks = books[-1]
    last, ref_b, ref_a = reference_book(capture, nonce)
    assert last == nonce
    assert bids == [[p, ref_b[p]] for p in sorted(ref_b, reverse=True)[:10]]
    assert asks == [[p, ref_a[p]] for p in sorted(ref_a)[:10]]
