"""``sweepd run`` at a terminal: the live view (driven under a pseudo-terminal, a real process reading
its own screen), agents' output in files, ``-v``'s stream, Ctrl-C once and twice, and the plain words
it ends with when failing runs stop the agents; the texts themselves as pure functions."""

from __future__ import annotations

import codecs
import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import redis

from support import ROOT, TRAINER, run_record, run_sweepd, sweepd_cmd, wait_until
from sweepd.agent.cli.parts import explain, held, run_view

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class Screen:
    """``sweepd *args`` on a pseudo-terminal that is its controlling terminal (so ``ctrl_c`` is the
    terminal's own SIGINT to the foreground group), and what it has written, escape codes removed."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 140, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(
            sweepd_cmd(*args),
            env={**env, "TERM": "xterm-256color"},
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the terminal becomes the child's controlling one
        )
        os.close(slave)
        self.raw: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a glyph may span reads
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the process and its children have closed the terminal
                return
            if not data:
                return
            self.raw.append(self._decoder.decode(data))

    @property
    def text(self) -> str:
        return ESCAPE.sub("", "".join(self.raw))

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        self.thread.join(10)
        os.close(self.master)
        return code


def _config(tmp_path: Path, params: str, program: Path = TRAINER, method: str = "grid") -> Path:
    config = tmp_path / "sweep.yaml"
    config.write_text(f"method: {method}\nprogram: {program}\nparameters:\n{params}")
    return config


def _env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return {**cli_env, "OUT_DIR": str(out), "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt")}


def _sweep_id(text: str) -> str:
    found = re.search(r"sweep (\w+): \d+ agent", text)
    assert found, text
    return found.group(1)


def _runs(env: dict[str, str], sid: str) -> dict[str, dict[str, object]]:
    done = run_sweepd("runs", sid, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return {r["id"]: r for r in json.loads(done.stdout)}


# the live view -----------------------------------------------------------------------------------


def test_at_a_terminal_the_view_is_live_and_no_log_line_reaches_the_screen(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env = _env(cli_env, tmp_path)
    config = _config(tmp_path, "  steps: {value: 20}\n  k: {values: [1, 2, 3, 4]}\n")
    screen = Screen(["run", str(config), "--agents", "2"], env, tmp_path)
    assert screen.wait(120) == 0, screen.text
    text = screen.text
    sid = _sweep_id(text)
    assert "░" in text and "█" in text and "runs done" in text  # the progress bar, as status --watch draws it
    assert "4/4 runs done (100%)  complete" in text and "Best runs" in text and "Agents (" in text
    assert "\x1b[1A" in "".join(screen.raw)  # redrawn in place, not scrolled
    for line in ("agent started", "run started", "run ended", '"event"', "Traceback"):
        assert line not in text, line  # the agents' lines and the runs' output stay off the screen
    assert text.rstrip().endswith("queue: 0 (head: -); agents alive: 0")  # then today's summary
    assert f"sweep {sid} ({sid}): grid, finished, 4 runs\n  finished=4" in text.replace("\r", "")
    logs = sorted((Path(env["SWEEPD_HOME"]) / "logs" / sid).glob("agent-*.log"))
    assert [p.name for p in logs] == ["agent-1.log", "agent-2.log"] and f"logs/{sid}/agent-N.log" in text
    lines = [json.loads(line) for p in logs for line in p.read_text().splitlines() if line.startswith("{")]
    assert sum(1 for e in lines if e["event"] == "run ended") == 4  # the agents' log lines went to the files
    rid = next(iter(_runs(env, sid)))
    assert run_sweepd("logs", rid, env=env).returncode == 0  # a run's output: sweepd logs, as before


def test_verbose_at_a_terminal_streams_the_agents_lines_as_before(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = _env(cli_env, tmp_path)
    config = _config(tmp_path, "  steps: {value: 5}\n  k: {values: [1, 2]}\n")
    screen = Screen(["run", str(config), "-v"], env, tmp_path)
    assert screen.wait(120) == 0, screen.text
    text = screen.text
    assert "agent started" in text and text.count("run ended") == 2 and "runs done" not in text
    assert not (Path(env["SWEEPD_HOME"]) / "logs").exists()


def test_not_at_a_terminal_the_output_is_the_stream_and_the_summary(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = _env(cli_env, tmp_path)
    config = _config(tmp_path, "  steps: {value: 5}\n  k: {values: [1, 2]}\n")
    done = run_sweepd("run", str(config), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sid = _sweep_id(done.stderr)
    assert done.stdout == (
        f"sweep {sid} ({sid}): grid, finished, 2 runs\n  finished=2\n  queue: 0 (head: -); agents alive: 0\n"
    )
    events = [json.loads(line)["event"] for line in done.stderr.splitlines() if line.startswith("{")]
    assert events.count("run ended") == 2 and "\x1b" not in done.stdout + done.stderr
    assert not (Path(env["SWEEPD_HOME"]) / "logs").exists()


# Ctrl-C ------------------------------------------------------------------------------------------


def _two_runs_held(tmp_path: Path, cli_env: dict[str, str], checkpoint_s: float) -> tuple[dict[str, str], Screen, Path]:
    """`sweepd run --agents 2` under a terminal, once both agents hold a run part-way through."""
    env = _env(cli_env, tmp_path)
    params = f"  steps: {{value: 400}}\n  slow_checkpoint: {{value: {checkpoint_s:g}}}\n  k: {{values: [1, 2, 3]}}\n"
    screen = Screen(["run", str(_config(tmp_path, params)), "--agents", "2"], env, tmp_path)
    out = tmp_path / "out"
    wait_until(lambda: len(list(out.glob("*.ready"))) == 2, timeout=60)
    return env, screen, out


def test_ctrl_c_once_preempts_every_held_run_and_the_summary_says_what_became_of_each(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env, screen, out = _two_runs_held(tmp_path, cli_env, checkpoint_s=0.5)
    screen.ctrl_c()
    wait_until(lambda: "Ctrl-C: preempting 2 held runs" in screen.text, timeout=30)
    assert screen.wait(60) == 0, screen.text
    text = screen.text
    sid = _sweep_id(text)
    runs = _runs(env, sid)
    assert sorted((r["state"], r["reason"]) for r in runs.values()) == [("queued", "signal")] * 2
    for rid in runs:  # each checkpointed within its grace: the preemption a SIGTERM to its agent is
        events = [json.loads(line)["event"] for line in (out / f"{rid}.jsonl").read_text().splitlines()]
        assert events == ["start", "preempted"]
        assert f"run {rid}: requeued at the front (signal) after attempt 1; `sweepd agent {sid}` resumes it" in text
    assert "interrupted, the held runs preempted; what became of each:" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text


def test_ctrl_c_twice_kills_the_held_runs_and_requeues_them_at_once(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # A checkpoint longer than the grace (110 s): only a kill ends these runs before it.
    env, screen, out = _two_runs_held(tmp_path, cli_env, checkpoint_s=600)
    screen.ctrl_c()
    wait_until(lambda: "Ctrl-C again to kill them now" in screen.text, timeout=30)
    screen.ctrl_c()
    assert screen.wait(60) == 0, screen.text  # well inside the grace the first Ctrl-C gave
    text = screen.text
    sid = _sweep_id(text)
    runs = _runs(env, sid)
    assert sorted((r["state"], r["reason"]) for r in runs.values()) == [("queued", "signal")] * 2
    assert "Ctrl-C again: killing the held runs" in text
    assert "interrupted twice, the held runs killed; what became of each:" in text
    for rid in runs:
        events = [json.loads(line)["event"] for line in (out / f"{rid}.jsonl").read_text().splitlines()]
        assert events == ["start"]  # killed in its checkpoint, never finished it
        assert f"run {rid}: requeued at the front (signal) after attempt 1" in text
    r = redis.Redis.from_url(env["SWEEPD_REDIS_URL"])
    assert r.zcard(f"sweepd:sweep:{sid}:held") == 0  # none left to its lease: requeued by their agents


# failures that explain themselves ----------------------------------------------------------------


def test_runs_that_cannot_import_a_module_end_with_why_and_the_ways_out(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env = _env(cli_env, tmp_path)
    program = tmp_path / "prog.py"
    program.write_text("print('loading')\nimport sweepd_has_no_such_module  # noqa\n")
    config = _config(tmp_path, "  x: {values: [1, 2, 3]}\n", program=program, method="random")
    screen = Screen(["run", str(config)], env, tmp_path)
    assert screen.wait(120) == 1, screen.text
    text = screen.text
    sid = _sweep_id(text)
    runs = _runs(env, sid)
    assert [r["state"] for r in runs.values()] == ["failed"] * 3
    first = min(runs.values(), key=lambda r: str(r["started_at"]))["id"]
    tail = text[text.index("sweepd: the agents stopped") :].splitlines()
    assert tail[0].startswith("sweepd: the agents stopped because runs fail: 3 runs failed, each within ")
    assert tail[1] == f"  first failed run: {first} (exit code 1)"
    assert tail[2] == "  its last error line: ModuleNotFoundError: No module named 'sweepd_has_no_such_module'"
    assert tail[3] == f"  all of its output: sweepd logs {first}"
    python = shutil.which("python", path=env.get("PATH")) or sys.executable
    assert f"ran on ${{interpreter}} = {python}, which cannot import 'sweepd_has_no_such_module'" in tail[4]
    assert "activate the environment that has 'sweepd_has_no_such_module'" in text
    assert "name the interpreter in the sweep's command" in text
    assert "Traceback" not in text  # the traceback is in `sweepd logs`, not on the screen


def test_sweepd_in_an_environment_that_is_not_active_is_explained_with_the_interpreter_that_ran(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """The case a new user meets: the `python` on PATH is not the one sweepd is installed in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python"  # a Python without site-packages: it cannot import sweepd
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    shim.chmod(0o755)
    env = {**_env(cli_env, tmp_path), "PATH": f"{bin_dir}{os.pathsep}{cli_env['PATH']}"}
    screen = Screen(["run", str(ROOT / "examples" / "sweep.yaml"), "--agents", "3"], env, ROOT)
    assert screen.wait(120) == 1, screen.text
    text = screen.text
    assert "its last error line: ModuleNotFoundError: No module named 'sweepd'" in text
    assert f"the program ran on ${{interpreter}} = {shim}, which cannot import 'sweepd'" in text
    assert f"command: [${{env}}, {sys.executable}, ${{program}}, ${{args}}]" in text  # one that has sweepd
    assert re.search(r"\b9 runs failed, each within \d+\.\ds of its start", text), text  # 3 agents, 3 each


