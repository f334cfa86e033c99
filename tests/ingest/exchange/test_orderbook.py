"""The order book rebuilt from the real Binance capture equals an independent reference."""

from __future__ import annotations

import pytest

from ingest.exchange.orderbook import BookSynchronizer, OrderBook, book_metrics


class ReferenceBook:
    """Written independently of ingest.exchange.orderbook: string-keyed levels, Binance rules inline."""

    def __init__(self, snapshot):
        self.levels: dict[str, dict[str, str]] = {"b": {}, "a": {}}
        for key, side in (("bids", "b"), ("asks", "a")):
            for p, q in snapshot[key]:
                if q.strip("0.") != "":
                    self.levels[side][p] = q
        self.last = snapshot["lastUpdateId"]

    def apply(self, d):
        if d["u"] <= self.last:
            return
        for side in ("b", "a"):
            for p, q in d[side]:
                if q.strip("0.") == "":
                    self.levels[side].pop(p, None)
                else:
                    self.levels[side][p] = q
        self.last = d["u"]

    def as_floats(self, side):
        return {float(p): float(q) for p, q in self.levels[side].items()}

    def snapshot(self):
        return {"lastUpdateId": self.last, "bids": list(self.levels["b"].items()),
                "asks": list(self.levels["a"].items())}


def test_book_from_real_capture_equals_reference(capture):
    diffs = [e.data for e in capture.of_kind("depth")]
    ref = ReferenceBook(capture.snapshot)
    sync = BookSynchronizer("BTCUSDT", lambda: capture.snapshot)
    for d in diffs:
        sync.on_diff(d)
        ref.apply(d)
    assert sync.synced and sync.gaps == 0 and sync.resyncs == 0
    assert sync.book.last_update_id == ref.last == diffs[-1]["u"]
    assert sync.book.bids == ref.as_floats("b")
    assert sync.book.asks == ref.as_floats("a")
    assert not sync.book.is_crossed()
    assert sync.applied > 3000


def test_injected_sequence_gap_is_detected_and_resynced(capture):
    diffs = [e.data for e in capture.of_kind("depth")]
    ref = ReferenceBook(capture.snapshot)
    snapshots = {"current": capture.snapshot}
    sync = BookSynchronizer("BTCUSDT", lambda: snapshots["current"])
    dropped_at = 1500
    for i, d in enumerate(diffs):
        ref.apply(d)
        if i == dropped_at:
            continue  # the gap: this diff never reaches the synchronizer
        if i == dropped_at + 1:
            # The venue's REST snapshot at this moment (the reference already holds diff i).
            snapshots["current"] = ref.snapshot()
        sync.on_diff(d)
    assert sync.gaps == 1 and sync.resyncs == 1
    assert sync.book.bids == ref.as_floats("b") and sync.book.asks == ref.as_floats("a")
    assert sync.book.last_update_id == diffs[-1]["u"]


def test_gap_without_fresh_snapshot_never_yields_a_book(capture):
    diffs = [e.data for e in capture.of_kind("depth")]
    sync = BookSynchronizer("BTCUSDT", lambda: capture.snapshot)  # stale snapshot forever
    for i, d in enumerate(diffs[:200]):
        if i != 100:
            sync.on_diff(d)
    assert sync.gaps == 1 and not sync.synced


def test_metrics_on_a_hand_made_book():
    book = OrderBook("X")
    book.load_snapshot(1, [["100", "2"], ["99", "3"]], [["101", "1"], ["102", "4"]])
    m = book_metrics(book, levels=(1, 2))
    assert (m.best_bid, m.best_ask, m.mid, m.spread) == (100.0, 101.0, 100.5, 1.0)
    assert m.microprice == pytest.approx((100 * 1 + 101 * 2) / 3)
    assert m.depth_bid == {1: 2.0, 2: 5.0} and m.depth_ask == {1: 1.0, 2: 5.0}
    assert m.imbalance[1] == pytest.approx(1 / 3) and m.imbalance[2] == 0.0
