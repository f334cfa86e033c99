"""gold.labels: the next bar's log return and direction, kept apart so features never see the future.

A label for the bar opening at ``ts`` is knowable only when the *next* valid bar closes
(``label_available_time``); training-set queries join features to labels on the keys and
must respect that time. The last bar of a series has no label yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptolake.tables import GOLD_LABELS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SERIES_KEYS: tuple[str, ...] = ("exchange", "symbol", "timeframe")


def compute_labels(bars: DataFrame) -> DataFrame:
    """Silver bars (only ``is_valid`` ones are used) -> gold.labels rows (pure)."""
    return labels_with_next_open(bars).select(*GOLD_LABELS.column_names)


def labels_with_next_open(bars: DataFrame) -> DataFrame:
    """:func:`compute_labels` plus ``next_open_time``, which the job uses to scope its writes."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    valid = bars.where("is_valid") if "is_valid" in bars.columns else bars
    series = Window.partitionBy(*SERIES_KEYS).orderBy("open_time")
    next_close = F.lead("close").over(series)
    ret = F.log(next_close / F.col("close"))
    return (
        valid.select(
            *SERIES_KEYS,
            F.col("open_time").alias("ts"),
            "close_time",
            ret.alias("next_log_return"),
            F.lead("close_time").over(series).alias("label_available_time"),
            F.lead("open_time").over(series).alias("next_open_time"),
        )
        .where(F.col("next_open_time").isNotNull())
        .withColumn("next_direction", (F.col("next_log_return") > 0).cast("int"))
        .withColumn("bar_date", F.to_date("ts"))
        .select(*GOLD_LABELS.column_names, "next_open_time")
    )
