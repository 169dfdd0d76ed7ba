"""Property tests of the bounds (queue/bounds.py): arbitrary rows and lines sent to a real agent over
its socket and stdout, and arbitrary values stored in Redis (as by hand) read by every reader: the
agent stays up, every run ends in a state, and every JSON output is strict JSON."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import Sweeps, run_sweepd, sweepd_cmd
from sweepd.agent.cli.main import main
from sweepd.queue import bounds, keys
from sweepd.queue.config import validate
from sweepd.queue.reads import Reads
from sweepd.queue.search import hyperband
from sweepd.queue.states import TERMINAL
from sweepd.queue.store import Store
from ui_support import ui_server

FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)


def strict(text: str) -> Any:
    """``json.loads`` refusing NaN and Infinity (not JSON)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


# --- the pure rule -------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats()
    | st.text(max_size=40)
    | st.text(min_size=bounds.STRING_CHARS, max_size=bounds.STRING_CHARS + 50)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
NAMES = (
    st.text(max_size=12) | st.just(bounds.STEP) | st.text(min_size=bounds.NAME_CHARS, max_size=bounds.NAME_CHARS + 5)
)
ROWS = st.dictionaries(NAMES, VALUES, max_size=12)


@given(ROWS)
def test_a_cleaned_row_is_within_every_bound_and_strict_json(row: dict[str, Any]) -> None:
    clean, cuts = bounds.clean_row(row)
    if clean is None:
        assert cuts == ["row with a bad _step"]
        return
    text = json.dumps(clean, allow_nan=False)  # strict: no NaN or Infinity left
    assert len(text) <= bounds.ROW_BYTES and len(clean) <= bounds.ROW_METRICS + 1
    assert all(len(name) <= bounds.NAME_CHARS for name in clean)
    assert bounds.clean_row(clean) == (clean, [])  # cleaning is done once: what is clean stays so


@given(st.binary(max_size=200) | VALUES.map(lambda v: json.dumps(v).encode()))
def test_any_stored_value_loads_as_strict_json(raw: bytes) -> None:
    value = bounds.load(raw)
    strict(bounds.dumps(value))
    assert bounds.finite(value) is None or math.isfinite(bounds.finite(value) or 0.0)
    assert bounds.step(raw) is None or 0 <= (bounds.step(raw) or 0) < bounds.MAX_STEP


# --- any value stored, read by every reader -------------------------------------------------------

NASTY = st.sampled_from(
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e999",
        b"-1e999",
        b"1" + b"0" * 400,
        b"1" * 5000,
        b"[" * 5000,
        b"{",
        b"",
        b"\xff\xfe",
        b'"' + b"x" * 100_000 + b'"',
        b"null",
        b"true",
        b'{"a": NaN}',
        b'{"_step": NaN}',
    ]
)
STORED = NASTY | st.binary(max_size=64) | VALUES.map(lambda v: json.dumps(v).encode())


@pytest.fixture
def ui(cli_env: dict[str, str]) -> Iterator[str]:
    """``sweepd ui`` on the test's Redis: its base URL."""
    with ui_server(cli_env) as base:
        yield base


def make_sweep(store: Store) -> tuple[str, list[str]]:
    """A bayes sweep with hyperband and three runs, two ended, one held."""
    config = validate(
        {
            "method": "bayes",
            "program": "t.py",
            "metric": {"name": "loss", "goal": "minimize"},
            "early_terminate": {"type": "hyperband", "min_iter": 1},
            "parameters": {"x": {"min": 0.0, "max": 1.0}, "c": {"values": ["a", "b"]}},
        }
    )
    sid = store.create_sweep(config)
    ids = []
    for i in range(3):
        claim = store.create_next(sid, "agent-1", 60)
        assert not isinstance(claim, str)
        ids.append(claim.run_id)
        store.log_metrics(claim, [{"loss": 0.5 + i, "_step": 0}])
        if i < 2:
            store.complete(claim, "finished", 0, "exit-0")
    return sid, ids


@settings(FIXTURES, max_examples=25)
@given(
    summary=st.dictionaries(st.sampled_from(["loss", "_step", "acc", "x"]) | st.text(max_size=5), STORED, max_size=5),
    params=STORED,
    curve=st.lists(STORED, max_size=4),
    history=st.lists(STORED, max_size=3),
    event=STORED,
    field=st.sampled_from(["attempt", "created_at", "exit_code", "cut", "requeues"]),
    number=STORED,
)
def test_every_reader_survives_any_stored_value(
    ui: str,
    tmp_path_factory: pytest.TempPathFactory,
    store: Store,
    r: redis.Redis,
    redis_url: str,
    summary: dict[str, bytes],
    params: bytes,
    curve: list[bytes],
    history: list[bytes],
    event: bytes,
    field: str,
    number: bytes,
) -> None:
    sid, ids = make_sweep(store)  # a sweep of its own: the dashboard reads it afresh
    rid = ids[0]
    with r.pipeline() as pipe:
        pipe.delete(keys.run_summary(rid), keys.run_curve(rid), keys.run_history(rid))
        pipe.hset(keys.run_summary(rid), mapping={"loss": summary.pop("loss", b"NaN"), **summary})
        pipe.hset(keys.run(rid), mapping={"params": params, field: number})
        if curve:
            pipe.rpush(keys.run_curve(rid), *curve)
        if history:
            pipe.rpush(keys.run_history(rid), *history)
        pipe.lpush(keys.sweep_events(sid), event)
        pipe.execute()
    env = {"SWEEPD_REDIS_URL": redis_url}
    cli = CliRunner()
    for args in (["status", sid, "--json"], ["runs", sid, "--json"], ["suggest", sid, "--dry-run", "--json"]):
        done = cli.invoke(main, args, env=env)
        assert done.exit_code == 0, (args, done.output, done.exception)
        strict(done.output)
    picture = str(tmp_path_factory.mktemp("plot") / "sweep.svg")
    for args in (["status", sid], ["runs", sid], ["logs", rid], ["plot", sid, "-o", picture]):
        done = cli.invoke(main, args, env=env)
        assert done.exit_code == 0, (args, done.output, done.exception)
    hyperband.to_stop(store.config(sid), Reads(r).curves(sid, upto=10))
    store.create_next(sid, "agent-2", 60)  # an agent of the bayes sweep starts its next run
    for path in (
        "/api/sweeps",
        f"/api/sweeps/{sid}",
        f"/api/sweeps/{sid}/importance",
        f"/api/sweeps/{sid}/runs/{rid}/history",
    ):
        with urllib.request.urlopen(ui + path, timeout=30) as answer:  # an error status raises
            strict(answer.read().decode())


