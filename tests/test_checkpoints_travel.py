"""Checkpoints that travel with the run, end to end through ``file://`` (the same protocol as an
object store, without a server): two agents as two machines without shared storage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fleet import Fleet, resume_elsewhere
from support import run_sweepd


@pytest.fixture
def fleet(tmp_path: Path, cli_env: dict[str, str]):  # type: ignore[no-untyped-def]
    made = Fleet(tmp_path, cli_env, (tmp_path / "store").as_uri())
    yield made
    made.close()


def test_a_run_resumes_on_another_machine_from_the_step_saved_at_the_signal(fleet: Fleet, tmp_path: Path) -> None:
    resume_elsewhere(fleet, tmp_path)


def test_a_bad_root_is_one_line_at_agent_start_and_nothing_is_claimed(tmp_path: Path, cli_env: dict[str, str]) -> None:
    fleet = Fleet(tmp_path, cli_env, "nosuchscheme://bucket/prefix")
    done = run_sweepd("agent", fleet.id, "--notices", "none", env=fleet.env)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "nosuchscheme://" in done.stderr
    assert json.loads(fleet.sweepd("runs", fleet.id, "--json")) == []
    os.chmod(tmp_path, 0o755)
