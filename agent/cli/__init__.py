"""The ``sweepd`` command line: one module per command or command group, named after it."""

from .main import main

__all__ = ["main"]
