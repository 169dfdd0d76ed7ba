"""GPU slots without GPUs: an agent given ``--gpus`` holds a run per slot at once, each process with
its own ``CUDA_VISIBLE_DEVICES``, with real processes, signals and Redis. The stand-in program
records its devices, slot, start and end."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import redis
from rich.console import Console
from test_metrics import scrape

from standins import SMI, stand_in_smi
from support import RedisServer, Sweeps, alive, free_port, run_sweepd, sweepd_cmd, wait_until
from sweepd.agent.cli.parts import watch
from sweepd.queue import keys
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

PROGRAM = """
import json, os, pathlib, sys, time
out = pathlib.Path(os.environ["OUT_DIR"])
rid, attempt = os.environ["SWEEPD_RUN_ID"], int(os.environ["SWEEPD_ATTEMPT"])
with open(os.environ["SWEEPD_PARAMS_FILE"]) as fh:
    params = json.load(fh)
note = {
    "run": rid, "attempt": attempt, "params": params, "pid": os.getpid(), "start": time.time(),
    "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "gpus": os.environ.get("SWEEPD_GPUS"),
    "slot": os.environ.get("SWEEPD_GPU_SLOT"),
}
def put(name, note):  # whole or not at all: the test reads these while runs go on
    (out / (name + ".part")).write_text(json.dumps(note))
    os.replace(out / (name + ".part"), out / name)
put(f"{rid}-{attempt}.start", note)
want, deadline = int(os.environ.get("WANT", "0")), time.time() + 60
while os.path.exists(os.environ.get("HOLD", "/nonexistent")):
    time.sleep(0.02)  # the run is held until the test lets it go (or its agent preempts it)
while len(list(out.glob("*-1.start"))) < want and time.time() < deadline:
    time.sleep(0.02)  # the first runs wait for each other: they overlap, if the agent lets them
note["end"] = time.time()
put(f"{rid}-{attempt}.end", note)
"""

GRID = """
method: grid
parameters:
  a: {values: [1, 2, 3]}
  b: {values: [x, y]}
"""


def setup(tmp_path: Path, cli_env: dict[str, str], **env: str) -> tuple[Sweeps, str, Path]:
    out = tmp_path / "out"
    out.mkdir()
    env = {**cli_env, "OUT_DIR": str(out), "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt"), **env}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    sweeps = Sweeps(tmp_path, env, PROGRAM)
    return sweeps, sweeps.create(GRID), out


def hold(directory: Path) -> Path:
    """A file whose existence holds every run the program starts (the test removes it)."""
    path = directory / "hold"
    path.touch()
    return path


def notes(out: Path, kind: str = "end") -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"*.{kind}"))]


def check_devices(ended: list[dict[str, Any]], slots: list[str]) -> None:
    """Every process had one slot's devices, and no two that overlapped in time shared one."""
    for note in ended:
        assert note["cuda"] in slots and note["gpus"] == note["cuda"]
        assert note["slot"] == str(slots.index(note["cuda"]))
    for x, y in itertools.combinations(ended, 2):
        if x["start"] < y["end"] and y["start"] < x["end"]:
            assert not set(x["cuda"].split(",")) & set(y["cuda"].split(",")), (x, y)


