"""Chain connectors: a local JSON-RPC node serving the REAL Ethereum blocks 17173049-17173050
(ethereum-etl output converted back to hex JSON-RPC), and an explorer serving real Etherscan daily stats."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cryptolake.retry import RetryPolicy
from cryptolake.schemas import ChainBlockV1, ChainDailyStatV1, ChainTransferV1
from ingest.chain.evm import EvmConnector
from ingest.chain.explorer import ExplorerDailyStatsConnector
from ingest.connectors.base import ListSink
from ingest.testing_servers import apis
from ingest.testing_servers.server import LocalServer

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)
CLOCK = lambda: datetime(2023, 5, 3, tzinfo=UTC)  # noqa: E731
NO_SLEEP = lambda s: None  # noqa: E731


def _ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]  # ints stay exact


@pytest.fixture(scope="module")
def etl(shared_data: Path) -> dict[str, list[dict[str, Any]]]:
    d = shared_data / "chain" / "ethereum_etl" / "blocks_17173049_17173050"
    return {k: _ndjson(d / f"expected_{k}.json") for k in ("blocks", "transactions", "logs", "token_transfers")}


def test_evm_batches_real_blocks_decodes_transfers_and_quarantines_corrupt_log(etl: dict[str, Any]) -> None:
    blocks = [apis.etl_block_to_rpc(b, [t for t in etl["transactions"] if t["block_number"] == b["number"]])
              for b in etl["blocks"]]
    logs = [apis.etl_log_to_rpc(lg) for lg in etl["logs"]]
    corrupt = next(i for i, lg in enumerate(logs) if lg["topics"][0] == apis_transfer() and len(lg["topics"]) == 3)
    logs[corrupt] = {**logs[corrupt], "data": "0x1234"}  # malformed: not a 32-byte word
    state = apis.ApiState(rate_limit_first=1)
    with LocalServer(apis.evm_app(blocks, logs, state, max_batch=1)) as srv:
        conn = EvmConnector("ethereum", 17173049, 17173050, rpc_url=srv.url + "/", batch_size=1, clock=CLOCK,
                            sleep=NO_SLEEP, policy=FAST)
        assert conn.head() == 17173050
        sink = ListSink()
        conn.run(sink)
    got_blocks = [m for m in sink.accepted if isinstance(m, ChainBlockV1)]
    assert [b.number for b in got_blocks] == [17173049, 17173050]
    assert [b.tx_count for b in got_blocks] == [b["transaction_count"] for b in etl["blocks"]]
    assert got_blocks[0].gas_used == etl["blocks"][0]["gas_used"]
    assert got_blocks[0].event_time == etl["blocks"][0]["timestamp"] * 1000
    # ERC-20 transfers decoded from raw logs equal ethereum-etl's own decoding, minus the corrupted one
    erc20 = {(m.tx_hash, m.log_index): m for m in sink.accepted if isinstance(m, ChainTransferV1)
             and m.token_address != "native"}
    # ethereum-etl also lists ERC-721 Transfers (4 topics, value = token id); we keep fungible ones only
    n_topics = {(lg["transaction_hash"], lg["log_index"]): len(lg["topics"]) for lg in etl["logs"]}
    expected = {(t["transaction_hash"], t["log_index"]): t for t in etl["token_transfers"]
                if n_topics[(t["transaction_hash"], t["log_index"])] == 3}
    assert conn.non_erc20_logs == len(etl["token_transfers"]) - len(expected) > 0
    bad = (logs[corrupt]["transactionHash"], int(logs[corrupt]["logIndex"], 16))
    assert set(erc20) == set(expected) - {bad}
    for k, m in erc20.items():
        assert (m.from_address, m.to_address, int(m.value), m.token_address) == (
            expected[k]["from_address"], expected[k]["to_address"], expected[k]["value"], expected[k]["token_address"])
    assert len(sink.quarantine) == 1 and "32-byte" in sink.quarantine[0].reason
    natives = [m for m in sink.accepted if isinstance(m, ChainTransferV1) and m.token_address == "native"]
    assert len(natives) == sum(1 for t in etl["transactions"] if t["value"] > 0 and t["to_address"])
    assert sum(int(m.value) for m in natives) == sum(t["value"] for t in etl["transactions"] if t["to_address"])
    # batching: one block per batch here (max_batch=1), plus one eth_getLogs per batch, plus a 429 and head()
    assert len(state.requests) == 1 + 1 + 2 * 2


def apis_transfer() -> str:
    from ingest.chain.evm import TRANSFER_TOPIC

    return TRANSFER_TOPIC


def _etherscan_csv(path: Path) -> dict[str, str]:
    df = pd.read_csv(path)
    day = pd.to_datetime(df["Date(UTC)"], format="%m/%d/%Y").dt.strftime("%Y-%m-%d")
    return dict(zip(day, df.iloc[:, 2].astype(str), strict=True))


def test_explorer_daily_stats_windows_both_rate_limit_styles_and_malformed(shared_data: Path) -> None:
    d = shared_data / "chain" / "etherscan_daily"
    daily = {"dailytx": _etherscan_csv(d / "export-TxGrowth.csv"),
             "dailyavggasprice": _etherscan_csv(d / "export-AvgGasPrice.csv")}
    daily["dailytx"]["2022-01-10"] = "lots"  # malformed
    state = apis.ApiState(rate_limit_first=2)  # an HTTP 429, then Etherscan's HTTP-200 "Max rate limit reached"
    with LocalServer(apis.explorer_app(daily, "es-key-77", state)) as srv:
        conn = ExplorerDailyStatsConnector("ethereum", date(2022, 1, 1), date(2022, 1, 31), base_url=srv.url,
                                           api_key="es-key-77", actions=("dailytx", "dailyavggasprice"),
                                           window_days=10, clock=CLOCK, sleep=NO_SLEEP, policy=FAST)
        sink = ListSink()
        conn.run(sink)
    assert len(sink.accepted) == 31 + 30 and len(sink.quarantine) == 1 and "lots" in sink.quarantine[0].reason
    assert len(state.requests) == 2 + 2 * 4  # 4 windows of <=10 days per action
    tx = {m.day: m for m in sink.accepted if isinstance(m, ChainDailyStatV1) and m.metric == "tx_count"}
    assert tx["2022-01-01"].value == float(daily["dailytx"]["2022-01-01"])
    assert tx["2022-01-01"].available_time - tx["2022-01-01"].event_time == 86_400_000
