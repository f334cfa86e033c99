"""The write-ahead order journal on SQLite and on a real PostgreSQL server (Debian's, started per module)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from infra.postgres import LocalPostgres
from trader.domain import Fill, Liquidity, Order, OrderStatus, OrderType, Side
from trader.orders import TERMINAL, TRANSITIONS, IllegalTransitionError, OrderJournal
from trader.store import TradeStore

S = OrderStatus
T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with LocalPostgres() as pg:
        yield pg.url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/journal.db"
    return str(request.getfixturevalue("postgres"))


def _order(cid: str = "s-000001-entry") -> Order:
    return Order(cid, "binance", "BTC/USDT", Side.BUY, OrderType.LIMIT, 0.01, 30000.0, T)


def test_transitions_survive_a_restart_in_order(url, request) -> None:
    account = f"acct-{request.node.name}"
    j = OrderJournal(TradeStore(url), account)
    o = j.record(_order(), S.INITIALIZED, T, owner="s")
    o = j.record(o, S.SUBMITTED, T)
    o = j.record(o, S.ACCEPTED, T, id="42")
    o = j.record(o, S.PARTIALLY_FILLED, T, filled_qty=0.004)
    j.record_fill(Fill("binance-7", "42", o.client_id, "binance", "BTC/USDT", Side.BUY, 30000.0, 0.004, 0.12,
                       "USDT", T, Liquidity.MAKER))
    j.put(last_bar_ms=123, risk={"state": "halted"})
    again = OrderJournal(TradeStore(url), account)  # a restarted process
    assert [st for _, st, _ in again.events(o.client_id)] == [S.INITIALIZED, S.SUBMITTED, S.ACCEPTED,
                                                              S.PARTIALLY_FILLED]
    got = again.orders[o.client_id]
    assert (got.status, got.id, got.filled_qty, got.created_at, again.owners[o.client_id]) == (
        S.PARTIALLY_FILLED, "42", 0.004, T, "s")
    assert again.fill_ids == {"binance-7"} and not again.record_fill(again.fills()[0])  # booked once
    assert again.get("last_bar_ms") == 123 and again.get("risk") == {"state": "halted"}
    other = OrderJournal(TradeStore(url), account + "-other")
    assert other.orders == {} and other.get("last_bar_ms") is None  # accounts never mix


def test_illegal_transitions_are_refused(tmp_path) -> None:
    j = OrderJournal(TradeStore(f"sqlite:///{tmp_path}/j.db"), "a")
    o = j.record(_order(), S.INITIALIZED, T)
    with pytest.raises(IllegalTransitionError, match="initialized -> filled"):
        j.record(o, S.FILLED, T)
    o = j.record(j.record(o, S.SUBMITTED, T), S.CANCELED, T)
    for st in S:
        if st is not S.CANCELED:
            with pytest.raises(IllegalTransitionError):
                j.record(o, st, T)
    assert {S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED} == TERMINAL
    assert S.UNKNOWN in TRANSITIONS[S.SUBMITTED] and S.SUBMITTED not in TRANSITIONS[S.UNKNOWN]  # never resent
