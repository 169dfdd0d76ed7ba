"""``sweepd status --watch``: the pure renderer and progress helpers, status_json on a real Redis, and
the command as a real process, plain on a pipe and live under a pseudo-terminal."""

from __future__ import annotations

import codecs
import io
import json
import os
import pty
import select
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from support import run_record, run_sweepd, sweepd_cmd, wait_until
from sweepd.agent.cli import status as status_command
from sweepd.agent.cli.parts import watch
from sweepd.queue import keys, summary
from sweepd.queue.config import validate
from sweepd.queue.records import Claim, RunRecord
from sweepd.queue.store import Store
from sweepd.queue.views import status_json

NOW = 1_700_000_100_000  # ms
GRID = {
    "method": "grid",
    "program": "p.py",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {"a": {"values": [1, 2, 3, 4]}, "b": {"values": [10, 20, 30]}, "c": {"values": [100, 200]}},
}


def text_of(status: dict[str, Any], now_ms: int = NOW, note: str | None = None) -> str:
    buf = io.StringIO()
    Console(file=buf, width=100, force_terminal=False).print(watch.render(status, now_ms, note))
    return buf.getvalue()


def record(rid: str, state: str, *, started: int | None = None, ended: int | None = None, **summary: Any) -> RunRecord:
    return run_record(rid, state, {"x": rid}, summary, created_at=started, started_at=started, ended_at=ended)


def status_dict(**over: Any) -> dict[str, Any]:
    """A status as status_json shapes it: 24-point grid, 9 done, a preemption and its recovery."""
    counts = dict.fromkeys(("queued", "running", "preempting", "finished", "failed", "crashed", "stopped"), 0)
    counts.update(queued=3, running=2, finished=8, failed=1)
    base: dict[str, Any] = {
        "id": "abc123de",
        "name": "example-grid",
        "method": "grid",
        "state": "running",
        "complete": False,
        "runs": 14,
        "run_cap": None,
        "counts": counts,
        "queue_depth": 3,
        "queue_head": "headrun1",
        "agents_alive": 2,
        "agents": [
            {
                "id": "agent-a",
                "host": "gpu-node-7",
                "pid": "4242",
                "run_id": "runalpha",
                "heartbeat_at": str(NOW - 1500),
            },
            {"id": "agent-b", "host": "spot-vm-3", "pid": "77", "run_id": "", "heartbeat_at": str(NOW - 300)},
        ],
        "metric": {"name": "loss", "goal": "minimize"},
        "best_run": {"id": "best0001", "metric": "loss", "value": 0.12, "params": {"lr": 0.01}},
        "best_runs": [
            {"id": "best0001", "metric": "loss", "value": 0.12, "params": {"lr": 0.01}},
            {"id": "second02", "metric": "loss", "value": 0.5, "params": {"lr": 0.1}},
            {"id": "third003", "metric": "loss", "value": 0.93, "params": {"lr": 0.001}},
        ],
        "recent_events": [
            {"at": NOW - 4000, "event": "resumed", "run_id": "headrun0", "attempt": 2, "after_ms": 6000},
            {
                "at": NOW - 10_000,
                "event": "requeued",
                "run_id": "headrun0",
                "attempt": 1,
                "reason": "preempted:SIGTERM",
            },
            {"at": NOW - 20_000, "event": "requeued", "run_id": "lostrun9", "attempt": 1, "reason": "lease-expired"},
        ],
        "created_at": "2023-11-14T22:13:20.000+00:00",
        "progress": {"done": 9, "total": 24, "fraction": 9 / 24, "eta_seconds": 80.0},
        "queue_next": [{"id": "headrun1", "attempt": 1, "requeues": 1, "reason": "lease-expired"}],
        "held_runs": [
            {"id": "runalpha", "agent_id": "agent-a", "state": "running", "attempt": 2},
            {"id": "orphan01", "agent_id": "agent-z", "state": "running", "attempt": 1},
        ],
        "observed_at": "2023-11-14T22:15:00.000+00:00",
    }
    return {**base, **over}


