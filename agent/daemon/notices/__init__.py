"""Cloud preemption notices: one daemon thread per metadata service, each reporting a ``Notice``.

A watcher only records: ``on_notice`` runs in the watcher's thread and must hand the notice over to
the agent's loop, which does the work. Notices are best effort (the lease is the backstop), so a
watcher never raises out of its thread: a failed request is logged once and retried at the next poll.
Requests go through ``http.client`` on a fresh connection each: no proxy (the services are
link-local), no redirects, and a connect timeout apart from the read timeout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Protocol

from sweepd.queue.errors import UserError

from .aws import AwsWatcher
from .azure import AzureWatcher
from .base import BaseWatcher, Detection, Notice
from .gcp import GcpWatcher

__all__ = ["MODES", "Notice", "Watcher", "make_watchers"]

MODES = ("auto", "aws", "gcp", "azure", "none")


class Watcher(Protocol):
    name: str

    def start(self, on_notice: Callable[[Notice], None]) -> None: ...
    def stop(self) -> None: ...
    def acknowledge(self) -> None: ...


def make_watchers(mode: str, interval: float, environ: Mapping[str, str] | None = None) -> list[Watcher]:
    """The watchers ``mode`` asks for. ``auto`` gives all three: each probes its cloud in its own thread
    (the agent's start is not delayed) and ends quietly if the cloud is not there."""
    if mode not in MODES:
        raise UserError(f"notices: unknown mode {mode!r} (one of {', '.join(MODES)})")
    if not interval > 0:
        raise UserError(f"notices: the poll interval must be positive, not {interval}")
    env = os.environ if environ is None else environ
    names = ("aws", "gcp", "azure") if mode == "auto" else () if mode == "none" else (mode,)
    detection = Detection(names) if mode == "auto" else None
    kinds: dict[str, tuple[type[BaseWatcher], str, str]] = {
        "aws": (AwsWatcher, "SWEEPD_AWS_METADATA_URL", "http://169.254.169.254"),
        "gcp": (GcpWatcher, "SWEEPD_GCP_METADATA_URL", "http://metadata.google.internal"),
        "azure": (AzureWatcher, "SWEEPD_AZURE_METADATA_URL", "http://169.254.169.254"),
    }
    watchers: list[Watcher] = []
    for name in names:
        kind, variable, default = kinds[name]
        watchers.append(kind(env.get(variable) or default, interval, detection))
    return watchers
