"""Tests for sweepd.queue.command: W&B's command macros, rendered exactly as wandb's agent renders them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sweepd.queue.command import (
    DEFAULT_COMMAND,
    args,
    args_json,
    args_no_boolean_flags,
    args_no_equals,
    args_no_hyphens,
    expand,
)
from sweepd.queue.errors import ConfigError

PY = "python3"

#: Every kind of value a run's params can hold, in a deliberate (non-sorted) order.
PARAMS: dict[str, Any] = {
    "lr": 1e-05,
    "name": "two words",
    "flag": True,
    "off": False,
    "none": None,
    "epochs": 3,
    "opt": {"kind": "adam", "betas": [0.9, 0.99]},
    "layers": [64, 32],
}


def run(command: list[str] | None, params: dict[str, Any] | None = None, **kw: Any) -> list[str]:
    """Call expand() with harmless defaults, so each test states only what it is about."""
    kw.setdefault("program", "train.py")
    kw.setdefault("environ", {})
    kw.setdefault("interpreter", PY)
    return expand(command, params=PARAMS if params is None else params, **kw)


# -- the W&B cases, from wandb's own tests ------------------------------------------------------------


def test_wandb_case_bool_and_int_params() -> None:
    params = {"a": True, "b": False, "c": 1, "d": None}
    assert args(params) == ["--a=True", "--b=False", "--c=1", "--d=None"]
    assert args_no_hyphens(params) == ["a=True", "b=False", "c=1", "d=None"]
    assert args_no_boolean_flags(params) == ["--a", "--c=1", "--d=None"]
    assert args_json(params) == ['{"a": true, "b": false, "c": 1, "d": null}']


def test_wandb_case_envvars_inside_items() -> None:
    environ = {"FOO_DIR": "foo_dir", "FOO_DIR_TWO": "foo_dir_two", "FOO_VAR": "foo_var"}
    command = [
        "${env}",
        "${interpreter}",
        "--output_dir",
        "fake/path/${envvar:FOO_DIR}/${envvar:FOO_DIR}/${envvar:FOO_DIR_TWO}",
        "--foovar",
        "${envvar:FOO_VAR}",
    ]
    assert run(command, environ=environ) == [
        "/usr/bin/env",
        PY,
        "--output_dir",
        "fake/path/foo_dir/foo_dir/foo_dir_two",
        "--foovar",
        "foo_var",
    ]


# -- each macro ----------------------------------------------------------------------------------------


def test_default_command() -> None:
    assert DEFAULT_COMMAND == ("${env}", "${interpreter}", "${program}", "${args}")
    assert run(None, {"lr": 0.1, "bs": 32}) == ["/usr/bin/env", PY, "train.py", "--lr=0.1", "--bs=32"]
    assert run(None) == run(list(DEFAULT_COMMAND))


def test_env_interpreter_program() -> None:
    assert run(["${env}"]) == ["/usr/bin/env"]
    assert run(["${interpreter}"], interpreter="python3.12") == ["python3.12"]
    assert run(["${program}"], program="src/train model.py") == ["src/train model.py"]


def test_args() -> None:
    assert run(["${args}"]) == [
        "--lr=1e-05",
        "--name=two words",
        "--flag=True",
        "--off=False",
        "--none=None",
        "--epochs=3",
        "--opt={'kind': 'adam', 'betas': [0.9, 0.99]}",
        "--layers=[64, 32]",
    ]


def test_args_no_equals() -> None:
    assert run(["${args_no_equals}"], {"lr": 0.5, "name": "a b", "flag": False}) == [
        "--lr",
        "0.5",
        "--name",
        "a b",
        "--flag",
        "False",
    ]


def test_args_no_hyphens() -> None:
    assert run(["${args_no_hyphens}"], {"lr": 0.5, "opt": {"m": 0.9}}) == ["lr=0.5", "opt={'m': 0.9}"]


def test_args_no_boolean_flags() -> None:
    assert run(["${args_no_boolean_flags}"]) == [
        "--lr=1e-05",
        "--name=two words",
        "--flag",
        "--none=None",
        "--epochs=3",
        "--opt={'kind': 'adam', 'betas': [0.9, 0.99]}",
        "--layers=[64, 32]",
    ]
    # An int 0 or 1 is not a bool: it keeps its value.
    assert run(["${args_no_boolean_flags}"], {"a": 1, "b": 0}) == ["--a=1", "--b=0"]


def test_args_json_is_one_item_that_loads_back() -> None:
    argv = run(["${interpreter}", "${program}", "${args_json}"])
    assert len(argv) == 3
    assert json.loads(argv[2]) == PARAMS


def test_args_json_file_is_the_given_path() -> None:
    argv = run(["${program}", "--config", "${args_json_file}"], params_file="runs/abc/params.json")
    assert argv == ["train.py", "--config", "runs/abc/params.json"]


def test_args_json_file_without_a_path_is_the_callers_bug() -> None:
    with pytest.raises(ValueError, match="params_file"):
        run(["${args_json_file}"])


def test_empty_params_expand_to_nothing() -> None:
    for macro in ("args", "args_no_equals", "args_no_hyphens", "args_no_boolean_flags"):
        assert run(["${program}", "${" + macro + "}"], {}) == ["train.py"]
    assert run(["${args_json}"], {}) == ["{}"]


# -- argv items, never a shell --------------------------------------------------------------------------


def test_floats_and_spaces_stay_single_items() -> None:
    params = {"lr": 0.000123, "big": 1e21, "third": 1 / 3, "msg": "hello world; rm -rf ~", "q": 'it\'s "x"'}
    assert run(["${args}"], params) == [
        "--lr=0.000123",
        "--big=1e+21",
        "--third=0.3333333333333333",
        "--msg=hello world; rm -rf ~",
        '--q=it\'s "x"',
    ]


def test_plain_items_pass_through() -> None:
    command = ["bash", "-c", "echo $HOME", "${args} extra", "x${program}", "--epochs", "10"]
    assert run(command) == command


def test_non_string_items_are_stringified_like_wandb() -> None:
    assert run(["${program}", "--epochs", 10, 0.5]) == ["train.py", "--epochs", "10", "0.5"]  # type: ignore[list-item]


def test_envvar_value_is_never_read_as_a_macro() -> None:
    assert run(["${envvar:X}"], environ={"X": "${args}"}) == ["${args}"]


def test_lowercase_envvar_names_are_substituted_like_any_variable_name() -> None:
    # W&B substitutes [A-Z0-9_] names only; sweepd takes any name validation accepts.
    assert run(["--dir=${envvar:home}"], environ={"home": "/h"}) == ["--dir=/h"]


def test_a_string_command_is_refused() -> None:
    with pytest.raises(TypeError):
        run("${env} ${interpreter}")  # type: ignore[arg-type]


# -- the sweep's mistakes --------------------------------------------------------------------------------


def test_missing_program() -> None:
    with pytest.raises(ConfigError) as exc:
        run(["${interpreter}", "${program}", "${program}"], program=None)
    assert exc.value.problems == ["command: uses ${program} but the sweep has no program"]


def test_default_command_without_program() -> None:
    with pytest.raises(ConfigError, match="no program"):
        run(None, program=None)


def test_no_program_is_fine_when_unused() -> None:
    assert run(["${interpreter}", "-m", "pkg.train", "${args}"], {"a": 1}, program=None) == [
        PY,
        "-m",
        "pkg.train",
        "--a=1",
    ]


def test_missing_envvar() -> None:
    command = ["${env}", "${interpreter}", "${program}", "--out", "${envvar:FOO}"]
    with pytest.raises(ConfigError) as exc:
        run(command, environ={"BAR": "1"})
    assert exc.value.problems == ["command[4]: environment variable FOO is not set"]


def test_every_problem_is_reported_once() -> None:
    command = ["${program}", "a/${envvar:A}/${envvar:A}/${envvar:B}", "${envvar:A}"]
    with pytest.raises(ConfigError) as exc:
        run(command, program=None, environ={"B": "b"})
    assert exc.value.problems == [
        "command: uses ${program} but the sweep has no program",
        "command[1]: environment variable A is not set",
        "command[2]: environment variable A is not set",
    ]


def test_empty_envvar_value_is_substituted() -> None:
    assert run(["x${envvar:EMPTY}y"], environ={"EMPTY": ""}) == ["xy"]


@pytest.mark.parametrize("item", ["${argz}", "${envvar:9lives}", "${}", "${args} ${program}"])
def test_unknown_macro(item: str) -> None:
    with pytest.raises(ConfigError) as exc:
        run(["${env}", item])
    assert exc.value.problems == [f"command[1]: unknown macro {item}"]


def test_params_are_not_modified() -> None:
    params: dict[str, Any] = {"opt": {"lr": 0.1}, "layers": [1, 2]}
    before = json.dumps(params)
    for macro in ("args", "args_no_equals", "args_no_hyphens", "args_no_boolean_flags", "args_json"):
        run(["${" + macro + "}"], params)
    assert json.dumps(params) == before


def test_args_no_equals_helper_matches_expand() -> None:
    assert args_no_equals(PARAMS) == run(["${args_no_equals}"])


def test_the_hydra_macros_expand_as_wandbs_agent_expands_them() -> None:
    assert run(["${args_append_hydra}"], {"lr": 0.5, "opt": {"m": 0.9}}) == ["+lr=0.5", "+opt={'m': 0.9}"]
    assert run(["${args_override_hydra}"], {"lr": 0.5, "on": True}) == ["++lr=0.5", "++on=True"]
    sweep_utils = pytest.importorskip("wandb.sdk.launch.sweeps.utils")
    wandbs = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in PARAMS.items()}})
    for macro in ("args_append_hydra", "args_override_hydra", "args", "args_no_hyphens", "args_no_boolean_flags"):
        assert run([f"${{{macro}}}"], PARAMS) == wandbs[macro], macro


def test_the_hydra_macros_pass_validation() -> None:
    from sweepd.queue.config import validate

    body = {"method": "grid", "parameters": {"lr": {"value": 1}}}
    config = validate({**body, "command": ["${env}", "${interpreter}", "train.py", "${args_override_hydra}"]})
    assert config.command is not None and "${args_override_hydra}" in config.command
    assert validate({**body, "command": ["python", "train.py", "${args_append_hydra}"]}).command
