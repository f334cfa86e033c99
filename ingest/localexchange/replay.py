"""Per-market replay state: the recorded book, trades and candles at the replay cursor.

The server owns one :class:`MarketReplay` per market. Applying an event updates the
Binance-style book (with its ``lastUpdateId``), the trade history, the best bid/ask and
the 1-minute klines built from trades, and feeds the matching engine's replayed liquidity.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ingest.localexchange.data import Candle, CandleSet, Capture, CaptureEvent

_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")


def split_symbol_id(symbol_id: str) -> tuple[str, str]:
    """``BTCUSDT`` -> (``BTC``, ``USDT``) by the known quote assets."""
    for quote in _QUOTES:
        if symbol_id.endswith(quote) and len(symbol_id) > len(quote):
            return symbol_id[: -len(quote)], quote
    raise ValueError(f"cannot split market id {symbol_id!r} into base and quote")


def decimals_used(values: list[str]) -> int:
    """Most decimal places any of ``values`` needs (trailing zeros ignored), capped at 8."""
    most = 0
    for v in values:
        if "." in v:
            frac = v.split(".", 1)[1].rstrip("0")
            most = max(most, len(frac))
    return min(most, 8)


@dataclass
class MarketReplay:
    """Recorded state of one market at the replay cursor."""

    symbol_id: str
    capture: Capture | None = None
    candles: CandleSet | None = None
    position: int = 0  # next capture event to apply
    candle_cursor: int = 0  # index of the current candle (candle-only replay)
    last_update_id: int = 0
    bids: dict[Decimal, tuple[str, str]] = field(default_factory=dict)
    asks: dict[Decimal, tuple[str, str]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)  # ws trade payloads, in order
    trade_times: list[int] = field(default_factory=list)
    book_ticker: dict[str, Any] | None = None
    last_event_ms: int = 0
    klines_1m: dict[int, list[Any]] = field(default_factory=dict)
    prev_ns: int | None = None  # receive time of the last replayed event (paces the replay)

    # --- capture -----------------------------------------------------------------------
    def start_capture(self) -> list[CaptureEvent]:
        """Load the snapshot and apply the events recorded before it; return the rest to replay.

        Diffs recorded before the snapshot are applied by Binance's rule (drop ``u <= lastUpdateId``),
        so the book published afterwards continues without a sequence gap.
        """
        assert self.capture is not None
        snap = self.capture.snapshot
        self.last_update_id = int(snap["lastUpdateId"])
        self.bids = {Decimal(p): (p, q) for p, q in snap["bids"] if Decimal(q) != 0}
        self.asks = {Decimal(p): (p, q) for p, q in snap["asks"] if Decimal(q) != 0}
        before = self.capture.events[: self.capture.snapshot_index]
        for event in before:
            self.apply(event)
        return self.capture.events[self.capture.snapshot_index:]

    def apply(self, event: CaptureEvent) -> bool:
        """Apply one recorded event; False for a diff that is older than the book (dropped)."""
        data = event.data
        if event.kind == "depth":
            if int(data["u"]) <= self.last_update_id:
                return False
            for price, qty in data["b"]:
                self._set(self.bids, price, qty)
            for price, qty in data["a"]:
                self._set(self.asks, price, qty)
            self.last_update_id = int(data["u"])
            self.last_event_ms = int(data["E"])
        elif event.kind == "trade":
            self.trades.append(data)
            self.trade_times.append(int(data["T"]))
            self.last_event_ms = int(data["E"])
            self._kline_from_trade(data)
        elif event.kind == "bookTicker":
            self.book_ticker = data
        return True

    @staticmethod
    def _set(side: dict[Decimal, tuple[str, str]], price: str, qty: str) -> None:
        key = Decimal(price)
        if Decimal(qty) == 0:
            side.pop(key, None)
        else:
            side[key] = (price, qty)

    def _kline_from_trade(self, t: dict[str, Any]) -> None:
        open_time = int(t["T"]) // 60_000 * 60_000
        price, qty = Decimal(t["p"]), Decimal(t["q"])
        k = self.klines_1m.get(open_time)
        if k is None:
            self.klines_1m[open_time] = [open_time, price, price, price, price, qty, price * qty, 1,
                                         int(t["t"]), int(t["t"])]
            return
        k[2] = max(k[2], price)
        k[3] = min(k[3], price)
        k[4] = price
        k[5] += qty
        k[6] += price * qty
        k[7] += 1
        k[9] = int(t["t"])

    def depth(self, limit: int) -> dict[str, Any]:
        """The REST depth answer: ``lastUpdateId`` plus the best ``limit`` levels per side."""
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)[:limit]]
        asks = [self.asks[p] for p in sorted(self.asks)[:limit]]
        return {"lastUpdateId": self.last_update_id, "bids": [list(x) for x in bids],
                "asks": [list(x) for x in asks]}

    def trades_between(self, start_ms: int | None, end_ms: int | None) -> list[dict[str, Any]]:
        lo = 0 if start_ms is None else bisect_right(self.trade_times, start_ms - 1)
        hi = len(self.trades) if end_ms is None else bisect_right(self.trade_times, end_ms)
        return self.trades[lo:hi]

    def trades_from_id(self, from_id: int, limit: int) -> list[dict[str, Any]]:
        if not self.trades:
            return []
        first = int(self.trades[0]["t"])
        idx = max(0, from_id - first)
        # ids are consecutive on Binance; fall back to a scan if the capture has holes.
        if idx < len(self.trades) and int(self.trades[idx]["t"]) != from_id:
            idx = next((i for i, t in enumerate(self.trades) if int(t["t"]) >= from_id), len(self.trades))
        return self.trades[idx: idx + limit]

    # --- candles -----------------------------------------------------------------------
    def visible_candles(self) -> list[Candle]:
        """Candles knowable now: all of a candle file when a capture drives time, else up to the cursor."""
        if self.candles is None:
            return []
        if self.capture is not None:
            return self.candles.candles
        return self.candles.candles[: self.candle_cursor + 1]

    def current_candle(self) -> Candle | None:
        if self.candles is None or not self.candles.candles:
            return None
        return self.candles.candles[min(self.candle_cursor, len(self.candles.candles) - 1)]
