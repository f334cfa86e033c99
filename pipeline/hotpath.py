"""The hot path's pure core: a rolling window of bars per series -> that bar's gold row and signal.

No Spark and no I/O: :class:`HotPath` keeps, per (exchange, symbol, timeframe), the last
``WARMUP_BARS + model.window + SLACK`` bars. :meth:`HotPath.add` takes new bars (one or a burst),
flags them with silver's own per-series rules (:func:`spark_jobs.silver.bars.flag_series`, over the
``CONTEXT_BARS`` before them, the context silver's interval runs read: the flags are causal, so the
window keeps each bar's ``is_valid`` and only new bars are flagged), computes
the gold rows of the new valid bars with THE feature definition
(:func:`spark_jobs.gold.features.features_pandas`, the code the batch gold job runs) and scores them
with :func:`models.scoring.score_frame` (the batch scorer's code). With ``WARMUP_BARS`` bars before a
row, its features equal the batch gold row to < 1e-12 relative (see ``features.py``), so the hot
path needs no Spark job per bar. Only bars at or after the model's out-of-sample start are scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from cryptolake.schemas import OhlcvV1
from cryptolake.types import TIMEFRAME_MS
from models.base import Model
from models.scoring import score_frame
from spark_jobs.gold.features import INPUT_COLUMNS, SERIES_KEYS, WARMUP_BARS, features_pandas
from spark_jobs.silver.bars import CONTEXT_BARS, flag_series

SLACK = 64  # extra bars kept so a few invalid (dropped) bars do not shorten the warm-up
Key = tuple[str, str, str]


@dataclass(frozen=True)
class HotResult:
    """The new bars' gold rows (GOLD_FEATURES columns) and their scores (score_frame's columns).

    ``features_at``: the clock (epoch seconds) when every new bar's gold row was computed, before
    any was scored (the ``hot_features`` stage of ops.bar_stages).
    """

    features: pd.DataFrame
    scores: pd.DataFrame
    features_at: float = 0.0


def bars_frame(candles: Iterable[OhlcvV1]) -> pd.DataFrame:
    """Candles -> silver-input-shaped rows (INPUT_COLUMNS, UTC open/close times)."""
    rows = [(c.exchange, c.symbol, c.timeframe, c.event_time, c.event_time + TIMEFRAME_MS[c.timeframe],
             c.open, c.high, c.low, c.close, c.volume) for c in candles]
    frame = pd.DataFrame(rows, columns=list(INPUT_COLUMNS))
    for col in ("open_time", "close_time"):
        frame[col] = pd.to_datetime(frame[col].astype("int64"), unit="ms", utc=True)
    return frame


class HotPath:
    """Rolling windows per series and the step from new bars to gold rows and signals.

    ``clock`` stamps :attr:`HotResult.features_at` (epoch seconds; injected so tests are deterministic).
    """

    def __init__(self, model: Model, *, jump_threshold: float, max_flat_bars: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.model = model
        self.jump_threshold = jump_threshold
        self.max_flat_bars = max_flat_bars
        self.clock = clock
        self.capacity = WARMUP_BARS + model.window + SLACK
        self.windows: dict[Key, pd.DataFrame] = {}
        oos = pd.Timestamp(model.oos_start)
        self._oos = oos.tz_localize("UTC") if oos.tzinfo is None else oos

    def seed(self, bars: pd.DataFrame) -> None:
        """Start each series' window from past bars (silver rows or :func:`bars_frame` rows)."""
        if bars.empty:
            return
        for key, group in bars[list(INPUT_COLUMNS)].groupby(list(SERIES_KEYS), sort=False):
            k: Key = (str(key[0]), str(key[1]), str(key[2]))
            frame = group.assign(open_time=pd.to_datetime(group["open_time"], utc=True),
                                 close_time=pd.to_datetime(group["close_time"], utc=True))
            frame = frame.sort_values("open_time").drop_duplicates("open_time", keep="last").reset_index(drop=True)
            flagged = flag_series(frame, jump_threshold=self.jump_threshold, max_flat_bars=self.max_flat_bars)
            self.windows[k] = flagged[[*INPUT_COLUMNS, "is_valid"]].tail(self.capacity).reset_index(drop=True)

    def warm_up(self) -> int:
        """Compute and score the newest bars of one seeded window and throw the result away; returns the rows.

        The first model call of a process pays one-off costs (torch's lazy initialisation, first-call
        caches): paid at start-up, not by the first live bar. Changes no window.
        """
        window = next((w for w in self.windows.values() if not w.empty), None)
        if window is None:
            return 0
        valid = window[window["is_valid"]][list(INPUT_COLUMNS)]
        rows = features_pandas(valid, warmup_bars=min(WARMUP_BARS, len(valid)))
        return len(score_frame(self.model, rows.tail(2 * self.model.window + 9))) if len(rows) else 0

    def last_open(self, key: Key) -> pd.Timestamp | None:
        """The open time of the newest bar in ``key``'s window (None before its first bar)."""
        window = self.windows.get(key)
        return None if window is None or window.empty else pd.Timestamp(window["open_time"].iloc[-1])

    def add(self, bars: pd.DataFrame) -> HotResult:
        """New bars (:func:`bars_frame` rows) -> the gold rows and scores of those newer than each window.

        Every series' gold rows are computed first (``features_at``), then the new rows of all series are
        scored in one ``score_frame`` call (a burst of closes costs one model call, not one per series).
        """
        staged: list[tuple[Key, pd.DataFrame, pd.Timestamp]] = []
        for key, group in bars.groupby(list(SERIES_KEYS), sort=False):
            k: Key = (str(key[0]), str(key[1]), str(key[2]))
            step = self._features_series(k, group)
            if step is not None:
                staged.append((k, *step))
        features_at = self.clock()
        if not staged:
            return HotResult(features_pandas(bars.iloc[:0]), pd.DataFrame(), features_at)
        feats = [rows[rows["ts"] >= first_new].reset_index(drop=True) for _, rows, first_new in staged]
        # the model sees the last ``window`` rows before each new bar (plus a margin for its short-gap
        # filling): scoring each series' tail gives the probabilities scoring its whole window would
        tails = [rows.tail(len(f) + 2 * self.model.window + 8) for (_, rows, _), f in zip(staged, feats, strict=True)
                 if len(f)]
        scores = score_frame(self.model, pd.concat(tails, ignore_index=True)) if tails else pd.DataFrame()
        if not scores.empty:
            firsts = pd.DataFrame([(*k, first_new) for k, _, first_new in staged],
                                  columns=[*SERIES_KEYS, "_first_new"])
            scores = scores.merge(firsts, on=list(SERIES_KEYS), how="inner")
            keep = (scores["bar_time"] >= scores["_first_new"]) & (scores["bar_time"] >= self._oos)
            scores = scores[keep].drop(columns=["_first_new"]).reset_index(drop=True)
        return HotResult(pd.concat(feats, ignore_index=True), scores, features_at)

    def _features_series(self, key: Key, new: pd.DataFrame) -> tuple[pd.DataFrame, pd.Timestamp] | None:
        """Flag the new bars (after the window's last ``CONTEXT_BARS``), compute the valid bars' gold rows and
        roll the window; None if nothing is new."""
        last = self.last_open(key)
        new = new[list(INPUT_COLUMNS)].sort_values("open_time").drop_duplicates("open_time", keep="last")
        if last is not None:
            new = new[new["open_time"] > last]  # a replayed bar is already in the window
        if new.empty:
            return None
        window = self.windows.get(key)
        context = window.tail(CONTEXT_BARS)[list(INPUT_COLUMNS)] if window is not None else new.iloc[:0]
        flagged = flag_series(pd.concat([context, new], ignore_index=True), jump_threshold=self.jump_threshold,
                              max_flat_bars=self.max_flat_bars)
        new = flagged.iloc[len(context):][[*INPUT_COLUMNS, "is_valid"]]
        both = new if window is None or window.empty else pd.concat([window, new], ignore_index=True)
        valid = both[both["is_valid"]][list(INPUT_COLUMNS)]
        rows = features_pandas(valid, warmup_bars=min(WARMUP_BARS, len(valid)))
        self.windows[key] = both.tail(self.capacity).reset_index(drop=True)
        return rows, pd.Timestamp(new["open_time"].min())
