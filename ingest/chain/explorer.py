"""Etherscan-family explorer API (Etherscan, BscScan, ... or Etherscan V2 with ``chainid``): daily stats.

Auth: ``ETHERSCAN_API_KEY`` (or the family's key passed in). Endpoints
``module=stats&action=dailytx|dailyavggasprice|dailygasused&startdate=&enddate=``. They are
not paginated, so long ranges are requested in date windows. Etherscan signals rate limits
either as HTTP 429 or as HTTP 200 with ``status=0`` and ``result="Max rate limit reached"``;
both become :class:`~cryptolake.errors.RateLimitedError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptolake import topics
from cryptolake.errors import AuthenticationError, FatalError, RateLimitedError
from cryptolake.retry import RetryPolicy, call_with_retry
from cryptolake.schemas import ChainDailyStatV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, HttpClient, Item, make_record, require_env, utc_now

ACTIONS: dict[str, tuple[str, str]] = {  # action -> (result field, our metric name)
    "dailytx": ("transactionCount", "tx_count"),
    "dailyavggasprice": ("avgGasPrice_Wei", "avg_gas_price_wei"),
    "dailygasused": ("gasUsed", "gas_used"),
}


def day_payload(chain: str, source: str, metric: str, row: dict[str, Any], field: str,
                ingest_ms: int) -> dict[str, Any]:
    """One result row -> ChainDailyStatV1 payload (available when the UTC day closes)."""
    day = date.fromisoformat(row["UTCDate"])
    start = to_ms(datetime.combine(day, datetime.min.time(), tzinfo=UTC))
    return {"schema_version": 1, "chain": chain, "source": source, "metric": metric, "day": day.isoformat(),
            "value": float(row[field]), "event_time": start, "available_time": start + 86_400_000,
            "ingest_time": ingest_ms}


class ExplorerDailyStatsConnector(Connector):
    """Daily tx count, average gas price and gas used of one chain for [start, end]."""

    name = "explorer"
    topic = topics.CHAIN_DAILY_STATS

    def __init__(self, chain: str, start: date, end: date, *, base_url: str = "https://api.etherscan.io",
                 path: str = "/api", chain_id: int | None = None, api_key: str | None = None,
                 actions: tuple[str, ...] = tuple(ACTIONS), window_days: int = 30, clock: Clock = utc_now,
                 sleep: Callable[[float], None] = time.sleep, policy: RetryPolicy = RetryPolicy()) -> None:
        self.api_key = api_key or require_env("ETHERSCAN_API_KEY")
        self.chain, self.start, self.end, self.path, self.chain_id = chain, start, end, path, chain_id
        self.actions, self.window_days, self.clock, self.sleep, self.policy = actions, window_days, clock, sleep, policy
        self.client = HttpClient(base_url, name=f"explorer:{chain}", min_interval=0.2, sleep=sleep, policy=policy)

    def _fetch(self, action: str, lo: date, hi: date) -> list[Any]:
        params: dict[str, Any] = {"module": "stats", "action": action, "startdate": lo.isoformat(),
                                  "enddate": hi.isoformat(), "sort": "asc", "apikey": self.api_key}
        if self.chain_id is not None:
            params["chainid"] = self.chain_id

        def once() -> list[Any]:
            body = self.client.get_json(self.path, params=params)
            if not isinstance(body, dict):
                raise FatalError(f"explorer: unexpected answer {str(body)[:200]}")
            if body.get("status") == "1":
                result = body.get("result")
                if not isinstance(result, list):
                    raise FatalError(f"explorer: result is not a list: {str(result)[:200]}")
                return result
            text = f"{body.get('message')}: {body.get('result')}"
            if "rate limit" in text.lower():
                raise RateLimitedError(f"explorer:{self.chain} {action}: {text}", retry_after=1.0)
            if "No transactions found" in text or body.get("result") == []:
                return []
            if "api key" in text.lower():
                raise AuthenticationError(f"explorer:{self.chain}: {text}")
            raise FatalError(f"explorer:{self.chain} {action}: {text}")

        return call_with_retry(once, self.policy, what=f"explorer {action}", sleep=self.sleep)

    def items(self) -> Iterator[Item]:
        for action in self.actions:
            field, metric = ACTIONS[action]
            lo = self.start
            while lo <= self.end:
                hi = min(self.end, lo + timedelta(days=self.window_days - 1))
                rows = self._fetch(action, lo, hi)
                ingest_ms = to_ms(self.clock())
                for row in rows:
                    yield make_record(ChainDailyStatV1, row,
                                      lambda r, f=field, m=metric: day_payload(self.chain, "etherscan", m, r, f,  # type: ignore[misc]
                                                                               ingest_ms),  # noqa: B023 (called immediately)
                                      f"{self.chain}:{metric}:{row.get('UTCDate') if isinstance(row, dict) else '?'}")
                lo = hi + timedelta(days=1)
