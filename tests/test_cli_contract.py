"""What every ``sweepd`` command promises: ``--help`` with an example, one clear line for a mistake
(exit 2) and for a Redis that is not there (exit 3, naming the URL tried and how to point elsewhere)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from support import run_sweepd
from sweepd.agent.cli import main


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out: list[tuple[tuple[str, ...], click.Command]] = [(path, group)]
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*path, name))
        else:
            out.append(((*path, name), cmd))
    return out


COMMANDS = _commands(main)
#: Every command that reads or writes Redis, with arguments naming a sweep or run that does not exist.
MISSING = [
    ("status", "nosuch"),
    ("runs", "nosuch"),
    ("checkpoints", "nosuch"),
    ("logs", "nosuch"),
    ("suggest", "nosuch", "--dry-run"),
    ("plot", "nosuch", "-o", "out.png"),
    ("enqueue", "nosuch", "--param", "x=1"),
    ("requeue", "nosuch"),
    ("stop", "nosuch"),
    ("reap", "nosuch"),
    ("check", "nosuch"),
    ("agent", "nosuch"),
    ("sweep", "pause", "nosuch"),
    ("sweep", "resume", "nosuch"),
    ("sweep", "stop", "nosuch"),
    ("sweep", "cancel", "nosuch"),
    ("sweep", "set", "nosuch", "--priority", "1"),
    ("pool", "status", "nosuch"),
]


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) or "sweepd" for p, _ in COMMANDS])
def test_every_command_has_help_with_an_example(path: tuple[str, ...], cmd: click.Command) -> None:
    text = cmd.get_help(click.Context(cmd, info_name=" ".join(("sweepd", *path))))
    assert "Example" in text, f"sweepd {' '.join(path)} --help shows no example"
    example = text.split("Example", 1)[1]
    assert "sweepd" in example  # an example a user can paste


def test_every_redis_command_is_covered_here() -> None:
    leaves = {p for p, c in COMMANDS if not isinstance(c, click.Group)}
    local = {("run",), ("sweep", "create"), ("agents",), ("ui",), ("pool", "list")}  # no id, or validate first
    assert leaves - local == {m[: 2 if m[0] in ("sweep", "pool") else 1] for m in MISSING}


@pytest.mark.parametrize("args", MISSING, ids=[" ".join(m[:2]) for m in MISSING])
def test_a_missing_sweep_or_run_is_one_line_and_exit_2(
    args: tuple[str, ...], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    out = run_sweepd(*args, env=cli_env, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("sweepd: error: ") and "nosuch" in out.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    "args", [*MISSING[:3], ("agents",), ("ui",), ("sweep", "create", "s.yaml")], ids=lambda a: a[0]
)
def test_a_redis_that_is_not_there_names_the_url_and_the_way_out(
    args: tuple[str, ...], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    (tmp_path / "s.yaml").write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1]}\n")
    url = "redis://127.0.0.1:1/0"
    out = run_sweepd(*args, env={**cli_env, "SWEEPD_REDIS_URL": url}, cwd=tmp_path)
    assert out.returncode == 3
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"sweepd: error: cannot reach Redis at {url}")
    assert "--redis-url" in line and "SWEEPD_REDIS_URL" in line
