"""``gold.alt_features`` rows as a point-in-time side input of the strategies, keyed by availability.

A strategy may know an alternative-data row only once it was available: a row of ``gold.alt_features``
is computed from the documents and chain buckets available by its bar's ``close_time``
(``cryptolake/sql/alt_features.sql``), so it is available at that close, or at ``available_time`` when
the frame has one (e.g. when the row landed in the lake, later). :meth:`AltFeatures.at` returns, of
a coin's rows available at or before ``t``, the one of the latest bar (a late recomputation of an older
bar does not hide it), and nothing available after ``t``: truncating the rows after ``t`` cannot change
what a bar closing at ``t`` sees.

Why a side input and not events: the rows are a function of the clock, not of the order flow, and the
same frozen object reaches the strategy through its config in backtest, paper and live alike
(:class:`trader.strategies.selector.SelectorConfig` ``alt``), so the trading node needs no new event type.
Rows are validated once, here: a missing column, a null or naive timestamp, a duplicate key or a value
out of its range raises :class:`~cryptolake.errors.DataValidationError` naming the field and the value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.tables import ALT_FEATURE_COLUMNS

REQUIRED_COLUMNS: tuple[str, ...] = ("coin", "close_time", *ALT_FEATURE_COLUMNS)
_COUNTS = ("news_count", "post_count", "sent_std", "sent_vol", "chain_tx", "chain_active", "chain_whale")
_COIN = re.compile(r"^[^/:-]+")


def coin_of(symbol: str) -> str:
    """The coin of a symbol as ``gold.alt_features`` keys it: ``BTC/USD``, ``BTC-PERP`` -> ``BTC``."""
    m = _COIN.match(symbol)
    if m is None:
        raise DataValidationError("symbol", symbol, "has no coin before '/', ':' or '-'")
    return m.group(0).upper()


@dataclass(frozen=True, slots=True)
class AltRow:
    """One coin's alternative features as known at ``available_time`` (values: NaN = null in the lake)."""

    coin: str
    close_time: datetime
    available_time: datetime
    values: Mapping[str, float]

    def get(self, column: str) -> float | None:
        """The value of ``column``, None where the lake has null (no document, no chain bucket)."""
        v = self.values[column]
        return None if np.isnan(v) else float(v)


def _utc_times(frame: pd.DataFrame, column: str) -> pd.Series:
    raw = frame[column]
    if raw.isna().any():
        i = int(np.flatnonzero(raw.isna().to_numpy())[0])
        raise DataValidationError(column, raw.iloc[i], f"null in alt row {i} (coin {frame['coin'].iloc[i]!r})")
    try:
        times = pd.to_datetime(raw)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(column, raw.iloc[0], f"not a timestamp: {exc}") from exc
    if getattr(times.dt, "tz", None) is None:
        raise DataValidationError(column, raw.iloc[0], "must be timezone-aware (UTC)")
    return times.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


class _Series(NamedTuple):
    """One coin's rows sorted by availability (times as int64 ns UTC)."""

    avail: np.ndarray
    close: np.ndarray
    values: np.ndarray
    newest: np.ndarray  # per position: the index of the latest bar's row up to it


