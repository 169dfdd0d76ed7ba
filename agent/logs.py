"""structlog set-up: JSON lines when stderr is not a terminal, readable console lines when it is.

An agent binds ``sweep_id`` and ``agent_id`` once, and ``run_id`` and ``attempt`` while it holds a
run (``structlog.contextvars``), so every line says whose it is.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure(*, json: bool | None = None, level: int = logging.INFO) -> None:
    """Configure structlog once per process; ``json`` None picks by whether stderr is a terminal."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
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
