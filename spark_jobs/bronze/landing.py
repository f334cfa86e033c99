"""Exactly-once landing of a Kafka topic into its Delta bronze table.

Kafka (``startingOffsets=earliest``) -> Structured Streaming with ``trigger(availableNow=True)``
-> ``foreachBatch``: each payload is checked by the *same* pydantic model producers use
(``cryptolake.schemas.SCHEMAS``) inside a vectorised pandas UDF (pydantic-core parses the JSON
in Rust, so ~175k messages validate in a few seconds; a Spark-native copy of the rules would
drift from the contracts). Valid rows append to ``bronze_spec(topic)``, the rest to
``dead_letter_spec(topic)`` with the reason. Both appends are Delta idempotent writes
(``txnAppId`` = table + the query's checkpoint id, ``txnVersion`` = batch id), so a batch
replayed after a crash commits at most once and the checkpoint makes the Kafka offsets move
exactly once. ``land_dead_letters`` does the same for the producer-side ``dlq.<topic>``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd  # at runtime: pandas UDF type hints are resolved from this module's globals
from pydantic import ValidationError

from cryptolake import topics
from cryptolake.bus import bootstrap_servers, cluster_id
from cryptolake.errors import ConfigError, DataValidationError
from cryptolake.logs import get_logger
from cryptolake.schemas import SCHEMAS, Message, error_detail
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import bronze_spec, dead_letter_spec
from spark_jobs.delta_io import ensure_table, translate_spark_error

if TYPE_CHECKING:
    from pyspark.accumulators import Accumulator
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = get_logger(__name__)

# Same plausibility window as cryptolake.schemas.Message (catches seconds-vs-ms mix-ups).
_MIN_MS, _MAX_MS = 1_230_768_000_000, 4_102_444_800_000
_MAX_VALUE_CHARS = 200
CHECK_DDL = "reason STRING, event_time BIGINT, available_time BIGINT, ingest_time BIGINT"
# Fault injection (tests only, off by default): when set to an exit code, the landing process
# os._exit()s right after a batch's bronze Delta commit, before Spark writes the batch's commit
# to the checkpoint, so the restart replays a batch Delta already holds (the txn id must skip it).
FAULT_EXIT_AFTER_COMMIT_ENV = "CRYPTOLAKE_FAULT_EXIT_AFTER_BRONZE_COMMIT"


@dataclass(frozen=True)
class LandingResult:
    """What one landing run did."""

    topic: str
    rows_landed: int
    rows_quarantined: int
    batches: int


@dataclass(frozen=True)
class BatchReport:
    """What one landing micro-batch did (handed to an ``on_batch`` callback: metrics, logs)."""

    topic: str
    batch_id: int
    landed: int
    quarantined: int
    seconds: float
    landed_time: datetime


OnBatch = Callable[[BatchReport], None]


# --- pure checks (no JVM) ----------------------------------------------------------------
def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        return value[:_MAX_VALUE_CHARS] + "..."
    return value


CheckResult = tuple[str | None, int | None, int | None, int | None]


def check_payload(raw: str | None, model: type[Message] | None) -> CheckResult:
    """``(reason, event_time, available_time, ingest_time)`` of one payload; reason is None when valid.

    With a model, the payload must pass it (same rules as the producer). Without one it must be a
    JSON object with an epoch-ms ``event_time``. The reason is a DataValidationError message.
    """
    if raw is None:
        return str(DataValidationError("payload", None, "empty Kafka value")), None, None, None
    if model is not None:
        try:
            msg = model.model_validate_json(raw)
        except ValidationError as exc:
            field, value, why = error_detail(exc.errors()[0])
            return str(DataValidationError(field, _short(value), why)), None, None, None
        return None, msg.event_time, msg.available_time, msg.ingest_time
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        return str(DataValidationError("payload", _short(raw), f"not valid JSON: {exc}")), None, None, None
    if not isinstance(obj, dict):
        return str(DataValidationError("payload", _short(raw), "must be a JSON object")), None, None, None
    times: list[int | None] = []
    for name in ("event_time", "available_time", "ingest_time"):
        value = obj.get(name)
        if value is None and name != "event_time":
            times.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not _MIN_MS <= value <= _MAX_MS:
            reason = "not an epoch-milliseconds time between 2009 and 2100"
            return str(DataValidationError(name, _short(value), reason)), None, None, None
        times.append(int(value))
    return None, times[0], times[1], times[2]


def check_payloads(raw: pd.Series, model: type[Message] | None) -> pd.DataFrame:
    """Vectorised :func:`check_payload` over a Series of JSON strings (the pandas UDF body)."""
    rows = [check_payload(None if v is None else str(v), model) for v in raw]
    frame = pd.DataFrame(rows, columns=["reason", "event_time", "available_time", "ingest_time"])
    for col in ("event_time", "available_time", "ingest_time"):
        frame[col] = frame[col].astype("Int64")
    return frame


def model_for(topic: str, validate: bool) -> type[Message] | None:
    """The schema a topic's payloads must pass, or None (valid JSON with event_time is enough)."""
    return SCHEMAS.get(topic) if validate else None


