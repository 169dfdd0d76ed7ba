"""The agent's Prometheus metrics, served on ``--metrics-port`` (prometheus_client).

Every metric lives in a registry of the agent's own (nothing global: tests and several agents in one
process never share counts) and carries a ``sweep`` label. The names below are a contract: dashboards
and alerts are written against them.

=======================================  =========  ===================================================
``sweepd_runs_started_total``            counter    attempts whose training process started
``sweepd_runs_finished_total``           counter    runs that ended ``finished``
``sweepd_runs_failed_total``             counter    runs that ended ``failed`` or ``crashed`` (``state``)
``sweepd_runs_stopped_total``            counter    runs that ended ``stopped`` (``reason``)
``sweepd_runs_preempted_total``          counter    attempts ended by a preemption (``reason``)
``sweepd_runs_requeued_total``           counter    runs this agent put back on the queue (``reason``:
                                                    a preemption's, ``retry``, ``lease-expired``)
``sweepd_handoff_seconds``               histogram  from learning a run must go back (signal, notice,
                                                    the script's mark, an operator) to it requeued
``sweepd_recovery_seconds``              histogram  a run's interruption to its restart here
``sweepd_heartbeat_lag_seconds``         gauge      since Redis last took this agent's heartbeat
                                                    (healthy: under ``--heartbeat``)
``sweepd_redis_errors_total``            counter    Redis calls that failed (the agent retries)
``sweepd_agent_busy``                    gauge      1 while a run's process is running
``sweepd_checkpoint_bytes_total``        counter    checkpoint bytes moved to or from an object store
                                                    (``direction``: ``upload``, ``download``)
``sweepd_checkpoint_seconds_total``      counter    seconds those transfers took (``direction``)
``sweepd_checkpoint_snapshots_total``    counter    snapshots tried (``outcome``: ``committed``,
                                                    ``fenced``, ``late``, ``failed``)
=======================================  =========  ===================================================

An agent given ``--gpus`` holds a run per slot: its started, finished, failed, stopped, preempted,
requeued and busy series carry a ``slot`` label as well (``0``, ``1``, ...; a reap's requeue: ``""``).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from sweepd.queue.errors import UserError

#: Handoffs take milliseconds unless the run checkpoints for up to its grace period.
HANDOFF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: A preempted run comes back in milliseconds to seconds; a dead agent's within its lease (minutes).
RECOVERY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120, 300, 600, 1800)


class Metrics:
    """What the agent counts. Methods are safe from any thread (prometheus_client locks)."""

    def __init__(self, sweep_id: str, slotted: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.sweep_id = sweep_id
        #: An agent holding runs in GPU slots (slots.py): the per-run series carry a ``slot`` label
        #: too (``for_slot``); the agent's own (reaps, heartbeat, Redis errors) do not.
        self.slotted = slotted
        self._slot = ""
        r, s, sid = self.registry, ["sweep"], sweep_id
        per_run = [*s, "slot"] if slotted else s
        self._started = Counter("sweepd_runs_started", "Attempts whose training process started.", per_run, registry=r)
        self._finished = Counter("sweepd_runs_finished", "Runs that ended finished.", per_run, registry=r)
        self._failed = Counter(
            "sweepd_runs_failed", "Runs that ended failed or crashed.", [*per_run, "state"], registry=r
        )
        self._stopped = Counter("sweepd_runs_stopped", "Runs that ended stopped.", [*per_run, "reason"], registry=r)
        self._preempted = Counter(
            "sweepd_runs_preempted", "Attempts ended by a preemption.", [*per_run, "reason"], registry=r
        )
        self._requeued = Counter(
            "sweepd_runs_requeued", "Runs this agent put back on the queue.", [*per_run, "reason"], registry=r
        )
        self._busy = Gauge("sweepd_agent_busy", "1 while a run's training process runs.", per_run, registry=r)
        if not slotted:  # present (0) from the start, as they always were
            for family in (self._started, self._finished, self._busy):
                family.labels(sid)

        def seconds(name: str, text: str, buckets: tuple[float, ...]) -> Any:
            return Histogram(name, text, s, buckets=buckets, registry=r).labels(sid)

        self._handoff = seconds(
            "sweepd_handoff_seconds",
            "From learning a run must go back (signal, notice, the script's mark, an operator) to it requeued.",
            HANDOFF_BUCKETS,
        )
        self._recovery = seconds(
            "sweepd_recovery_seconds",
            "From a run's interruption (preemption, or its holder's last renewal) to its restart here.",
            RECOVERY_BUCKETS,
        )
        self._redis_errors = Counter("sweepd_redis_errors", "Redis calls that failed.", s, registry=r).labels(sid)
        self._ckpt_bytes = Counter(
            "sweepd_checkpoint_bytes", "Checkpoint bytes to or from an object store.", [*s, "direction"], registry=r
        )
        self._ckpt_seconds = Counter(
            "sweepd_checkpoint_seconds", "Seconds checkpoint transfers took.", [*s, "direction"], registry=r
        )
        self._ckpt_outcomes = Counter(
            "sweepd_checkpoint_snapshots", "Checkpoint snapshots tried, by outcome.", [*s, "outcome"], registry=r
        )
        self._last_beat = time.monotonic()
        lag = Gauge("sweepd_heartbeat_lag_seconds", "Seconds since Redis last took a heartbeat.", s, registry=r)
        lag.labels(sid).set_function(lambda: time.monotonic() - self._last_beat)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` from a daemon thread; return the port (0 picks a free one)."""
        try:
            server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            raise UserError(f"--metrics-port {port}: cannot listen on {addr}:{port}: {exc.strerror}") from None
        return int(server.server_port)

    def for_slot(self, slot: str) -> Metrics:
        """The same registry, as one slot's attempts report to it (their series say ``slot``)."""
        view = copy.copy(self)
        view._slot = slot
        if self.slotted:  # every slot's series shows from the start
            for family in (self._started, self._finished, self._busy):
                view._series(family)
        return view

    def _series(self, family: Any, *values: str) -> Any:
        if self.slotted:
            return family.labels(self.sweep_id, self._slot, *values)
        return family.labels(self.sweep_id, *values)

    # what the agent reports -------------------------------------------------------------------------

    def run_started(self) -> None:
        self._series(self._started).inc()
        self._series(self._busy).set(1)

    def run_exited(self) -> None:
        self._series(self._busy).set(0)

    def run_ended(self, state: str, reason: str) -> None:
        """A run reached a terminal state (``states.TERMINAL``)."""
        if state == "finished":
            self._series(self._finished).inc()
        elif state in ("failed", "crashed"):
            self._series(self._failed, state).inc()
        elif state == "stopped":
            self._series(self._stopped, reason).inc()

    def preempted(self, reason: str) -> None:
        """An attempt ended by a preemption (the agent's, the platform's or the script's own)."""
        self._series(self._preempted, reason).inc()

    def requeued(self, reason: str, handoff_s: float | None) -> None:
        """This agent put a run back on the queue; ``handoff_s``: since it learned it must."""
        self._series(self._requeued, reason).inc()
        if handoff_s is not None:
            self._handoff.observe(handoff_s)

    def recovered(self, seconds: float) -> None:
        self._recovery.observe(seconds)

    def heartbeat(self) -> None:
        self._last_beat = time.monotonic()

    def redis_error(self) -> None:
        self._redis_errors.inc()

    def checkpoint_transfer(self, direction: str, size: int, seconds: float) -> None:
        """A checkpoint upload (a snapshot's new blobs and manifest) or download (a restore)."""
        self._ckpt_bytes.labels(self.sweep_id, direction).inc(size)
        self._ckpt_seconds.labels(self.sweep_id, direction).inc(seconds)

    def checkpoint_outcome(self, outcome: str) -> None:
        self._ckpt_outcomes.labels(self.sweep_id, outcome).inc()