def test_render_shows_every_part_of_the_view() -> None:
    out = text_of(status_dict())
    assert "\x1b" not in out
    assert "sweep abc123de (example-grid): grid, running, 14 runs, metric loss (minimize)" in out
    assert "9/24 runs done (38%)" in out and "ETA 1m 20s" in out and "█" in out and "░" in out
    assert "queued 3  running 2  finished 8  failed 1" in out and "crashed" not in out
    assert "queue: 3, head: headrun1 (back after attempt 1: lease-expired)" in out
    agents = out[out.index("Agents (2 alive)") :]
    alpha = next(line for line in agents.splitlines() if "agent-a" in line).split()
    assert alpha == ["agent-a", "gpu-node-7", "4242", "runalpha", "2", "1.5s", "ago"]
    assert "spot-vm-3" in agents and "idle" in agents
    orphan = next(line for line in agents.splitlines() if "agent-z" in line).split()  # its hash expired
    assert orphan == ["agent-z", "-", "-", "orphan01", "1", "none", "recent"]
    events = out[out.index("Preemptions and recoveries") :].splitlines()
    resumed = next(i for i, line in enumerate(events) if "resumed" in line)
    preempted = next(i for i, line in enumerate(events) if "preempted:SIGTERM" in line)
    lost = next(i for i, line in enumerate(events) if "lease-expired" in line)
    assert resumed < preempted < lost  # newest first
    assert "after 6.0s" in events[resumed] and "headrun0" in events[resumed]
    best = out[out.index("Best runs by loss (minimize)") :]
    assert best.index("best0001") < best.index("second02") < best.index("third003")
    assert '{"lr":0.01}' in best


def test_render_without_a_total_completion_or_anything_yet() -> None:
    unbounded = {"done": 5, "total": None, "fraction": None, "eta_seconds": None}
    out = text_of(status_dict(method="random", progress=unbounded))
    assert "5 runs done (no run_cap" in out and "ETA" not in out
    done = {"done": 24, "total": 24, "fraction": 1.0, "eta_seconds": 0.0}
    out = text_of(status_dict(complete=True, state="finished", progress=done))
    assert "24/24 runs done (100%)  complete" in out and "░" not in out
    empty = status_dict(
        counts=dict.fromkeys(status_dict()["counts"], 0),
        queue_depth=0,
        queue_head=None,
        queue_next=[],
        agents=[],
        held_runs=[],
        recent_events=[],
        best_runs=[],
        progress={"done": 0, "total": 24, "fraction": 0.0, "eta_seconds": None},
    )
    out = text_of(empty, note="Redis unreachable, retrying: gone")
    assert out.startswith("Redis unreachable, retrying: gone")
    assert "no runs yet" in out and "queue: 0, empty" in out and "Agents: none alive" in out
    assert "ETA unknown until a run ends" in out and "no run has reported loss yet" in out


def test_event_detail_is_generic() -> None:
    assert watch.event_detail({"event": "requeued", "reason": "aws-notice"}) == "aws-notice"
    assert watch.event_detail({"event": "resumed", "after_ms": 12345}) == "after 12.3s"
    assert watch.event_detail({"at": 1, "event": "other", "run_id": "r", "why": "x"}) == "why=x"
    assert [watch.duration(s) for s in (0.4, 59, 61, 3725)] == ["0s", "59s", "1m 01s", "1h 02m"]


def test_progress_and_eta_from_terminal_runs() -> None:
    grid = validate(GRID)
    assert summary.total_runs(grid) == 24
    assert summary.total_runs(validate({**GRID, "run_cap": 10})) == 10
    assert summary.total_runs(validate({**GRID, "run_cap": 100})) == 24
    randomly = validate({**GRID, "method": "random"})
    assert summary.total_runs(randomly) is None
    t0 = NOW - 30_000
    runs = [
        record("a", "finished", started=t0, ended=t0 + 10_000),
        record("b", "failed", started=t0 + 1000, ended=t0 + 20_000),
        record("c", "crashed", started=t0 + 2000, ended=t0 + 25_000),
        record("d", "running", started=t0 + 3000),
        record("e", "queued"),
    ]
    # 3 of 24 ended in the 30 s since work began: 21 more take 210 s at that rate
    assert summary.progress(grid, runs, NOW) == {"done": 3, "total": 24, "fraction": 0.125, "eta_seconds": 210.0}
    assert summary.progress(randomly, runs, NOW) == {"done": 3, "total": None, "fraction": None, "eta_seconds": None}
    started = summary.progress(grid, runs[3:], NOW)
    assert started["done"] == 0 and started["eta_seconds"] is None
    capped = summary.progress(validate({**GRID, "run_cap": 3}), runs, NOW)
    assert capped["fraction"] == 1.0 and capped["eta_seconds"] == 0.0


