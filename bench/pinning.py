"""Redis and the probe on a core of their own, at real-time priority, with the cores kept awake:
bench/scale.py's isolation from its own load generators (root only; otherwise nothing changes)."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator

REALTIME_PRIORITY = 10


def realtime(pid: int) -> bool:
    """Run ``pid`` under SCHED_FIFO (needs root or CAP_SYS_NICE): nothing else on the machine can
    keep it waiting for a core. False when the system does not allow it."""
    try:  # RESET_ON_FORK: what it starts (the generators) runs at normal priority again
        policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
        os.sched_setscheduler(pid, policy, os.sched_param(REALTIME_PRIORITY))
        return True
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def awake_cpus(wanted: bool) -> Iterator[bool]:
    """Keep the cores out of their idle states while held (Linux PM QoS, /dev/cpu_dma_latency = 0;
    root only): a core that went idle takes milliseconds to wake on a VM, which at low load would
    be all the probe measures. Yields whether it took."""
    fd = None
    if wanted:
        with contextlib.suppress(OSError):
            fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
            os.write(fd, struct.pack("i", 0))
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)  # the request ends with the file


@contextlib.contextmanager
def realtime_probe(wanted: bool) -> Iterator[bool]:
    """This process (the probe) under SCHED_FIFO for the duration, then back."""
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    got = wanted and realtime(0)
    try:
        yield got
    finally:
        if got:
            os.sched_setscheduler(0, before[0], before[1])
