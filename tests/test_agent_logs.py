"""The agent's own log lines carry whose they are: sweep_id, agent_id, and the run while held."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from sweepd.agent.daemon import logs
from sweepd.agent.daemon.loop import Agent
from sweepd.agent.daemon.options import Options
from sweepd.queue.config import validate
from sweepd.queue.store import Store


def test_every_line_names_the_sweep_the_agent_and_the_held_run(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("print('hi')\n")
    config = validate(
        {
            "method": "grid",
            "program": str(prog),
            "command": [sys.executable, "${program}", "${args}"],
            "parameters": {"x": {"values": [1, 2]}},
        }
    )
    sid = store.create_sweep(config)
    monkeypatch.setattr(os, "environ", {**os.environ, "PYTHONUNBUFFERED": "1"})
    with capture_logs(processors=[logs.add_process_fields, structlog.contextvars.merge_contextvars]) as lines:
        assert Agent(store, Options(sweep_id=sid), agent_id="agent-1").run() == 0
    assert lines and all(line["sweep_id"] == sid and line["agent_id"] == "agent-1" for line in lines)
    held = [line for line in lines if line["event"] in ("run started", "run ended")]
    assert len(held) == 4
    assert all(line["run_id"] and line["attempt"] == 1 for line in held)
    assert "run_id" not in lines[-1]  # "sweep complete": no run held any more
    assert any(line["event"] == "agent started" for line in lines)
    assert [line["state"] for line in lines if line["event"] == "run ended"] == ["finished", "finished"]
