"""Helpers of the live-path tests: a running local exchange, the trader as a real subprocess, checks."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.localexchange.server import LocalExchange
from trader.domain import Instrument
from trader.orders import OrderJournal
from trader.portfolio import Portfolio
from trader.store import TradeStore

ROOT = Path(__file__).resolve().parents[3]
CHURN = "tests/trader/live/churn.py:Churn"


# The trader processes of a test are forked from one server process that imported the trader's modules
# once (multiprocessing's forkserver): each start then costs the trader's own start-up (restore, resolve,
# reconcile), not ~5-20 s of importing ccxt, pandas and numba. Every trader is still a separate process
# running the ``cryptolake trade run`` CLI, killed for real with SIGKILL.
# ccxt.pro (the user stream's ~200 async exchange modules) and the built-in strategies (the registry imports them
# all to resolve one) are preloaded too: imported after the fork, they made every start take ~13 s instead of ~5 s
# on a loaded 2-core machine (the crash test: 380 s -> 160 s).
_PRELOAD = ["cli.main", "cli.trade", "trader.session", "trader.execution.ccxt_client", "trader.strategies.registry",
            "trader.strategies.indicators", "trader.strategies.signal", "trader.regimes", "pandas", "numba",
            "sqlalchemy.dialects.sqlite", "rich.console", "ccxt.pro", "sqlite3", "trader.allocation",
            "trader.strategies.threshold", "trader.strategies.swing", "trader.strategies.breakout",
            "trader.strategies.daytrade", "trader.strategies.vote", "trader.strategies.mlsignal",
            "trader.strategies.selector", "trader.strategies.ppo", "trader.strategies.portfolio"]
_CTX: Any = None


def _context() -> Any:
    global _CTX
    if _CTX is None:
        _CTX = multiprocessing.get_context("forkserver")
        _CTX.set_forkserver_preload(_PRELOAD)
    return _CTX


def _run_cli(args: list[str], env: dict[str, str], out: str, err: str) -> None:
    """The child: stdout/stderr to files, then the CLI exactly as ``cryptolake ...`` runs it (exits with its code)."""
    os.chdir(ROOT)
    os.environ.update(env)
    for path, fd in ((out, 1), (err, 2)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    from cli.main import app

    app(args=args, prog_name="cryptolake")


class _Follow:
    """Lines of a file another process is writing, until that process has ended and the file is read."""

    def __init__(self, path: Path, proc: Any) -> None:
        self.path, self.proc = path, proc

    def __iter__(self) -> Iterator[str]:
        with self.path.open() as f:
            buf = ""
            while True:
                chunk = f.readline()
                if chunk:
                    buf += chunk
                    if buf.endswith("\n"):
                        yield buf
                        buf = ""
                    continue
                if not self.proc.is_alive():
                    rest = buf + f.read()
                    if rest:
                        yield rest
                    return
                time.sleep(0.02)


class TraderProcess:
    """A forked ``cryptolake trade run`` with the part of :class:`subprocess.Popen` the tests use."""

    def __init__(self, args: list[str], env: dict[str, str], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        n = len(list(logs.glob("*.err")))
        self._out, self._err = logs / f"{n:03d}.out", logs / f"{n:03d}.err"
        self._out.touch()
        self._err.touch()
        self.proc = _context().Process(target=_run_cli, args=(args, env, str(self._out), str(self._err)))
        self.proc.start()
        self.pid = self.proc.pid
        self.stderr = _Follow(self._err, self.proc)

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            raise subprocess.TimeoutExpired("cryptolake trade run", timeout or 0)
        return self.proc.exitcode

    @property
    def returncode(self) -> int | None:
        return self.proc.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self._out.read_text(), self._err.read_text()


def spawn_trader(venue: LocalExchange, key: str, secret: str, store_url: str, *args: str,
                 account: str = "crash", logs: Path | None = None) -> TraderProcess:
    """``cryptolake trade run --live`` against ``venue`` in its own process (killable for real)."""
    env = {"CRYPTOLAKE__TRADER__API_KEY": key, "CRYPTOLAKE__TRADER__API_SECRET": secret}
    cmd = ["trade", "run", "--strategy", CHURN, "--symbols", "BTC/USDT,ETH/USDT",
           "--live", "--account", account, "--base-url", venue.base_url, "--store-url", store_url,
           "--poll-interval", "0.2", "--bar-interval", "1.0", "--stale-bars", "30",
           # the venue replays an hour bar a second: the order-rate switch scales with it (60/min is per real minute)
           "--max-orders-per-minute", "3600", "--no-stages", *args]  # crash tests: no order stage in the lake
    return TraderProcess(cmd, env, logs or Path(store_url.removeprefix("sqlite:///")).parent / "trader-logs")


def wait_for(proc: TraderProcess, text: str, timeout: float = 90.0) -> list[str]:
    """Read the trader's stderr until a line contains ``text``; returns the lines read (fails on timeout)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if text in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        raise AssertionError(f"trader never logged {text!r}: {''.join(lines)[-3000:]}")
    return lines


def venue_orders(venue: LocalExchange, account: str) -> list[Any]:
    return [o for o in venue.engine.orders.values() if o.account == account]


def duplicate_client_ids(venue: LocalExchange, account: str) -> dict[str, int]:
    counts = Counter(o.client_order_id for o in venue_orders(venue, account))
    return {cid: n for cid, n in counts.items() if n > 1}


def journal_positions(store_url: str, account: str) -> dict[str, float]:
    """Positions rebuilt from every fill the journal adopted (what a restarted trader starts from)."""
    j = OrderJournal(TradeStore(store_url), account)
    symbols = ("BTC/USDT", "ETH/USDT")
    p = Portfolio(100_000.0, [Instrument("binance", s, 2, 8) for s in symbols])
    for f in j.fills():
        p.apply(f)
    return {s.split("/")[0]: p.positions[f"binance:{s}"].qty for s in symbols} | {"USDT": p.cash}


def venue_balances(venue: LocalExchange, account: str) -> dict[str, float]:
    bal = venue.engine.balances.get(account, {})
    return {a: float(b.free + b.locked) for a, b in bal.items()}