def test_a_sweep_that_completes_with_every_run_failed_says_why_and_exits_1(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """3 points, 2 agents: no agent sees enough failures to stop, the sweep completes first."""
    env = _env(cli_env, tmp_path)
    program = tmp_path / "prog.py"
    program.write_text("import numpyy  # noqa\n")
    done = run_sweepd(
        "run", str(_config(tmp_path, "  x: {values: [1, 2, 3]}\n", program=program)), "--agents", "2", env=env
    )
    assert done.returncode == 1, done.stderr
    assert "failed=3" in done.stdout  # the summary
    lines = done.stderr[done.stderr.index("sweepd: 3 runs failed") :].splitlines()
    assert re.fullmatch(r"sweepd: 3 runs failed, each within [\d.]+s of its start; no run finished", lines[0]), lines
    first = lines[1].split()[3]
    assert lines[1:4] == [
        f"  first failed run: {first} (exit code 1)",
        "  its last error line: ModuleNotFoundError: No module named 'numpyy'",
        f"  all of its output: sweepd logs {first}",
    ]
    assert "the program ran on ${interpreter} = " in lines[4] and "cannot import 'numpyy'" in lines[4]


def test_failed_runs_beside_finished_ones_are_explained_and_the_sweep_exits_0(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    env = _env(cli_env, tmp_path)
    program = tmp_path / "prog.py"
    program.write_text("import sys\nif '--x=2' in sys.argv:\n    sys.exit('bad x: \x1b]0;pwned\x07')\nprint('ok')\n")
    done = run_sweepd("run", str(_config(tmp_path, "  x: {values: [1, 2, 3]}\n", program=program)), env=env)
    assert done.returncode == 0, done.stderr
    assert "sweepd: 1 run failed, within " in done.stderr and "; 2 finished" in done.stderr
    assert "  its last error line: bad x: \\x1b]0;pwned\\x07" in done.stderr  # escaped for the terminal


def test_the_explanation_says_when_the_sweep_ended_with_its_runs_failed() -> None:
    lines = explain.explain(_failures(stopped=False, count=3, finished=0))
    assert lines[0] == "sweepd: 3 runs failed, each within 0.4s of its start; no run finished"
    assert explain.explain(_failures(stopped=False, count=1, finished=4, slowest_seconds=None))[0] == (
        "sweepd: 1 run failed; 4 finished"
    )


def _failures(**kw: object) -> explain.Failures:
    base: dict[str, object] = {
        "sweep_id": "s1",
        "count": 9,
        "slowest_seconds": 0.42,
        "first_run_id": "r1",
        "first_exit_code": 1,
        "last_line": "ModuleNotFoundError: No module named 'sweepd'",
        "command": ("${env}", "${interpreter}", "${program}", "${args}"),
        "interpreter": "/usr/bin/python",
        "own_python": "/home/u/.venv/bin/python",
    }
    return explain.Failures(**{**base, **kw})  # type: ignore[arg-type]


def test_the_explanation_names_the_interpreter_and_both_ways_out() -> None:
    assert explain.explain(_failures()) == [
        "sweepd: the agents stopped because runs fail: 9 runs failed, each within 0.4s of its start",
        "  first failed run: r1 (exit code 1)",
        "  its last error line: ModuleNotFoundError: No module named 'sweepd'",
        "  all of its output: sweepd logs r1",
        "  the program ran on ${interpreter} = /usr/bin/python, which cannot import 'sweepd'",
        "  two ways out:",
        "    - activate the environment that has 'sweepd' (e.g. `. .venv/bin/activate`) and run again, or",
        "    - name the interpreter in the sweep's command, e.g.",
        "        command: [${env}, /home/u/.venv/bin/python, ${program}, ${args}]",
    ]


def test_the_explanation_of_other_failures_stops_at_where_to_read_more() -> None:
    lines = explain.explain(_failures(count=1, slowest_seconds=None, last_line="ValueError: bad lr", first_exit_code=2))
    assert lines == [
        "sweepd: the agents stopped because runs fail: 1 run failed",
        "  first failed run: r1 (exit code 2)",
        "  its last error line: ValueError: bad lr",
        "  all of its output: sweepd logs r1",
    ]
    assert explain.explain(_failures(last_line=None))[2] == "  it printed nothing"


def test_the_error_line_is_the_exception_after_the_last_traceback_wherever_stdout_lines_fell() -> None:
    traceback = ["Traceback (most recent call last):", '  File "p.py", line 2, in <module>', "    import x"]
    error = "ModuleNotFoundError: No module named 'x'"
    assert explain.error_line(["loading", *traceback, error]) == error
    assert explain.error_line([*traceback, error, "loading", ""]) == error  # stdout's pump kept its line later
    assert explain.error_line([traceback[0], "loading", *traceback[1:], error]) == error  # or among the frames
    chained = [*traceback, "KeyError: 'a'", "", "During handling ...:", "", *traceback, "ValueError: b"]
    assert explain.error_line(chained) == "ValueError: b"
    assert explain.error_line(["step 1", "  nan loss  ", ""]) == "nan loss"
    assert explain.error_line(["", " "]) is None


def test_a_command_that_names_its_own_interpreter_is_not_said_to_run_interpreter() -> None:
    lines = explain.explain(
        _failures(
            command=("/opt/py/bin/python3", "${program}"), last_line="ModuleNotFoundError: No module named 'np.x'"
        )
    )
    assert "  the interpreter the sweep's command names cannot import 'np.x'" in lines
    assert lines[-1] == "        command: [${env}, /path/to/env/bin/python, ${program}, ${args}]"
    assert explain.missing_module("ImportError: cannot import name 'x'") is None


def test_the_view_notes_and_the_fates_of_held_runs() -> None:
    assert run_view.notes("s1", preempting=False, killing=False, ctrl_c=0, held=None) == []
    once = run_view.notes("s1", preempting=True, killing=False, ctrl_c=1, held=1)
    assert once[0].startswith("Ctrl-C: preempting 1 held run: ") and "`sweepd agent s1`" in once[0]
    assert once[1] == "Ctrl-C again to kill them now."
    assert run_view.notes("s1", preempting=True, killing=False, ctrl_c=1, held=1, over=True) == once[:1]
    assert run_view.notes("s1", preempting=True, killing=True, ctrl_c=2, held=2)[0].startswith("Ctrl-C again: killing")
    runs = [
        run_record("a", "queued", {}, reason="signal", attempt=2),
        run_record("b", "finished", {}, reason="exit"),
        run_record("c", "running", {}),
    ]
    assert held.fates(runs, "s1") == [
        "sweepd: interrupted, the held runs preempted; what became of each:",
        "  run a: requeued at the front (signal) after attempt 2; `sweepd agent s1` resumes it",
        "  run b: finished (exit) as it was being preempted",
        "  run c: still running (its agent is gone): requeued when its lease expires",
    ]
    assert held.fates([], "s1", killed=True) == ["sweepd: interrupted twice; no run was held"]
