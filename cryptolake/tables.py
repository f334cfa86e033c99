"""Delta table specs: name, columns, keys and partitioning, declared once.

Columns use Spark SQL DDL types so Spark (``StructType.fromDDL``), DuckDB views and tests
all read the same declaration. Every table lives at ``<lake_root>/<layer>/<entity>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptolake.settings import Settings, get_settings


@dataclass(frozen=True)
class TableSpec:
    """One Delta table."""

    name: str  # "<layer>.<entity>"
    columns: tuple[tuple[str, str], ...]
    keys: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def entity(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def ddl(self) -> str:
        """``col type, col type, ...`` for ``StructType.fromDDL``."""
        return ", ".join(f"{c} {t}" for c, t in self.columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def path(self, settings: Settings | None = None) -> str:
        """Where the table lives under the configured lake root."""
        root = (settings or get_settings()).paths.lake().rstrip("/")
        return f"{root}/{self.layer}/{self.entity}"


# Columns every bronze table shares: the raw payload plus where and when it came from.
_BRONZE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "STRING"),
    ("payload", "STRING"),
    ("topic", "STRING"),
    ("partition", "INT"),
    ("offset", "BIGINT"),
    ("kafka_time", "TIMESTAMP"),
    ("event_time", "TIMESTAMP"),
    ("available_time", "TIMESTAMP"),
    ("ingest_time", "TIMESTAMP"),
    ("landed_time", "TIMESTAMP"),
    ("event_date", "DATE"),
)

_DEAD_LETTER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "STRING"),
    ("payload", "STRING"),
    ("topic", "STRING"),
    ("partition", "INT"),
    ("offset", "BIGINT"),
    ("kafka_time", "TIMESTAMP"),
    ("reason", "STRING"),
    ("landed_time", "TIMESTAMP"),
)


def bronze_spec(topic: str) -> TableSpec:
    """The bronze table a topic lands in: ``market.ohlcv`` -> ``bronze.market_ohlcv``."""
    return TableSpec(
        name=f"bronze.{topic.replace('.', '_')}",
        columns=_BRONZE_COLUMNS,
        keys=("topic", "partition", "offset"),
        partition_by=("event_date",),
        description=f"Raw payloads of Kafka topic {topic}, exactly once",
    )


def dead_letter_spec(topic: str) -> TableSpec:
    """The quarantine table of a topic: payloads that failed validation, with the reason."""
    return TableSpec(
        name=f"quarantine.{topic.replace('.', '_')}",
        columns=_DEAD_LETTER_COLUMNS,
        keys=("topic", "partition", "offset"),
        description=f"Messages of {topic} that failed validation on landing, with the reason",
    )


BARS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("exchange", "STRING"),
    ("symbol", "STRING"),
    ("timeframe", "STRING"),
    ("open_time", "TIMESTAMP"),
    ("close_time", "TIMESTAMP"),
    ("open", "DOUBLE"),
    ("high", "DOUBLE"),
    ("low", "DOUBLE"),
    ("close", "DOUBLE"),
    ("volume", "DOUBLE"),
    ("ingest_time", "TIMESTAMP"),
    ("gap_before", "BOOLEAN"),
    ("missing_bars_before", "INT"),
    ("flag_high_low", "BOOLEAN"),
    ("flag_negative_volume", "BOOLEAN"),
    ("flag_ohlc_range", "BOOLEAN"),
    ("flag_jump", "BOOLEAN"),
    ("flag_stale", "BOOLEAN"),  # one more flat, zero-volume bar in a run already max_flat_bars long
    ("is_valid", "BOOLEAN"),
    ("flag_reasons", "STRING"),
    ("duplicates", "INT"),
    ("bar_date", "DATE"),
)

SILVER_BARS = TableSpec(
    name="silver.bars",
    columns=BARS_COLUMNS,
    keys=("exchange", "symbol", "timeframe", "open_time"),
    partition_by=("bar_date",),
    description="Typed, deduplicated candles with gap and anomaly flags (never dropped, never invented)",
)

SIGNALS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("signal_id", "STRING"),  # cryptolake.ids.signal_id(model_version, bar key): the MERGE key
    ("exchange", "STRING"),
    ("symbol", "STRING"),
    ("timeframe", "STRING"),
    ("bar_time", "TIMESTAMP"),
    ("probability", "DOUBLE"),
    ("direction", "INT"),
    ("model_version", "STRING"),
    ("available_time", "TIMESTAMP"),
)

TABLES: dict[str, TableSpec] = {SILVER_BARS.name: SILVER_BARS}


def register(spec: TableSpec) -> TableSpec:
    """Add a spec to :data:`TABLES` (used by the modules that own gold/trading tables)."""
    TABLES[spec.name] = spec
    return spec


SILVER_SERIES_STATUS = register(
    TableSpec(
        name="silver.series_status",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            ("timeframe", "STRING"),
            ("as_of", "TIMESTAMP"),  # the end of the silver run's interval (its logical time)
            ("last_open_time", "TIMESTAMP"),  # the series' last bar opening before as_of
            ("last_close_time", "TIMESTAMP"),
            ("age_s", "DOUBLE"),  # as_of - last_close_time
            ("max_age_s", "DOUBLE"),  # settings.market.max_series_age_s when judged
            ("last_bar_stale", "BOOLEAN"),  # the last bar is flag_stale: the feed is frozen
            ("stale", "BOOLEAN"),
            ("reason", "STRING"),  # comma-separated: last_bar_too_old, last_bar_stale
        ),
        keys=("exchange", "symbol", "timeframe", "as_of"),
        description="Per series and as_of: how old its last bar is and whether the series is stale",
    )
)


# --- gold ------------------------------------------------------------------------------
# The model-facing feature list. spark_jobs.gold.features computes exactly these columns;
# models and sql/training_set.sql read exactly these. Warm-up is declared by the feature module.
FEATURE_COLUMNS: tuple[str, ...] = (
    "log_ret_1",
    "log_ret_2",
    "log_ret_4",
    "log_ret_8",
    "log_ret_16",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_pctb",
    "bb_width",
    "vwap_20_dev",
    "atr_14",
    "volatility_20",
    "volume_z_20",
)

GOLD_FEATURES = register(
    TableSpec(
        name="gold.features",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            ("timeframe", "STRING"),
            ("ts", "TIMESTAMP"),  # the bar's open time (event_time)
            ("close_time", "TIMESTAMP"),  # available_time: the feature is knowable at the bar's close
            ("close", "DOUBLE"),
            *((c, "DOUBLE") for c in FEATURE_COLUMNS),
            ("anomaly_score", "DOUBLE"),
            ("anomaly_flag", "BOOLEAN"),
            ("bar_date", "DATE"),
        ),
        keys=("exchange", "symbol", "timeframe", "ts"),
        partition_by=("bar_date",),
        description="Per-bar features from silver.bars after warm-up; uses only bars closed by close_time",
    )
)

GOLD_LABELS = register(
    TableSpec(
        name="gold.labels",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            ("timeframe", "STRING"),
            ("ts", "TIMESTAMP"),
            ("close_time", "TIMESTAMP"),
            ("next_log_return", "DOUBLE"),
            ("next_direction", "INT"),  # 1 up, 0 down or flat
            ("label_available_time", "TIMESTAMP"),  # the next bar's close
            ("bar_date", "DATE"),
        ),
        keys=("exchange", "symbol", "timeframe", "ts"),
        partition_by=("bar_date",),
        description="Next-bar return and direction; separate from features so features never see the future",
    )
)

GOLD_ANOMALIES = register(
    TableSpec(
        name="gold.anomalies",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            ("timeframe", "STRING"),
            ("ts", "TIMESTAMP"),
            ("iforest_score", "DOUBLE"),  # IsolationForest: higher = more isolated
            ("iforest_flag", "BOOLEAN"),
            ("pca_error", "DOUBLE"),  # squared PCA reconstruction error
            ("pca_flag", "BOOLEAN"),
            ("bar_date", "DATE"),
        ),
        keys=("exchange", "symbol", "timeframe", "ts"),
        partition_by=("bar_date",),
        description="Model-based anomaly scores of gold.features rows (detectors fit on the months before)",
    )
)

SIGNALS_TABLE = register(
    TableSpec(
        name="gold.signals",
        columns=(*SIGNALS_COLUMNS, ("bar_date", "DATE")),
        keys=("signal_id",),  # one id per (model_version, exchange, symbol, timeframe, bar_time)
        partition_by=("bar_date",),
        description="Model scores per bar, as published to the signals topic",
    )
)


# --- alternative data (issue #5) -------------------------------------------------------
SILVER_DOCUMENTS = register(
    TableSpec(
        name="silver.documents",
        columns=(
            ("doc_key", "STRING"),  # <source or platform>:<id>
            ("kind", "STRING"),  # news | social
            ("source", "STRING"),
            ("doc_id", "STRING"),
            ("url", "STRING"),
            ("author", "STRING"),
            ("channel", "STRING"),
            ("title", "STRING"),
            ("text", "STRING"),  # cleaned
            ("language", "STRING"),
            ("published_time", "TIMESTAMP"),  # event_time
            ("available_time", "TIMESTAMP"),
            ("ingest_time", "TIMESTAMP"),
            ("sentiment", "DOUBLE"),  # VADER + crypto lexicon compound, in [-1, 1]
            ("provider_sentiment", "DOUBLE"),
            ("coins", "ARRAY<STRING>"),
            ("topic", "INT"),
            ("engagement", "DOUBLE"),
            ("author_influence", "DOUBLE"),
            ("dedup_hash", "STRING"),
            ("duplicates", "INT"),
            ("pub_month", "DATE"),
        ),
        keys=("doc_key",),
        partition_by=("pub_month",),
        description="Deduplicated, language-filtered, cleaned and scored news and social documents",
    )
)

SILVER_CHAIN_ACTIVITY = register(
    TableSpec(
        name="silver.chain_activity",
        columns=(
            ("chain", "STRING"),
            ("bucket_start", "TIMESTAMP"),
            ("bucket_end", "TIMESTAMP"),  # available_time of the bucket
            ("blocks", "BIGINT"),
            ("tx_count", "BIGINT"),
            ("gas_used", "DOUBLE"),
            ("avg_gas_price_gwei", "DOUBLE"),
            ("active_addresses", "BIGINT"),
            ("native_volume", "DOUBLE"),
            ("whale_transfers", "BIGINT"),
            ("whale_volume", "DOUBLE"),
            ("exchange_inflow", "DOUBLE"),
            ("exchange_outflow", "DOUBLE"),
            ("token_transfers", "BIGINT"),
            ("bucket_date", "DATE"),
        ),
        keys=("chain", "bucket_start"),
        partition_by=("bucket_date",),
        description="Per-chain hourly activity: txs, gas, active addresses, whale and exchange flows",
    )
)

ALT_WINDOWS: tuple[str, ...] = ("1h", "4h", "24h")
ALT_FEATURE_COLUMNS: tuple[str, ...] = (
    *(f"{m}_{w}" for w in ALT_WINDOWS for m in ("news_count", "post_count", "sent_mean", "sent_std")),
    "sent_vol_4h",
    "sent_vol_24h",
    "chain_tx_count_1h",
    "chain_active_addr_1h",
    "chain_gas_price_gwei_1h",
    "chain_whale_count_24h",
    "chain_whale_volume_24h",
    "chain_exchange_netflow_24h",
)

GOLD_ALT_FEATURES = register(
    TableSpec(
        name="gold.alt_features",
        columns=(
            ("coin", "STRING"),
            ("timeframe", "STRING"),
            ("ts", "TIMESTAMP"),  # bar open time
            ("close_time", "TIMESTAMP"),  # uses only records with available_time <= close_time
            *((c, "DOUBLE") for c in ALT_FEATURE_COLUMNS),
            ("bar_date", "DATE"),
        ),
        keys=("coin", "timeframe", "ts"),
        partition_by=("bar_date",),
        description="News/social sentiment and volume, whale flow and chain activity per coin and bar",
    )
)


# --- market data from exchange connectors (issue #4) --------------------------------------
_MARKET_TIMES: tuple[tuple[str, str], ...] = (
    ("event_time", "TIMESTAMP"),
    ("available_time", "TIMESTAMP"),
    ("ingest_time", "TIMESTAMP"),
)
BOOK_LEVELS: tuple[int, ...] = (1, 5, 10, 20)

SILVER_TRADES = register(
    TableSpec(
        name="silver.trades",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            ("trade_id", "STRING"),
            *_MARKET_TIMES,
            ("price", "DOUBLE"),
            ("amount", "DOUBLE"),
            ("notional", "DOUBLE"),
            ("side", "STRING"),
            ("source", "STRING"),  # ws | rest (a websocket gap backfilled over REST)
            ("is_whale", "BOOLEAN"),
            ("whale_threshold", "DOUBLE"),  # the notional threshold the trade exceeded (null if not a whale)
            ("duplicates", "INT"),  # extra copies seen in bronze (ws + rest overlap, producer retries)
            ("event_date", "DATE"),
        ),
        keys=("exchange", "symbol", "trade_id"),
        partition_by=("event_date",),
        description="Typed public trades, one row per (exchange, symbol, trade_id), with the whale flag",
    )
)

SILVER_BOOK_METRICS = register(
    TableSpec(
        name="silver.book_metrics",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            *_MARKET_TIMES,  # event_time = end of the interval the metrics describe
            ("last_update_id", "BIGINT"),
            ("best_bid", "DOUBLE"),
            ("best_ask", "DOUBLE"),
            ("mid", "DOUBLE"),
            ("spread", "DOUBLE"),
            ("spread_bps", "DOUBLE"),
            ("microprice", "DOUBLE"),
            *((f"depth_bid_{n}", "DOUBLE") for n in BOOK_LEVELS),
            *((f"depth_ask_{n}", "DOUBLE") for n in BOOK_LEVELS),
            *((f"imbalance_{n}", "DOUBLE") for n in BOOK_LEVELS),
            ("updates", "INT"),
            ("resyncs", "INT"),
            ("duplicates", "INT"),
            ("event_date", "DATE"),
        ),
        keys=("exchange", "symbol", "event_time"),
        partition_by=("event_date",),
        description="Order-book metrics per interval: spread, mid, microprice, depth and imbalance at 1/5/10/20",
    )
)

SILVER_TICKERS = register(
    TableSpec(
        name="silver.tickers",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            *_MARKET_TIMES,
            ("bid", "DOUBLE"),
            ("ask", "DOUBLE"),
            ("last", "DOUBLE"),
            ("base_volume", "DOUBLE"),
            ("mid", "DOUBLE"),
            ("spread_bps", "DOUBLE"),
            ("duplicates", "INT"),
            ("event_date", "DATE"),
        ),
        keys=("exchange", "symbol", "event_time"),
        partition_by=("event_date",),
        description="Venue tickers (best bid/ask, last, 24h volume), one row per venue, symbol and event time",
    )
)

SILVER_VENUE_FLAGS = register(
    TableSpec(
        name="silver.venue_flags",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            *_MARKET_TIMES,
            ("price", "DOUBLE"),
            ("median", "DOUBLE"),
            ("deviation_bps", "DOUBLE"),
            ("deviates", "BOOLEAN"),
            ("stale", "BOOLEAN"),
            ("flagged", "BOOLEAN"),
            ("threshold_bps", "DOUBLE"),
            ("duplicates", "INT"),
            ("event_date", "DATE"),
        ),
        keys=("exchange", "symbol", "event_time"),
        partition_by=("event_date",),
        description="Cross-venue validation per venue and interval: deviation from the median, staleness",
    )
)


# --- trading (trader engineer): a finished run's orders, fills and equity, for DuckDB analytics ---
# Written by trader.export with delta-rs; a re-export of a run replaces its rows (predicate on run_id).
# Not partitioned: a run is a few thousand to tens of thousands of rows, replaced as a whole.
TRADING_ORDERS = register(
    TableSpec(
        name="trading.orders",
        columns=(
            ("run_id", "STRING"),
            ("mode", "STRING"),  # backtest | live
            ("client_id", "STRING"),
            ("id", "STRING"),
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            ("side", "STRING"),
            ("type", "STRING"),
            ("qty", "DOUBLE"),
            ("price", "DOUBLE"),
            ("status", "STRING"),
            ("reduce_only", "BOOLEAN"),
            ("oco_group", "STRING"),
            ("tag", "STRING"),
            ("filled_qty", "DOUBLE"),
            ("avg_fill_price", "DOUBLE"),
            ("created_at", "TIMESTAMP"),
            ("updated_at", "TIMESTAMP"),
            ("reason", "STRING"),
        ),
        keys=("run_id", "client_id"),
        description="Every order of every exported trading run, including risk rejections (status, reason)",
    )
)

TRADING_FILLS = register(
    TableSpec(
        name="trading.fills",
        columns=(
            ("run_id", "STRING"),
            ("mode", "STRING"),
            ("id", "STRING"),
            ("order_id", "STRING"),
            ("client_id", "STRING"),
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            ("side", "STRING"),
            ("price", "DOUBLE"),
            ("qty", "DOUBLE"),
            ("fee", "DOUBLE"),
            ("fee_currency", "STRING"),
            ("ts", "TIMESTAMP"),
            ("liquidity", "STRING"),
            ("tag", "STRING"),
        ),
        keys=("run_id", "id"),
        description="Every fill of every exported trading run (price, qty, fee, liquidity)",
    )
)

TRADING_EQUITY = register(
    TableSpec(
        name="trading.equity",
        columns=(
            ("run_id", "STRING"),
            ("mode", "STRING"),
            ("ts", "TIMESTAMP"),
            ("equity", "DOUBLE"),
            ("cash", "DOUBLE"),
            ("gross_exposure", "DOUBLE"),
            ("open_positions", "INT"),
            ("risk_state", "STRING"),
        ),
        keys=("run_id", "ts"),
        description="The account's equity curve of every exported trading run, one row per bar close",
    )
)


# --- streaming latency (issue #12) ---------------------------------------------------------
# One row per bar and stage, stamped by the stage that reached it (wall clock, UTC): ``ingest`` (the
# connector's ingest_time), ``landed`` (bronze landed_time), ``gold`` (the features row committed),
# ``signal`` (the signal published and acknowledged). A replayed batch may stamp a bar again:
# readers take the earliest stamp per (bar, stage). pipeline.latency turns it into p50/p99.
BAR_STAGES = register(
    TableSpec(
        name="ops.bar_stages",
        columns=(
            ("exchange", "STRING"),
            ("symbol", "STRING"),
            ("timeframe", "STRING"),
            ("ts", "TIMESTAMP"),  # the bar's open time; its venue close is ts + timeframe
            ("stage", "STRING"),
            ("stage_time", "TIMESTAMP"),
            ("bar_date", "DATE"),
        ),
        keys=("exchange", "symbol", "timeframe", "ts", "stage"),
        partition_by=("bar_date",),
        description="When each bar reached each streaming stage (ingest, landed, gold, signal): per-bar latency",
    )
)


# --- landing audit (issue #12) -------------------------------------------------------------
# One row per topic and data interval, written by the market_landing DAG (pipeline.landing): what the
# streaming landing committed to bronze with landed_time in [interval_start, interval_end). A re-run of the
# interval replaces its row.
LANDING_AUDIT = register(
    TableSpec(
        name="ops.landing_audit",
        columns=(
            ("topic", "STRING"),
            ("interval_start", "TIMESTAMP"),
            ("interval_end", "TIMESTAMP"),
            ("rows", "BIGINT"),
            ("duplicates", "BIGINT"),  # rows of the interval whose Kafka (partition, offset) is in bronze twice
            ("quarantined", "BIGINT"),
            ("min_event_time", "TIMESTAMP"),
            ("max_event_time", "TIMESTAMP"),
            ("lag_p50_s", "DOUBLE"),  # connector ingest -> bronze landed, seconds
            ("lag_max_s", "DOUBLE"),
            ("status", "STRING"),  # ok | empty | duplicates
            ("audited_at", "TIMESTAMP"),
        ),
        keys=("topic", "interval_start"),
        description="Per data interval: the rows the streaming landing committed to bronze, their duplicates, "
        "quarantined rows and landing lag (market_landing DAG)",
    )
)
