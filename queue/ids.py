"""The rules for sweep, run and agent IDs, apart from the keys they name.

An ID becomes part of Redis key names, rq job ids and directory names, so it is checked before it
reaches any of them. The rules live here, not in keys.py, so that code outside ``queue/`` (the
agent, the training-script API) can check and make IDs without importing the key layout.
"""

from __future__ import annotations

import re
import secrets
import string

from .errors import InvalidId

#: IDs are what rq accepts for job ids, and short enough for a key and a directory name. The first
#: character is not ``-``: an ID is a command-line argument (``sweepd logs RUN_ID``), and one that
#: starts with ``-`` would be read as an option unless written after ``--``.
ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}\Z")

_ID_ALPHABET = string.ascii_lowercase + string.digits


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid sweep, run or agent ID; else raise ``InvalidId``."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InvalidId(f"{what} {value!r} is not valid: use 1 to 64 of A-Z a-z 0-9 _ -, not starting with -")
    return value


def new_id(length: int = 8) -> str:
    """A random ID like W&B's: short, lowercase, safe in keys, rq job ids and paths."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def host_part(hostname: str) -> str:
    """A hostname as the start of an agent ID (``host-pid-hex``): ASCII letters, digits, ``_`` and
    ``-`` (anything else becomes ``-``), 40 at most, never starting with ``-`` (so the ID is valid
    whatever the machine is called); ``host`` when nothing is left."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in hostname[:40])
    return safe.lstrip("-") or "host"