def checkpoint_location(kind: str, topic: str, settings: Settings) -> str:
    """``<checkpoints>/<kind>/<topic>``."""
    return f"{settings.paths.checkpoints().rstrip('/')}/{kind}/{topic}"


# --- Spark ---------------------------------------------------------------------------------
def to_bronze(batch: DataFrame, model: type[Message] | None, landed_time: datetime,
              counters: tuple[Accumulator[int], Accumulator[int]] | None = None) -> DataFrame:
    """Kafka rows -> checked rows with bronze columns plus ``reason`` (null when valid).

    ``counters`` (valid, invalid) are Spark accumulators the check adds to as it runs, so the
    caller learns both counts from the pass that writes, without caching or re-reading the batch.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(CHECK_DDL)  # type: ignore[call-overload]
    def check(raw: pd.Series) -> pd.DataFrame:
        frame = check_payloads(raw, model)
        if counters is not None:
            bad = int(frame["reason"].notna().sum())
            counters[0].add(len(frame) - bad)
            counters[1].add(bad)
        return frame

    # Non-deterministic stops the optimizer from copying the UDF into both the filter and the
    # projection (which ran it twice per row and double-counted).
    check = check.asNondeterministic()
    # Kafka values are bytes: invalid UTF-8 (random bytes) becomes U+FFFD, so Arrow, Parquet and every
    # reader get a valid string, and the check still refuses it naming ``payload`` (found by the fuzz test).
    payload = F.make_valid_utf8(F.col("value").cast("string"))
    checked = _with_kafka_columns(batch, payload.alias("payload"), check(payload).alias("c"))
    return checked.select(
        "key", "payload", "topic", "partition", "offset", "kafka_time",
        F.timestamp_millis("c.event_time").alias("event_time"),
        F.timestamp_millis("c.available_time").alias("available_time"),
        F.timestamp_millis("c.ingest_time").alias("ingest_time"),
        F.lit(landed_time).cast("timestamp").alias("landed_time"),
        F.to_date(F.timestamp_millis("c.event_time")).alias("event_date"),
        F.col("c.reason").alias("reason"),
    )


def _with_kafka_columns(batch: DataFrame, *extra: Column) -> DataFrame:
    """A Kafka batch's key, topic, partition, offset and ``kafka_time`` with the bronze types, plus ``extra``."""
    from pyspark.sql import functions as F

    return batch.select(
        F.col("key").cast("string").alias("key"),
        F.col("topic"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.col("timestamp").alias("kafka_time"),
        *extra,
    )


def _append(df: DataFrame, path: str, app_id: str, batch_id: int) -> None:
    (df.write.format("delta").mode("append")
       .option("txnAppId", app_id).option("txnVersion", batch_id).save(path))


class _Batches:
    """foreachBatch state: the query id (for txnAppId) and running totals."""

    def __init__(self) -> None:
        self.query_id = ""
        self.ready = threading.Event()
        self.busy = threading.Lock()  # held while a batch runs: a graceful stop waits for it
        self.landed = 0
        self.quarantined = 0
        self.batches = 0


CLUSTER_MARKER = "kafka_cluster_id"


def bind_checkpoint(spark: SparkSession, checkpoint: str, settings: Settings) -> str:
    """Tie a Kafka checkpoint to its cluster; a checkpoint of another cluster is refused, never resumed.

    Kafka offsets mean nothing across clusters: resuming another cluster's checkpoint would skip
    (or replay) records without an error, so the first start writes the cluster id beside the
    offsets (through Hadoop's file system: local or s3a) and every later start compares it.
    """
    current = cluster_id(settings)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hpath = jvm.org.apache.hadoop.fs.Path
    marker = hpath(f"{checkpoint.rstrip('/')}/{CLUSTER_MARKER}")
    fs = marker.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.exists(marker):
        stream = fs.open(marker)
        try:
            recorded = str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")).strip()
        finally:
            stream.close()
        if recorded != current:
            raise ConfigError(f"checkpoint {checkpoint}: written against Kafka cluster {recorded!r}, but the broker "
                              f"at {bootstrap_servers(settings)} is cluster {current!r}; its offsets would skip or "
                              "replay records: use another paths.checkpoint_root or delete that checkpoint")
        return current
    if fs.exists(hpath(f"{checkpoint.rstrip('/')}/offsets")):  # written before the marker existed: adopted
        log.warning("bronze.checkpoint_adopted", extra={"checkpoint": checkpoint, "cluster_id": current})
    out = fs.create(marker, True)
    try:
        out.write(bytearray((current + "\n").encode()))
    finally:
        out.close()
    return current


def _start_stream(spark: SparkSession, topic: str, checkpoint: str, settings: Settings,
                  max_offsets_per_trigger: int | None, handler: Any, state: _Batches, what: str,
                  trigger_seconds: float | None = None) -> StreamingQuery:
    """Start the Kafka -> foreachBatch query: ``availableNow`` (a run), or every ``trigger_seconds``."""
    bind_checkpoint(spark, checkpoint, settings)
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers(settings))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "false")
    )
    if max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    trigger: dict[str, Any] = ({"availableNow": True} if trigger_seconds is None
                               else {"processingTime": f"{trigger_seconds} seconds"})
    try:
        query = (
            reader.load().writeStream.queryName(f"{what}-{topic}")
            .option("checkpointLocation", checkpoint)
            .trigger(**trigger)
            .foreachBatch(handler)
            .start()
        )
    except Exception as exc:  # py4j StreamingQueryException and friends
        state.ready.set()
        raise translate_spark_error(exc, f"{what} {topic}") from exc
    state.query_id = str(query.id)  # persists across restarts from the same checkpoint
    state.ready.set()
    return query