class AltFeatures:
    """Validated ``gold.alt_features`` rows of one timeframe, looked up point in time per coin."""

    def __init__(self, frame: pd.DataFrame, *, source: str = "frame") -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DataValidationError("alt_features", missing[0], f"column missing (have {sorted(frame.columns)})")
        frame = frame.reset_index(drop=True)
        if "timeframe" in frame.columns and frame["timeframe"].nunique(dropna=False) > 1:
            raise DataValidationError("timeframe", sorted(frame["timeframe"].astype(str).unique()),
                                      "one timeframe's rows at most: filter gold.alt_features by timeframe")
        bad_coin = frame["coin"].map(lambda c: not isinstance(c, str) or not c)
        if bad_coin.any():
            raise DataValidationError("coin", frame["coin"][bad_coin].iloc[0], "must be a non-empty string")
        close = _utc_times(frame, "close_time")
        avail = _utc_times(frame, "available_time") if "available_time" in frame.columns else close
        early = avail < close
        if early.any():
            i = int(np.flatnonzero(early.to_numpy())[0])
            raise DataValidationError("available_time", str(avail.iloc[i]),
                                      f"before its bar's close {close.iloc[i]} (look-ahead)")
        values = frame[list(ALT_FEATURE_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
        for col in ALT_FEATURE_COLUMNS:
            s = values[col]
            text = frame[col].notna() & s.isna()
            if text.any():
                raise DataValidationError(col, frame[col][text].iloc[0], "not a number")
            if np.isinf(s).any():
                raise DataValidationError(col, float(s[np.isinf(s)].iloc[0]), "must be finite or null")
            if col.startswith("sent_mean") and not s.dropna().between(-1, 1).all():
                raise DataValidationError(col, float(s.dropna()[~s.dropna().between(-1, 1)].iloc[0]),
                                          "must lie in [-1, 1]")
            if col.startswith(_COUNTS) and (s < 0).any():
                raise DataValidationError(col, float(s[s < 0].iloc[0]), "must not be negative")
        keyed = pd.DataFrame({"coin": frame["coin"].str.upper(), "close": close, "avail": avail})
        for key, what in (("close", "close_time"), ("avail", "available_time")):
            dup = keyed.duplicated(["coin", key])
            if dup.any():
                first = keyed[dup].iloc[0]
                raise DataValidationError(what, str(first[key]), f"duplicate alt row for {first.coin} (one "
                                          "timeframe's rows at most: filter gold.alt_features by timeframe)")
        self.source = source
        self.rows = len(frame)
        self._columns = ALT_FEATURE_COLUMNS
        self._by_coin: dict[str, _Series] = {}
        for coin, idx in keyed.groupby("coin", sort=True).indices.items():
            order = np.asarray(idx)[np.argsort(keyed["avail"].to_numpy()[idx], kind="stable")]
            a = keyed["avail"].iloc[order].astype("int64").to_numpy()
            c = keyed["close"].iloc[order].astype("int64").to_numpy()
            # newest[i]: of the first i + 1 rows by availability, the one of the latest bar (a late
            # recomputation of an old bar must not hide a newer bar's row already available).
            newest = np.flatnonzero(c == np.maximum.accumulate(c))
            newest = newest[np.searchsorted(newest, np.arange(len(c)), side="right") - 1]
            self._by_coin[str(coin)] = _Series(a, c, values.to_numpy()[order], newest)
        digest = hashlib.sha256()
        digest.update(pd.util.hash_pandas_object(keyed.assign(**values), index=False).to_numpy().tobytes())
        self.digest = digest.hexdigest()[:16]

    @property
    def coins(self) -> tuple[str, ...]:
        return tuple(self._by_coin)

    def counts(self) -> dict[str, int]:
        """Rows per coin."""
        return {k: len(v.avail) for k, v in self._by_coin.items()}

    def span(self) -> tuple[datetime, datetime] | None:
        """The first and last availability time of any row (None when empty)."""
        if not self._by_coin:
            return None
        lo = min(int(v.avail[0]) for v in self._by_coin.values())
        hi = max(int(v.avail[-1]) for v in self._by_coin.values())
        return (pd.Timestamp(lo, tz=UTC).to_pydatetime(), pd.Timestamp(hi, tz=UTC).to_pydatetime())

    def at(self, coin: str, t: datetime) -> AltRow | None:
        """The row of ``coin``'s latest bar among those available at or before ``t`` (None: no row yet, or
        no such coin): a row is usable from its ``available_time`` on, never before."""
        if t.tzinfo is None:
            raise DataValidationError("t", t, "must be timezone-aware (UTC)")
        series = self._by_coin.get(coin)
        if series is None:
            return None
        i = int(np.searchsorted(series.avail, pd.Timestamp(t).value, side="right")) - 1
        if i < 0:
            return None
        j = int(series.newest[i])
        return AltRow(coin, pd.Timestamp(int(series.close[j]), tz=UTC).to_pydatetime(),
                      pd.Timestamp(int(series.avail[j]), tz=UTC).to_pydatetime(),
                      dict(zip(self._columns, series.values[j], strict=True)))

    def __repr__(self) -> str:
        return f"AltFeatures({self.rows} rows, coins={list(self.coins)}, digest={self.digest}, source={self.source!r})"
