"""keys.py's docstring table is the authority on sweepd's keys: it must name every key keys.py can
build, nothing else, and everything docs/design.md's summary names (pure: no Redis)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from sweepd.queue import ids, keys, store
from sweepd.queue.errors import InvalidId

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("STRING", "HASH", "LIST", "SET", "ZSET")
#: The placeholder each key function's parameter stands for in the tables.
PLACEHOLDERS = {"sid": "<sid>", "rid": "<rid>", "aid": "<aid>", "attempt": "<attempt>", "name": "<pool>"}


def table_of_keys_py() -> dict[str, str]:
    """``key -> type`` from keys.py's docstring (its reStructuredText tables)."""
    assert keys.__doc__ is not None
    rows = re.findall(r"^``([^`\s]+)``\s+(\S+)\s", keys.__doc__, re.M)
    assert all(kind in TYPES for _, kind in rows), rows
    return dict(rows)


def table_of_design() -> dict[str, str]:
    """``key -> type`` from the key table of docs/design.md's Keys section."""
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([^`]+)` \| (\w+) \|", section, re.M))


def built_by_keys_py() -> set[str]:
    """Every key keys.py's functions and constants make, its parameters as placeholders."""
    made = {keys.SWEEPS, keys.POOLS, keys.RQ_QUEUES}
    for name, fn in vars(keys).items():
        if inspect.isfunction(fn) and fn.__module__ == keys.__name__ and name != "rq_queue_name":
            made.add(fn(*(PLACEHOLDERS[p] for p in inspect.signature(fn).parameters)))
    return made


def test_every_key_keys_py_builds_is_in_its_table_and_nothing_else() -> None:
    assert built_by_keys_py() == set(table_of_keys_py())


def test_every_prefix_names_keys_of_the_table() -> None:
    table = table_of_keys_py()
    for prefix in (keys.PREFIX, keys.RQ_QUEUE_PREFIX, keys.RQ_JOB_PREFIX):
        assert any(key.startswith(prefix) for key in table), prefix
    assert all(key.startswith((keys.PREFIX, "rq:")) for key in table)


def test_the_table_has_no_unclosed_literal() -> None:
    assert keys.__doc__ is not None
    for line in keys.__doc__.splitlines():
        assert line.count("``") % 2 == 0, line


def test_every_key_of_the_design_summary_is_in_keys_py_with_its_type() -> None:
    design, table = table_of_design(), table_of_keys_py()
    assert any(key.startswith("sweepd:") for key in design)
    assert {key: table.get(key) for key in design} == design


def test_the_id_rules_live_in_ids_and_stay_importable_from_where_they_were() -> None:
    assert keys.ID_RE is ids.ID_RE and keys.check_id is ids.check_id and store.new_id is ids.new_id
    assert ids.ID_RE.match(ids.new_id()) and len(ids.new_id(12)) == 12
    assert ids.check_id("run_1-A") == "run_1-A"
    for bad in ("", "a b", "a:b", "x" * 65):
        with pytest.raises(InvalidId):
            ids.check_id(bad, "run id")
