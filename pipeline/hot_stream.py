"""The hot path as a streaming process: ``market.ohlcv`` candles -> :class:`HotPath` -> ``signals``, in-process.

The low-latency route from a venue's bar close to a signal (the issue's goal: p99 < 5 s for 1-minute
bars on 2 cores), beside the Spark path that stays the lake's record (bronze -> silver -> gold ->
gold.signals). No JVM: a Kafka consumer group (:func:`group_source`) polls the candles; each record
is checked with the landing's own :func:`~spark_jobs.bronze.landing.check_payload` against
``OhlcvV1`` (a bad one goes to ``dlq.market.ohlcv`` with a reason naming the field, the dead-letter
path every Python consumer uses; ``cryptolake`` lands it in ``quarantine.dlq_market_ohlcv``); the
valid candles of a poll go through :meth:`HotPath.add` together (the windows were seeded from
``silver.bars`` at start, :func:`silver_seed`), and the scores are published with the batch scorer's
:func:`~pipeline.scorer.signal_messages`: the same ``signal_id`` per (model, bar), so the trader, which
skips an id it has seen, trades each bar once whichever route delivered it first.

At-least-once: the poll's offsets are committed only after every signal and dead letter of the poll
is acknowledged by the broker (``flush``). A crash before the commit replays the poll after the
restart and re-publishes the same ids (skipped downstream). Candles only ever arrive closed (the
connectors publish a candle once its close has passed), so every valid new bar is scored once per
run. A model that failed the champion gate (:func:`~pipeline.scorer.gate_refusal`) consumes nothing
and publishes nothing.

Stages: each new bar is stamped ``ingest`` (the candle's ``ingest_time``), ``hot_features`` (its gold
row computed) and ``hot_signal`` (its signal acknowledged) in ``ops.bar_stages`` with delta-rs
(:class:`trader.stages.DeltaStages`), buffered and appended every ``stamp_every_s`` (the stamps carry
their own times, so the append's delay is not in them); :mod:`pipeline.latency` reports them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from cryptolake import topics
from cryptolake.logs import get_logger
from cryptolake.schemas import Message, OhlcvV1
from cryptolake.settings import Settings
from cryptolake.stages import StageSink, stage_rows
from cryptolake.tables import SILVER_BARS
from cryptolake.types import TIMEFRAME_MS
from pipeline.hotpath import HotPath, HotResult, bars_frame
from pipeline.scorer import gate_refusal, signal_messages
from spark_jobs.bronze.landing import check_payload
from spark_jobs.gold.features import INPUT_COLUMNS, SERIES_KEYS
from trader.feeds.kafka_source import DeadLetters, KafkaSource, Record, Source
from trader.stages import DeltaStages

if TYPE_CHECKING:
    from models.registry import ModelRegistry
    from pipeline.stream_metrics import StreamMetrics

log = get_logger(__name__)
HOT_GROUP = "cryptolake-hot"
DAY_MS = 86_400_000
KEYS = ["exchange", "symbol", "timeframe", "ts"]


class SignalSink(Protocol):
    """Where signals go (the validated producer; a list in tests). ``flush`` waits for the broker's acks."""

    def send_message(self, msg: Message) -> None: ...

    def flush(self, timeout: float = 60.0) -> None: ...


@dataclass
class HotStats:
    """What the hot consumer did."""

    records: int = 0
    candles: int = 0
    dead_lettered: int = 0
    other_timeframes: int = 0
    skipped: int = 0  # gave no gold row: already in the window (a replay) or flagged invalid by silver's rules
    features: int = 0
    signals: int = 0
    polls: int = 0
    commits: int = 0
    stamps_written: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HotBatch:
    """One poll's outcome: the new bars' gold rows and scores, the valid candles (``bars_frame`` rows and
    their ``ingest_ts``), when handling started and when its signals were acknowledged (epoch seconds)."""

    result: HotResult
    candles: pd.DataFrame
    started_at: float
    published_at: float


