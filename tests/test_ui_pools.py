"""The pools over HTTP from ``sweepd ui``: each pool's status and demand as the JSON KEDA's
``metrics-api`` scaler reads (``valueLocation: demand``, the ui's token as a bearer token), the
Prometheus gauge ``sweepd_pool_demand``, and the dashboard's pools table (Debian's Chromium)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from test_ui import get

from sweepd.queue.config import validate
from sweepd.queue.store import Store
from ui_support import chromium, start_run, ui_server

TOKEN = "p00l-t0ken"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def two_sweeps(store: Store) -> tuple[str, str]:
    grid = validate({"program": "t.py", "method": "grid", "parameters": {"a": {"values": [1, 2, 3, 4]}}})
    rand = validate({"program": "t.py", "method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    a, b = store.create_sweep(grid), store.create_sweep(rand)
    store.set_pool(a, pool="lab", priority=10)
    store.set_pool(b, pool="lab", weight=2)
    start_run(store, a)  # a: 1 held + 3 left = 4; b: unbounded, nothing held: 0 + 1
    return a, b


def test_keda_reads_the_demand_with_the_token_and_prometheus_the_gauge(store: Store, cli_env: dict[str, str]) -> None:
    two_sweeps(store)
    with ui_server(cli_env, "--token", TOKEN) as base:
        assert get(base + "/api/pools/lab")[0] == 401
        status, body, _ = get(base + "/api/pools/lab", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        got = json.loads(body)
        assert (got["pool"], got["demand"], got["held"], got["queued"]) == ("lab", 5, 1, 0)
        assert [s["priority"] for s in got["sweeps"]] == [10, 0]
        assert get(base + "/api/pools/nope", {"Authorization": f"Bearer {TOKEN}"})[0] == 404
        assert get(base + "/api/pools/a:b", {"Authorization": f"Bearer {TOKEN}"})[0] == 400
        assert get(base + "/metrics")[0] == 401
        status, body, headers = get(base + "/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and headers["content-type"].startswith("text/plain")
        assert 'sweepd_pool_demand{pool="lab"} 5.0' in body.decode()
        assert 'sweepd_pool_held{pool="lab"} 1.0' in body.decode()


def test_the_dashboard_lists_the_pools(store: Store, cli_env: dict[str, str], browser: Any) -> None:
    a, b = two_sweeps(store)
    with ui_server(cli_env) as base:
        page = browser.new_page()
        page.goto(base + "/")
        page.wait_for_selector("#pools tbody tr[data-pool=lab]")
        assert page.inner_text("#pools tbody tr[data-pool=lab] td:nth-child(5)") == "5"  # its demand
        row = page.inner_text("#pools tbody tr[data-pool=lab]")
        assert a in row and b in row
        page.close()
