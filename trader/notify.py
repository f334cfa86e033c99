"""The trader's side of the dashboard: alerts out (fills, halts, drawdown thresholds), controls in.

Alerts from a trading session: each new fill, a halt (kill switch, with its reason), drawdown thresholds.

The session calls :meth:`SessionAlerts.check` after every loop; what is new since the last check is raised
through the one :class:`~cryptolake.alerts.Alerter` (deduplicated and rate limited there). Each alert's
key names the fact (``fill:<account>:<fill id>``, ``kill_switch:<account>:<reason>``,
``drawdown:<account>:<threshold>``), so a restart or a repeated check never says the same thing twice
inside the alerter's window. A drawdown threshold raises once when crossed and is re-armed only after
the equity has recovered above it. The controls are :func:`apply_controls`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

from cryptolake.alerts import Alert, Alerter, AlertKind, Severity
from cryptolake.logs import get_logger
from cryptolake.settings import get_settings
from trader.node import TradingNode
from trader.orders import OrderJournal
from trader.risk import TradingState
from trader.strategies.registry import parse_strategy_config
from trader.strategy import Strategy

log = get_logger(__name__)


class SessionAlerts:
    """What a session has already told the desk, and the thresholds still armed."""

    def __init__(self, alerter: Alerter, account: str, thresholds: Sequence[float]) -> None:
        self.alerter, self.account = alerter, account
        self.thresholds = tuple(sorted(thresholds))
        self.fills_seen = 0
        self.halt_reason = ""
        self.peak: float | None = None
        self.crossed: set[float] = set()
        self._queue: queue.Queue[Alert] = queue.Queue()
        self._worker: threading.Thread | None = None

    @classmethod
    def from_environment(cls, account: str) -> SessionAlerts:
        """Alerts to ``CRYPTOLAKE_ALERT_URLS`` with the thresholds of ``settings.alerts``."""
        settings = get_settings().alerts
        return cls(Alerter.from_environment(settings), account, settings.drawdown_thresholds)

    def baseline(self, node: TradingNode) -> None:
        """Start from the restored account: its fills and a halt found at start were reported before."""
        self.fills_seen = len(node.fills)
        self.halt_reason = node.risk.halt_reason
        self.peak = node.risk.peak_equity

    def check(self, node: TradingNode) -> list[Alert]:
        """Raise what is new since the last check; returns the alerts raised (sent or not)."""
        out: list[Alert] = []
        for f in node.fills[self.fills_seen:]:
            out.append(Alert(AlertKind.FILL, f"Fill {f.side} {f.symbol}",
                             f"{self.account}: {f.side} {f.qty:g} {f.symbol} @ {f.price:g} (fee {f.fee:g} "
                             f"{f.fee_currency})", key=f"fill:{self.account}:{f.id}"))
        self.fills_seen = len(node.fills)
        reason = node.risk.halt_reason if node.risk.state is TradingState.HALTED else ""
        if reason and reason != self.halt_reason:
            out.append(Alert(AlertKind.KILL_SWITCH, f"Trading halted: {self.account}", reason,
                             key=f"kill_switch:{self.account}:{reason}", severity=Severity.CRITICAL))
        self.halt_reason = reason
        equity = node.portfolio.equity()
        self.peak = equity if self.peak is None else max(self.peak, equity)
        drawdown = 1 - equity / self.peak if self.peak > 0 else 0.0
        for level in self.thresholds:
            if drawdown >= level and level not in self.crossed:
                self.crossed.add(level)
                out.append(Alert(AlertKind.DRAWDOWN, f"Drawdown {drawdown:.1%}: {self.account}",
                                 f"equity {equity:,.2f} is {drawdown:.2%} below its peak {self.peak:,.2f} "
                                 f"(threshold {level:.0%})", key=f"drawdown:{self.account}:{level}",
                                 severity=Severity.WARNING if level < max(self.thresholds) else Severity.CRITICAL))
            elif drawdown < level:
                self.crossed.discard(level)
        for alert in out:
            self._queue.put(alert)
        if out and (self._worker is None or not self._worker.is_alive()):
            self._worker = threading.Thread(target=self._send, daemon=True, name=f"alerts-{self.account}")
            self._worker.start()
        return out

    def _send(self) -> None:
        """Deliver in order, off the trading loop (a slow or unreachable destination must not delay trading)."""
        while True:
            alert = self._queue.get()
            try:
                self.alerter.raise_alert(alert)
            except Exception as exc:  # a destination's failure is logged, never the trader's
                log.warning("session.alert_failed", extra={"kind": alert.kind.value, "error": type(exc).__name__})
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every alert raised so far was handed to the alerter."""
        self._queue.join()


PAUSED = "paused by operator"  # the halt reason of a pause: the session keeps the resting orders


def apply_controls(node: TradingNode, journal: OrderJournal, strategies: Sequence[Strategy],
                   applied: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's controls (api/routes/controls.py), read from the journal; returns the params applied.

    ``pause`` and ``flatten`` are one-shot (consumed here); their effect persists as the risk state:

    * ``pause``: HALTED without cancelling (resting orders stay, only exits pass, nothing new opens);
      the existing ``reset`` key resumes, as after a kill;
    * ``flatten``: halt (every open order cancelled), then a reduce-only market order closes each position;
    * ``kill`` while paused: the resting orders are cancelled too;
    * ``params``: ``{strategy name: {field: value}}``, kept (a restart applies it again). A changed entry
      rebuilds that strategy from its config plus the changes (validated by its own config class) and keeps
      its id sequence, so client order ids stay unique.
    """
    pause, flatten, params = journal.get("pause"), journal.get("flatten"), journal.get("params") or {}
    if pause or flatten:
        journal.put(pause=None, flatten=None)
    if pause and node.risk.state is not TradingState.HALTED:
        node.risk.set_state(TradingState.HALTED, node.clock.now(), f"{PAUSED}: {pause}")
    if flatten:
        node.halt(f"flattened by operator: {flatten}", flatten=True)
    elif journal.get("kill") and node.risk.state is TradingState.HALTED and node.client.open_orders():
        node.halt(node.risk.halt_reason)
    if params != applied:
        for s in strategies:
            if params.get(s.name) is not None and params.get(s.name) != applied.get(s.name):
                seq = s.seq
                config = parse_strategy_config({**s.config.model_dump(mode="json"), **params[s.name]})
                type(s).__init__(s, config, list(s.instruments.values()))
                s.seq = seq
    return dict(params)
