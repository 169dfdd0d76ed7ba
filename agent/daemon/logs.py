"""structlog set-up: JSON lines when stderr is not a terminal, readable console lines when it is.

An agent binds ``sweep_id`` and ``agent_id`` for the whole process (``bind_process``: its watcher
threads' lines carry them too), and ``run_id`` and ``attempt`` while it holds a run
(``structlog.contextvars``), so every line says whose it is.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_PROCESS_FIELDS: dict[str, Any] = {}


def bind_process(**fields: Any) -> None:
    """Fields every line of this process carries, from any thread."""
    _PROCESS_FIELDS.update(fields)


def unbind_process(*names: str) -> None:
    for name in names:
        _PROCESS_FIELDS.pop(name, None)


def add_process_fields(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: add the process-wide fields (a line's own fields win)."""
    for key, value in _PROCESS_FIELDS.items():
        event.setdefault(key, value)
    return event


def configure(*, json: bool | None = None, level: int = logging.INFO) -> None:
    """Configure structlog once per process; ``json`` None picks by whether stderr is a terminal."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            add_process_fields,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str = "sweepd") -> Any:
    return structlog.get_logger(name)
