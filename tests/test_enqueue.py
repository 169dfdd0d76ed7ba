"""``sweepd enqueue``: a specific run on a sweep's queue, with its parameters checked against the
sweep's space (pure), and every mistake one line, exit code 2, nothing stored (real Redis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from support import run_sweepd
from sweepd.queue import keys, overrides
from sweepd.queue.config import validate
from sweepd.queue.errors import UserError

CONFIG = validate(
    {
        "method": "random",
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
            "width": {"values": [32, 64]},
            "layers": {"min": 1, "max": 4},
            "opt": {"parameters": {"name": {"value": "adam"}, "beta": {"distribution": "beta", "a": 2, "b": 2}}},
        },
    }
)


def test_values_are_json_where_they_are_json_else_text() -> None:
    assert overrides.parse(["lr=1e-3", "width=64", "flag=true", "name=adam", "l=[1, 2]", 's="32"']) == {
        "lr": 0.001,
        "width": 64,
        "flag": True,
        "name": "adam",
        "l": [1, 2],
        "s": "32",
    }
    for bad, message in (("lr", "expected NAME=VALUE"), ("=1", "expected NAME=VALUE"), ("x=NaN", "not a finite")):
        with pytest.raises(UserError, match=message):
            overrides.parse([bad])
    with pytest.raises(UserError, match="given twice"):
        overrides.parse(["a=1", "a=2"])


def test_a_new_run_needs_every_parameter_that_is_not_a_constant() -> None:
    given = {"lr": 0.01, "width": 64, "layers": 2, "opt.beta": 0.5}
    params, warnings = overrides.resolve(CONFIG, given, None, "s1")
    assert params == {"lr": 0.01, "width": 64, "layers": 2, "opt": {"name": "adam", "beta": 0.5}}
    assert warnings == []
    with pytest.raises(UserError, match=r"missing layers, opt\.beta"):
        overrides.resolve(CONFIG, {"lr": 0.01, "width": 64}, None, "s1")
    with pytest.raises(UserError, match="sweep s1 has no parameter 'widht'; did you mean 'width'"):
        overrides.resolve(CONFIG, {"widht": 64}, None, "s1")


def test_a_known_run_keeps_what_is_not_given() -> None:
    base = {"lr": 0.01, "width": 64, "layers": 2, "opt": {"name": "adam", "beta": 0.5}}
    params, _ = overrides.resolve(CONFIG, {"opt.beta": 0.25}, base)
    assert params == {**base, "opt": {"name": "adam", "beta": 0.25}} and base["opt"]["beta"] == 0.5


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("lr", 0.5, "log_uniform_values draws from 0.0001 to 0.1"),
        ("width", 48, "values: 32, 64"),
        ("layers", 2.5, "int_uniform draws whole numbers"),
        ("layers", 9, "int_uniform draws from 1 to 4"),
        ("opt.name", "sgd", 'the constant is "adam"'),
        ("opt.beta", 1.5, "beta draws from 0 to 1"),
        ("lr", "fast", "log_uniform_values draws numbers"),
    ],
)
def test_a_value_outside_the_space_is_allowed_with_a_warning(name: str, value: object, why: str) -> None:
    base = {"lr": 0.01, "width": 64, "layers": 2, "opt": {"name": "adam", "beta": 0.5}}
    _, warnings = overrides.resolve(CONFIG, {name: value}, base, "s1")
    assert warnings == [f"{name}={json.dumps(value)} is outside sweep s1's search space ({why})"]


def test_values_inside_the_space_say_nothing() -> None:
    by_name = {p.name: p for p in CONFIG.params}
    assert overrides.outside(by_name["width"], 64.0) is None  # 64.0 is 64, as W&B's grid sees it
    assert overrides.outside(by_name["layers"], 4) is None
    assert overrides.outside(by_name["opt.name"], "adam") is None


def _sweep(tmp_path: Path, env: dict[str, str]) -> str:
    (tmp_path / "sweep.yaml").write_text("method: grid\nprogram: train.py\nparameters:\n  x: {values: [1, 2]}\n")
    return run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", env=env).stdout.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "y=1"], "--param y: sweep {sid} has no parameter 'y' (its parameters: x)"),
        (["--param", "x"], "--param 'x': expected NAME=VALUE, such as lr=0.01"),
        ([], "--param: a new run needs a value for every parameter of sweep {sid}: missing x"),
        (["--param", "x=1", "--resume", "must"], "--resume needs --id (a new ID never exists)"),
        (["--id", "r1", "--resume", "maybe"], "--resume: 'maybe' is not one of must, allow, never"),
        (["--id", "no such", "--param", "x=1"], "run id 'no such' is not valid: use 1 to 64 of A-Z a-z 0-9 _ -"),
        (["--id", "ghost", "--resume", "must"], "run 'ghost' does not exist, and --resume must resumes only an"),
        (["--id", "known", "--param", "x=1"], "run 'known' exists already, and --resume never (the default) never"),
        (["--param", "x=" + "[" * 900 + "]" * 900], "--param x: nested deeper than 64 levels"),
        (["--param", "x=" + "[" * 30_000 + "]" * 30_000], "--param x: nested deeper than 64 levels"),
        (["--param", "x=" + '{"a":' * 65 + "1" + "}" * 65], "--param x: nested deeper than 64 levels"),
    ],
)
def test_every_mistake_is_one_line_exit_2_and_nothing_stored(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis, args: list[str], message: str
) -> None:
    sid = _sweep(tmp_path, cli_env)
    assert run_sweepd("enqueue", sid, "--id", "known", "--param", "x=2", env=cli_env).returncode == 0
    before = {k: r.dump(k) for k in r.keys("*")}
    done = run_sweepd("enqueue", sid, *args, env=cli_env)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("sweepd: error: " + message.format(sid=sid))
    assert {k: r.dump(k) for k in r.keys("*")} == before


def test_enqueue_warns_outside_the_space_and_keeps_a_known_run_s_params(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis
) -> None:
    sid = _sweep(tmp_path, cli_env)
    done = run_sweepd("enqueue", sid, "--id", "a", "--param", "x=7", env=cli_env)
    assert done.returncode == 0
    assert done.stderr == f"sweepd: warning: x=7 is outside sweep {sid}'s search space (values: 1, 2)\n"
    assert done.stdout == f"run a enqueued at the back of sweep {sid}'s queue (a new run)\n"
    assert run_sweepd("enqueue", sid, "--id", "b", "--param", "x=1", "--front", env=cli_env).returncode == 0
    assert r.lrange(keys.rq_queue(sid), 0, -1) == [b"b", b"a"]
    moved = run_sweepd("enqueue", sid, "--id", "a", "--resume", "allow", "--front", env=cli_env)
    assert moved.stdout == f"run a moved to the front of sweep {sid}'s queue (attempt 1)\n"
    assert r.lrange(keys.rq_queue(sid), 0, -1) == [b"a", b"b"]
    runs = {x["id"]: x for x in json.loads(run_sweepd("runs", sid, "--json", env=cli_env).stdout)}
    assert runs["a"]["params"] == {"x": 7} and runs["a"]["origin"] == "enqueue" and runs["a"]["attempt"] == 0
    other = _sweep(tmp_path, cli_env)
    done = run_sweepd("enqueue", other, "--id", "a", "--resume", "allow", env=cli_env)
    assert done.returncode == 2 and f"run 'a' belongs to sweep '{sid}', not '{other}'" in done.stderr