def _run_stream(spark: SparkSession, topic: str, checkpoint: str, settings: Settings,
                max_offsets_per_trigger: int | None, handler: Any, state: _Batches, what: str) -> None:
    query = _start_stream(spark, topic, checkpoint, settings, max_offsets_per_trigger, handler, state, what)
    try:
        query.awaitTermination()
    except Exception as exc:  # py4j StreamingQueryException and friends
        raise translate_spark_error(exc, f"{what} {topic}") from exc


def _fault_exit_code() -> int | None:
    value = os.environ.get(FAULT_EXIT_AFTER_COMMIT_ENV)
    return int(value) if value else None


def _land_handler(spark: SparkSession, topic: str, settings: Settings, validate: bool,
                  stamp: Callable[[], datetime], state: _Batches,
                  on_batch: OnBatch | None = None) -> Callable[[DataFrame, int], None]:
    """The validated, idempotent foreachBatch body of ``topic``'s landing (batch runs and continuous)."""
    from pyspark.sql import functions as F

    bronze, quarantine = bronze_spec(topic), dead_letter_spec(topic)
    ensure_table(spark, bronze, settings)
    ensure_table(spark, quarantine, settings)
    bronze_path, quarantine_path = bronze.path(settings), quarantine.path(settings)
    model = model_for(topic, validate)
    fault_exit = _fault_exit_code()

    def handle(batch: DataFrame, batch_id: int) -> None:
        state.ready.wait(timeout=60)
        with state.busy:
            t0, landed_time = time.monotonic(), stamp()
            counters = (spark.sparkContext.accumulator(0), spark.sparkContext.accumulator(0))
            checked = to_bronze(batch, model, landed_time, counters)
            bad = checked.where(F.col("reason").isNotNull()).select(*quarantine.column_names)
            try:
                # One pass: Kafka -> check -> bronze append; the check counts valid and invalid rows.
                good = checked.where(F.col("reason").isNull()).select(*bronze.column_names)
                _append(good, bronze_path, f"{bronze.name}:{state.query_id}", batch_id)
                n_good, n_bad = counters[0].value, counters[1].value
                if fault_exit is not None and n_good:
                    os._exit(fault_exit)  # fault injection: after the Delta commit, before the checkpoint's
                if n_good + n_bad == 0:
                    # Delta skipped an append this batch already committed (a replay after a crash):
                    # count the invalid rows explicitly so the quarantine append is not lost.
                    n_bad = bad.count()
                t_good = time.monotonic()
                if n_bad:
                    # Rare: a second pass over the batch, for the invalid rows only.
                    _append(bad.coalesce(1), quarantine_path, f"{quarantine.name}:{state.query_id}", batch_id)
            except Exception as exc:
                raise translate_spark_error(exc, f"land batch {batch_id} of {topic}") from exc
            state.landed += n_good
            state.quarantined += n_bad
            state.batches += 1
            seconds = time.monotonic() - t0
        log.info("bronze.batch", extra={"topic": topic, "batch_id": batch_id, "landed": n_good,
                                        "quarantined": n_bad, "bronze_s": round(t_good - t0, 2),
                                        "quarantine_s": round(seconds - (t_good - t0), 2),
                                        "total_landed": state.landed})
        if n_bad:
            log.warning("bronze.quarantined", extra={"topic": topic, "batch_id": batch_id, "rows": n_bad})
        if on_batch is not None:
            on_batch(BatchReport(topic, batch_id, n_good, n_bad, seconds, landed_time))

    return handle


