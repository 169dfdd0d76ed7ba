"""Checkpoints that travel with the run, end to end through ``file://`` (the same protocol as an
object store, without a server): two agents as two machines without shared storage."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from fleet import Fleet, resume_elsewhere
from support import run_sweepd, wait_until


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


def test_each_gpu_slot_syncs_its_own_run(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """An agent holding a run per slot: SIGTERM, and each run's own snapshot is committed."""
    fleet = Fleet(tmp_path, cli_env, (tmp_path / "store").as_uri(), "  i: {values: [1, 2]}\n")
    try:
        agent = fleet.agent(tmp_path / "cache", "--gpus", "0,1", "--checkpoint-sync", "0", "--grace", "20")
        wait_until(lambda: len(list(fleet.out.glob("*.ready"))) == 2, timeout=90)
        rids = sorted(p.stem for p in fleet.out.glob("*.ready"))
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0
        for rid in rids:
            saved = fleet.event(rid, "preempted", 1)
            [latest] = fleet.checkpoints(rid)
            assert latest["attempt"] == 1 and latest["files"] == len(saved["files"]) - 1  # less wandb-config.yaml
    finally:
        fleet.close()
