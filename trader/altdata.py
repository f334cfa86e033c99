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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.tables import ALT_FEATURE_COLUMNS

if TYPE_CHECKING:
    from cryptolake.settings import Settings
    from trader.config import TraderConfig

log = get_logger(__name__)

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


# --- the lake's rows as the side input (backtest, main job, runner) ---------------------------------
ALT_SQL = "trading_alt"
ALT_VIEW = "gold_alt_features"
#: Statuses of :class:`AltLoad`: rows loaded, the table absent, no rows for the run, switched off, no selector.
ALT_STATUSES = ("loaded", "missing_table", "no_rows", "off", "unused")


@dataclass(frozen=True)
class AltLoad:
    """What a run got as its alt side input and why: recorded in the run's report and logged as one line."""

    status: str
    alt: AltFeatures | None = None
    detail: str = ""
    coins: tuple[str, ...] = ()
    timeframe: str = ""
    rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in ALT_STATUSES:
            raise DataValidationError("status", self.status, f"not one of {ALT_STATUSES}")

    def record(self) -> dict[str, Any]:
        """JSON-able (the report's ``alt`` entry and the log line's fields)."""
        out: dict[str, Any] = {"status": self.status, "rows": self.rows, "coins": list(self.coins),
                               "timeframe": self.timeframe, "detail": self.detail, **self.extra}
        if self.alt is not None:
            span = self.alt.span()
            out |= {"by_coin": self.alt.counts(), "digest": self.alt.digest,
                    "span": [t.isoformat() for t in span] if span else None}
        return out

    def log(self, run: str) -> AltLoad:
        """Log the single structured line ``trader.alt_side_input`` (a run without alt data says so)."""
        level = log.info if self.status in ("loaded", "unused") else log.warning
        level("trader.alt_side_input", extra={"run": run, **{k: v for k, v in self.record().items()
                                                               if k != "by_coin"}})
        return self


def selectors_of(config: TraderConfig) -> list[int]:
    """Indexes of the config's selector strategies (the ones that read an alt side input)."""
    from trader.strategies.selector import SelectorConfig

    return [i for i, s in enumerate(config.strategies) if isinstance(s, SelectorConfig)]


def with_alt(config: TraderConfig, alt: AltFeatures | None) -> TraderConfig:
    """``config`` with ``alt`` as every selector's side input (the configs are frozen: copies)."""
    idx = set(selectors_of(config))
    if not idx:
        return config
    strategies = tuple(s.model_copy(update={"alt": alt}) if i in idx else s for i, s in enumerate(config.strategies))
    return config.model_copy(update={"strategies": strategies})


def lake_alt_rows(coins: Sequence[str], timeframe: str, start: datetime, end: datetime,
                  settings: Settings | None = None) -> pd.DataFrame | None:
    """``gold.alt_features`` rows of ``coins`` and ``timeframe`` closing in ``(start, end]``, through
    ``cryptolake/sql/trading_alt.sql`` on the lake's DuckDB views; None when the lake has no such table."""
    from cryptolake import duck
    from cryptolake.queries import sql_text

    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise DataValidationError(name, value, "must be timezone-aware (UTC)")
    con = duck.connect(settings)
    try:
        con.execute("SET TimeZone = 'UTC'")
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if ALT_VIEW not in tables:
            return None
        params = {"timeframe": timeframe, "coins": sorted(set(coins)), "start": start, "end": end}
        frame: pd.DataFrame = con.execute(sql_text(ALT_SQL), params).df()
    finally:
        con.close()
    return frame


def load_alt(config: TraderConfig, start: datetime, end: datetime, settings: Settings | None = None, *,
             enabled: bool = True) -> AltLoad:
    """The lake's alt rows for ``config``'s coins and timeframe over bars closing in ``(start, end]``.

    Why a status and not an exception: a run without alt data is still a run (the alt rules then say
    ``no alt data``), but it must say so; the caller records :meth:`AltLoad.record` and logs it.
    """
    coins = tuple(sorted({coin_of(s) for s in config.symbols}))
    base: dict[str, Any] = {"coins": coins, "timeframe": config.timeframe,
                            "extra": {"start": start.isoformat(), "end": end.isoformat()}}
    if not selectors_of(config):
        return AltLoad("unused", detail="no selector strategy reads alt data", **base)
    if not enabled:
        return AltLoad("off", detail="alt data switched off (--no-alt)", **base)
    frame = lake_alt_rows(coins, config.timeframe, start, end, settings)
    if frame is None:
        return AltLoad("missing_table", detail="gold.alt_features is not in the lake: running without alt data "
                       "(build it with `cryptolake altdata gold`)", **base)
    if frame.empty:
        return AltLoad("no_rows", detail=f"gold.alt_features has no {config.timeframe} rows of {', '.join(coins)} "
                       f"closing in ({start.isoformat()}, {end.isoformat()}]: running without alt data", **base)
    alt = AltFeatures(frame, source=f"lake:{ALT_VIEW}")
    return AltLoad("loaded", alt, detail=f"{alt.rows} rows", rows=alt.rows, **base)


def _wall() -> datetime:
    return datetime.now(UTC)


