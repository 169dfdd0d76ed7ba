"""An attempt's kept output is bounded in bytes, whatever the training program writes: a line is cut
(and says so), a progress bar's ``\\r`` frames keep their last state, the attempt's log keeps its
newest lines within a byte budget; and the agent's memory stays bounded meanwhile."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import Sweeps, rss_from_run_start, sweepd_cmd
from sweepd.agent.daemon.output import CUT, LINE_BYTES, LOG_BYTES, Kept, Lines
from sweepd.queue import keys
from sweepd.queue.store import Store

# what a line is, said once and plainly: the reference the incremental reader must agree with ------


def expected(data: bytes, limit: int) -> list[str]:
    """The lines of ``data`` read whole: split at \\n; a \\r before the \\n is the line's end, not a
    new state; a line is its text after its last \\r, cut at ``limit`` bytes; an unended last line
    is kept when it has text."""
    *ended, rest = data.split(b"\n")
    out = [render(piece, limit) for piece in ended]
    state = rest[:-1] if rest.endswith(b"\r") else rest
    if state.rsplit(b"\r", 1)[-1]:
        out.append(render(rest, limit))
    return out


def render(piece: bytes, limit: int) -> str:
    if piece.endswith(b"\r"):
        piece = piece[:-1]
    state = piece.rsplit(b"\r", 1)[-1]
    text = state[:limit].decode(errors="replace")
    cut = len(state) > limit
    if len(text.encode()) > limit:
        text, cut = text.encode()[:limit].decode(errors="ignore"), True
    return text + CUT.format(limit) if cut else text


output = st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", "é".encode(), b"\xff", b"xyz" * 5]))


@settings(max_examples=400, deadline=None)
@given(parts=output, cuts=st.lists(st.integers(0, 200)), limit=st.integers(1, 12))
def test_lines_read_in_any_chunks_are_the_lines_read_whole(parts: list[bytes], cuts: list[int], limit: int) -> None:
    data = b"".join(parts)
    reader, got, at = Lines(limit), [], 0
    for cut in sorted(cuts):
        got += reader.feed(data[at:cut])
        at = max(at, cut)
    got += reader.feed(data[at:]) + reader.close()
    assert got == expected(data, limit)
    assert all(len(line.encode()) <= limit + len(CUT.format(limit)) for line in got)


def test_a_progress_bar_keeps_its_last_state_and_a_long_line_says_where_it_was_cut() -> None:
    bar = b"".join(b"\r%3d%%|" % i + b"#" * (i // 10) for i in range(101))
    lines = Lines().feed(bar + b"\ndone\r\nnext " + b"x" * (LINE_BYTES + 10) + b"\n")
    assert lines == ["100%|##########", "done", ("next " + "x" * LINE_BYTES)[:LINE_BYTES] + CUT.format(LINE_BYTES)]


# the attempt's log in Redis: newest lines kept, within lines and bytes --------------------------

lines_and_flushes = st.lists(
    st.one_of(st.integers(0, 40).map(lambda n: "l" * n), st.sampled_from(["flush", "fail"])), max_size=60
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=lines_and_flushes, max_lines=st.integers(1, 8), max_bytes=st.integers(40, 120))
def test_the_kept_log_is_the_newest_lines_within_both_bounds(
    store: Store, r: redis.Redis, steps: list[str], max_lines: int, max_bytes: int
) -> None:
    r.delete(keys.run_log("r", 1))
    kept, added = Kept(max_lines, max_bytes), []

    def write(lines: list[str], keep: int) -> None:
        store.append_log("r", 1, lines, keep=keep)

    def fail(lines: list[str], keep: int) -> None:
        raise redis.ConnectionError("away")

    for step in [*steps, "flush"]:
        if step == "flush":
            kept.flush(write)
        elif step == "fail":
            with contextlib.suppress(redis.ConnectionError):  # raised when something waits
                kept.flush(fail)
        else:
            kept.add([step])
            added.append(step)
    stored = [line.decode() for line in r.lrange(keys.run_log("r", 1), 0, -1)]
    assert len(stored) <= max_lines and sum(map(len, stored)) <= max_bytes
    assert stored == added[len(added) - len(stored) :]  # the newest, in order
    if not kept.dropped:  # nothing lost while waiting: as many of the newest as the bounds allow
        fits = 0
        while fits < len(added) and fits < max_lines and sum(map(len, added[len(added) - fits - 1 :])) <= max_bytes:
            fits += 1
        assert len(stored) == fits


# a real agent and a program that writes without end ---------------------------------------------

FLOOD = """
import sys
chunk = b"x" * (1 << 20)
for _ in range(200):  # 200 MB without a newline, as fast as the pipe takes it
    sys.stdout.buffer.write(chunk)
sys.stdout.buffer.write(b"\\n")
for i in range(2000):  # then 16 MB of long lines: the attempt's byte budget, not the line cap, binds
    sys.stdout.buffer.write(b"%05d " % i + b"y" * 8000 + b"\\n")
sys.stdout.buffer.write(b"".join(b"\\rstep %d/100" % i for i in range(101)) + b"\\n")
"""


def test_a_program_that_floods_its_output_costs_the_agent_bounded_memory(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sweeps = Sweeps(tmp_path, cli_env, FLOOD)
    sid = sweeps.create("method: grid\nparameters:\n  x: {value: 1}\n")
    agent = subprocess.Popen(
        sweepd_cmd("agent", sid, "--notices", "none"), env=cli_env, cwd=tmp_path, stdout=subprocess.DEVNULL
    )
    try:
        base, peak = rss_from_run_start(agent)
        assert agent.wait(120) == 0
    finally:
        agent.kill()
        agent.wait(10)
    (run,) = sweeps.runs(sid)
    assert run["state"] == "finished"
    log = [line.decode() for line in r.lrange(keys.run_log(run["id"], 1), 0, -1)]
    size = sum(len(line.encode()) for line in log)
    assert size <= LOG_BYTES
    assert log[-1] == "step 100/100" and log[-2].startswith("01999 ")  # the newest kept
    assert len(log) < 2000  # the bytes bound, not the line cap, cut it
    grown = (peak - base) / 2**20
    print(f"agent RSS {base / 2**20:.1f} MB at the run's start, peak {peak / 2**20:.1f} MB; kept {size} bytes")
    assert grown < 64, f"the agent grew by {grown:.0f} MB"


def test_the_raw_output_still_passes_through(tmp_path: Path, cli_env: dict[str, str], r: redis.Redis) -> None:
    program = "import sys\nsys.stderr.write('a\\rb\\rc\\n')\nsys.stdout.write('no newline')\n"
    sweeps = Sweeps(tmp_path, cli_env, program)
    sid = sweeps.create("method: grid\nparameters:\n  x: {value: 1}\n")
    done = subprocess.run(
        sweepd_cmd("agent", sid, "--notices", "none"), env=cli_env, cwd=tmp_path, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"no newline" and b"a\rb\rc\n" in done.stderr
    (run,) = sweeps.runs(sid)
    assert sorted(json.loads(json.dumps([x.decode() for x in r.lrange(keys.run_log(run["id"], 1), 0, -1)]))) == [
        "c",
        "no newline",
    ]
    assert sys.platform  # keeps the import honest on every platform
