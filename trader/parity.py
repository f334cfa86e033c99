"""Parity of the paper venue and a real venue: the same strategy over the same bars, two execution clients.

Both runs must *send the same orders* (client id, side, type, quantity, price): the node, the
strategy and the risk engine are the same, only the execution client differs. Their fills may
differ, and :func:`parity_report` lists every order whose fills differ in price or quantity, with
the reason, which is always one of the venues' matching rules:

* **market orders**: the paper venue fills at the next bar's open moved by ``slippage_bps``; a real
  venue fills on arrival against its book (the local exchange's candle replay: the book is the last
  candle's close), so the prices differ by the gap between a close and the next open, plus slippage;
* **fees in the base asset**: Binance charges a buy's fee in the asset received, so the venue's
  fill is the quantity net of the fee (the paper venue charges every fee in the quote currency);
* **partial fills**: a resting limit order at the venue fills only up to the volume printed at its
  price (several trades; maybe not all of it), where the paper venue fills it whole once a bar
  trades through the limit;
* **marketable limits**: a limit order that crosses the venue's book fills on arrival as a taker at
  the book's price; the paper venue waits for the next bar (and fills at its open if it gapped
  through, else at the limit);
* **not filled on one side**: a limit the next bar touched on paper but the venue's prints did not
  reach, or an order of the last bar the paper venue fills only at the next bar's open.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from trader.domain import Fill, Liquidity, Order, OrderStatus, OrderType, Side
from trader.execution.paper import PaperConfig


@dataclass(frozen=True, slots=True)
class OrderKey:
    """What "the same order" means: the same client id, side, type, quantity and price."""

    client_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: float
    price: float | None

    @classmethod
    def of(cls, o: Order) -> OrderKey:
        return cls(o.client_id, o.symbol, Side(o.side), OrderType(o.type), o.qty, o.price)


@dataclass(frozen=True, slots=True)
class FillDifference:
    """One order whose fills differ: quantities and average prices on each side, and why."""

    client_id: str
    symbol: str
    type: OrderType
    side: Side
    paper_qty: float
    venue_qty: float
    paper_price: float | None
    venue_price: float | None
    venue_trades: int
    reasons: tuple[str, ...]


@dataclass
class ParityReport:
    """Orders sent by both runs, orders that differ, and fill differences with their reasons."""

    orders_paper: int
    orders_venue: int
    order_differences: list[str] = field(default_factory=list)
    fills_compared: int = 0
    fill_differences: list[FillDifference] = field(default_factory=list)

    @property
    def same_orders(self) -> bool:
        return not self.order_differences and self.orders_paper == self.orders_venue

    def render(self) -> str:
        """The report as text: one line per difference."""
        lines = [f"orders: paper {self.orders_paper}, venue {self.orders_venue}, "
                 f"{'the same' if self.same_orders else 'DIFFERENT'}"]
        lines += [f"  order differs: {d}" for d in self.order_differences]
        lines.append(f"fills: {self.fills_compared} orders compared, {len(self.fill_differences)} differ")
        for d in self.fill_differences:
            px = (f"price paper {d.paper_price} venue {d.venue_price}" if d.paper_price != d.venue_price else
                  f"price {d.paper_price}")
            lines.append(f"  {d.client_id} {d.symbol} {d.type} {d.side}: qty paper {d.paper_qty} venue {d.venue_qty}"
                         f" ({d.venue_trades} venue trades), {px}: " + "; ".join(d.reasons))
        return "\n".join(lines)


def _sent(orders: Iterable[Order]) -> dict[str, Order]:
    """Orders that were sent to the venue (not refused by risk or by local checks before sending)."""
    return {o.client_id: o for o in orders if o.status is not OrderStatus.REJECTED or o.id}


def _vwap(fills: list[Fill]) -> tuple[float, float | None]:
    qty = sum(f.qty for f in fills)
    return round(qty, 12), (round(sum(f.price * f.qty for f in fills) / qty, 8) if qty else None)


def parity_report(paper_orders: Iterable[Order], paper_fills: Iterable[Fill], venue_orders: Iterable[Order],
                  venue_fills: Iterable[Fill], *, paper: PaperConfig, venue_taker_fee: float = 0.001,
                  venue_maker_fee: float = 0.001, price_tolerance: float = 1e-9) -> ParityReport:
    """Compare the two runs; see the module docstring for the reasons a fill may differ."""
    p_orders, v_orders = _sent(paper_orders), _sent(venue_orders)
    report = ParityReport(len(p_orders), len(v_orders))
    for cid in sorted(set(p_orders) | set(v_orders)):
        a, b = p_orders.get(cid), v_orders.get(cid)
        if a is None or b is None:
            report.order_differences.append(f"{cid}: sent {'at the venue' if a is None else 'on paper'} only")
        elif OrderKey.of(a) != OrderKey.of(b):
            report.order_differences.append(f"{cid}: paper {OrderKey.of(a)} != venue {OrderKey.of(b)}")
    by_p: dict[str, list[Fill]] = defaultdict(list)
    by_v: dict[str, list[Fill]] = defaultdict(list)
    for f in paper_fills:
        by_p[f.client_id].append(f)
    for f in venue_fills:
        by_v[f.client_id].append(f)
    for cid in sorted(set(p_orders) & set(v_orders)):
        order = p_orders[cid]
        pf, vf = by_p.get(cid, []), by_v.get(cid, [])
        if not pf and not vf:
            continue
        report.fills_compared += 1
        (pq, pp), (vq, vp) = _vwap(pf), _vwap(vf)
        qty_differs = abs(pq - vq) > 1e-12
        price_differs = pp is not None and vp is not None and abs(pp - vp) > price_tolerance * max(pp, vp)
        if not qty_differs and not price_differs:
            continue
        reasons = _reasons(order, pf, vf, pq, vq, pp, vp, paper, venue_taker_fee, venue_maker_fee, price_differs)
        report.fill_differences.append(FillDifference(cid, order.symbol, order.type, Side(order.side), pq, vq, pp,
                                                      vp, len(vf), tuple(reasons)))
    return report


def _reasons(order: Order, pf: list[Fill], vf: list[Fill], pq: float, vq: float, pp: float | None,
             vp: float | None, paper: PaperConfig, taker: float, maker: float, price_differs: bool) -> list[str]:
    out: list[str] = []
    if not pf:
        out.append("not filled on paper: the paper venue fills only at a later bar (a market order at the next "
                   "bar's open; a limit once a bar trades through it)")
    if not vf:
        out.append("not filled at the venue: its prints never reached the limit (the paper bar did)")
    if pf and vf and abs(pq - vq) > 1e-12:
        gross = vq
        if order.side == Side.BUY:  # Binance: a buy's fee is taken from the base asset received
            rate = maker if all(f.liquidity is Liquidity.MAKER for f in vf) else taker
            gross = vq / (1 - rate)
            out.append(f"the venue charges a buy's fee in the base asset: {vq} received for {round(gross, 8)} "
                       f"bought ({rate:.2%} fee); the paper venue charges it in the quote currency")
        if gross < pq - 1e-8 * max(1, len(vf)):
            out.append(f"partially filled at the venue ({len(vf)} trades, {round(gross, 8)} of {pq}): a resting "
                       f"order fills only up to the volume printed at its price; the paper venue fills it whole")
    if price_differs and pf and vf:
        if order.type is OrderType.MARKET or order.type is OrderType.STOP:
            out.append(f"market order: the paper venue fills at the next bar's open with {paper.slippage_bps} bps "
                       f"slippage ({pp}); the venue fills on arrival against its book ({vp})")
        elif any(f.liquidity is Liquidity.TAKER for f in vf):
            out.append(f"marketable limit: the venue filled it on arrival against its book at {vp}; the paper venue "
                       f"fills it at the next bar ({pp})")
        else:
            out.append(f"limit: the paper venue fills at the next bar's open when it gaps through the limit ({pp}); "
                       f"the venue at the limit when a print trades through it ({vp})")
    return out or ["fills differ for a reason the report does not know: investigate"]