class LakeAltFeed(AltFeatures):
    """The runner's alt side input: re-reads ``gold.alt_features`` as the alt lane adds rows.

    Point in time in real time: the rows present at the start are used from their bar's close (as the
    backtest uses them); a row first seen later, at wall time ``w``, is available from
    ``max(close_time, w)``, never before. A row already seen keeps its first values (a recomputation
    landing later does not rewrite what earlier decisions could have known).
    """

    def __init__(self, fetch: Callable[[datetime, datetime], pd.DataFrame | None], *, history: timedelta,
                 refresh_s: float = 60.0, keep: timedelta = timedelta(days=3),
                 clock: Callable[[], datetime] = _wall, monotonic: Callable[[], float] = time.monotonic) -> None:
        if refresh_s <= 0:
            raise DataValidationError("refresh_s", refresh_s, "must be > 0 seconds")
        self._fetch, self._refresh_s, self._keep = fetch, refresh_s, keep
        self._clock, self._monotonic = clock, monotonic
        now = clock()
        first = fetch(now - history, now)
        self._frame = self._empty() if first is None or first.empty else first.assign(
            available_time=pd.to_datetime(first.close_time, utc=True))
        self.table_found = first is not None
        self._last = monotonic()
        self.refreshes = 0
        super().__init__(self._frame, source=f"lake:{ALT_VIEW}")

    @staticmethod
    def _empty() -> pd.DataFrame:
        cols: dict[str, Any] = {c: pd.Series(dtype=float) for c in ALT_FEATURE_COLUMNS}
        return pd.DataFrame({"coin": pd.Series(dtype=object), "close_time": pd.Series(dtype="datetime64[ns, UTC]"),
                             "available_time": pd.Series(dtype="datetime64[ns, UTC]"), **cols})

    def refresh(self) -> int:
        """Read the rows the lake gained since the last read; returns how many became known."""
        now = self._clock()
        self._last = self._monotonic()
        since = now - self._keep
        fresh = self._fetch(since, now)
        if fresh is None or fresh.empty:
            return 0
        fresh = fresh.assign(close_time=pd.to_datetime(fresh.close_time, utc=True))
        known = set(zip(self._frame.coin.str.upper(), pd.to_datetime(self._frame.close_time, utc=True), strict=True))
        new = fresh[[(c.upper(), t) not in known for c, t in zip(fresh.coin, fresh.close_time, strict=True)]]
        if new.empty:
            return 0
        seen = pd.Timestamp(now).tz_convert("UTC")
        new = new.assign(available_time=new.close_time.where(new.close_time >= seen, seen))
        # Rows of older bars landing together are all stamped ``seen``: only each coin's latest bar among them
        # can ever be looked up (AltFeatures.at), so the others are dropped (one row per coin and time).
        late = new.available_time == seen
        newest = new[late].groupby(new[late].coin.str.upper()).close_time.transform("max")
        new = new[~late | (new.close_time == newest.reindex(new.index))]
        frame = pd.concat([self._frame, new[[c for c in self._frame.columns if c in new.columns]]], ignore_index=True)
        frame = frame[pd.to_datetime(frame.close_time, utc=True) > pd.Timestamp(since)].reset_index(drop=True)
        self._frame = frame
        self.table_found = True
        self.refreshes += 1
        AltFeatures.__init__(self, frame, source=self.source)
        log.info("trader.alt_refresh", extra={"new_rows": len(new), "rows": self.rows, "seen": seen.isoformat()})
        return len(new)

    def at(self, coin: str, t: datetime) -> AltRow | None:
        """As :meth:`AltFeatures.at`, after reading the lake again when ``refresh_s`` have passed."""
        if self._monotonic() - self._last >= self._refresh_s:
            self.refresh()
        return super().at(coin, t)


def lake_alt_side_input(config: TraderConfig, *, enabled: bool, refresh_s: float, clock: Callable[[], datetime],
                        settings: Settings | None = None, monotonic: Callable[[], float] = time.monotonic,
                        fetch: Callable[[datetime, datetime], pd.DataFrame | None] | None = None,
                        ) -> tuple[TraderConfig, AltLoad]:
    """A runner's alt side input: ``config`` with a :class:`LakeAltFeed` for its selectors, and its status.

    ``clock`` is the runner's wall clock (the feed stamps late rows with it); ``fetch`` defaults to
    :func:`lake_alt_rows` over ``settings``' lake. Without a selector (``unused``) or with ``enabled``
    false (``off``) the lake is not read and ``config`` comes back unchanged. Otherwise the feed is attached
    even when the table is missing or has no rows yet (``missing_table`` / ``no_rows``): it re-reads every
    ``refresh_s`` and uses what appears from when it saw it. The caller logs :meth:`AltLoad.log`.
    """
    from trader.build import warmup_for
    from trader.domain import timeframe_delta

    coins = tuple(sorted({coin_of(s) for s in config.symbols}))
    if not selectors_of(config) or not enabled:
        now = clock()
        side = load_alt(config, now, now, settings, enabled=enabled)  # unused / off: no lake read
        return config, side
    history = (warmup_for(config) + 2) * timeframe_delta(config.timeframe)
    read = fetch or (lambda lo, hi: lake_alt_rows(coins, config.timeframe, lo, hi, settings))
    feed = LakeAltFeed(read, history=history, refresh_s=refresh_s, keep=max(history, timedelta(days=1)),
                       clock=clock, monotonic=monotonic)
    if not feed.table_found:
        status, detail = "missing_table", "gold.alt_features is not in the lake yet: re-read every refresh"
    elif feed.rows == 0:
        status, detail = "no_rows", "no rows for the warm-up yet: re-read every refresh"
    else:
        status, detail = "loaded", f"{feed.rows} rows, refreshed every {refresh_s:g} s"
    side = AltLoad(status, feed if feed.rows else None, detail=detail, coins=coins, timeframe=config.timeframe,
                   rows=feed.rows, extra={"refresh_s": refresh_s, "history_s": history.total_seconds()})
    return with_alt(config, feed), side
