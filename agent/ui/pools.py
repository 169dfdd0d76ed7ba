"""The pools' routes: each pool's status and ``demand`` (queue/pool_view.py) as JSON, which KEDA's
``metrics-api`` scaler reads (``valueLocation: demand``), and as the Prometheus gauge
``sweepd_pool_demand`` at ``/metrics``. Behind the dashboard's token like every route.

These are read on request, not by the live channel's pollers: an autoscaler or Prometheus asks
every few seconds. Each pool's status is kept a second (``FRESH_S``), so any number of callers
cost Redis at most one read of a pool a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sweepd.queue.pool_view import pool_names, pool_status
from sweepd.queue.reads import Reads

FRESH_S = 1.0
#: The gauges at ``/metrics``, one series per pool (label ``pool``); names are a contract.
GAUGES = {
    "demand": ("sweepd_pool_demand", "Runs the pool could use at once: queued + held + what its searches can create."),
    "held": ("sweepd_pool_held", "Runs held by the pool's agents."),
    "queued": ("sweepd_pool_queued", "Runs queued in the pool's sweeps."),
    "agents": ("sweepd_pool_agents", "The pool's agents alive."),
}


class Statuses:
    """Each pool's status, read at most once a ``FRESH_S``."""

    def __init__(self, reads: Reads, clock: Callable[[], float] = time.monotonic) -> None:
        self.reads, self.clock = reads, clock
        self._kept: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, name: str) -> dict[str, Any]:
        now = self.clock()
        kept = self._kept.get(name)
        if kept is None or now - kept[0] >= FRESH_S:
            kept = (now, pool_status(self.reads, name))
            self._kept[name] = kept
        return kept[1]

    def all(self) -> list[dict[str, Any]]:
        return [self.get(name) for name in pool_names(self.reads)]


class _Gauges(Collector):
    def __init__(self, statuses: Statuses) -> None:
        self.statuses = statuses

    def collect(self) -> Any:
        pools = self.statuses.all()
        for field, (name, text) in GAUGES.items():
            gauge = GaugeMetricFamily(name, text, labels=["pool"])
            for pool in pools:
                gauge.add_metric([pool["pool"]], float(pool[field]))
            yield gauge


def routes(reads: Reads) -> list[Route]:
    statuses = Statuses(reads)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Gauges(statuses))

    async def pools(request: Request) -> Response:
        return JSONResponse({"pools": await run_in_threadpool(statuses.all)})

    async def pool(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(statuses.get, request.path_params["name"]))

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return [Route("/api/pools", pools), Route("/api/pools/{name:str}", pool), Route("/metrics", metrics)]