# --- arbitrary rows and lines, sent to a real agent ----------------------------------------------

PROGRAM = r"""
import base64, json, os, socket, sys
x = next(a for a in sys.argv if a.startswith("--x=")).split("=")[1]
payload = json.load(open(os.path.join(os.environ["PAYLOADS"], x + ".json")))
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["SWEEPD_AGENT_SOCKET"])
for line in payload["socket"]:
    s.sendall(base64.b64decode(line) + b"\n")
s.close()
for line in payload["printed"]:
    print(line, flush=True)
"""

FLOATS = st.floats().map(repr) | st.integers(min_value=-(10**450), max_value=10**450).map(str)
PAIR = st.tuples(st.from_regex(r"[A-Za-z_][\w.\-/]{0,10}", fullmatch=True) | st.just("n" * 300), FLOATS).map(
    lambda p: f"{p[0]}={p[1]}"
)
PRINTED = st.lists(PAIR, max_size=6).map(" ".join) | st.text(st.characters(exclude_categories=("Cs",)), max_size=80)
SMALL = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**450), max_value=10**450)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
SMALL_ROWS = st.dictionaries(st.text(max_size=6) | st.just(bounds.STEP), SMALL, max_size=5)
SENT = (
    SMALL_ROWS.map(lambda row: json.dumps({"op": "log", "row": row}).encode())
    | st.binary(max_size=80)
    | st.sampled_from(
        [
            b'{"op": "log", "row": {"_step": NaN, "a": 1}}',
            b'{"op": "log", "row": {"a": ' + b"[" * 3000 + b"}}",
            b'{"op": "log", "row": {"a": 1' + b"0" * 400 + b"}}",
            b'{"op": "log", "row": {"a": 1e999, "b": -Infinity}}',
            b'{"op": "log", "row": "not a row"}',
            b"[1, 2]",
            json.dumps({"op": "log", "row": {"s": "x" * 100_000, "_step": 10**30}}).encode(),
            json.dumps({"op": "log", "row": {f"m{i}": i for i in range(3000)}}).encode(),
        ]
    )
)
PAYLOAD = st.fixed_dictionaries({"socket": st.lists(SENT, max_size=4), "printed": st.lists(PRINTED, max_size=4)})
RUNS = 4


@settings(FIXTURES, max_examples=8)
@given(payloads=st.lists(PAYLOAD, min_size=RUNS, max_size=RUNS))
def test_any_rows_and_lines_sent_to_a_real_agent(
    tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str], payloads: list[dict[str, Any]]
) -> None:
    """Four runs a try (one agent, started once a try), each sending what hypothesis made over its
    socket and its stdout."""
    directory = tmp_path_factory.mktemp("agent")
    (directory / "payloads").mkdir()
    for x, payload in enumerate(payloads):
        payload = {**payload, "socket": [base64.b64encode(line).decode() for line in payload["socket"]]}
        (directory / "payloads" / f"{x}.json").write_text(json.dumps(payload))
    sweeps = Sweeps(directory, {**cli_env, "PAYLOADS": str(directory / "payloads")}, PROGRAM)
    grid = ", ".join(str(x) for x in range(RUNS))
    sid = sweeps.create(f"method: grid\nmetric: {{name: a, goal: maximize}}\nparameters:\n  x: {{values: [{grid}]}}\n")
    done = subprocess.run(
        sweepd_cmd("agent", sid, "--notices", "none"),
        env=sweeps.env,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    status = run_sweepd("status", sid, "--json", env=sweeps.env)
    runs = run_sweepd("runs", sid, "--json", env=sweeps.env)
    assert status.returncode == 0 and runs.returncode == 0, status.stderr + runs.stderr
    strict(status.stdout)
    assert [run["state"] in TERMINAL for run in strict(runs.stdout)] == [True] * RUNS


def test_the_payloads_reach_the_run(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """The property test's program does send what it is given: a row and a printed line are stored."""
    (tmp_path / "payloads").mkdir()
    line = base64.b64encode(b'{"op": "log", "row": {"a": 2, "b": NaN}}').decode()
    (tmp_path / "payloads" / "0.json").write_text(json.dumps({"socket": [line], "printed": ["c=3"]}))
    sweeps = Sweeps(tmp_path, {**cli_env, "PAYLOADS": str(tmp_path / "payloads")}, PROGRAM)
    sid = sweeps.create("method: grid\nparameters:\n  x: {values: [0]}\n")
    assert sweeps.agents(1, sid, "--notices", "none") == [0]
    (run,) = sweeps.runs(sid)
    assert {k: run["summary"][k] for k in "abc"} == {"a": 2, "b": "NaN", "c": 3}
