"""Helpers of the streaming process tests: real 1m candles, `cryptolake stream ...` children, table counts.

The candles are REAL: the nautilus_trader 1-minute BTC perpetual bars in ../shared/data (see its
README), sent as ``OhlcvV1`` under a unique exchange name so a test counts only its own rows on
the shared broker's ``market.ohlcv``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cryptolake.schemas import OhlcvV1
from cryptolake.settings import PROJECT_ROOT, Settings
from cryptolake.types import TIMEFRAME_MS

NAUTILUS_1M = Path("market") / "ohlcv_1m" / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv.gz"
SYMBOL = "BTC/USDT"


def real_candles(shared_data: Path, exchange: str, n: int, start: int = 0) -> list[OhlcvV1]:
    """``n`` real 1m candles from row ``start``, received at their close (as a live feed delivers them)."""
    raw = pd.read_csv(shared_data / NAUTILUS_1M, skiprows=range(1, start + 1), nrows=n)
    opens = pd.to_datetime(raw["timestamp"], utc=True).astype("int64") // 1_000_000
    tf = TIMEFRAME_MS["1m"]
    return [
        OhlcvV1(schema_version=1, exchange=exchange, symbol=SYMBOL, timeframe="1m", open=o, high=h, low=lo,
                close=c, volume=v, event_time=int(t), available_time=int(t) + tf, ingest_time=int(t) + tf)
        for t, o, h, lo, c, v in zip(opens, raw["open"], raw["high"], raw["low"], raw["close"], raw["volume"],
                                     strict=True)
    ]


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `cryptolake` child sharing the test's lake, checkpoints and broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAKE_FAULT")}
    env.update({
        "CRYPTOLAKE__PATHS__LAKE_ROOT": settings.paths.lake(),
        "CRYPTOLAKE__PATHS__CHECKPOINT_ROOT": settings.paths.checkpoints(),
        "CRYPTOLAKE__PATHS__ARTIFACTS_DIR": str(settings.paths.artifacts_dir),
        "CRYPTOLAKE__KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "CRYPTOLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
        "PYTHONPATH": str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **extra,
    })
    return env


def start_child(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m cli.main <args>`` in its own process group (so a SIGKILL takes its JVM too)."""
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stdout=out, stderr=out,
                            cwd=PROJECT_ROOT, start_new_session=True)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and everything in its process group (the Spark JVM, Python workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def stop_child(proc: subprocess.Popen[bytes], timeout: float = 90) -> int:
    """SIGTERM the child and wait for its exit code (SIGKILL the group if it does not stop)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return -9
    with_children = proc.returncode
    with contextlib.suppress(ProcessLookupError):  # nothing of the group may outlive it
        os.killpg(proc.pid, signal.SIGKILL)
    return with_children


def wait_for(check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
             log: Path | None = None, poll: float = 0.5) -> None:
    """Poll ``check`` until true; fail with the child's log tail on timeout or if the child died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(poll)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    code = None if proc is None else proc.poll()
    raise AssertionError(f"timed out waiting for {what} (child exit code {code}); log tail:\n{tail}")


def delta_frame(path: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A Delta table read with delta-rs (no JVM), empty when it does not exist yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(path).to_pandas(columns=columns)
    except (TableNotFoundError, FileNotFoundError, OSError):
        return pd.DataFrame(columns=columns or [])


def bronze_candles(settings: Settings, exchange: str) -> pd.DataFrame:
    """This exchange's bronze.market_ohlcv rows (key, offset, event_time, payload)."""
    from cryptolake import topics
    from cryptolake.tables import bronze_spec

    frame = delta_frame(bronze_spec(topics.MARKET_OHLCV).path(settings),
                        ["key", "partition", "offset", "event_time", "payload"])
    return frame[frame["key"] == f"{exchange}:{SYMBOL}"]


def private_stack(root: Path, base: Settings) -> Settings:
    """Settings with their own state dir, lake and checkpoints under ``root`` and a private broker started.

    A private broker keeps ``market.ohlcv`` free of other tests' candles (the landing child reads the
    topic from the earliest offset). Stop it with :func:`stop_private_stack`.
    """
    from infra import broker
    from tests.conftest import settings_in

    settings = settings_in(root, base, own_state=True)
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"bootstrap_servers": "", "port": 0, "controller_port": 0})})
    info = broker.start(settings)
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"bootstrap_servers": info.bootstrap})})


def stop_private_stack(settings: Settings) -> None:
    from infra import broker

    broker.stop(settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": ""})}))


def total_bronze(settings: Settings) -> pd.DataFrame:
    """Every bronze.market_ohlcv row's (partition, offset)."""
    from cryptolake import topics
    from cryptolake.tables import bronze_spec

    return delta_frame(bronze_spec(topics.MARKET_OHLCV).path(settings), ["partition", "offset"])
