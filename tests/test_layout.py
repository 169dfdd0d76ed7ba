"""The card's layout: top-level agent/ and queue/ without shadowing the standard library's queue."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_repository_root_still_imports_the_standard_library_queue() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import queue, concurrent.futures, redis, rq; print(queue.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out) == Path(sysconfig.get_path("stdlib")) / "queue.py"


def test_standard_queue_works_from_the_root_and_sweepd_queue_is_ours() -> None:
    code = (
        "import queue, sweepd.queue.keys as k; q = queue.Queue(); q.put(1); "
        "print(q.get(), queue.Empty.__module__, k.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "_queue", "sweepd.queue.keys"]  # Empty comes from C


def test_nothing_in_agent_imports_rq() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "agent").rglob("*.py")
        if re.search(r"^\s*(import rq\b|from rq\b)", path.read_text(), re.M)
    ]
    assert offenders == []


def test_only_the_store_imports_rq() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "queue").rglob("*.py")
        if re.search(r"^\s*(import rq\b|from rq\b)", path.read_text(), re.M)
    )
    assert importers == ["queue/store.py"]


# The import graph ---------------------------------------------------------------------------------

#: bench/'s scripts import each other by their bare names (their directory is on their path): no prefix.
PACKAGES = {"sweepd.agent": ROOT / "agent", "sweepd.queue": ROOT / "queue", "": ROOT / "bench"}


def _modules() -> dict[str, Path]:
    """Every sweepd module by its dotted name (a package by its ``__init__``), and every bench script."""
    found: dict[str, Path] = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts]).lstrip(".")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The sweepd modules ``name`` imports anywhere in its text (type-checking imports included:
    a cycle there is still a cycle for the reader)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else base if node.level else node.module
            assert target is not None
            for alias in node.names:  # a submodule by that name, else a name from the module itself
                out.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
    # A package's own submodules may name it (``from . import x``): Python has made it by then.
    return {m for m in out if m in modules and m != name and not name.startswith(m + ".")}


def test_no_import_cycles_anywhere() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
    assert "common" in graph["dispatch"]  # bench/ is walked too
    assert "sweepd.agent.hold.hold" in graph["sweepd.agent.api.standalone"]  # one holder rule, used by both
    assert "sweepd.agent.hold.hold" in graph["sweepd.agent.daemon.attempt"]


def test_the_rooms_every_holder_uses_import_nothing_of_the_daemon() -> None:
    """A script holding its own run (api/) takes its hold, its checkpoints and their defaults from
    the rooms an agent's attempt uses too (hold/, checkpoints/), never from the daemon."""
    modules = _modules()
    rooms = ("sweepd.agent.api", "sweepd.agent.hold", "sweepd.agent.checkpoints")
    reaching = {
        name: sorted(dep for dep in _imports(name, path, modules) if dep.startswith("sweepd.agent.daemon"))
        for name, path in modules.items()
        if name.startswith(rooms)
    }
    assert {name: deps for name, deps in reaching.items() if deps} == {}
    assert "sweepd.agent.hold.tick" in _imports(
        "sweepd.agent.api.standalone", modules["sweepd.agent.api.standalone"], modules
    )


def test_agent_reads_redis_only_through_sweepd_queue() -> None:
    """No ``store.r`` (the raw client) and no key names outside queue/: every read the command
    line and the daemon make is a method of ``sweepd.queue``."""
    offenders = []
    for path in (ROOT / "agent").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            raw_client = isinstance(node, ast.Attribute) and node.attr == "r"
            keys_import = (isinstance(node, ast.ImportFrom) and node.module == "sweepd.queue.keys") or (
                isinstance(node, ast.ImportFrom)
                and node.module == "sweepd.queue"
                and any(alias.name == "keys" for alias in node.names)
            )
            if raw_client or keys_import:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_agent_is_three_rooms() -> None:
    rooms = sorted(p.name for p in (ROOT / "agent").iterdir() if p.is_dir() and p.name != "__pycache__")
    assert rooms == ["api", "checkpoints", "cli", "daemon", "hold", "ui"]
    loose = sorted(p.name for p in (ROOT / "agent").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]


def test_every_command_lives_in_the_module_named_after_it() -> None:
    import importlib

    from sweepd.agent.cli import main

    for name, command in main.commands.items():
        module = importlib.import_module(f"sweepd.agent.cli.{name}")
        assert command in (getattr(module, "command", None), getattr(module, "group", None)), name


def test_agent_cli_is_the_commands_alone() -> None:
    """agent/cli/*.py are the commands (and main.py, kit.py); what a command is made of that is not a
    command lives in agent/cli/parts/."""
    from sweepd.agent.cli import main

    loose = {p.stem for p in (ROOT / "agent" / "cli").glob("*.py")} - {"__init__", "main", "kit"}
    assert loose == set(main.commands)
