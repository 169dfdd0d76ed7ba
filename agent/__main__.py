"""``python -m sweepd.agent``: the same command line as ``sweepd``."""

from .cli import main

main()
