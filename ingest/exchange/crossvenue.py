"""Cross-exchange validation: flag a venue whose price strays from the cross-venue median or goes stale.

Pure functions on a wide frame (index = interval start in epoch ms, one column per venue,
values = price). A venue deviates when ``|price - median| / median`` exceeds
``threshold_bps``; it is stale when its price has not changed for ``stale_intervals``
consecutive intervals while the median has moved, or (live) when its last update is older
than ``max_age_ms`` at the logical time passed in. The median needs ``min_venues`` quotes.
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field


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
