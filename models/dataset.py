"""Point-in-time training sets: the only way a model gets data (``cryptolake/sql/training_set.sql`` via DuckDB).

A :class:`TrainingSet` carries the rows and the Delta table versions they were read from, so
a saved model can say exactly which data it saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from cryptolake.errors import CommitConflictError, DataValidationError, SchemaMismatchError
from cryptolake.logs import get_logger
from cryptolake.queries import alt_training_set_sql, sql_text
from cryptolake.retry import RetryPolicy, call_with_retry
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import ALT_FEATURE_COLUMNS, FEATURE_COLUMNS, GOLD_ALT_FEATURES, GOLD_FEATURES, GOLD_LABELS

log = get_logger(__name__)

KEY_COLUMNS: tuple[str, ...] = ("exchange", "symbol", "timeframe", "ts")
LABEL_COLUMN = "next_direction"
_TIME_COLUMNS = ("ts", "close_time", "label_available_time")


@dataclass(frozen=True)
class TrainingSet:
    """Rows of ``cryptolake/sql/training_set.sql`` plus what they were read from."""

    frame: pd.DataFrame
    table_versions: Mapping[str, int]
    symbols: tuple[str, ...]
    start: datetime
    end: datetime
    as_of: datetime
    feature_columns: tuple[str, ...] = FEATURE_COLUMNS
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)


def _require_utc(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise DataValidationError(name, value, "must be a UTC-aware datetime")


def validate_query_args(symbols: Sequence[str], start: datetime, end: datetime, as_of: datetime) -> None:
    """Fail fast, naming the argument, on an empty symbol list, naive times or an empty range."""
    if isinstance(symbols, str) or not symbols:
        raise DataValidationError("symbols", symbols, "must be a non-empty list of symbols")
    for name, value in (("start", start), ("end", end), ("as_of", as_of)):
        _require_utc(name, value)
    if end <= start:
        raise DataValidationError("end", end, f"must be after start={start.isoformat()}")


def validate_training_frame(frame: pd.DataFrame, feature_columns: Sequence[str] = FEATURE_COLUMNS) -> None:
    """Check a training frame has the key, feature and label columns with usable values."""
    required = (*KEY_COLUMNS, "close_time", *feature_columns, LABEL_COLUMN)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SchemaMismatchError(f"training frame lacks columns {missing}; has {list(frame.columns)}")
    labels = frame[LABEL_COLUMN]
    bad = labels[~labels.isin([0, 1])]
    if len(bad):
        raise DataValidationError(LABEL_COLUMN, bad.iloc[0], "labels must be 0 or 1")
    dupes = frame.duplicated(list(KEY_COLUMNS))
    if dupes.any():
        row = frame.loc[dupes, list(KEY_COLUMNS)].iloc[0].to_dict()
        raise DataValidationError("keys", row, "duplicate (exchange, symbol, timeframe, ts) in training set")


# Text columns whose null means "no document in the window": 0 documents, a neutral 0 sentiment, no spread.
_NO_DOCUMENT_ZERO = tuple(c for c in ALT_FEATURE_COLUMNS if c.startswith(("news_", "post_", "sent_")))


def fill_no_document(frame: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Text alt columns' nulls as "no document" (0), and the alt columns a net can use.

    A usable column has no null left and is not constant. Chain columns are never filled: no chain
    record is not zero activity, so a chain column with gaps is left out rather than invented.
    """
    out = frame.copy()
    present = [c for c in _NO_DOCUMENT_ZERO if c in out.columns]
    out[present] = out[present].fillna(0.0)
    usable = tuple(c for c in ALT_FEATURE_COLUMNS
                   if c in out.columns and out[c].notna().all() and out[c].nunique() > 1)
    return out, usable


def _versions_of_inputs(all_versions: Mapping[str, int], with_alt: bool = False) -> dict[str, int]:
    """Pick gold.features / gold.labels (and gold.alt_features) from :func:`cryptolake.duck.table_versions`."""
    out: dict[str, int] = {}
    for spec in (GOLD_FEATURES, GOLD_LABELS, *((GOLD_ALT_FEATURES,) if with_alt else ())):
        for key in (spec.name, f"{spec.layer}_{spec.entity}"):
            if key in all_versions:
                out[spec.name] = int(all_versions[key])
                break
        else:
            raise SchemaMismatchError(
                f"no Delta version reported for {spec.name}; got {sorted(all_versions)}"
            )
    return out


def load_training_set(
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    as_of: datetime,
    settings: Settings | None = None,
    *,
    exchanges: Sequence[str] | None = None,
    with_alt: bool = False,
) -> TrainingSet:
    """Run ``cryptolake/sql/training_set.sql`` for ``symbols`` and ``[start, end)``, knowable by ``as_of``.

    ``with_alt``: ``alt_training_set.sql`` instead, the same rows with the point-in-time
    ``gold.alt_features`` of their coin, text nulls filled by :func:`fill_no_document`; the usable
    alt columns are the set's ``feature_columns`` after the market ones.

    The Delta versions are read before and after the query; if a commit landed in between the
    read is retried (a :class:`CommitConflictError`), so the recorded versions are the ones read.
    """
    validate_query_args(symbols, start, end, as_of)
    settings = settings or get_settings()
    from cryptolake import duck  # DuckDB + delta extension: imported only when reading

    query = alt_training_set_sql() if with_alt else sql_text("training_set")
    params = {"symbols": list(symbols), "exchanges": list(exchanges) if exchanges is not None else None,
              "start": start, "end": end, "as_of": as_of}

    def read() -> tuple[pd.DataFrame, dict[str, int]]:
        before = _versions_of_inputs(duck.table_versions(settings), with_alt)
        con = duck.connect(settings)
        try:
            frame = con.execute(query, params).df()
        finally:
            con.close()
        after = _versions_of_inputs(duck.table_versions(settings), with_alt)
        if before != after:
            raise CommitConflictError(f"gold tables changed while reading: {before} -> {after}")
        return frame, after

    frame, versions = call_with_retry(read, RetryPolicy(max_attempts=3, base_delay=0.2), what="training_set")
    for col in _TIME_COLUMNS:
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col], utc=True)
    validate_training_frame(frame)
    features = FEATURE_COLUMNS
    if with_alt:
        frame, usable = fill_no_document(frame)
        features = (*FEATURE_COLUMNS, *usable)
    log.info(
        "training_set.loaded",
        extra={"rows": len(frame), "symbols": list(symbols), "start": start.isoformat(),
               "end": end.isoformat(), "as_of": as_of.isoformat(), "versions": versions},
    )
    return TrainingSet(
        frame=frame.reset_index(drop=True),
        table_versions=versions,
        symbols=tuple(symbols),
        start=start,
        end=end,
        as_of=as_of,
        feature_columns=features,
    )
