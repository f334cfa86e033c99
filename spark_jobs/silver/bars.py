"""bronze.market_ohlcv -> silver.bars: typed, deduplicated candles with gap and anomaly flags.

Nothing is dropped and nothing is invented: duplicates collapse to the first landed copy
(counted in ``duplicates``), missing bars are reported on the next bar (``gap_before``,
``missing_bars_before``), impossible values are flagged (``is_valid`` false plus a readable
``flag_reasons``) and kept. Arrival order does not matter: every decision is made on the
bar's own open time and on the landing order of copies of the same bar.

The consistency flags are the one candle rule (:func:`cryptolake.bars.candle_checks`, the rule the
producer and the trader apply too), evaluated per series in :func:`flag_series`; ``FLAG_PROBLEMS``
maps its problems onto the flag columns.

A jump is a one-bar log return whose robust z-score against the previous ``JUMP_WINDOW``
returns exceeds ``settings.market.jump_threshold``:
``|r - median| / max(1.4826 * MAD, JUMP_MIN_SCALE)``. The bar right after a flagged jump is
not a jump when its return measured from the bar *before* the jump is ordinary: that is the
reversal of a bad print, and it must not cost a valid bar.

A bar is stale (``flag_stale``) when it is one more flat, zero-volume bar in a run already
``settings.market.max_flat_bars`` long (:func:`cryptolake.bars.stale_flags`, causal).

The job is scoped to ``[start, end)`` on ``open_time``; it also reads the ``CONTEXT_BARS`` bar
lengths before ``start`` for jump and flat-run context (so an interval run gives the rows a
whole-history run gives, unless gaps thin that context out; hence ``max_flat_bars <= CONTEXT_BARS``)
and, for a series whose previous bar is older than that, takes the gap from the last bar already
in silver. It writes with a Delta MERGE on the table keys that only updates rows whose values
changed, so a re-run changes nothing. It then records, per series, how old its last bar is at the
interval's end (``silver.series_status``, see :mod:`spark_jobs.silver.series_status`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cryptolake import bars as rule
from cryptolake import topics
from cryptolake.errors import DataValidationError, SchemaMismatchError, TableNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import SILVER_BARS, bronze_spec
from cryptolake.types import TIMEFRAME_MS
from spark_jobs.delta_io import check_interval, interval_filter, merge_rows, sql_ts, table_exists

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

JUMP_WINDOW = 48  # previous returns the robust scale is measured on (a day of 30m bars)
JUMP_MIN_PERIODS = 12  # fewer previous returns than this: too little context to call a jump
JUMP_MIN_SCALE = 1e-4  # one basis point: a flat window must not make every tick a jump
CONTEXT_BARS = JUMP_WINDOW + 2  # bars read before the interval: jump window + the reversal check
_MAD_TO_SIGMA = 1.4826
SERIES_KEYS: tuple[str, ...] = ("exchange", "symbol", "timeframe")

# flag column -> the reason its count is reported under (SilverResult.flagged)
FLAG_REASONS: dict[str, str] = {
    "flag_high_low": "high_below_low",
    "flag_negative_volume": "negative_volume",
    "flag_ohlc_range": "open_close_outside_range",
    "flag_jump": "price_jump",
    "flag_stale": rule.STALE,
}
# flag column -> the candle problems it stands for; the first that applies is the bar's reason
FLAG_PROBLEMS: dict[str, tuple[str, ...]] = {
    "flag_high_low": (rule.HIGH_BELOW_LOW,),
    "flag_negative_volume": (rule.NEGATIVE_VOLUME, rule.NON_FINITE_VOLUME),
    "flag_ohlc_range": (rule.NON_POSITIVE_PRICE, rule.NON_FINITE_PRICE, rule.OPEN_CLOSE_OUTSIDE_RANGE),
}
_DERIVED = (*FLAG_REASONS, "is_valid", "flag_reasons")  # what flag_series adds

_PAYLOAD_DDL = (
    "schema_version INT, exchange STRING, symbol STRING, timeframe STRING, open DOUBLE, high DOUBLE, "
    "low DOUBLE, close DOUBLE, volume DOUBLE, event_time BIGINT, available_time BIGINT, ingest_time BIGINT"
)


@dataclass
class SilverResult:
    """What one silver run did (JSON-able: recorded by the pipeline's run summary)."""

    start: str
    end: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    gaps: int = 0
    missing_bars: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    per_series: dict[str, int] = field(default_factory=dict)
    table_version: int = -1
    series: int = 0  # series known at the interval's end (silver.series_status rows)
    stale_series: int = 0
    stale_series_keys: list[str] = field(default_factory=list)


# --- pure transform ------------------------------------------------------------------------
def build_bars(bronze_df: DataFrame, *, timeframe_ms: int, jump_threshold: float, max_flat_bars: int) -> DataFrame:
    """Bronze OHLCV rows of one timeframe -> silver.bars rows (every bar in the input, flagged).

    Rows whose payload timeframe is not ``timeframe_ms`` are not part of this call's output:
    :func:`run_silver_bars` calls once per timeframe present.
    """
    return _build(
        bronze_df, timeframe_ms=timeframe_ms, jump_threshold=jump_threshold, max_flat_bars=max_flat_bars
    ).select(*SILVER_BARS.column_names)


def check_max_flat_bars(max_flat_bars: int) -> None:
    """``1 <= max_flat_bars <= CONTEXT_BARS``: an interval run must see the flat run a bar ends."""
    if isinstance(max_flat_bars, bool) or not isinstance(max_flat_bars, int) or not 1 <= max_flat_bars <= CONTEXT_BARS:
        raise DataValidationError(
            "market.max_flat_bars", max_flat_bars,
            f"must be an integer in [1, {CONTEXT_BARS}]: silver reads {CONTEXT_BARS} bars before an interval, "
            "so a longer run could not be judged the same in an interval run and a whole-history run",
        )


def _build(bronze_df: DataFrame, *, timeframe_ms: int, jump_threshold: float, max_flat_bars: int) -> DataFrame:
    """build_bars plus ``prev_open_time`` (the predecessor seen in the input, null if none)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if timeframe_ms <= 0:
        raise DataValidationError("timeframe_ms", timeframe_ms, "must be a positive number of milliseconds")
    if jump_threshold <= 0:
        raise DataValidationError("jump_threshold", jump_threshold, "must be > 0")
    check_max_flat_bars(max_flat_bars)
    tf_map = F.create_map(*[F.lit(x) for kv in TIMEFRAME_MS.items() for x in kv])
    p = F.from_json(F.col("payload"), _PAYLOAD_DDL)
    parsed = (
        bronze_df.select(p.alias("p"), "partition", "offset", "landed_time")
        .select("p.*", "partition", "offset", "landed_time")
        .where(tf_map[F.col("timeframe")] == F.lit(timeframe_ms))
        .select(
            *SERIES_KEYS,
            F.timestamp_millis("event_time").alias("open_time"),
            F.timestamp_millis("available_time").alias("close_time"),
            "open", "high", "low", "close", "volume",
            F.timestamp_millis("ingest_time").alias("ingest_time"),
            "partition", "offset", "landed_time",
        )
    )
    bar_key = Window.partitionBy(*SERIES_KEYS, "open_time")
    first_landed = bar_key.orderBy(
        F.col("landed_time").asc_nulls_last(), F.col("partition").asc(), F.col("offset").asc()
    )
    deduped = (
        parsed.withColumn("_rank", F.row_number().over(first_landed))
        .withColumn("duplicates", (F.count(F.lit(1)).over(bar_key) - 1).cast("int"))
        .where("_rank = 1")
        .drop("_rank", "partition", "offset", "landed_time")
    )
    series = Window.partitionBy(*SERIES_KEYS).orderBy("open_time")
    step_ms = F.unix_millis("open_time") - F.unix_millis(F.col("prev_open_time"))
    missing = F.when(F.col("prev_open_time").isNull(), F.lit(0)).otherwise(
        F.floor(step_ms / F.lit(timeframe_ms)) - 1
    )
    with_gaps = (
        deduped.withColumn("prev_open_time", F.lag("open_time").over(series))
        .withColumn("missing_bars_before", missing.cast("int"))
        .withColumn("gap_before", F.col("missing_bars_before") > 0)
        .withColumn("bar_date", F.to_date("open_time"))
    )
    out_ddl = f"{SILVER_BARS.ddl}, prev_open_time TIMESTAMP"

    def per_series(pdf: pd.DataFrame) -> pd.DataFrame:
        return flag_series(pdf, jump_threshold=jump_threshold, max_flat_bars=max_flat_bars)

    inputs = [c for c in SILVER_BARS.column_names if c not in _DERIVED]
    return with_gaps.select(*inputs, "prev_open_time").groupBy(*SERIES_KEYS).applyInPandas(per_series, out_ddl)


def flag_series(pdf: pd.DataFrame, *, jump_threshold: float, max_flat_bars: int) -> pd.DataFrame:
    """One series' bars -> the same bars ordered by ``open_time`` with every flag, ``is_valid`` and reasons.

    Pure pandas/NumPy (the body of silver's per-series ``applyInPandas``). ``flag_reasons`` lists,
    comma-separated in flag order, the first problem of each consistency flag, then ``price_jump``
    and ``stale``.
    """
    pdf = pdf.sort_values("open_time", kind="stable").reset_index(drop=True)
    ohlcv = [pdf[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")]
    checks = rule.candle_checks(*ohlcv)
    reasons: list[np.ndarray] = []
    for column, problems in FLAG_PROBLEMS.items():
        hits = [checks[p] for p in problems]
        pdf[column] = np.logical_or.reduce(hits)
        reasons.append(np.select(hits, list(problems), default="").astype(object))
    pdf["flag_jump"] = flag_jumps(ohlcv[3], jump_threshold)
    pdf["flag_stale"] = rule.stale_flags(rule.is_flat(*ohlcv), max_flat_bars)
    for column in ("flag_jump", "flag_stale"):
        reasons.append(np.where(pdf[column].to_numpy(), FLAG_REASONS[column], "").astype(object))
    pdf["is_valid"] = ~np.logical_or.reduce([pdf[c].to_numpy(dtype=bool) for c in FLAG_REASONS])
    pdf["flag_reasons"] = _join_reasons(reasons, len(pdf))
    return pdf


def _join_reasons(reasons: list[np.ndarray], n: int) -> np.ndarray:
    """Row-wise ``",".join`` of the non-empty strings of several object arrays."""
    out = np.full(n, "", dtype=object)
    for r in reasons:
        has = r != ""
        out = np.where(has & (out != ""), out + "," + r, np.where(has, r, out))
    return out


def flag_jumps(close: np.ndarray, threshold: float) -> np.ndarray:
    """Jump flags of one series ordered by time (see the module docstring for the rule)."""
    close = np.where(np.asarray(close, dtype=float) > 0, close, np.nan)
    n = len(close)
    ref = pd.Series(close).ffill().to_numpy()  # a non-positive print is flagged elsewhere
    r1 = np.full(n, np.nan)
    r1[1:] = np.log(close[1:] / ref[:-1])
    r2 = np.full(n, np.nan)
    r2[2:] = np.log(close[2:] / ref[:-2])
    padded = np.concatenate([np.full(JUMP_WINDOW, np.nan), r1])
    windows = np.lib.stride_tricks.sliding_window_view(padded[:-1], JUMP_WINDOW)  # row t: r1[t-W:t]
    enough = np.sum(~np.isnan(windows), axis=1) >= JUMP_MIN_PERIODS
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    if enough.any():
        w = windows[enough]
        med[enough] = np.nanmedian(w, axis=1)
        mad[enough] = np.nanmedian(np.abs(w - med[enough][:, None]), axis=1)
    scale = np.fmax(_MAD_TO_SIGMA * mad, JUMP_MIN_SCALE)
    z1 = np.abs(r1 - med) / scale
    z2 = np.abs(r2 - med) / scale
    jump = np.where(np.isnan(z1), False, z1 > threshold)
    reversal = np.zeros(n, dtype=bool)
    reversal[1:] = jump[:-1] & ~np.isnan(z2[1:]) & (z2[1:] <= threshold)
    return jump & ~reversal


def validate_bars(bars: DataFrame, start: datetime, end: datetime) -> dict[str, Any]:
    """Check silver rows before writing (one pass); returns totals plus ``per_series`` row counts.

    Raises naming the bad field: a missing key, a duplicate bar or a bar outside the interval.
    """
    from pyspark.sql import functions as F

    if tuple(bars.columns) != SILVER_BARS.column_names:
        raise SchemaMismatchError(f"silver.bars rows have columns {bars.columns}, spec {SILVER_BARS.column_names}")
    outside = (F.col("open_time") < F.expr(sql_ts(start))) | (F.col("open_time") >= F.expr(sql_ts(end)))
    groups = bars.groupBy(*SERIES_KEYS).agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("open_time").alias("distinct_keys"),
        F.sum(F.col("open_time").isNull().cast("int")).alias("null_open_time"),
        F.sum(outside.cast("int")).alias("outside"),
        F.sum(F.col("is_valid").cast("int")).alias("valid"),
        F.sum("duplicates").alias("duplicates"),
        F.sum(F.col("gap_before").cast("int")).alias("gaps"),
        F.sum("missing_bars_before").alias("missing_bars"),
        *[F.sum(F.col(c).cast("int")).alias(c) for c in FLAG_REASONS],
    ).collect()
    totals: dict[str, Any] = {"per_series": {}}
    for g in groups:
        for k in SERIES_KEYS:
            if g[k] is None:
                raise DataValidationError(k, None, f"{g['rows']} silver bars have no {k}")
        series = f"{g['exchange']}:{g['symbol']}:{g['timeframe']}"
        if g["null_open_time"]:
            raise DataValidationError("open_time", None, f"{g['null_open_time']} bars of {series} have none")
        if g["rows"] != g["distinct_keys"]:
            raise DataValidationError("open_time", series, "duplicate bars after dedup")
        if g["outside"]:
            raise DataValidationError("open_time", series, f"{g['outside']} bars outside [{start}, {end})")
        totals["per_series"][series] = int(g["rows"])
        for name in ("rows", "valid", "duplicates", "gaps", "missing_bars", *FLAG_REASONS):
            totals[name] = totals.get(name, 0) + int(g[name] or 0)
    return totals


def run_silver_bars(start: datetime, end: datetime, settings: Settings | None = None) -> SilverResult:
    """Build silver.bars for bars opening in ``[start, end)`` from bronze and MERGE them (idempotent).

    Then MERGE every series' status as of ``end`` into silver.series_status (also when the interval
    has no bars: that is when a stopped feed shows).
    """
    from pyspark.sql import functions as F

    from spark_jobs.session import get_spark
    from spark_jobs.silver.series_status import run_series_status

    settings = settings or get_settings()
    check_interval(start, end)
    check_max_flat_bars(settings.market.max_flat_bars)
    spark = get_spark(settings)
    bronze = bronze_spec(topics.MARKET_OHLCV)
    if not table_exists(spark, bronze, settings):
        raise TableNotFoundError(f"{bronze.name} does not exist at {bronze.path(settings)}: run the landing job")
    raw = spark.read.format("delta").load(bronze.path(settings))
    result = SilverResult(start=start.isoformat(), end=end.isoformat())
    in_interval = raw.where(interval_filter("event_date", "event_time", start, end))
    timeframes = [
        r[0] for r in in_interval.select(F.get_json_object("payload", "$.timeframe")).distinct().collect()
    ]
    unknown = [tf for tf in timeframes if tf not in TIMEFRAME_MS]
    if unknown:
        raise DataValidationError("timeframe", unknown[0], f"unknown timeframe, expected one of {sorted(TIMEFRAME_MS)}")
    parts: list[DataFrame] = []
    for tf in sorted(timeframes):
        tf_ms = TIMEFRAME_MS[tf]
        read_from = start - timedelta(milliseconds=tf_ms * CONTEXT_BARS)
        window = raw.where(interval_filter("event_date", "event_time", read_from, end))
        built = _build(window, timeframe_ms=tf_ms, jump_threshold=settings.market.jump_threshold,
                       max_flat_bars=settings.market.max_flat_bars)
        built = built.where(f"open_time >= {sql_ts(start)} AND open_time < {sql_ts(end)}")
        parts.append(_fill_gaps_from_silver(spark, built, read_from, tf_ms, settings))
    if parts:
        _merge_bars(spark, parts, result, start, end, settings)
    else:
        log.info("silver.bars.empty", extra={"start": result.start, "end": result.end})
    status = run_series_status(spark, end, settings)
    result.series, result.stale_series, result.stale_series_keys = status.series, len(status.stale), status.stale
    log.info("silver.bars.done", extra={k: v for k, v in vars(result).items()})
    return result


def _merge_bars(spark: SparkSession, parts: list[DataFrame], result: SilverResult, start: datetime,
                end: datetime, settings: Settings) -> None:
    """Validate and MERGE the built bars of every timeframe; record the counts in ``result``."""
    bars = parts[0]
    for part in parts[1:]:
        bars = bars.unionByName(part)
    bars = bars.select(*SILVER_BARS.column_names).persist()
    try:
        summary = validate_bars(bars, start, end)
        target = interval_filter("t.bar_date", "t.open_time", start, end)
        metrics = merge_rows(spark, bars, SILVER_BARS, target_filter=target, settings=settings)
    finally:
        bars.unpersist()
    result.rows = summary.get("rows", 0)
    result.valid = summary.get("valid", 0)
    result.invalid = result.rows - result.valid
    result.duplicates = summary.get("duplicates", 0)
    result.gaps = summary.get("gaps", 0)
    result.missing_bars = summary.get("missing_bars", 0)
    result.flagged = {reason: summary.get(c, 0) for c, reason in FLAG_REASONS.items()}
    result.inserted, result.updated, result.table_version = (
        metrics["inserted"], metrics["updated"], metrics["version"],
    )
    result.per_series = summary["per_series"]


def _fill_gaps_from_silver(
    spark: SparkSession, built: DataFrame, read_from: datetime, tf_ms: int, settings: Settings
) -> DataFrame:
    """Bars with no predecessor in the read window: measure the gap from silver's last earlier bar.

    A gap longer than the context window would otherwise look like the start of a series.
    """
    from pyspark.sql import functions as F

    if not table_exists(spark, SILVER_BARS, settings):
        return built.drop("prev_open_time")
    last = (
        spark.read.format("delta").load(SILVER_BARS.path(settings))
        .where(f"bar_date <= DATE '{read_from.date().isoformat()}' AND open_time < {sql_ts(read_from)}")
        .groupBy(*SERIES_KEYS).agg(F.max("open_time").alias("_last_silver"))
    )
    joined = built.join(F.broadcast(last), list(SERIES_KEYS), "left")
    step = F.unix_millis("open_time") - F.unix_millis("_last_silver")
    use = F.col("prev_open_time").isNull() & F.col("_last_silver").isNotNull()
    missing = F.when(use, (F.floor(step / F.lit(tf_ms)) - 1).cast("int")).otherwise(F.col("missing_bars_before"))
    return (
        joined.withColumn("missing_bars_before", missing)
        .withColumn("gap_before", F.col("missing_bars_before") > 0)
        .drop("_last_silver", "prev_open_time")
    )
