"""Pure payload checks of the landing job (no JVM): same rules as the producer, reasons name field and value."""

from __future__ import annotations

import json

import pandas as pd

from cryptolake.schemas import OhlcvV1
from cryptolake.settings import Settings
from spark_jobs.bronze.landing import (
    CHECK_DDL,
    check_payload,
    check_payloads,
    checkpoint_location,
    parse_envelope,
)

# SYNTHETIC candle (not market data)
CANDLE = {"schema_version": 1, "event_time": 1_700_000_040_000, "available_time": 1_700_000_100_000,
          "ingest_time": 1_700_000_100_500, "exchange": "synthetic", "symbol": "BTC/USD", "timeframe": "1m",
          "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0}


def reason_of(raw: str | None, model=None) -> str:
    reason = check_payload(raw, model)[0]
    assert reason is not None, f"{raw!r} was accepted"
    return reason


def test_valid_candle_passes_and_yields_its_three_times():
    assert check_payload(json.dumps(CANDLE), OhlcvV1) == (None, 1_700_000_040_000, 1_700_000_100_000,
                                                          1_700_000_100_500)


def test_malformed_candle_names_the_field_the_candle_rule_found():
    # SYNTHETIC: a NaN volume is malformed (cryptolake.bars.MALFORMED); high < low only inconsistent
    assert reason_of(json.dumps({**CANDLE, "volume": float("nan")}), OhlcvV1) == (
        "invalid volume=nan: non_finite_volume: must be a finite number")
    assert check_payload(json.dumps({**CANDLE, "high": 0.4}), OhlcvV1)[0] is None


def test_schema_failure_names_field_and_value():
    bad = {**CANDLE, "timeframe": "7m"}
    _, *times = check_payload(json.dumps(bad), OhlcvV1)
    assert times == [None, None, None]
    assert reason_of(json.dumps(bad), OhlcvV1).startswith("invalid timeframe='7m': ")
    assert "unknown timeframe" in reason_of(json.dumps(bad), OhlcvV1)


def test_model_rule_failure_is_reported_like_the_producer():
    bad = {**CANDLE, "available_time": CANDLE["event_time"]}
    reason = reason_of(json.dumps(bad), OhlcvV1)
    assert "available_time must equal event_time + timeframe" in reason


def test_invalid_json_is_rejected_with_and_without_schema():
    with_model = reason_of("{oops", OhlcvV1)
    without = reason_of("{oops", None)
    assert with_model.startswith("invalid payload='{oops'") and "JSON" in with_model
    assert without.startswith("invalid payload='{oops': not valid JSON")


def test_schemaless_topic_needs_a_json_object_with_epoch_ms_event_time():
    assert check_payload('{"event_time": 1700000000000}', None) == (None, 1_700_000_000_000, None, None)
    reason = reason_of('{"event_time": 1700000000}')  # seconds, not ms
    assert reason.startswith("invalid event_time=1700000000: ")
    reason = reason_of("[1, 2]")
    assert reason.startswith("invalid payload='[1, 2]': must be a JSON object")
    reason = reason_of('{"x": 1}')
    assert reason.startswith("invalid event_time=None")


def test_empty_value_is_rejected():
    assert check_payload(None, None)[0] == "invalid payload=None: empty Kafka value"


def test_long_values_are_shortened_in_reasons():
    reason = reason_of("x" * 5000)
    assert len(reason) < 400 and "..." in reason


def test_vectorised_checks_match_row_checks_and_use_nullable_ints():
    raw = pd.Series([json.dumps(CANDLE), "nope", None])
    frame = check_payloads(raw, OhlcvV1)
    assert list(frame.columns) == [c.split()[0] for c in CHECK_DDL.split(", ")]
    assert frame["reason"].isna().tolist() == [True, False, False]
    assert frame["event_time"].tolist()[0] == CANDLE["event_time"]
    assert str(frame["event_time"].dtype) == "Int64"


def test_dead_letter_envelope_is_unwrapped_with_its_reason():
    env = json.dumps({"topic": "market.ohlcv", "key": "k", "reason": "invalid high='x': bad", "payload": "{}"})
    assert parse_envelope(env) == ("{}", "invalid high='x': bad", "market.ohlcv")
    payload, reason, topic = parse_envelope("garbage")
    assert payload == "garbage" and reason.startswith("unreadable dead-letter envelope") and topic is None


def test_checkpoint_location_is_per_kind_and_topic():
    s = Settings()
    s = s.model_copy(update={"paths": s.paths.model_copy(update={"checkpoint_root": "s3a://b/ck/"})})
    assert checkpoint_location("bronze", "market.ohlcv", s) == "s3a://b/ck/bronze/market.ohlcv"
