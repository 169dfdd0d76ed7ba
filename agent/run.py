"""The training-script API: ``from sweepd.agent import run`` gives a script its run.

    from sweepd.agent import run

    lr = run.params["lr"]
    for step in range(100):
        loss = train_one_epoch(lr)
        run.log({"loss": loss})
        if run.preempting:      # the agent says the machine is going away
            save_checkpoint()
            raise SystemExit(1)  # non-zero while preempting: the run is requeued

Under an agent, everything comes from the environment the agent sets (``SWEEPD_RUN_ID``,
``SWEEPD_ATTEMPT``, ``SWEEPD_PARAMS_FILE``, ``SWEEPD_AGENT_SOCKET``, ``SWEEPD_CHECKPOINT_DIR``): the
script never talks to Redis. Run by hand, without an agent, ``params`` is empty and ``log`` prints the row.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

sweep_id: str | None = os.environ.get("SWEEPD_SWEEP_ID")
run_id: str | None = os.environ.get("SWEEPD_RUN_ID")
attempt: int = int(os.environ.get("SWEEPD_ATTEMPT", "1"))
#: True when this start continues a run that started before (a later attempt of the same run).
resumed: bool = attempt > 1
#: Set when the agent says preemption is coming: checkpoint, then exit non-zero.
preempting: bool = False
#: A directory for this run's checkpoints: the same on every attempt, on any machine that shares it.
checkpoint_dir: str | None = os.environ.get("SWEEPD_CHECKPOINT_DIR")

_callbacks: list[Callable[[], None]] = []


def _load_params() -> dict[str, Any]:
    path = os.environ.get("SWEEPD_PARAMS_FILE")
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        loaded: dict[str, Any] = json.load(fh)
    return loaded


params: dict[str, Any] = _load_params()

_sock: socket.socket | None = None
_lock = threading.Lock()
_step = 0


def _connect() -> socket.socket | None:
    global _sock
    path = os.environ.get("SWEEPD_AGENT_SOCKET")
    if _sock is None and path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            return None
        _sock = sock
        threading.Thread(target=_listen, args=(sock,), daemon=True).start()
    return _sock


def _listen(sock: socket.socket) -> None:
    """Read what the agent says; today that is only that preemption is coming."""
    global preempting
    with sock.makefile("rb") as lines:
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("op") == "preempting" and not preempting:
                preempting = True
                for callback in list(_callbacks):
                    callback()


def _send(message: dict[str, Any]) -> bool:
    with _lock:
        sock = _connect()
        if sock is None:
            return False
        try:
            sock.sendall((json.dumps(message) + "\n").encode())
        except OSError:
            return False
        return True


def log(metrics: dict[str, Any], step: int | None = None) -> None:
    """Record a row of metrics; ``step`` counts up by itself when not given."""
    global _step
    step = _step if step is None else step
    _step = step + 1
    row = {**metrics, "_step": step}
    if not _send({"op": "log", "row": row}):
        print(json.dumps(row), file=sys.stderr)


def on_preempting(callback: Callable[[], None]) -> None:
    """Call ``callback()`` (on a background thread) when the agent says preemption is coming."""
    _callbacks.append(callback)
    if preempting:
        callback()


def mark_preempting() -> None:
    """Tell the agent this run is being preempted: a non-zero exit after this requeues it."""
    global preempting
    preempting = True
    _send({"op": "preempting"})


# Connect at import, so the agent's "preempting" reaches a script that never logs.
_connect()
