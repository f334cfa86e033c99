"""Signal ids: deterministic, sensitive to every part of the key, and enforced by the signal schema."""

from __future__ import annotations

import pytest

from cryptolake.errors import DataValidationError
from cryptolake.ids import SIGNAL_ID_LENGTH, signal_id
from cryptolake.schemas import SignalV1, validate, validate_for_topic
from cryptolake.tables import SIGNALS_TABLE

BAR_MS = 1506816000000  # 2017-10-01T00:00Z
KEY = ("lstm-abc123", "gymcrypto", "BTC/USD", "30m", BAR_MS)


def _payload(**override: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema_version": 2, "signal_id": signal_id(*KEY), "exchange": "gymcrypto", "symbol": "BTC/USD",
        "timeframe": "30m", "probability": 0.61, "direction": 1, "model_version": "lstm-abc123",
        "event_time": BAR_MS, "available_time": BAR_MS + 1_800_000, "ingest_time": BAR_MS + 1_800_000,
    }
    return {**base, **override}


def test_signal_id_is_a_pinned_short_sha256_hex_of_the_key() -> None:
    first = signal_id(*KEY)
    assert first == signal_id(*KEY)
    assert len(first) == SIGNAL_ID_LENGTH and int(first, 16) >= 0
    # Pinned: the id must be reproducible across machines and releases (a change would re-key gold.signals).
    # = first 16 hex of: printf '%s' '["lstm-abc123","gymcrypto","BTC/USD","30m",1506816000000]' | sha256sum
    assert first == "726844115025a17e"


def test_signal_id_changes_with_each_part_of_the_key() -> None:
    variants = [
        ("lstm-other", "gymcrypto", "BTC/USD", "30m", BAR_MS),
        ("lstm-abc123", "binance", "BTC/USD", "30m", BAR_MS),
        ("lstm-abc123", "gymcrypto", "ETH/USD", "30m", BAR_MS),
        ("lstm-abc123", "gymcrypto", "BTC/USD", "1h", BAR_MS),
        ("lstm-abc123", "gymcrypto", "BTC/USD", "30m", BAR_MS + 1_800_000),
    ]
    ids = {signal_id(*KEY), *(signal_id(*v) for v in variants)}
    assert len(ids) == len(variants) + 1


def test_signal_id_separators_inside_names_cannot_collide() -> None:
    assert signal_id("m", "a|b", "c", "30m", BAR_MS) != signal_id("m", "a", "b|c", "30m", BAR_MS)


def test_signal_id_refuses_a_float_or_datetime_bar_time() -> None:
    with pytest.raises(TypeError, match="bar_time_ms"):
        signal_id("m", "x", "BTC/USD", "30m", float(BAR_MS))  # type: ignore[arg-type]


def test_a_signal_message_carries_the_id_of_its_model_and_bar() -> None:
    msg = validate_for_topic(SignalV1.TOPIC, _payload())
    assert isinstance(msg, SignalV1)
    assert msg.signal_id == signal_id(*KEY)
    assert msg.key() == "gymcrypto:BTC/USD"  # the Kafka key stays exchange:symbol


def test_a_version_1_signal_without_id_gets_a_clear_error_naming_schema_version() -> None:
    old = _payload(schema_version=1)
    del old["signal_id"]
    with pytest.raises(DataValidationError, match="schema_version") as info:
        validate(SignalV1, old)
    assert info.value.field == "schema_version" and info.value.value == 1
    assert "expected 2" in info.value.reason


def test_a_signal_whose_id_is_not_that_of_its_key_is_refused() -> None:
    with pytest.raises(DataValidationError, match="signal_id must be"):
        validate(SignalV1, _payload(signal_id=signal_id("lstm-other", "gymcrypto", "BTC/USD", "30m", BAR_MS)))
    with pytest.raises(DataValidationError, match="signal_id must be"):
        validate(SignalV1, _payload(event_time=BAR_MS + 1_800_000, available_time=BAR_MS + 3_600_000,
                                    ingest_time=BAR_MS + 3_600_000))


def test_gold_signals_merges_on_the_signal_id() -> None:
    assert SIGNALS_TABLE.keys == ("signal_id",)
    assert SIGNALS_TABLE.column_names[0] == "signal_id"
