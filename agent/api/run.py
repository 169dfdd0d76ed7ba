"""The training-script API: ``from sweepd.agent import run`` gives a script its run.

    from sweepd.agent import run

    run.init()                  # optional under an agent; outside one it creates or resumes the run
    lr = run.params["lr"]
    start = load_checkpoint(run.checkpoint_dir)  # the same directory on every attempt
    for epoch in range(start, 100):
        loss = train_one_epoch(lr)
        run.log({"loss": loss})  # after a resume, the steps go on from the run's last one
        if run.preempting:      # preemption is coming
            save_checkpoint(run.checkpoint_dir)
            sys.exit(1)         # non-zero while preempting: the run is requeued

The module's attributes are those of the current run (a ``Run``, script.py): ``params``, ``run_id``,
``sweep_id``, ``attempt``, ``resumed``, ``resumed_from_step``, ``step``, ``checkpoint_dir``,
``preempting``, and ``log``, ``on_preempting``, ``mark_preempting``, ``finish``.

- Under an agent (``SWEEPD_AGENT_SOCKET`` set) the run is the agent's: it comes from the environment
  the agent sets (``SWEEPD_RUN_ID``, ``SWEEPD_ATTEMPT``, ``SWEEPD_RESUME_STEP``, ``SWEEPD_PARAMS_FILE``,
  ``SWEEPD_CHECKPOINT_DIR``), and the script talks to its agent over that socket, never to Redis.
- Without an agent, ``init(id=..., resume=...)`` (or ``SWEEPD_RUN_ID``/``SWEEPD_RESUME``) creates or
  resumes a run in Redis under the resume table (queue/resume.py) and holds it (standalone.py).
- Without either, ``params`` come from ``SWEEPD_PARAMS_FILE`` (else empty) and ``log`` prints the row.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sweepd.queue.errors import UserError
from sweepd.queue.resume import DEFAULT, Mode, decide, parse_mode

from .link import AgentLink
from .script import Run

__all__ = ["Run", "finish", "init", "log", "mark_preempting", "on_preempting"]

_FIELDS = frozenset(
    {
        "params",
        "run_id",
        "sweep_id",
        "attempt",
        "resumed",
        "resumed_from_step",
        "step",
        "checkpoint_dir",
        "preempting",
        "preempt_reason",
        "id",
    }
)
_active: Run | None = None
_lock = threading.RLock()


def _int_env(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


def _from_environment() -> Run:
    """The run the environment describes: the agent's (connected to it), or a printed one."""
    path = os.environ.get("SWEEPD_PARAMS_FILE")
    params: dict[str, Any] = {}
    if path:
        with open(path, encoding="utf-8") as fh:
            params = json.load(fh)
    attempt = _int_env("SWEEPD_ATTEMPT") or 1
    run = Run(
        run_id=os.environ.get("SWEEPD_RUN_ID") or None,
        sweep_id=os.environ.get("SWEEPD_SWEEP_ID") or None,
        params=params,
        attempt=attempt,
        resumed=attempt > 1,
        last_step=_int_env("SWEEPD_RESUME_STEP"),
        checkpoint_dir=os.environ.get("SWEEPD_CHECKPOINT_DIR") or None,
    )
    socket_path = os.environ.get("SWEEPD_AGENT_SOCKET")
    if socket_path:
        link = AgentLink(socket_path, run.notice)
        run.sink = link
        link.connect()  # now, so that the agent's "preempting" reaches a script that never logs
    return run


def _current() -> Run:
    global _active
    with _lock:
        if _active is None:
            _active = _from_environment()
        return _active


