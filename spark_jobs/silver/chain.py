"""bronze.chain_blocks + bronze.chain_transfers -> silver.chain_activity: hourly on-chain activity.

Per chain and UTC hour ``[bucket_start, bucket_end)`` (``bucket_end`` is when the bucket is
knowable, its available time):

- from blocks: ``blocks``, ``tx_count``, ``gas_used``, ``avg_gas_price_gwei`` (mean over the
  blocks' transactions); null when the hour has no block messages (e.g. a transfers-only replay);
- ``active_addresses``: distinct senders and receivers over block transactions and transfers;
- from *native* transfers (value in wei / 1e18): ``native_volume``; whale transfers are those of at
  least ``whale_threshold`` coins (``whale_transfers``, ``whale_volume``); exchange flows use
  Etherscan labels: ``exchange_inflow`` = value sent from a non-exchange address to an exchange,
  ``exchange_outflow`` = from an exchange to a non-exchange (exchange-to-exchange moves are internal);
- ``token_transfers``: ERC-20 transfer count (token values are not comparable across tokens, so
  they are counted, not summed).

Transfers re-delivered by Kafka collapse on ``(chain, tx_hash, log_index)``, blocks on
``(chain, number)``. The run covers whole hours ``[start, end)`` and MERGEs on
``(chain, bucket_start)``, so a re-run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cryptolake import topics
from cryptolake.errors import DataValidationError, SchemaMismatchError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import SILVER_CHAIN_ACTIVITY, bronze_spec
from spark_jobs.delta_io import check_interval, interval_filter, merge_rows, read_interval

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

WEI = 10**18
# Etherscan label families that name a centralised exchange (family "exchange" plus per-venue families).
EXCHANGE_FAMILIES: frozenset[str] = frozenset({
    "exchange", "binance", "huobi", "bitfinex", "poloniex", "kraken", "gemini", "okex", "bittrex", "bitstamp",
    "kucoin", "ftx", "crypto-com", "bithumb", "upbit", "gate-io", "hitbtc", "hotbit", "bitmart", "coinone",
    "zb-com", "latoken", "digifinex", "bitmax-io", "coinbit", "liquid", "paribu", "hoo-com", "topbtc", "yunbi",
    "abcc", "allbit", "tidex", "coinhako", "crex24", "bgogo", "cobinhood", "coss-io", "coinmetro", "remitano",
    "lcx-ag", "kryptono", "quadrigacx", "shapeshift", "bitcoin-suisse",
})
BLOCK_PAYLOAD_DDL = (
    "chain STRING, number BIGINT, gas_used BIGINT, tx_count BIGINT, "
    "transactions ARRAY<STRUCT<hash: STRING, from_address: STRING, to_address: STRING, value: STRING, "
    "gas: BIGINT, gas_price: BIGINT>>"
)
TRANSFER_PAYLOAD_DDL = (
    "chain STRING, token_address STRING, tx_hash STRING, log_index BIGINT, block_number BIGINT, "
    "from_address STRING, to_address STRING, value STRING"
)


@dataclass
class ChainResult:
    """What one silver.chain_activity run did."""

    start: str
    end: str
    blocks: int = 0
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    table_version: int = -1


def exchange_addresses(labels: Path | pd.DataFrame) -> frozenset[str]:
    """Lower-case addresses with at least one exchange-family label (Etherscan tags CSV or frame)."""
    df = labels if isinstance(labels, pd.DataFrame) else pd.read_csv(labels, dtype=str, keep_default_na=False)
    for col in ("address", "family"):
        if col not in df.columns:
            raise DataValidationError(col, list(df.columns), "labels file lacks this column")
    mask = df["family"].str.strip().str.lower().isin(EXCHANGE_FAMILIES)
    return frozenset(df.loc[mask, "address"].str.strip().str.lower())


def _hour_check(start: datetime, end: datetime) -> None:
    check_interval(start, end)
    for name, v in (("start", start), ("end", end)):
        if (v.minute, v.second, v.microsecond) != (0, 0, 0):
            raise DataValidationError(name, v, "must be on a whole UTC hour (buckets are hourly)")


def build_chain_activity(spark: SparkSession, blocks: DataFrame | None, transfers: DataFrame | None,
                         exchanges: frozenset[str], whale_threshold: float) -> DataFrame:
    """Bronze rows (either may be None) -> silver.chain_activity rows."""
    from pyspark.sql import functions as F

    hour = F.date_trunc("hour", "event_time")
    keys = ["chain", "bucket_start"]
    addr_parts: list[DataFrame] = []
    aggs: list[DataFrame] = []
    if blocks is not None:
        b = blocks.select("event_time", "landed_time", "offset", F.from_json("payload", BLOCK_PAYLOAD_DDL).alias("p"))
        b = b.select(F.col("p.chain").alias("chain"), F.col("p.number").alias("number"), hour.alias("bucket_start"),
                     "p.gas_used", "p.tx_count", "p.transactions", "landed_time", "offset")
        b = b.dropDuplicates(["chain", "number"])
        txs = b.select("chain", "bucket_start", F.explode("transactions").alias("t"))
        addr_parts.append(txs.select("chain", "bucket_start", F.col("t.from_address").alias("a")))
        addr_parts.append(txs.select("chain", "bucket_start", F.col("t.to_address").alias("a")))
        gas = txs.groupBy(*keys).agg((F.avg("t.gas_price") / 1e9).alias("avg_gas_price_gwei"))
        per_block = b.groupBy(*keys).agg(F.count(F.lit(1)).alias("blocks"), F.sum("tx_count").alias("tx_count"),
                                         F.sum("gas_used").cast("double").alias("gas_used"))
        aggs.append(per_block.join(gas, keys, "left"))
    if transfers is not None:
        t = transfers.select("event_time", F.from_json("payload", TRANSFER_PAYLOAD_DDL).alias("p"))
        t = t.select(F.col("p.chain").alias("chain"), hour.alias("bucket_start"), "p.token_address", "p.tx_hash",
                     "p.log_index", "p.from_address", "p.to_address",
                     (F.col("p.value").cast("decimal(38,0)").cast("double") / F.lit(float(WEI))).alias("amount"))
        t = t.dropDuplicates(["chain", "tx_hash", "log_index"])
        addr_parts.append(t.select("chain", "bucket_start", F.col("from_address").alias("a")))
        addr_parts.append(t.select("chain", "bucket_start", F.col("to_address").alias("a")))
        ex = spark.createDataFrame([(a,) for a in sorted(exchanges)], "address STRING")
        t = (t.join(F.broadcast(ex.withColumnRenamed("address", "from_address").withColumn("from_ex", F.lit(True))),
                    "from_address", "left")
              .join(F.broadcast(ex.withColumnRenamed("address", "to_address").withColumn("to_ex", F.lit(True))),
                    "to_address", "left"))
        native = F.col("token_address") == "native"
        from_ex, to_ex = F.coalesce("from_ex", F.lit(False)), F.coalesce("to_ex", F.lit(False))
        whale = native & (F.col("amount") >= F.lit(whale_threshold))

        def total(cond: Any) -> Any:
            return F.sum(F.when(cond, F.col("amount")).otherwise(F.lit(0.0)))

        aggs.append(t.groupBy(*keys).agg(
            total(native).alias("native_volume"),
            F.sum(whale.cast("long")).alias("whale_transfers"), total(whale).alias("whale_volume"),
            total(native & to_ex & ~from_ex).alias("exchange_inflow"),
            total(native & from_ex & ~to_ex).alias("exchange_outflow"),
            F.sum((~native).cast("long")).alias("token_transfers")))
    if not aggs:
        raise DataValidationError("bronze", None, "no chain bronze tables to build from")
    addrs = addr_parts[0]
    for part in addr_parts[1:]:
        addrs = addrs.unionByName(part)
    active = addrs.where(F.col("a").isNotNull()).groupBy(*keys).agg(F.count_distinct("a").alias("active_addresses"))
    out = aggs[0]
    for part in aggs[1:]:
        out = out.join(part, keys, "full")
    out = out.join(active, keys, "left")
    fills = {"blocks": 0, "native_volume": 0.0, "whale_transfers": 0, "whale_volume": 0.0, "exchange_inflow": 0.0,
             "exchange_outflow": 0.0, "token_transfers": 0, "active_addresses": 0}
    for c, typ in SILVER_CHAIN_ACTIVITY.columns:
        if c not in out.columns and c not in ("bucket_end", "bucket_date"):
            out = out.withColumn(c, F.lit(None).cast(typ))
    out = out.fillna(fills)  # type: ignore[arg-type]
    out = (out.withColumn("bucket_end", F.col("bucket_start") + F.expr("INTERVAL 1 HOUR"))
              .withColumn("bucket_date", F.to_date("bucket_start")))
    return out.select(*(F.col(c).cast(t).alias(c) for c, t in SILVER_CHAIN_ACTIVITY.columns))


def run_silver_chain(start: datetime, end: datetime, settings: Settings | None = None, *,
                     labels: Path | None = None, whale_threshold: float | None = None) -> ChainResult:
    """Build silver.chain_activity for the hours in ``[start, end)`` and MERGE them (idempotent).

    ``labels``: an Etherscan tags CSV (``address,family,...``) naming exchange addresses; it and
    ``whale_threshold`` default to ``settings.altdata.exchange_labels_path`` / ``.whale_threshold``.
    """
    from pyspark.sql import functions as F

    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    alt = settings.altdata
    labels = labels or alt.exchange_labels_path
    whale_threshold = alt.whale_threshold if whale_threshold is None else whale_threshold
    _hour_check(start, end)
    if whale_threshold <= 0:
        raise DataValidationError("whale_threshold", whale_threshold, "must be positive")
    spark = get_spark(settings)
    result = ChainResult(start=start.isoformat(), end=end.isoformat())
    frames: dict[str, DataFrame | None] = {
        topic: read_interval(spark, bronze_spec(topic), start, end, settings)
        for topic in (topics.CHAIN_BLOCKS, topics.CHAIN_TRANSFERS)
    }
    if all(f is None for f in frames.values()):
        log.warning("silver.chain.no_bronze", extra={"start": result.start, "end": result.end})
        return result
    exchanges = exchange_addresses(labels)
    built = build_chain_activity(spark, frames[topics.CHAIN_BLOCKS], frames[topics.CHAIN_TRANSFERS], exchanges,
                                 whale_threshold).persist()
    try:
        agg = built.agg(F.count(F.lit(1)).alias("rows"), F.count_distinct("chain", "bucket_start").alias("keys"),
                        F.sum(F.col("chain").isNull().cast("int")).alias("null_chain"),
                        F.sum("blocks").alias("blocks"),
                        F.sum((F.col("native_volume") < 0).cast("int")).alias("negative")).collect()[0]
        if tuple(built.columns) != SILVER_CHAIN_ACTIVITY.column_names:
            raise SchemaMismatchError(f"chain rows have {built.columns}")
        if agg["null_chain"]:
            raise DataValidationError("chain", None, f"{agg['null_chain']} buckets have no chain")
        if agg["negative"]:
            raise DataValidationError("native_volume", agg["negative"], "buckets with a negative volume")
        if agg["rows"] != agg["keys"]:
            raise DataValidationError("bucket_start", agg["rows"] - agg["keys"], "duplicate buckets")
        result.rows, result.blocks = int(agg["rows"]), int(agg["blocks"] or 0)
        if result.rows == 0:
            return result
        target = interval_filter("t.bucket_date", "t.bucket_start", start, end)
        metrics = merge_rows(spark, built, SILVER_CHAIN_ACTIVITY, target_filter=target, settings=settings)
    finally:
        built.unpersist()
    result.inserted, result.updated, result.table_version = metrics["inserted"], metrics["updated"], metrics["version"]
    log.info("silver.chain.done", extra=vars(result))
    return result
