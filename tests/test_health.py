"""``sweepd agents`` and ``sweepd check``: what an operator and a probe see."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from support import run_sweepd, sweepd_cmd, wait_until


def test_agents_lists_live_and_silent_agents(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "p.py").write_text("import time\ntime.sleep(60)\n")
    (tmp_path / "s.yaml").write_text(f"method: grid\nprogram: {tmp_path / 'p.py'}\nparameters:\n  x: {{values: [1]}}\n")
    sid = run_sweepd("sweep", "create", str(tmp_path / "s.yaml"), "--quiet", env=cli_env).stdout.strip()
    agent = subprocess.Popen(
        sweepd_cmd("agent", sid, "--notices", "none", "--heartbeat", "1"),
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listed() -> list[dict[str, object]]:
        rows = json.loads(run_sweepd("agents", sid, "--json", env=cli_env).stdout)
        return [r for r in rows if r.get("run_id")]

    (row,) = wait_until(listed)  # type: ignore[misc]
    assert row["alive"] is True and row["pid"] == str(agent.pid) and row["sweep_id"] == sid
    agent.send_signal(signal.SIGKILL)  # the machine vanished: its record expires with its lease
    agent.wait(10)
    wait_until(lambda: [r["alive"] for r in json.loads(run_sweepd("agents", "--json", env=cli_env).stdout)] == [False])
    assert "silent" in run_sweepd("agents", env=cli_env).stdout


def test_check_is_a_probe(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "s.yaml").write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1]}\n")
    sid = run_sweepd("sweep", "create", str(tmp_path / "s.yaml"), "--quiet", env=cli_env).stdout.strip()
    assert run_sweepd("check", env=cli_env).returncode == 0
    assert run_sweepd("check", sid, env=cli_env).returncode == 0
    missing = run_sweepd("check", "nosuchsweep", env=cli_env)
    assert missing.returncode == 2 and "no sweep 'nosuchsweep'" in missing.stderr
    down = run_sweepd("check", env={**cli_env, "SWEEPD_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 3 and "redis://127.0.0.1:1/0" in down.stderr