def __getattr__(name: str) -> Any:
    if name in _FIELDS:
        return getattr(_current(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _mode(resume: str | None) -> tuple[Mode | None, str]:
    """The mode asked for and how it was spelled (for messages): the argument, else SWEEPD_RESUME."""
    if resume is not None:
        return parse_mode(resume, where="init(resume=...)"), f"resume={resume.strip().lower()!r}"
    text = os.environ.get("SWEEPD_RESUME") or None
    mode = parse_mode(text, where="SWEEPD_RESUME")
    return mode, f"SWEEPD_RESUME={text}"


def init(
    id: str | None = None,
    resume: str | None = None,
    *,
    sweep: str | None = None,
    params: Mapping[str, Any] | None = None,
    checkpoint_root: str | None = None,
) -> Run:
    """Give this script its run, and return it (the module's attributes are then that run's).

    ``id`` (default ``SWEEPD_RUN_ID``; none: a new ID) and ``resume`` (``must``, ``allow``,
    ``never``, ``auto``; default ``SWEEPD_RESUME``, else ``never``) follow the resume table. Under
    an agent, the run is the agent's (``id`` and ``sweep`` must agree with it, and "exists" means
    started before); ``params`` are defaults the run's own params override, as W&B's ``config``.

    Without an agent the run is created or resumed in Redis (``SWEEPD_REDIS_URL``,
    ``SWEEPD_REDIS_URL_FILE``, else the embedded server) in ``sweep`` (default ``SWEEPD_SWEEP_ID``,
    else the run's own sweep, else the ``manual`` sweep), held until the script exits, and released
    through the exit-status table. Its checkpoints go under ``checkpoint_root`` (default
    ``SWEEPD_CHECKPOINT_ROOT``, as the agent's ``--checkpoint-root``)/sweep/run.

    Raises ``RunMissing``/``RunExists`` (the table refuses), ``RunHeld`` (another live process holds
    the run), ``UserError`` for other mistakes: all ``UserError`` with a one-line message.
    """
    global _active
    mode, spelled = _mode(resume)
    run_id = id if id is not None else os.environ.get("SWEEPD_RUN_ID") or None
    with _lock:
        if os.environ.get("SWEEPD_AGENT_SOCKET"):
            return _under_agent(_current(), run_id, mode or "allow", spelled, sweep, params)
        from . import standalone  # Redis and its client only when a script starts its own run

        active = _active
        if active is not None and isinstance(active.sink, standalone.Holder) and not active.finished:
            if run_id in (None, active.run_id):
                return active
            raise UserError(f"run {active.run_id!r} is active in this process: finish() it before starting another")
        if mode is None:
            mode, spelled = DEFAULT, f"resume={DEFAULT!r} (the default)"
        sweep = sweep if sweep is not None else os.environ.get("SWEEPD_SWEEP_ID") or None
        _active = standalone.start(
            run_id=run_id, mode=mode, spelled=spelled, sweep=sweep, params=params, checkpoint_root=checkpoint_root
        )
        return _active


def _under_agent(
    run: Run, run_id: str | None, mode: Mode, spelled: str, sweep: str | None, params: Mapping[str, Any] | None
) -> Run:
    if run_id is not None and run_id != run.run_id:
        raise UserError(
            f"this process runs run {run.run_id!r} for its agent; init(id={run_id!r}) names another "
            "(outside an agent, unset SWEEPD_AGENT_SOCKET)"
        )
    if sweep is not None and sweep != run.sweep_id:
        raise UserError(f"this process runs a run of sweep {run.sweep_id!r} for its agent, not of {sweep!r}")
    decide(mode, run.resumed, run.run_id or "?", spelled=spelled)
    if params:
        merged = {**dict(params), **run.params}
        run.params.clear()
        run.params.update(merged)
    return run


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Record a row of metrics; ``step`` counts on by itself when not given (see ``Run.log``)."""
    _current().log(metrics, step)


def on_preempting(callback: Callable[[], None]) -> None:
    """Call ``callback()`` (on a background thread) when preemption is coming."""
    _current().on_preempting(callback)


def mark_preempting() -> None:
    """Tell sweepd this run is being preempted: a non-zero exit after this requeues it."""
    _current().mark_preempting()


def finish(exit_code: int = 0) -> None:
    """End the current run's attempt with ``exit_code`` (see ``Run.finish``)."""
    _current().finish(exit_code)


# Connect at import under an agent, so the agent's "preempting" reaches a script that never logs.
if os.environ.get("SWEEPD_AGENT_SOCKET"):
    _current()
