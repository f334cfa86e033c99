"""EVM JSON-RPC connector: blocks with full transactions and ERC-20 ``Transfer`` logs, batched.

Works with any node or Alchemy/Infura-style URL, one per chain: ``EVM_RPC_URL_<CHAIN>``
(e.g. ``EVM_RPC_URL_ETHEREUM``; the URL often embeds a key, so it is registered as a
secret). ``eth_getBlockByNumber(n, true)`` calls are sent as JSON-RPC batches; logs come from
``eth_getLogs`` over the same block range filtered on the Transfer topic. Quantities are hex
and values can exceed int64: they are carried as decimal strings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from cryptolake import topics
from cryptolake.errors import DataValidationError, FatalError, RateLimitedError
from cryptolake.logs import get_logger, register_secret
from cryptolake.retry import RetryPolicy, call_with_retry
from cryptolake.schemas import ChainBlockV1, ChainTransferV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, HttpClient, Item, Rejected, make_record, require_env, utc_now

log = get_logger(__name__)
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_RATE_CODES = {-32005, 429, -32029}


def qty(value: str) -> int:
    """A JSON-RPC hex quantity -> int (``0x0`` allowed; anything else is a ValueError)."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not a hex quantity: {value!r}")
    return int(value, 16)


def topic_address(topic: str) -> str:
    """The address in a 32-byte indexed topic."""
    if len(topic) != 66:
        raise ValueError(f"topic is not 32 bytes: {topic!r}")
    return "0x" + topic[-40:].lower()


