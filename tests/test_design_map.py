"""docs/design.md's architecture listing and the tree stay in step.

The listing is the first fenced block under ``## Architecture``. Every module under agent/ and
queue/ (``.py`` and ``.lua``; a package's ``__init__.py`` and ``__main__.py`` aside) must be named
there by its file name (``idle.py``, ``claim.lua``), and every ``name.py`` or ``name.lua`` the
listing names must exist under agent/ or queue/. To satisfy it: add a line for a new module to the
listing (under its room: ``agent/daemon/``, ``queue/``, ...) saying in a few words what it is for,
and drop the name of a module you removed or renamed. Names are matched by file name only, so a
name may sit anywhere in its room's lines (several short ones may share a line).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\.(?:py|lua)\b")


def listing() -> str:
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("\n## Architecture\n", 1)[1]
    return section.split("```", 2)[1]


def modules() -> set[str]:
    return {
        path.name
        for room in ("agent", "queue")
        for path in (ROOT / room).rglob("*")
        if path.suffix in {".py", ".lua"} and not path.name.startswith("__")
    }


def test_every_module_is_in_the_design_listing() -> None:
    named = set(NAME.findall(listing()))
    assert sorted(modules() - named) == []


def test_the_design_listing_names_no_module_that_is_gone() -> None:
    named = set(NAME.findall(listing()))
    assert sorted(named - modules()) == []