def test_best_runs_in_order_of_the_goal() -> None:
    runs = [
        record("a", "finished", loss=0.5),
        record("b", "running", loss=0.1),
        record("c", "finished", loss=0.9),
        record("d", "finished"),
        record("e", "failed", loss=0.1),
        record("f", "finished", loss=True),
    ]
    low = summary.best_runs(validate(GRID), runs, 3)
    assert [(b["id"], b["value"]) for b in low] == [("b", 0.1), ("e", 0.1), ("a", 0.5)]
    assert low[0] == summary.best_json(validate(GRID), runs)
    high = validate({**GRID, "metric": {"name": "loss", "goal": "maximize"}})
    assert [b["id"] for b in summary.best_runs(high, runs)] == ["c", "a", "b", "e"]
    assert summary.best_runs(validate({k: v for k, v in GRID.items() if k != "metric"}), runs) == []


def _claim(store: Store, sid: str) -> Claim:
    claim = store.create_next(sid, "agent-t", 30)
    assert isinstance(claim, Claim)
    return claim


def _note(store: Store, sid: str, event: dict[str, Any]) -> None:
    """An event as the scripts write it (prelude.lua's ``add_event``), with figures the test can name."""
    store.r.lpush(keys.sweep_events(sid), json.dumps({"at": store.now_ms(), **event}))


def test_status_json_adds_to_its_fields_on_a_real_redis(store: Store, redis_url: str) -> None:
    sid = store.create_sweep(validate({**GRID, "run_cap": 4}), name="t")
    done, preempted, running = _claim(store, sid), _claim(store, sid), _claim(store, sid)
    assert store.log_metrics(done, [{"loss": 0.7}]) and store.log_metrics(running, [{"loss": 0.2}])
    assert store.complete(done, "finished", 0, "exit-0")
    assert store.requeue(preempted, reason="preempted")
    _note(store, sid, {"event": "requeued", "run_id": preempted.run_id, "attempt": 1, "reason": "preempted"})
    _note(store, sid, {"event": "resumed", "run_id": preempted.run_id, "attempt": 2, "after_ms": 1500})
    s = status_json(store, sid)
    old = {"id", "name", "method", "state", "complete", "runs", "run_cap", "counts", "queue_depth", "queue_head"}
    old |= {"agents_alive", "agents", "metric", "best_run", "recent_events", "created_at"}
    assert old <= set(s) and s["best_run"]["id"] == running.run_id and s["queue_head"] == preempted.run_id
    assert s["progress"]["done"] == 1 and s["progress"]["total"] == 4 and s["progress"]["eta_seconds"] is not None
    assert [b["id"] for b in s["best_runs"]] == [running.run_id, done.run_id]
    assert s["queue_next"] == [{"id": preempted.run_id, "attempt": 1, "requeues": 1, "reason": "preempted"}]
    assert s["held_runs"] == [{"id": running.run_id, "agent_id": "agent-t", "state": "running", "attempt": 1}]
    out = text_of(s, store.now_ms())
    assert f"head: {preempted.run_id} (back after attempt 1: preempted)" in out and "after 1.5s" in out
    printed = CliRunner().invoke(status_command.command, [sid, "--redis-url", redis_url])  # every kind of event
    assert printed.exit_code == 0 and "resumed (after 1.5s)" in printed.output and "(preempted)" in printed.output


PROGRAM = "import sys, time\ntime.sleep(0.3)\nprint('loss=' + sys.argv[1].split('=')[1], flush=True)\n"