class HotConsumer:
    """One poll at a time: validate, add to the windows, publish, flush, then commit the poll's offsets.

    ``timeframes``: the candles handled (the model's); other timeframes are skipped and committed.
    ``on_batch`` is called after each poll that produced gold rows (metrics).
    """

    def __init__(self, hot: HotPath, source: Source, dead_letters: DeadLetters, signals: SignalSink,
                 stages: StageSink | None, *, timeframes: Iterable[str], poll_timeout_ms: int = 500,
                 stamp_every_s: float = 2.0, clock: Callable[[], float] = time.time,
                 on_batch: Callable[[HotBatch], None] | None = None) -> None:
        self.hot = hot
        self.source = source
        self.dead_letters = dead_letters
        self.signals = signals
        self.stages = stages
        self.timeframes = frozenset(timeframes)
        self.poll_timeout_ms = poll_timeout_ms
        self.stamp_every_s = stamp_every_s
        self.clock = clock
        self.on_batch = on_batch
        self.stats = HotStats()
        self._stamps: list[pd.DataFrame] = []
        self._stamped_at = clock()

    def _reject(self, record: Record, reason: str) -> None:
        self.stats.dead_lettered += 1
        field_name = reason.split("=")[0].removeprefix("invalid ").strip()
        self.stats.reasons[field_name] = self.stats.reasons.get(field_name, 0) + 1
        log.warning("hot.dead_letter", extra={"topic": record.topic, "partition": record.partition,
                                              "offset": record.offset, "reason": reason})
        self.dead_letters.dead_letter(record.topic, record.key or "", record.value, reason)

    def _candles(self, records: Sequence[Record]) -> list[OhlcvV1]:
        out: list[OhlcvV1] = []
        for rec in records:
            reason = check_payload(rec.value, OhlcvV1)[0]
            if reason is not None:
                self._reject(rec, reason)
                continue
            candle = OhlcvV1.model_validate_json(rec.value)
            if candle.timeframe not in self.timeframes:
                self.stats.other_timeframes += 1
                continue
            out.append(candle)
        return out

    def step(self) -> int:
        """Poll once and handle what came; returns how many records. Offsets move only after the flush."""
        records = self.source.poll(self.poll_timeout_ms)
        self.stats.polls += 1
        if records:
            started_at = self.clock()
            self.stats.records += len(records)
            candles = self._candles(records)
            self.stats.candles += len(candles)
            handled = self._handle(candles) if candles else None
            self.signals.flush()  # signals (and dead letters, when the same producer) acknowledged ...
            if handled is not None:
                batch = HotBatch(handled[0], handled[1], started_at, self.clock())
                self._stamp(batch)
                log.info("hot.batch", extra={"records": len(records), "features": len(batch.result.features),
                                             "signals": len(batch.result.scores),
                                             "features_s": round(batch.result.features_at - started_at, 3),
                                             "seconds": round(batch.published_at - started_at, 3)})
            offsets: dict[tuple[str, int], int] = {}
            for r in records:
                tp = (r.topic, r.partition)
                offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            self.source.commit(offsets)  # ... before the offsets move: at-least-once
            self.stats.commits += 1
        if self.stages is not None and self._stamps and self.clock() - self._stamped_at >= self.stamp_every_s:
            self.flush_stamps()
        return len(records)

    def _handle(self, candles: list[OhlcvV1]) -> tuple[HotResult, pd.DataFrame] | None:
        """The candles' new gold rows and scores, the scores sent (not yet flushed); None if no bar was new."""
        frame = bars_frame(candles)
        result = self.hot.add(frame)
        self.stats.skipped += len(candles) - len(result.features)
        self.stats.features += len(result.features)
        if result.features.empty:
            return None
        for msg in signal_messages(result.scores) if not result.scores.empty else []:
            self.signals.send_message(msg)
        self.stats.signals += len(result.scores)
        frame["ingest_ts"] = pd.to_datetime([c.ingest_time for c in candles], unit="ms", utc=True)
        return result, frame

    def _stamp(self, batch: HotBatch) -> None:
        """Buffer the batch's stage rows (ingest, hot_features, hot_signal); hand the batch to ``on_batch``."""
        result = batch.result
        feats = result.features[KEYS].copy()
        feats["ts"] = pd.to_datetime(feats["ts"], utc=True)
        candles = batch.candles.rename(columns={"open_time": "ts"})
        ingest = feats.merge(candles[[*KEYS, "ingest_ts"]].drop_duplicates(KEYS), on=KEYS, how="left")  # first arrival
        parts = [stage_rows(ingest, "ingest", ingest["ingest_ts"]),
                 stage_rows(feats, "hot_features", pd.Timestamp(result.features_at, unit="s", tz="UTC"))]
        if not result.scores.empty:
            scored = result.scores.rename(columns={"bar_time": "ts"})
            parts.append(stage_rows(scored, "hot_signal", pd.Timestamp(batch.published_at, unit="s", tz="UTC")))
        self._stamps.append(pd.concat(parts, ignore_index=True))
        if self.on_batch is not None:
            self.on_batch(batch)

    def flush_stamps(self) -> None:
        """Append the buffered stage rows (one delta-rs commit)."""
        self._stamped_at = self.clock()
        if self.stages is None or not self._stamps:
            return
        rows = pd.concat(self._stamps, ignore_index=True)
        self.stages.append(rows)
        self._stamps = []
        self.stats.stamps_written += len(rows)

    def run(self, stop: threading.Event) -> HotStats:
        """Poll until ``stop``; the buffered stamps are written on the way out."""
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.flush_stamps()
        log.info("hot.stopped", extra={k: v for k, v in vars(self.stats).items() if k != "reasons"})
        return self.stats


