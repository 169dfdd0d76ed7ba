"""Poison runs: nothing a run sends (a row of thousands of metrics, a NaN step, a line without end, a
number past a float, a run that marks itself preempting and dies at once, attempt after attempt)
crashes its agent or grows Redis without bound; the run ends in a state and the agent carries on."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from support import Sweeps, rss_from_run_start, run_sweepd, sweepd_cmd
from sweepd.agent.hold.buffer import Buffer
from sweepd.queue import bounds, keys, rows


def strict(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity, which are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def agent_run(sweeps: Sweeps, sid: str, *extra: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        sweepd_cmd("agent", sid, "--notices", "none", *extra),
        env=sweeps.env,
        cwd=sweeps.dir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def outputs_are_strict(sweeps: Sweeps, sid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``status``, ``status --json`` and ``runs --json`` all answer, with strict JSON."""
    text = run_sweepd("status", sid, env=sweeps.env)
    assert text.returncode == 0 and "Traceback" not in text.stderr, text.stderr
    status = run_sweepd("status", sid, "--json", env=sweeps.env)
    runs = run_sweepd("runs", sid, "--json", env=sweeps.env)
    assert status.returncode == 0 and runs.returncode == 0, status.stderr + runs.stderr
    return strict(status.stdout), strict(runs.stdout)


WIDE = """
from sweepd.agent import run
run.init()
run.log({f"m{i}": 1.0 for i in range(5000)})  # once: "too many results to unpack" in log.lua
run.log({"loss": 0.5, "note": "n" * 20_000_000})  # a 20 MB string value
"""

PRINTED = """
for line in range(12):  # 4,800 metrics in one flush: the summary's fields were unpacked at once
    print(" ".join(f"m{line}_{i}={i}" for i in range(400)), flush=True)
print("_step=-5 bad=1", flush=True)  # steps that are no steps: the row dropped, the series goes on
print("_step=1" + "0" * 30 + " bad=2", flush=True)
print("loss=0.25", flush=True)
"""


