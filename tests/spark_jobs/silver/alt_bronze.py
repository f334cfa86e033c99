"""Bronze-shaped rows around real alt-data messages (what land_topic writes), for the silver tests.

The messages come from the replay connectors over ../shared/data; nothing here is synthetic.
Tests that add altered copies of real records say so where they do it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cryptolake.schemas import Message
from cryptolake.settings import Settings
from cryptolake.tables import bronze_spec


def bronze_rows(topic: str, msgs: Sequence[Message | dict[str, Any]], *, first_offset: int = 0,
                landed_ms: int = 1_767_225_600_000) -> list[dict[str, object]]:
    """One bronze row per message, offsets counting up from ``first_offset`` on partition 0."""
    ts = pd.Timestamp
    rows: list[dict[str, object]] = []
    for i, m in enumerate(msgs):
        payload = m.model_dump(mode="json") if isinstance(m, Message) else dict(m)
        ev, av, ing = int(payload["event_time"]), int(payload["available_time"]), int(payload["ingest_time"])
        rows.append({
            "key": payload.get("doc_id") or payload.get("post_id") or payload.get("tx_hash") or str(i),
            "payload": json.dumps(payload), "topic": topic, "partition": 0, "offset": first_offset + i,
            "kafka_time": ts(ing, unit="ms", tz="UTC").to_pydatetime(),
            "event_time": ts(ev, unit="ms", tz="UTC").to_pydatetime(),
            "available_time": ts(av, unit="ms", tz="UTC").to_pydatetime(),
            "ingest_time": ts(ing, unit="ms", tz="UTC").to_pydatetime(),
            "landed_time": ts(landed_ms + i, unit="ms", tz="UTC").to_pydatetime(),
            "event_date": ts(ev, unit="ms", tz="UTC").date(),
        })
    return rows


def append_bronze(spark: Any, topic: str, rows: list[dict[str, object]], settings: Settings) -> None:
    """Append rows to ``bronze_spec(topic)`` at the settings' lake (as the landing job would)."""
    from pyspark.sql.types import StructType

    spec = bronze_spec(topic)
    df = spark.createDataFrame(rows, StructType.fromDDL(spec.ddl))
    df.write.format("delta").mode("append").partitionBy(*spec.partition_by).save(spec.path(settings))