def block_payload(chain: str, b: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
    """``eth_getBlockByNumber(n, true)`` result -> ChainBlockV1 payload."""
    ts = qty(b["timestamp"]) * 1000
    txs = [{"hash": t["hash"], "from_address": t["from"], "to_address": t.get("to"), "value": str(qty(t["value"])),
            "gas": qty(t["gas"]), "gas_price": qty(t.get("gasPrice") or "0x0")} for t in b["transactions"]]
    return {"schema_version": 1, "chain": chain, "number": qty(b["number"]), "hash": b["hash"],
            "parent_hash": b["parentHash"], "miner": b["miner"], "gas_used": qty(b["gasUsed"]),
            "gas_limit": qty(b["gasLimit"]),
            "base_fee_per_gas": qty(b["baseFeePerGas"]) if b.get("baseFeePerGas") else None,
            "tx_count": len(txs), "transactions": txs, "event_time": ts, "available_time": ts,
            "ingest_time": ingest_ms}


def native_transfer_payloads(chain: str, block: ChainBlockV1) -> list[dict[str, Any]]:
    """Value-carrying transactions of a block as native transfers (``log_index`` = -1)."""
    return [{"schema_version": 1, "chain": chain, "token_address": "native", "tx_hash": t.hash, "log_index": -1,
             "block_number": block.number, "from_address": t.from_address, "to_address": t.to_address,
             "value": t.value, "event_time": block.event_time, "available_time": block.available_time,
             "ingest_time": block.ingest_time}
            for t in block.transactions if t.to_address is not None and int(t.value) > 0]


def log_transfer_payload(chain: str, lg: dict[str, Any], block_time_ms: int, ingest_ms: int) -> dict[str, Any]:
    """An ERC-20 ``Transfer(address,address,uint256)`` log -> ChainTransferV1 payload."""
    data = lg["data"]
    if not isinstance(data, str) or len(data) != 66:
        raise ValueError(f"Transfer data must be one 32-byte word, got {str(data)[:80]!r}")
    return {"schema_version": 1, "chain": chain, "token_address": lg["address"], "tx_hash": lg["transactionHash"],
            "log_index": qty(lg["logIndex"]), "block_number": qty(lg["blockNumber"]),
            "from_address": topic_address(lg["topics"][1]), "to_address": topic_address(lg["topics"][2]),
            "value": str(int(data, 16)), "event_time": block_time_ms, "available_time": block_time_ms,
            "ingest_time": ingest_ms}


class EvmConnector(Connector):
    """Blocks [from_block, to_block] of one chain -> chain.blocks + chain.transfers (native and ERC-20)."""

    name = "evm"
    topic = topics.CHAIN_BLOCKS

    def __init__(self, chain: str, from_block: int, to_block: int, *, rpc_url: str | None = None,
                 batch_size: int = 10, clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        url = rpc_url or require_env(f"EVM_RPC_URL_{chain.upper()}")
        register_secret(url)
        self.chain, self.from_block, self.to_block, self.batch_size = chain, from_block, to_block, batch_size
        self.clock, self.sleep, self.policy = clock, sleep, policy
        self.client = HttpClient(url, name=f"evm:{chain}", min_interval=0.05, sleep=sleep, policy=policy)
        self.non_erc20_logs = 0
        self._id = 0

    def _rpc(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """One batch; RPC-level rate limits are retried, other RPC errors are fatal."""
        def once() -> list[Any]:
            batch = []
            for method, params in calls:
                self._id += 1
                batch.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
            answer = self.client.post_json("", batch)
            if not isinstance(answer, list) or len(answer) != len(batch):
                raise DataValidationError("rpc.batch", str(answer)[:200], f"expected {len(batch)} answers")
            by_id = {a.get("id"): a for a in answer}
            out = []
            for req in batch:
                a = by_id.get(req["id"]) or {}
                if "error" in a:
                    err = a["error"]
                    msg = f"evm:{self.chain} {req['method']}: {err}"
                    if err.get("code") in _RATE_CODES:
                        raise RateLimitedError(msg)
                    raise FatalError(msg)
                out.append(a.get("result"))
            return out

        return call_with_retry(once, self.policy, what=f"evm:{self.chain} batch", sleep=self.sleep)

    def head(self) -> int:
        """The chain's latest block number."""
        return qty(self._rpc([("eth_blockNumber", [])])[0])

    def items(self) -> Iterator[Item]:
        for lo in range(self.from_block, self.to_block + 1, self.batch_size):
            hi = min(lo + self.batch_size - 1, self.to_block)
            blocks = self._rpc([("eth_getBlockByNumber", [hex(n), True]) for n in range(lo, hi + 1)])
            ingest_ms = to_ms(self.clock())
            times: dict[int, int] = {}
            for n, b in zip(range(lo, hi + 1), blocks, strict=True):
                if b is None:
                    raise FatalError(f"evm:{self.chain}: block {n} not found (beyond head?)")
                rec = make_record(ChainBlockV1, b, lambda r: block_payload(self.chain, r, ingest_ms),  # noqa: B023 (called immediately)
                                  f"{self.chain}:{n}")
                yield rec
                if isinstance(rec, ChainBlockV1):
                    times[rec.number] = rec.event_time
                    for p in native_transfer_payloads(self.chain, rec):
                        yield make_record(ChainTransferV1, p, lambda r: r, f"{self.chain}:{p['tx_hash']}:-1")
            (logs,) = self._rpc([("eth_getLogs", [{"fromBlock": hex(lo), "toBlock": hex(hi),
                                                   "topics": [TRANSFER_TOPIC]}])])
            for lg in logs or []:
                key = f"{self.chain}:{lg.get('transactionHash')}:{lg.get('logIndex')}"
                tps = lg.get("topics") or []
                if len(tps) == 4:  # ERC-721 Transfer (tokenId indexed): not a fungible transfer
                    self.non_erc20_logs += 1
                    continue
                if len(tps) != 3:
                    yield Rejected(topics.CHAIN_TRANSFERS, key, str(lg)[:2000],
                                   f"invalid topics={len(tps)}: an ERC-20 Transfer log has 3 topics")
                    continue
                block_ms = times.get(qty(lg["blockNumber"]))
                if block_ms is None:
                    yield Rejected(topics.CHAIN_TRANSFERS, key, str(lg)[:2000],
                                   f"invalid blockNumber={lg.get('blockNumber')!r}: block not in this batch")
                    continue
                yield make_record(ChainTransferV1, lg,
                                  lambda r, t=block_ms: log_transfer_payload(self.chain, r, t, ingest_ms), key)  # type: ignore[misc]  # noqa: B023 (called immediately)
        if self.non_erc20_logs:
            log.info("evm.non_erc20_transfer_logs", extra={"chain": self.chain, "count": self.non_erc20_logs})