def test_a_row_of_5000_metrics_and_a_20_mb_string_are_cut_and_the_runs_finish(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sweeps = Sweeps(tmp_path, cli_env, WIDE)
    sid = sweeps.create("method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1, 2]}\n")
    used = r.info("memory")["used_memory"]
    assert agent_run(sweeps, sid).returncode == 0
    status, runs = outputs_are_strict(sweeps, sid)
    assert [run["state"] for run in runs] == ["finished", "finished"]  # the agent carried on to the next
    for run in runs:
        summary = run["summary"]
        assert len(summary) == bounds.ROW_METRICS + 3  # the first 1,000 metrics, _step, loss and note
        assert summary["loss"] == 0.5 and len(summary["note"]) == bounds.STRING_CHARS
        assert run["cut"] == 5000 - bounds.ROW_METRICS + 1
    assert status["best_run"]["value"] == 0.5
    grown = (r.info("memory")["used_memory"] - used) / 2**20
    print(f"Redis grew by {grown:.2f} MB for two runs of 5,000 metrics and a 20 MB string each")
    assert grown < 8, f"Redis grew by {grown:.1f} MB"


def test_printed_lines_of_400_metrics_each_are_stored_and_the_run_finishes(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sweeps = Sweeps(tmp_path, cli_env, PRINTED)
    sid = sweeps.create("method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {value: 1}\n")
    assert agent_run(sweeps, sid).returncode == 0
    _, (run,) = outputs_are_strict(sweeps, sid)
    assert run["state"] == "finished" and run["summary"]["loss"] == 0.25 and run["summary"]["_step"] == 12
    assert "bad" not in run["summary"] and run["cut"] == 2
    pattern = rows.compile_pattern(rows.DEFAULT_PATTERN)
    lines = [" ".join(f"m{line}_{i}={i}" for i in range(400)) for line in range(12)]
    printed = sum(len(rows.parse_line(pattern, line)) for line in lines)  # each line read to rows.LINE_CAP
    assert printed > 4000 and len(run["summary"]) == printed + 2  # every metric, loss and _step


SOCKET = r"""
import json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["SWEEPD_AGENT_SOCKET"])
send = s.sendall
send(b'{"op": "log", "row": {"_step": NaN, "loss": 9}}\n')            # a step that is no step
send(b'{"op": "log", "row": {"loss": ' + b"[" * 100_000 + b"\n")      # nested past what parses
send(b'{"op": "log", "row": {"big": 1' + b"0" * 400 + b'}}\n')        # a number past a float
send(b'not json\n')
chunk = b"x" * (1 << 20)
for _ in range(int(os.environ.get("FLOOD_MB", "0"))):                  # a line without end
    send(chunk)
send(b"\n")
send(b'{"op": "log", "row": {"_step": 0, "loss": 0.5}}\n')            # then a good row: still read
s.close()
"""


def test_what_no_row_can_be_is_dropped_and_counted_and_the_agent_stays_small(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sweeps = Sweeps(tmp_path, {**cli_env, "FLOOD_MB": "400"}, SOCKET)
    sid = sweeps.create("method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1, 2]}\n")
    agent = subprocess.Popen(
        sweepd_cmd("agent", sid, "--notices", "none"),
        env=sweeps.env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base, peak = rss_from_run_start(agent)
        _, err = agent.communicate(timeout=180)
    finally:
        agent.kill()
        agent.wait(10)
    assert agent.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]  # the nested line once printed a thread's traceback
    grown = (peak - base) / 2**20
    print(f"agent RSS {base / 2**20:.1f} MB at the run's start, peak {peak / 2**20:.1f} MB")
    assert grown < 64, f"the agent grew by {grown:.0f} MB for a line of 400 MiB"
    _, runs = outputs_are_strict(sweeps, sid)
    for run in runs:
        assert run["state"] == "finished"
        assert run["summary"]["loss"] == 0.5 and run["summary"]["big"] == "Infinity"
        assert run["summary"]["_step"] == 0
        assert run["cut"] == 4  # the NaN step's row, the nested line, not JSON, the line without end


HUGE = """
import math, sys
x = int(next(a for a in sys.argv if a.startswith("--x=")).split("=")[1])
if x == 1:
    print("loss=1" + "0" * 400, flush=True)  # printed: a number past a float
else:
    from sweepd.agent import run  # once imported, printed lines are no longer read for metrics
    run.init()
    run.log({"loss": {2: float("nan"), 3: -math.inf, 4: 10**400, 5: 0.75}[x]})
"""


def test_non_finite_and_huge_numbers_are_never_the_best_and_every_reader_answers(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sweeps = Sweeps(tmp_path, cli_env, HUGE)
    body = "metric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1, 2, 3, 4, 5]}\n"
    sid = sweeps.create("method: grid\n" + body)
    assert agent_run(sweeps, sid).returncode == 0
    status, runs = outputs_are_strict(sweeps, sid)
    assert [run["summary"].get("loss") for run in runs] == ["Infinity", "NaN", "-Infinity", "Infinity", 0.75]
    assert status["best_run"]["value"] == 0.75 and [b["value"] for b in status["best_runs"]] == [0.75]
    # a bayes sweep of the same runs: its agents start, and `suggest` answers
    bayes = sweeps.create("method: bayes\nrun_cap: 6\n" + body)
    assert agent_run(sweeps, bayes).returncode == 0
    done = run_sweepd("suggest", bayes, "--dry-run", "--json", env=sweeps.env)
    assert done.returncode == 0, done.stderr
    strict(done.stdout)
    outputs_are_strict(sweeps, bayes)


LOOP = """
import sys
from sweepd.agent import run
run.init()
sys.stdout.write(("o" * 1000 + "\\n") * 3000)  # 3 MB of output each attempt
sys.stdout.flush()
run.mark_preempting()
sys.exit(1)
"""


def test_a_run_that_marks_itself_preempting_and_dies_at_once_fails_and_its_output_stays_bounded(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sweeps = Sweeps(tmp_path, cli_env, LOOP)
    sid = sweeps.create("method: grid\nparameters:\n  x: {values: [1, 2]}\n")
    assert agent_run(sweeps, sid).returncode == 0
    _, runs = outputs_are_strict(sweeps, sid)
    for run in runs:
        assert run["state"] == "failed" and run["reason"] == "preempt-loop"
        assert run["attempt"] == bounds.QUICK_MARKS
        kept = r.keys(keys.run_log(run["id"], 0)[:-1] + "*")
        assert len(kept) == bounds.KEPT_ATTEMPTS  # the older attempts' output is gone
    logs = run_sweepd("logs", runs[0]["id"], env=sweeps.env)
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 3000 * bounds.KEPT_ATTEMPTS


def test_a_parameter_value_past_its_bound_is_refused_at_create_and_enqueue(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    big = "v" * (bounds.PARAM_BYTES + 1)
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"method": "grid", "program": "t.py", "parameters": {"x": {"values": [1, big]}}}))
    before = {k: r.dump(k) for k in r.keys("*")}
    done = run_sweepd("sweep", "create", str(path), env=cli_env)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr == (
        f"sweepd: error: {path}: parameters.x.values[1]: a value of {len(big) + 2} bytes as JSON, larger than a "
        f"parameter may be ({bounds.PARAM_BYTES} bytes)\n"
    )
    assert {k: r.dump(k) for k in r.keys("*")} == before
    path.write_text(json.dumps({"method": "grid", "program": "t.py", "parameters": {"x": {"values": [1, "v"]}}}))
    sid = run_sweepd("sweep", "create", str(path), "--quiet", env=cli_env).stdout.strip()
    before = {k: r.dump(k) for k in r.keys("*")}
    done = run_sweepd("enqueue", sid, "--param", f"x={big}", env=cli_env)
    assert (
        done.returncode == 2
        and done.stdout == ""
        and done.stderr
        == (
            f"sweepd: error: --param x: a value of {len(big)} bytes, larger than a parameter may be "
            f"({bounds.PARAM_BYTES} bytes)\n"
        )
    )
    assert {k: r.dump(k) for k in r.keys("*")} == before


STUCK = """
import sys, time
from sweepd.agent import run
run.init()
run.log({"loss": 1.0})
if "--x=2" in sys.argv:
    time.sleep(120)  # until the agent stops it
"""


def test_a_run_whose_rows_redis_refuses_fails_naming_why_and_the_agent_goes_on(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sweeps = Sweeps(tmp_path, cli_env, STUCK)
    sid = sweeps.create("method: grid\nparameters:\n  x: {values: [1]}\n")
    assert run_sweepd("enqueue", sid, "--id", "poison", "--param", "x=2", env=cli_env).returncode == 0
    r.set(keys.run_history("poison"), "not a list")  # a key of the wrong type: every log.lua fails
    started = time.monotonic()
    assert agent_run(sweeps, sid, "--grace", "5").returncode == 0
    assert time.monotonic() - started < 100  # stopped, not left to sleep
    _, runs = outputs_are_strict(sweeps, sid)
    by_id = {run["id"]: run for run in runs}
    poison = by_id.pop("poison")
    assert poison["state"] == "failed" and poison["reason"].startswith("refused: WRONGTYPE"), poison
    (other,) = by_id.values()
    assert other["state"] == "finished" and other["summary"]["loss"] == 1.0  # the agent went on


def test_rows_waiting_in_the_agent_are_bounded_in_bytes_too_the_oldest_dropped() -> None:
    buffer = Buffer(cap=100, max_bytes=10, size=len)
    buffer.add(["aaaa", "bbbb"])
    buffer.add(["cccc"])  # 12 bytes: the oldest goes
    assert (len(buffer), buffer.dropped) == (2, 1)
    buffer.put_back(["zzzzzzzzzz"])  # what could not be written goes back in front, and out first
    assert buffer.take() == ["bbbb", "cccc"] and buffer.dropped == 2
    buffer.add(["x" * 50])  # one item larger than the bound is not kept either
    assert buffer.take() == [] and buffer.dropped == 3
