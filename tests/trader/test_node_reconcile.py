"""The node's verdict on a reconciliation: a settled snapshot's mismatch halts at once; one that never
settled (fills kept arriving during every read, as on CI's loaded machine in the crash test) gives no
verdict up to ``MAX_UNSETTLED`` times in a row, then its mismatch counts.

The venue's reports are hand-made (SYNTHETIC positions); the node and its risk engine are the real ones.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from trader.clock import SimClock
from trader.domain import Bar, Instrument, Order, OrderIntent, OrderStatus, OrderType, Side
from trader.execution.base import ReconcileReport
from trader.execution.paper import PaperConfig, PaperExecutionClient
from trader.node import MAX_UNSETTLED, TradingNode
from trader.portfolio import Portfolio
from trader.risk import RiskConfig, RiskEngine, TradingState
from trader.strategy import Strategy, StrategyConfig, StrategyContext

BTC = Instrument("binance", "BTC/USDT", 2, 5)
OFF = ReconcileReport(positions={BTC.key: 0.0005}, tolerance={BTC.key: 5e-6}, halt_on_mismatch=True)


class _Idle(StrategyConfig):
    kind: str = "tests.trader.test_node_reconcile:Idle"


class Idle(Strategy):
    """Never trades: the node's books stay flat, so any venue position is a mismatch."""

    Config = _Idle
    default_name = "idle"

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        return []


def _node(reports: list[ReconcileReport], monkeypatch: pytest.MonkeyPatch) -> TradingNode:
    client = PaperExecutionClient(PaperConfig(), [BTC])
    feed = iter(reports)
    monkeypatch.setattr(client, "reconcile", lambda on_fill=None: next(feed))
    clock = SimClock()
    clock.advance(datetime(2024, 1, 1, tzinfo=UTC))
    return TradingNode([Idle(_Idle(), [BTC])], RiskEngine(RiskConfig()), client, Portfolio(1_000.0, [BTC]), [BTC],
                       clock=clock, simulator=client)


def test_a_settled_mismatch_halts_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node([OFF], monkeypatch)
    problems = node.reconcile()
    assert problems == [f"venue positions {{'{BTC.key}': 0.0005}} != node positions {{}}"]
    assert node.risk.state is TradingState.HALTED and node.risk.halt_reason.startswith("reconciliation: venue")


def test_unsettled_snapshots_give_no_verdict_until_too_many_in_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    unsettled = replace(OFF, settled=False)
    node = _node([unsettled, unsettled, replace(OFF, positions={}), *[unsettled] * MAX_UNSETTLED], monkeypatch)
    assert node.reconcile() == [] and node.reconcile() == []  # fills in flight: no verdict, no halt
    assert node.risk.state is TradingState.ACTIVE
    assert node.reconcile() == []  # a settled agreement resets the count
    for _ in range(MAX_UNSETTLED - 1):
        assert node.reconcile() == []
    assert node.risk.state is TradingState.ACTIVE
    assert len(node.reconcile()) == 1  # the MAX_UNSETTLED-th unsettled one in a row counts
    assert node.risk.state is TradingState.HALTED


@pytest.mark.parametrize(("status", "mismatch"), [(OrderStatus.UNKNOWN, False), (OrderStatus.SUBMITTED, False),
                                                  (OrderStatus.ACCEPTED, True)])
def test_a_submit_still_in_doubt_is_no_open_orders_mismatch(status: OrderStatus, mismatch: bool,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A market buy sent just before a crash is UNKNOWN at the restart until the venue tells (CI's crash test
    halted on it within the recvWindow); an order the books hold as ACCEPTED but the venue lacks still halts."""
    node = _node([ReconcileReport(halt_on_mismatch=True)], monkeypatch)
    order = Order("idle-000018-buy", "binance", "BTC/USDT", Side.BUY, OrderType.MARKET, 0.001, None,
                  datetime(2024, 1, 1, tzinfo=UTC), status, "" if status is not OrderStatus.ACCEPTED else "42")
    node.orders[order.client_id] = order
    problems = node.reconcile()
    assert problems == (["venue open orders [] != node open orders ['idle-000018-buy']"] if mismatch else [])
    assert (node.risk.state is TradingState.HALTED) is mismatch