def make_sweep(tmp_path: Path, env: dict[str, str], values: str) -> str:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "s.yaml").write_text(
        f"method: grid\nprogram: {tmp_path / 'prog.py'}\nmetric: {{name: loss, goal: minimize}}\n"
        f"parameters:\n  x: {{values: {values}}}\n"
    )
    done = run_sweepd("sweep", "create", str(tmp_path / "s.yaml"), "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Reader:
    """Collects a stream on a thread, so the test can wait on its content with a deadline.
    ``read`` returns the next text (maybe empty), or None at the end of the stream."""

    def __init__(self, read: Callable[[], str | None]) -> None:
        self.chunks: list[str] = []
        self.thread = threading.Thread(target=self._pump, args=(read,), daemon=True)
        self.thread.start()

    def _pump(self, read: Callable[[], str | None]) -> None:
        while (chunk := read()) is not None:
            self.chunks.append(chunk)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def test_watch_prints_plain_snapshots_and_exits_when_the_sweep_completes(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sid = make_sweep(tmp_path, cli_env, "[0.4, 0.2, 0.3]")
    watcher = subprocess.Popen(
        sweepd_cmd("status", sid, "--watch", "--interval", "0.2"),
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout = watcher.stdout
    assert stdout is not None
    out = Reader(lambda: stdout.readline() or None)
    wait_until(lambda: out.text.count(f"sweep {sid}") >= 2, timeout=30)  # refreshing before any agent
    assert "0/3 runs done (0%)" in out.text and "Agents: none alive" in out.text
    agent = subprocess.Popen(
        sweepd_cmd("agent", sid, "--notices", "none", "--heartbeat", "1"),
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert watcher.wait(timeout=90) == 0, watcher.stderr.read()  # type: ignore[union-attr]
        assert agent.wait(timeout=60) == 0
    finally:
        for proc in (watcher, agent):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    out.thread.join(10)
    text = out.text
    assert "\x1b" not in text and "Traceback" not in text
    blocks = text.split(f"sweep {sid} (")
    assert len(blocks) >= 4  # one block per refresh, the last when the sweep completed
    assert any("Agents (1 alive)" in b and socket.gethostname() in b for b in blocks)  # the agent, live
    final = blocks[-1]
    assert "finished, 3 runs" in final and "3/3 runs done (100%)  complete" in final
    best = final[final.index("Best runs by loss (minimize)") :]
    assert best.index("0.2") < best.index("0.3") < best.index("0.4")


def test_watch_is_live_on_a_terminal_and_ctrl_c_ends_it_cleanly(tmp_path: Path, cli_env: dict[str, str]) -> None:
    sid = make_sweep(tmp_path, cli_env, "[1, 2]")  # no agent: the sweep never completes by itself
    master, slave = pty.openpty()
    env = {**cli_env, "TERM": "xterm-256color", "COLUMNS": "110", "LINES": "40"}
    proc = subprocess.Popen(
        sweepd_cmd("status", sid, "--watch", "--interval", "0.2"),
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a glyph may span two reads

    def read() -> str | None:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            return None if proc.poll() is not None else ""
        try:
            return decoder.decode(os.read(master, 65536)) or None
        except OSError:  # EIO: every holder of the terminal's other side has closed it
            return None

    out = Reader(read)
    try:
        wait_until(lambda: "0/2 runs done" in out.text and "░" in out.text, timeout=30)
        frames = out.text.count("runs done")
        wait_until(lambda: out.text.count("runs done") > frames, timeout=30)
        assert "\x1b[1A" in out.text and "\x1b[2K" in out.text  # redrawn in place: cursor up, erase line
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out.thread.join(10)
    os.close(master)
    assert "Traceback" not in out.text and "Aborted" not in out.text and "KeyboardInterrupt" not in out.text


# names from users reach no terminal raw --------------------------------------------------------------

HOSTILE = "x\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eevil\u2066[bold]y[/bold]"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066")


def test_the_view_escapes_control_and_bidi_characters_and_reads_no_markup() -> None:
    status = status_dict(
        name=HOSTILE,
        metric={"name": HOSTILE, "goal": "minimize"},
        best_runs=[{"id": "best0001", "metric": HOSTILE, "value": 0.1, "params": {HOSTILE: HOSTILE}}],
        agents=[{"id": "agent-a", "host": HOSTILE, "pid": "1", "run_id": "runalpha", "heartbeat_at": str(NOW)}],
        recent_events=[{"at": NOW, "event": "requeued", "run_id": "r1", "attempt": 1, "reason": HOSTILE}],
    )
    text = text_of(status)
    assert not any(c in text for c in RAW), repr(text)
    assert "x\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202eevil\\u2066[bold]y[/bold]" in text  # shown, markup too


def test_status_and_watch_print_a_hostile_sweep_name_and_metric_escaped(
    tmp_path: Path, cli_env: dict[str, str], store: Store
) -> None:
    config = {**GRID, "metric": {"name": HOSTILE, "goal": "minimize"}}
    sid = store.create_sweep(validate(config), name=HOSTILE)
    claim = store.create_next(sid, "agent-1", 60)
    assert isinstance(claim, Claim)
    store.requeue(claim, reason=HOSTILE, event=True)
    plain = run_sweepd("status", sid, env=cli_env)
    assert plain.returncode == 0, plain.stderr
    assert "\\x1b]0;pwned\\x07" in plain.stdout and not any(c in plain.stdout for c in RAW), repr(plain.stdout)
    store.control(sid, "stopped")  # complete: --watch draws one frame and ends
    watched = run_sweepd("status", sid, "--watch", "--interval", "0.2", env=cli_env)
    assert watched.returncode == 0, watched.stderr
    assert "\\u202eevil" in watched.stdout and not any(c in watched.stdout for c in RAW), repr(watched.stdout)
