"""A script's exit status, seen from inside it, for a run started without an agent.

An agent reads its training process's exit status; a script run by hand must find its own, at exit,
to apply the exit-status table. It is seen where Python lets it be seen, as W&B's client sees it:

- ``sys.exit(code)`` (from the main thread) and an uncaught exception (status 1; Ctrl-C: killed by
  SIGINT) are recorded as they happen; otherwise the script ended normally (0);
- the ``with run.init(...) as run:`` block and ``run.finish(code)`` give it exactly, whatever ended
  the block (including ``raise SystemExit(code)``, which is otherwise indistinguishable from a
  normal end);
- ``os._exit()`` and a signal that kills the process run no Python at all: the run keeps its lease
  until it expires, and is then requeued at the front (the table's "no status" row).
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn

from .script import exit_code


class ExitWatch:
    """Records the status as it happens; calls ``on_exit(status)`` at interpreter exit."""

    def __init__(self, on_exit: Callable[[int], None]) -> None:
        self.code: int | None = None
        self._on_exit = on_exit
        self._exit: Callable[..., NoReturn] = sys.exit
        self._hook = sys.excepthook
        self._installed = False

    def install(self) -> None:
        self._exit, self._hook = sys.exit, sys.excepthook
        sys.exit = self._sys_exit
        sys.excepthook = self._excepthook
        atexit.register(self._at_exit)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        self._installed = False
        if sys.exit == self._sys_exit:
            sys.exit = self._exit
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._hook
        atexit.unregister(self._at_exit)

    def _sys_exit(self, code: Any = None) -> NoReturn:
        if threading.current_thread() is threading.main_thread():
            self.code = exit_code(SystemExit(code))
        self._exit(code)

    def _excepthook(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        self.code = exit_code(exc)
        self._hook(kind, exc, tb)

    def _at_exit(self) -> None:
        self._on_exit(self.code if self.code is not None else 0)
