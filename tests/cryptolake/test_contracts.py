"""Unit tests of the shared contracts: settings, schemas, retry, logging, table specs."""

from __future__ import annotations

import io
import json
import logging

import pytest

from cryptolake import topics
from cryptolake.errors import DataValidationError, NetworkError, RateLimitedError
from cryptolake.ids import signal_id
from cryptolake.logs import JsonFormatter, register_secret
from cryptolake.retry import RetryPolicy, call_with_retry
from cryptolake.schemas import OhlcvV1, SignalV1, validate, validate_for_topic
from cryptolake.settings import Settings, settings_table
from cryptolake.tables import FEATURE_COLUMNS, GOLD_FEATURES, SILVER_BARS, bronze_spec

CANDLE = {
    "schema_version": 1, "exchange": "gymcrypto", "symbol": "BTC/USD", "timeframe": "30m",
    "event_time": 1506816000000, "available_time": 1506817800000, "ingest_time": 1506817800000,
    "open": 4367.1, "high": 4387.5, "low": 4365.0, "close": 4386.3, "volume": 755.52,
}


def test_settings_env_override_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOLAKE__SPARK__MASTER", "spark://10.0.0.1:7077")
    monkeypatch.setenv("CRYPTOLAKE__KAFKA__DEFAULT_PARTITIONS", "6")
    s = Settings()
    assert s.spark.master == "spark://10.0.0.1:7077"
    assert s.kafka.default_partitions == 6


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(Exception, match="frozen"):
        s.seed = 3  # type: ignore[misc]


def test_settings_table_lists_every_leaf_with_env_name() -> None:
    names = {env for env, _, _ in settings_table(Settings())}
    assert "CRYPTOLAKE__SPARK__SHUFFLE_PARTITIONS" in names
    assert "CRYPTOLAKE__PATHS__LAKE_ROOT" in names
    assert "CRYPTOLAKE__SPARK" not in names


def test_valid_candle_parses_and_keys_by_exchange_symbol() -> None:
    msg = validate(OhlcvV1, CANDLE)
    assert msg.key() == "gymcrypto:BTC/USD"
    assert msg.TOPIC == topics.MARKET_OHLCV


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("open", float("nan"), "finite"),
        ("timeframe", "7m", "unknown timeframe"),
        ("event_time", 1506816000, "epoch-milliseconds"),
        ("schema_version", 2, "unsupported schema_version"),
        ("symbol", " ", "must not be empty"),
    ],
)
def test_invalid_candle_error_names_field_and_value(field: str, value: object, fragment: str) -> None:
    with pytest.raises(DataValidationError) as info:
        validate(OhlcvV1, {**CANDLE, field: value})
    assert info.value.field == field
    assert fragment in info.value.reason
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"close": float("nan")}, "close", "non_finite_price"),
        ({"low": float("-inf")}, "low", "non_finite_price"),
        ({"volume": float("inf")}, "volume", "non_finite_volume"),
    ],
)
def test_malformed_candle_is_refused_by_the_candle_rule(changes: dict[str, float], field: str, problem: str) -> None:
    # SYNTHETIC edits of a real candle
    with pytest.raises(DataValidationError) as info:
        validate(OhlcvV1, {**CANDLE, **changes})
    assert info.value.field == field
    assert info.value.reason == f"{problem}: must be a finite number"


@pytest.mark.parametrize(
    "changes",
    [
        {"high": CANDLE["low"], "low": CANDLE["high"]},  # high < low
        {"volume": -1.0},
        {"close": 0.0},
        {"open": CANDLE["high"] * 2},  # open above high
    ],
)
def test_inconsistent_candle_passes_for_silver_to_flag(changes: dict[str, float]) -> None:
    # SYNTHETIC edits of a real candle: faithful records of bad prints land, silver flags them
    msg = validate(OhlcvV1, {**CANDLE, **changes})
    assert isinstance(msg, OhlcvV1)
    assert all(getattr(msg, k) == v for k, v in changes.items())


def test_candle_close_must_follow_timeframe() -> None:
    with pytest.raises(DataValidationError, match="available_time must equal"):
        validate(OhlcvV1, {**CANDLE, "available_time": CANDLE["event_time"]})


def test_unknown_topic_and_non_object_payload_are_rejected() -> None:
    with pytest.raises(DataValidationError, match="no schema registered"):
        validate_for_topic("nope.nothing", CANDLE)
    with pytest.raises(DataValidationError, match="JSON object"):
        validate_for_topic(topics.MARKET_OHLCV, [1, 2])


def test_signal_probability_bounds() -> None:
    base = {"schema_version": 2, "signal_id": signal_id("m1", "x", "BTC/USD", "30m", 1506816000000),
            "exchange": "x", "symbol": "BTC/USD", "timeframe": "30m", "direction": 1,
            "model_version": "m1", "event_time": 1506816000000, "available_time": 1506817800000,
            "ingest_time": 1506817800000}
    assert validate(SignalV1, {**base, "probability": 0.7}).key() == "x:BTC/USD"
    with pytest.raises(DataValidationError, match="probability"):
        validate(SignalV1, {**base, "probability": 1.2})


def test_retry_retries_only_retryable_and_honours_retry_after() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RateLimitedError("429", retry_after=2.5)
        if len(calls) == 2:
            raise NetworkError("reset")
        return "ok"

    out = call_with_retry(flaky, RetryPolicy(max_attempts=5, base_delay=0.01, jitter=0.0), sleep=waits.append)
    assert out == "ok"
    assert len(calls) == 3
    assert waits[0] == 2.5  # server's Retry-After beats the smaller back-off
    assert waits[1] == pytest.approx(0.02)

    def fatal() -> None:
        calls.append(1)
        raise DataValidationError("x", 1, "bad")

    calls.clear()
    with pytest.raises(DataValidationError):
        call_with_retry(fatal, RetryPolicy(max_attempts=5), sleep=waits.append)
    assert len(calls) == 1


def test_retry_gives_up_after_max_attempts() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise NetworkError("down")

    with pytest.raises(NetworkError):
        call_with_retry(down, RetryPolicy(max_attempts=3, base_delay=0.0, jitter=0.0), sleep=lambda _: None)
    assert len(calls) == 3


def test_json_logs_redact_secret_fields_and_registered_values() -> None:
    register_secret("s3cr3t-api-key-value")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("connect with s3cr3t-api-key-value", extra={"api_key": "abc123", "venue": "binance"})
    line = json.loads(stream.getvalue())
    assert "s3cr3t" not in stream.getvalue()
    assert line["api_key"] == "***"
    assert line["venue"] == "binance"
    assert line["event"] == "connect with ***"


def test_table_specs_paths_and_features() -> None:
    s = Settings()
    assert bronze_spec("market.ohlcv").name == "bronze.market_ohlcv"
    assert bronze_spec("market.ohlcv").path(s).endswith("/bronze/market_ohlcv")
    assert SILVER_BARS.keys == ("exchange", "symbol", "timeframe", "open_time")
    assert set(FEATURE_COLUMNS) <= set(GOLD_FEATURES.column_names)
