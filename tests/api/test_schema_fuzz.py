"""schemathesis against the OpenAPI schema: no server error and no schema violation, >= 1,000 requests."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.conftest import backtest_run, make_api

_TMP = Path(tempfile.mkdtemp(prefix="cryptolake-fuzz-"))
API = make_api(_TMP, rate_limit_per_min=100_000, login_rate_per_min=100_000)
backtest_run(API.store_url, "bt1", 80)
TOKEN = API.login("ada")["access_token"]
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", API.client.app)
EXAMPLES_PER_OPERATION = 70  # x 24 operations; those without inputs give one request


def _fuzz(operation: Any) -> int:
    """``EXAMPLES_PER_OPERATION`` generated requests to one operation; returns how many were sent."""
    calls: list[int] = []
    auth = not operation.path.endswith(("/login", "/refresh", "/logout"))
    # A strategy config is an open union (any strategy class, a user's file too): the schema says "an object",
    # its class decides what is valid, so a schema-valid config may rightly get a 422 naming the field.
    excluded = [positive_data_acceptance] if operation.path.endswith(("/backtests", "/params")) else []

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"} if auth else {}, excluded_checks=excluded)
        calls.append(1)

    run()
    return len(calls)


@pytest.mark.slow
def test_api_conforms_to_its_schema_over_at_least_a_thousand_requests() -> None:
    """Every operation, one test (not one pytest item per operation: the count below must see them all,
    whichever pytest-xdist worker runs it)."""
    sent = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        sent[operation.label] = _fuzz(operation)
    print(f"schemathesis requests: {sum(sent.values())} over {len(sent)} operations")
    assert len(sent) >= 20 and all(n > 0 for n in sent.values()), sent
    assert sum(sent.values()) >= 1000, sent
