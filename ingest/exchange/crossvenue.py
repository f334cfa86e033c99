"""Cross-exchange validation: flag a venue whose price strays from the cross-venue median or goes stale.

Pure functions on a wide frame (index = interval start in epoch ms, one column per venue,
values = price). A venue deviates when ``|price - median| / median`` exceeds
``threshold_bps``; it is stale when its price has not changed for ``stale_intervals``
consecutive intervals while the median has moved, or (live) when its last update is older
than ``max_age_ms`` at the logical time passed in. The median needs ``min_venues`` quotes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from cryptolake.errors import DataValidationError
from cryptolake.schemas import Message, TickerV1, VenueFlagV1


class CrossVenueConfig(BaseModel):
    """Thresholds of the cross-venue check."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold_bps: float = Field(200.0, gt=0, description="Deviation from the median that flags a venue")
    stale_intervals: int = Field(6, ge=2, description="Unchanged prices in a row that make a venue stale")
    min_venues: int = Field(3, ge=2, description="Quotes needed for a meaningful median")
    max_age_ms: int = Field(120_000, gt=0, description="Live: a quote older than this is stale")


def venue_flags(prices: pd.DataFrame, config: CrossVenueConfig | None = None) -> pd.DataFrame:
    """Long frame ``event_time, venue, price, median, deviation_bps, deviates, stale, flagged``."""
    config = config or CrossVenueConfig()
    prices = prices.sort_index()
    quotes = prices.notna().sum(axis=1)
    median = prices.median(axis=1).where(quotes >= config.min_venues)
    deviation = prices.sub(median, axis=0).div(median, axis=0) * 1e4
    unchanged = prices.diff().eq(0) & prices.notna()
    # length of the current run of unchanged prices, per venue
    run = unchanged.apply(lambda col: col.astype(int).groupby((~col).cumsum()).cumsum())
    median_moved = median.diff().fillna(0).ne(0)
    stale = run.ge(config.stale_intervals - 1).mul(median_moved, axis=0).astype(bool)
    long = pd.DataFrame({
        "event_time": prices.index.repeat(prices.shape[1]),
        "venue": list(prices.columns) * len(prices),
        "price": prices.to_numpy().ravel(),
        "median": median.to_numpy().repeat(prices.shape[1]),
        "deviation_bps": deviation.to_numpy().ravel(),
        "stale": stale.to_numpy().ravel(),
    })
    long = long[long["price"].notna()].reset_index(drop=True)
    long["deviates"] = long["deviation_bps"].abs().gt(config.threshold_bps) & long["median"].notna()
    long["flagged"] = long["deviates"] | long["stale"]
    return long


def summarize(flags: pd.DataFrame) -> pd.DataFrame:
    """Per venue: intervals seen, deviating, stale, flagged."""
    out = flags.groupby("venue").agg(intervals=("price", "size"), deviating=("deviates", "sum"),
                                     stale=("stale", "sum"), flagged=("flagged", "sum"))
    return out.astype(int)


def stale_by_age(last_update_ms: dict[str, int], now_ms: int,
                 config: CrossVenueConfig | None = None) -> dict[str, bool]:
    """Live staleness: which venues have not updated within ``max_age_ms`` of the logical ``now_ms``."""
    config = config or CrossVenueConfig()
    return {venue: now_ms - ts > config.max_age_ms for venue, ts in last_update_ms.items()}


def _opt(value: float) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def flag_messages(flags: pd.DataFrame, symbol: str, *, interval_ms: int, threshold_bps: float,
                  ingest_ms: int) -> list[VenueFlagV1]:
    """:func:`venue_flags` rows -> Kafka records. ``event_time`` = interval start, available at its end."""
    out: list[VenueFlagV1] = []
    for row in flags.itertuples(index=False):
        start = int(row.event_time)  # type: ignore[arg-type]
        out.append(VenueFlagV1(
            schema_version=1, event_time=start, available_time=start + interval_ms, ingest_time=ingest_ms,
            exchange=str(row.venue), symbol=symbol, price=float(row.price),  # type: ignore[arg-type]
            median=_opt(row.median), deviation_bps=_opt(row.deviation_bps),  # type: ignore[arg-type]
            deviates=bool(row.deviates), stale=bool(row.stale), threshold_bps=threshold_bps))
    return out


class CrossVenueMonitor:
    """Live cross-venue check of one symbol: feed tickers of several venues, close intervals, publish flags.

    A venue's price for an interval is its last ticker price seen by the interval's end. It is
    stale when that price is older than ``max_age_ms`` at the interval end (the logical time
    passed in), or unchanged for ``stale_intervals`` intervals while the median moved.
    """

    def __init__(self, symbol: str, sink: Callable[[VenueFlagV1], None], *, interval_ms: int,
                 config: CrossVenueConfig | None = None, history: int = 64) -> None:
        if interval_ms <= 0:
            raise DataValidationError("interval_ms", interval_ms, "must be a positive number of ms")
        self.symbol = symbol
        self.sink = sink
        self.interval_ms = interval_ms
        self.config = config or CrossVenueConfig()
        self.history = history
        self._last: dict[str, tuple[int, float]] = {}  # venue -> (event_time, price)
        self._closes: dict[int, dict[str, float]] = {}  # interval start -> venue -> price

    def on_ticker(self, msg: Message) -> None:
        """Remember the venue's latest price (``last``, else the mid). A connector sink: tickers only."""
        if not isinstance(msg, TickerV1):
            raise DataValidationError("message", type(msg).__name__, "the cross-venue monitor takes TickerV1 only")
        if msg.symbol != self.symbol:
            raise DataValidationError("symbol", msg.symbol, f"this monitor checks {self.symbol}")
        price = msg.last if msg.last else (msg.bid + msg.ask) / 2 if msg.bid and msg.ask else None
        if price is None:
            raise DataValidationError("last", msg.last, f"{msg.exchange} ticker has no last price and no bid/ask")
        seen = self._last.get(msg.exchange)
        if seen is None or msg.event_time >= seen[0]:
            self._last[msg.exchange] = (msg.event_time, float(price))

    def close_interval(self, end_ms: int, ingest_ms: int) -> list[VenueFlagV1]:
        """Flag every venue for the interval ending at ``end_ms``; publish and return the flags."""
        start = end_ms - self.interval_ms
        self._closes[start] = {v: p for v, (ts, p) in self._last.items() if ts <= end_ms}
        for old in sorted(self._closes)[:-self.history]:
            del self._closes[old]
        frame = pd.DataFrame.from_dict(self._closes, orient="index").sort_index()
        flags = venue_flags(frame, self.config)
        flags = flags[flags["event_time"] == start].copy()
        aged = stale_by_age({v: ts for v, (ts, _) in self._last.items()}, end_ms, self.config)
        flags["stale"] = flags["stale"] | flags["venue"].map(aged).fillna(False).astype(bool)
        messages = flag_messages(flags, self.symbol, interval_ms=self.interval_ms,
                                 threshold_bps=self.config.threshold_bps, ingest_ms=ingest_ms)
        for m in messages:
            self.sink(m)
        return messages