def land_topic(topic: str, *, settings: Settings | None = None, validate: bool = True,
               max_offsets_per_trigger: int | None = None, landed_time: datetime | None = None) -> LandingResult:
    """Land everything new on ``topic`` into ``bronze_spec(topic)``, exactly once; bad rows to quarantine.

    ``landed_time`` defaults to the wall clock at the start of the run (it is load metadata, not
    a transform input).
    """
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    spark = get_spark(settings)
    stamp = landed_time or datetime.now(UTC)
    state = _Batches()
    handle = _land_handler(spark, topic, settings, validate, lambda: stamp, state)
    _run_stream(spark, topic, checkpoint_location("bronze", topic, settings), settings,
                max_offsets_per_trigger, handle, state, "land")
    result = LandingResult(topic, state.landed, state.quarantined, state.batches)
    log.info("bronze.landed", extra={"topic": topic, "rows_landed": result.rows_landed,
                                     "rows_quarantined": result.rows_quarantined, "batches": result.batches})
    return result


def start_landing(topic: str, *, trigger_seconds: float, settings: Settings | None = None, validate: bool = True,
                  max_offsets_per_trigger: int | None = None,
                  on_batch: OnBatch | None = None) -> tuple[StreamingQuery, threading.Lock]:
    """Start landing ``topic`` continuously (a micro-batch every ``trigger_seconds``); returns the query
    and the lock its batches hold (so a stop can wait for the current batch, see ``spark_jobs.streaming``).

    The same checkpoint, checks and Delta txn ids as :func:`land_topic`: batch and continuous runs
    may follow each other on one topic. ``landed_time`` is each batch's start (wall clock).
    """
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    spark = get_spark(settings)
    state = _Batches()
    handle = _land_handler(spark, topic, settings, validate, lambda: datetime.now(UTC), state, on_batch)
    query = _start_stream(spark, topic, checkpoint_location("bronze", topic, settings), settings,
                          max_offsets_per_trigger, handle, state, "land", trigger_seconds)
    return query, state.busy


def parse_envelope(raw: str | None) -> tuple[str | None, str, str | None]:
    """A producer dead-letter envelope -> ``(payload, reason, original topic)``."""
    if raw is None:
        return None, "empty dead-letter record", None
    try:
        env = json.loads(raw)
    except ValueError as exc:
        return raw, f"unreadable dead-letter envelope: {exc}", None
    if not isinstance(env, dict) or "reason" not in env:
        return raw, "unreadable dead-letter envelope: no reason field", None
    payload = env.get("payload")
    return (None if payload is None else str(payload)), str(env["reason"]), env.get("topic")


def land_dead_letters(topic: str, *, settings: Settings | None = None,
                      landed_time: datetime | None = None) -> LandingResult:
    """Land the producer-side dead letters of ``topic`` (Kafka ``dlq.<topic>``) into
    ``dead_letter_spec("dlq.<topic>")`` (``quarantine.dlq_<topic>``), exactly once, with their reasons."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    spark = get_spark(settings)
    dlq_topic = topics.dlq(topic)
    spec = dead_letter_spec(dlq_topic)
    ensure_table(spark, spec, settings)
    path = spec.path(settings)
    stamp = landed_time or datetime.now(UTC)
    state = _Batches()

    @pandas_udf("payload STRING, reason STRING")  # type: ignore[call-overload]
    def unwrap(raw: pd.Series) -> pd.DataFrame:
        rows = [parse_envelope(None if v is None else str(v))[:2] for v in raw]
        return pd.DataFrame(rows, columns=["payload", "reason"])

    def handle(batch: DataFrame, batch_id: int) -> None:
        state.ready.wait(timeout=60)
        env = unwrap(F.col("value").cast("string"))
        rows = _with_kafka_columns(batch, env.alias("e")).select(
            "key", F.col("e.payload").alias("payload"), "topic", "partition", "offset", "kafka_time",
            F.col("e.reason").alias("reason"), F.lit(stamp).cast("timestamp").alias("landed_time"))
        try:
            rows = rows.persist()
            n = rows.count()
            if n:
                _append(rows.coalesce(1), path, f"{spec.name}:{state.query_id}", batch_id)
        except Exception as exc:
            raise translate_spark_error(exc, f"land dead letters batch {batch_id} of {dlq_topic}") from exc
        finally:
            rows.unpersist()
        state.quarantined += n
        state.batches += 1
        log.info("quarantine.batch", extra={"topic": dlq_topic, "batch_id": batch_id, "rows": n})

    _run_stream(spark, dlq_topic, checkpoint_location("quarantine", dlq_topic, settings), settings,
                None, handle, state, "dead-letters")
    return LandingResult(dlq_topic, 0, state.quarantined, state.batches)