# --- the real sources and sinks -------------------------------------------------------------------------
def group_source(topic_names: Sequence[str], *, group_id: str, settings: Settings,
                 replay_records: int = 1_000) -> KafkaSource:
    """``topic_names``' partitions, assigned to this one process, committed under ``group_id``.

    A (re)start resumes ``replay_records`` before the group's committed offset of each partition (the
    beginning the first time): the bars handled after the last one silver holds at the restart are read
    again, so the windows have no hole (those already in the window are skipped; a re-scored bar is
    re-published with its id, which consumers skip). Undecodable bytes arrive as U+FFFD, to be dead-lettered.
    """
    return KafkaSource(topic_names, group_id=group_id, settings=settings, resume_records=replay_records,
                       invalid_utf8="replace")


def seed_days(capacity: int, timeframes: Iterable[str]) -> int:
    """Days of silver partitions that hold ``capacity`` bars of the longest timeframe (plus a day each side)."""
    longest = max(TIMEFRAME_MS[t] for t in timeframes)
    return -(-capacity * longest // DAY_MS) + 1


def silver_seed(settings: Settings, *, capacity: int, timeframes: Sequence[str]) -> pd.DataFrame:
    """The last ``capacity`` bars of each series of ``timeframes`` in ``silver.bars`` (INPUT_COLUMNS), read with
    delta-rs (no JVM) from each series' newest partitions only; empty when silver does not exist yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from cryptolake.duck import delta_storage_options, duck_uri

    empty = pd.DataFrame(columns=list(INPUT_COLUMNS))
    try:
        table = DeltaTable(duck_uri(SILVER_BARS.path(settings)),
                           storage_options=delta_storage_options(settings) or None)
    except (TableNotFoundError, FileNotFoundError, OSError):
        return empty
    wanted = ("timeframe", "in", list(timeframes))
    series = list(SERIES_KEYS)
    last = table.to_pandas(columns=[*series, "bar_date"], filters=[wanted]).groupby(series)["bar_date"].max()
    if last.empty:
        return empty
    since = (last - timedelta(days=seed_days(capacity, timeframes))).rename("since")
    frame = table.to_pandas(columns=list(INPUT_COLUMNS), filters=[("bar_date", ">=", since.min()), wanted])
    frame = frame.merge(since.reset_index(), on=series)
    frame = frame[frame["open_time"].dt.date >= frame["since"]].drop(columns=["since"])
    frame = frame.sort_values([*series, "open_time"])
    return frame.groupby(series, sort=False).tail(capacity).reset_index(drop=True)


@dataclass(frozen=True)
class HotRun:
    """The started hot path: its consumer (None when the model may not publish) and what to close."""

    consumer: HotConsumer | None
    refused: str | None
    seeded: dict[str, int]
    close: Callable[[], None]


def start_hot(model_version: str, registry: ModelRegistry, settings: Settings, *, timeframes: Sequence[str],
              group_id: str = HOT_GROUP, poll_timeout_ms: int = 500, stamp_every_s: float = 2.0,
              replay_records: int = 1_000, metrics: StreamMetrics | None = None) -> HotRun:
    """Load the model, refuse it if it failed the champion gate, seed the windows from silver and subscribe."""
    from cryptolake.bus import Producer, ensure_topics

    refused = gate_refusal(registry, model_version)
    if refused is not None:
        log.warning("hot.refused", extra={"model_version": model_version, "reason": refused})
        return HotRun(None, refused, {}, lambda: None)
    model = registry.load(model_version)
    hot = HotPath(model, jump_threshold=settings.market.jump_threshold, max_flat_bars=settings.market.max_flat_bars)
    seed = silver_seed(settings, capacity=hot.capacity, timeframes=timeframes)
    hot.seed(seed)
    hot.warm_up()
    seeded = {":".join(k): len(w) for k, w in hot.windows.items()}
    ensure_topics([topics.MARKET_OHLCV, topics.SIGNALS], settings)
    producer = Producer(settings, client_id="cryptolake-hot", linger_ms=0)
    source = group_source([topics.MARKET_OHLCV], group_id=group_id, settings=settings, replay_records=replay_records)
    consumer = HotConsumer(hot, source, producer, producer, DeltaStages(settings), timeframes=timeframes,
                           poll_timeout_ms=poll_timeout_ms, stamp_every_s=stamp_every_s,
                           on_batch=None if metrics is None else metrics_observer(metrics))
    log.info("hot.started", extra={"model_version": model_version, "group_id": group_id, "seeded": seeded,
                                   "timeframes": list(timeframes)})

    def close() -> None:
        try:
            producer.flush()
        finally:
            producer.close()
            source.close()

    return HotRun(consumer, None, seeded, close)


def metrics_observer(metrics: StreamMetrics) -> Callable[[HotBatch], None]:
    """An ``on_batch`` that records the batch's per-bar latencies: from the venue close and from ingest."""

    def observe(batch: HotBatch) -> None:
        feats, scores = batch.result.features, batch.result.scores
        metrics.batch("hot", batch.published_at - batch.started_at, batch.published_at)
        metrics.rows_written.labels("hot_features").inc(len(feats))
        metrics.rows_written.labels("hot_signal").inc(len(scores))
        step = pd.to_timedelta(feats["timeframe"].map(TIMEFRAME_MS), unit="ms")
        close = (pd.to_datetime(feats["ts"], utc=True) + step).map(pd.Timestamp.timestamp)
        metrics.latencies("hot_features", [batch.result.features_at - c for c in close])
        if scores.empty:
            return
        step = pd.to_timedelta(scores["timeframe"].map(TIMEFRAME_MS), unit="ms")
        s_close = (scores["bar_time"] + step).map(pd.Timestamp.timestamp)
        metrics.latencies("hot_signal", [batch.published_at - c for c in s_close])
        candles = batch.candles.rename(columns={"open_time": "ts"})[[*KEYS, "ingest_ts"]]
        keyed = scores.rename(columns={"bar_time": "ts"})[KEYS].merge(candles.drop_duplicates(KEYS), on=KEYS)
        metrics.hops("ingest->hot_signal", [batch.published_at - t.timestamp() for t in keyed["ingest_ts"]])

    return observe


def run_hot(run: HotRun, stop: threading.Event) -> HotStats | None:
    """Consume until ``stop`` (a refused model only waits for it: it publishes nothing, commits nothing)."""
    if run.consumer is None:
        stop.wait()
        return None
    try:
        return run.consumer.run(stop)
    finally:
        run.close()