def test_three_slots_run_three_at_once_on_their_own_devices_and_every_point_once(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sweeps, sid, out = setup(tmp_path, cli_env, WANT="3")
    assert sweeps.agents(1, sid, "--notices", "none", "--gpus", "0,1,2", "--heartbeat", "0.5") == [0]
    ended = notes(out)
    assert len(ended) == 6
    check_devices(ended, ["0", "1", "2"])
    first = sorted(ended, key=lambda n: n["start"])[:3]
    assert max(n["start"] for n in first) < min(n["end"] for n in first)  # three at once
    points = sorted((n["params"]["a"], n["params"]["b"]) for n in ended)
    assert points == sorted(itertools.product([1, 2, 3], ["x", "y"]))  # every grid point exactly once
    runs = sweeps.runs(sid)
    assert sorted(r["state"] for r in runs) == ["finished"] * 6 and {r["attempt"] for r in runs} == {1}


def test_slots_of_two_from_the_environment_and_uuids(tmp_path: Path, cli_env: dict[str, str]) -> None:
    devices = "GPU-aa,GPU-bb,GPU-cc,GPU-dd"
    sweeps, sid, out = setup(tmp_path, cli_env, WANT="2", SWEEPD_GPUS=devices, SWEEPD_GPUS_PER_RUN="2")
    assert sweeps.agents(1, sid, "--notices", "none", "--heartbeat", "0.5") == [0]
    ended = notes(out)
    assert len(ended) == 6
    check_devices(ended, ["GPU-aa,GPU-bb", "GPU-cc,GPU-dd"])


def test_all_reads_the_inherited_cuda_visible_devices(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sweeps, sid, out = setup(tmp_path, cli_env, WANT="2")
    sweeps.env["CUDA_VISIBLE_DEVICES"] = "5,3"
    assert sweeps.agents(1, sid, "--notices", "none", "--gpus", "all", "--heartbeat", "0.5") == [0]
    check_devices(notes(out), ["5", "3"])


def test_all_reads_nvidia_smi_when_nothing_is_inherited(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sweeps, sid, out = setup(tmp_path, cli_env, WANT="2")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sweeps.env["PATH"] = f"{stand_in_smi(bin_dir, SMI)}{os.pathsep}{sweeps.env['PATH']}"
    args = ("--notices", "none", "--gpus", "all", "--gpus-per-run", "2", "--heartbeat", "0.5")
    assert sweeps.agents(1, sid, *args) == [0]
    check_devices(notes(out), ["0,1", "2,3"])


def start_agent(sweeps: Sweeps, sid: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        sweepd_cmd("agent", sid, "--notices", "none", *extra),
        env=sweeps.env,
        cwd=sweeps.dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def started(out: Path, n: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(notes(out, "start")) >= n, timeout=60)
    return notes(out, "start")


def test_sigterm_preempts_every_slot_at_once_and_requeues_each_at_the_front(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sweeps, sid, out = setup(tmp_path, cli_env, HOLD=str(hold(tmp_path)))
    agent = start_agent(sweeps, sid, "--gpus", "0,1,2", "--heartbeat", "0.5", "--grace", "30")
    try:
        held = started(out, 3)
        rids = {n["run"] for n in held}
        assert len(rids) == 3
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0  # a clean stop, once every slot's run is requeued
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert {b.decode() for b in r.lrange(keys.rq_queue(sid), 0, 2)} == rids  # all three at the front
    runs = {x["id"]: x for x in sweeps.runs(sid)}
    for rid in rids:
        assert (runs[rid]["state"], runs[rid]["attempt"], runs[rid]["reason"]) == ("queued", 1, "signal")
    assert not any(alive(n["pid"]) for n in held)
    (tmp_path / "hold").unlink()
    assert sweeps.agents(1, sid, "--notices", "none", "--gpus", "0,1,2", "--heartbeat", "0.5") == [0]
    runs = {x["id"]: x for x in sweeps.runs(sid)}
    assert len(runs) == 6 and all(x["state"] == "finished" for x in runs.values())
    assert all(runs[rid]["attempt"] == 2 for rid in rids)
    # the requeued runs came back first, before any new grid point was made: on Redis's clock, each
    # requeued run's second claim before the first new run's creation (the processes' own start
    # times say when each interpreter got going, and a short run can end and free its slot for a new
    # one before a busy machine has started the third)
    second = [n["start"] for n in notes(out, "start") if n["attempt"] == 2]
    claimed = max(runs[rid]["started_at"] for rid in rids)
    created = min(x["created_at"] for x in runs.values() if x["id"] not in rids)
    assert len(second) == 3 and claimed < created, (claimed, created)


def test_a_sigkilled_multi_slot_agent_leaves_no_process_and_its_runs_resume_elsewhere(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sweeps, sid, out = setup(tmp_path, cli_env, HOLD=str(hold(tmp_path)))
    agent = start_agent(sweeps, sid, "--gpus", "0,1,2", "--heartbeat", "0.5")
    held = started(out, 3)
    assert all(alive(n["pid"]) for n in held)
    agent.kill()
    agent.wait()
    wait_until(lambda: not any(alive(n["pid"]) for n in held), timeout=15)  # the watchdog killed them
    (tmp_path / "hold").unlink()
    assert sweeps.agents(1, sid, "--notices", "none", "--gpus", "0,1", "--heartbeat", "0.5") == [0]
    runs = {x["id"]: x for x in sweeps.runs(sid)}
    assert len(runs) == 6 and all(x["state"] == "finished" for x in runs.values())
    assert sorted(x["attempt"] for x in runs.values()) == [1, 1, 1, 2, 2, 2]
    check_devices(notes(out), ["0", "1"])  # the second agent's runs, on its own two slots


def calls(r: redis.Redis) -> int:
    """Commands the server executed so far (INFO, the test's own reading, left out)."""
    return sum(int(v["calls"]) for k, v in r.info("commandstats").items() if k != "cmdstat_info")


def test_a_slotted_agent_with_every_slot_empty_waits_for_a_token_not_polling(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()  # a Redis of its own: its commands are this agent's
    r = redis.Redis.from_url(server.url)
    sweeps, sid, out = setup(tmp_path, {**cli_env, "SWEEPD_REDIS_URL": server.url})
    store = Store(r)
    held = [store.create_next(sid, "holder", lease_s=3600) for _ in range(6)]  # every point: nothing to hand out
    assert all(isinstance(c, Claim) for c in held)
    agent = start_agent(sweeps, sid, "--gpus", "0,1", "--heartbeat", "10")
    try:
        wait_until(lambda: r.zcard(keys.sweep_agents(sid)) == 1, timeout=60)
        wait_until(lambda: int(r.info("commandstats").get("cmdstat_blpop", {}).get("calls", 0)) >= 1, timeout=30)
        before, t0 = calls(r), time.monotonic()
        wait_until(lambda: time.monotonic() - t0 >= 3.0, timeout=10)  # a window of 3 s, well within a heartbeat
        made = calls(r) - before
        assert made <= 4, f"{made} commands in 3 s from an agent whose slots are all empty"  # polling: >= 9
        claim = held[0]
        assert isinstance(claim, Claim)
        assert store.requeue(claim, reason="test")  # a run back at the front: its token wakes the agent
        wait_until(lambda: notes(out, "start"), timeout=5)  # pushed: taken long before the next heartbeat
        assert notes(out, "start")[0]["run"] == claim.run_id
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
        server.stop()


def test_agents_status_watch_and_metrics_show_the_slots_and_their_runs(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sweeps, sid, out = setup(tmp_path, cli_env, HOLD=str(hold(tmp_path)))
    port = free_port()
    args = ("--gpus", "0,1,2,3", "--gpus-per-run", "2", "--heartbeat", "0.5", "--metrics-port", str(port))
    agent = start_agent(sweeps, sid, *args)
    try:
        held = {n["run"] for n in started(out, 2)}

        def listed() -> list[dict[str, Any]]:
            done = run_sweepd("agents", sid, "--json", env=sweeps.env)
            rows = json.loads(done.stdout)
            return rows if rows and {s["run_id"] for s in rows[0].get("slots", [])} == held else []

        rows = wait_until(listed, timeout=20)
        assert isinstance(rows, list)
        slots = rows[0]["slots"]
        assert [(s["slot"], s["gpus"]) for s in slots] == [(0, ["0", "1"]), (1, ["2", "3"])]
        text = run_sweepd("agents", sid, env=sweeps.env).stdout
        assert "slot 0 gpus=0,1 run=" in text and "slot 1 gpus=2,3 run=" in text
        status = json.loads(run_sweepd("status", sid, "--json", env=sweeps.env).stdout)
        assert {s["run_id"] for s in status["agents"][0]["slots"]} == held
        buf = io.StringIO()
        Console(file=buf, width=160, force_terminal=False).print(watch.render(status, int(time.time() * 1000)))
        view = buf.getvalue()
        by_slot = {s["slot"]: s["run_id"] for s in slots}
        for index, gpus in ((0, "0,1"), (1, "2,3")):
            line = next(line for line in view.splitlines() if f"slot {index} [{gpus}]" in line)
            assert by_slot[index] in line and " 1 " in line  # its run, attempt 1
        metrics = scrape(port)
        for index in ("0", "1"):
            assert metrics[("sweepd_agent_busy", (("slot", index),))] == 1
            assert metrics[("sweepd_runs_started_total", (("slot", index),))] == 1
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
    assert not any(psutil.pid_exists(n["pid"]) and alive(n["pid"]) for n in notes(out, "start"))


def test_run_with_gpus_starts_one_agent_holding_a_run_per_slot(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sweeps, _sid, out = setup(tmp_path, cli_env, WANT="3")
    (tmp_path / "run.yaml").write_text(f"program: prog.py\n{GRID}")
    done = run_sweepd("run", "run.yaml", "--gpus", "4,5,6", env=sweeps.env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ended = notes(out)
    assert len(ended) == 6
    check_devices(ended, ["4", "5", "6"])
    first = sorted(ended, key=lambda n: n["start"])[:3]
    assert max(n["start"] for n in first) < min(n["end"] for n in first)  # one agent, three at once
