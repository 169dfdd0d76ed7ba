"""sweepd.agent: the daemon that claims runs and supervises training processes (``daemon``), the
command line (``cli``), and the training-script API (``api``).

``from sweepd.agent import run`` gives a training script its run (``api/run.py``). It is imported
only when asked for: under an agent, importing it connects to the agent.

Nothing here imports rq: the queue's internals stay behind ``sweepd.queue``.
"""

from __future__ import annotations

from types import ModuleType


def __getattr__(name: str) -> ModuleType:
    if name == "run":
        from .api import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
