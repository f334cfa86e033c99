"""Cross-venue validation on the real multi-venue ETH/USD 1h data (kmerisalu)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from ingest.exchange.crossvenue import CrossVenueConfig, stale_by_age, summarize, venue_flags
from ingest.localexchange.data import parse_cdd_csv


def _ms(text):
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def flags(shared_data):
    frames = {}
    for path in sorted((shared_data / "market/ohlcv_1h/kmerisalu").glob("*.csv.gz")):
        venue = path.name.split("_")[0].lower()
        frames[venue] = pd.Series({c.open_time: c.close for c in parse_cdd_csv(path)})
    return venue_flags(pd.DataFrame(frames), CrossVenueConfig(threshold_bps=500, stale_intervals=6))


def test_parser_handles_banner_12h_dates_and_order(shared_data):
    candles = parse_cdd_csv(shared_data / "market/ohlcv_1h/kmerisalu/Coinbase_ETHUSD_1h.csv.gz")
    times = [c.open_time for c in candles]
    assert times == sorted(set(times))
    by_time = {c.open_time: c for c in candles}
    # "2019-07-30 12-AM" is midnight, "01-AM" one hour later.
    assert by_time[_ms("2019-07-30 00:00")].close == 209.82
    assert by_time[_ms("2019-07-30 01:00")].close == 208.31


def test_known_real_divergences_are_caught(flags):
    report = summarize(flags).to_dict(orient="index")
    print("\n" + summarize(flags).to_string())  # per venue: hours, deviating, stale
    row = {(r["event_time"], r["venue"]): r for r in flags.to_dict(orient="records")}
    # Bitstamp's first hour printed 639.99 while every other venue traded near 260.
    assert row[(_ms("2017-09-22 19:00"), "bitstamp")]["deviates"]
    # Bittrex froze at 433.94 for days in September 2018 while the market was near 190.
    frozen = row[(_ms("2018-09-09 02:00"), "bittrex")]
    assert frozen["deviates"] and frozen["price"] == 433.94 and frozen["deviation_bps"] > 10_000
    assert row[(_ms("2018-09-10 16:00"), "bittrex")]["stale"]
    assert report["bittrex"]["deviating"] > 1000
    assert report["bittrex"]["deviating"] == max(v["deviating"] for v in report.values())
    assert report["bitstamp"]["deviating"] < 10
    # The consensus venues agree almost always at 500 bps.
    assert report["coinbase"]["deviating"] / report["coinbase"]["intervals"] < 0.01


def test_stale_by_age_uses_the_logical_time_passed_in():
    cfg = CrossVenueConfig(max_age_ms=60_000)
    assert stale_by_age({"a": 1_000_000, "b": 1_050_000}, 1_100_000, cfg) == {"a": True, "b": False}


def test_flag_messages_carry_every_flag_and_turn_missing_medians_into_none(flags):
    from ingest.exchange.crossvenue import flag_messages

    msgs = flag_messages(flags, "ETH/USD", interval_ms=3_600_000, threshold_bps=500, ingest_ms=1_767_225_600_000)
    assert len(msgs) == len(flags)
    by_key = {(m.event_time, m.exchange): m for m in msgs}
    frozen = by_key[(_ms("2018-09-09 02:00"), "bittrex")]
    assert frozen.deviates and frozen.price == 433.94 and frozen.available_time == frozen.event_time + 3_600_000
    # hours quoted by fewer than min_venues venues have no median, hence no deviation
    no_median = [m for m in msgs if m.median is None]
    assert all(m.deviation_bps is None and not m.deviates for m in no_median)
    assert sum(m.deviates for m in msgs) == int(flags["deviates"].sum())
    assert sum(m.stale for m in msgs) == int(flags["stale"].sum())
