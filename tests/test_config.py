"""sweepd.queue.config: W&B's verdicts on 78 real configs, then one test per rule.

Every refusal is checked for its shape as well as its cause: one line per problem, starting with the
key path, so that a user can find the line in their YAML.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sweepd.queue.config import ENVVAR_MACRO, MACRO, WHOLE_MACROS, load_config, parse_text, validate
from sweepd.queue.errors import ConfigError
from sweepd.queue.space import DISTRIBUTIONS, EarlyTerminate, Metric, Param, SweepConfig

CORPUS = Path(__file__).parent / "data" / "wandb-configs"

#: W&B gives no clear verdict on these; sweepd's choice, and why.
BORDERLINE: dict[str, tuple[bool, str]] = {
    "011": (True, "Launch-only keys (job, scheduler) are cloud settings: accepted, ignored, noted"),
    "034": (True, "number items in command become text, as W&B's agent passes them"),
    "035": (True, "number items in command become text, as W&B's agent passes them"),
    "073": (True, "JSON with a TAB is not YAML, so the JSON fallback reads it"),
    "077": (False, "legacy log_uniform max 1000: e^1000 overflows a float (W&B's backend failed with a 500)"),
}


def _verdicts() -> dict[str, str]:
    """File name -> the "expected" column of SOURCES.md (the last cell of each table row)."""
    rows: dict[str, str] = {}
    for line in (CORPUS / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if re.fullmatch(r"\d{3}-[\w.-]+\.yaml", cells[0]):
            rows[cells[0]] = cells[-1]
    return rows


VERDICTS = _verdicts()


def _expect_accepted(name: str) -> bool:
    verdict = VERDICTS[name]
    if verdict.startswith("borderline"):
        return BORDERLINE[name[:3]][0]
    if verdict.startswith(("invalid", "fragment")):
        return False
    assert verdict.startswith("valid"), verdict
    return True


def _round_trips(config: SweepConfig) -> bool:
    return validate(json.loads(json.dumps(config.raw))) == config


def test_corpus_lists_every_file_once() -> None:
    files = {p.name for p in CORPUS.glob("*.yaml")}
    assert len(files) == 78
    assert set(VERDICTS) == files
    assert {n[:3] for n, v in VERDICTS.items() if v.startswith("borderline")} == set(BORDERLINE)


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_corpus_verdict(name: str) -> None:
    """sweepd agrees with W&B on every real config (and makes a choice on the borderline ones)."""
    if not _expect_accepted(name):
        with pytest.raises(ConfigError) as caught:
            load_config(CORPUS / name)
        assert caught.value.problems
        assert all(p and "\n" not in p and ": " in p for p in caught.value.problems)
        return
    config = load_config(CORPUS / name)
    assert config.params
    assert _round_trips(config)
    if "deprecated" in VERDICTS[name]:
        assert any("log_uniform is deprecated" in n for n in config.notes)
    if "strings" in VERDICTS[name]:
        assert any("text, as in W&B" in n for n in config.notes)


def test_borderline_011_notes_launch_keys() -> None:
    config = load_config(CORPUS / "011-wandb-examples.yaml")
    assert "job: ignored (W&B Launch only)" in config.notes
    assert any(n.startswith("scheduler: ignored") for n in config.notes)
    assert config.run_cap == 10 and config.method == "grid"


@pytest.mark.parametrize(("name", "items"), [("034", ("14", "1")), ("035", ("38", "1", "500001"))])
def test_borderline_command_numbers_become_text(name: str, items: tuple[str, ...]) -> None:
    (path,) = CORPUS.glob(f"{name}-*.yaml")
    command = load_config(path).command
    assert command is not None and all(isinstance(i, str) for i in command)
    assert set(items) <= set(command)


def test_borderline_073_json_with_tab_falls_back_to_json() -> None:
    text = (CORPUS / "073-markovian-training.yaml").read_text(encoding="utf-8")
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)
    config = validate(parse_text(text, "073.yaml"))
    assert next(p for p in config.params if p.name == "lr").values == (1e-4,)  # a number, as JSON says


def test_borderline_077_refused_for_the_overflow() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(CORPUS / "077-wandb-issue-642.yaml")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("parameters.C.max: log_uniform bounds are natural-log exponents")


# --- parsing -------------------------------------------------------------------------------------


def test_json_source_is_parsed_as_json() -> None:
    text = '{"method": "grid", "lr": 1e-05}'
    assert parse_text(text, "sweep.json")["lr"] == 1e-05
    assert parse_text(text, "sweep.yaml")["lr"] == "1e-05"  # YAML 1.1, as the wandb CLI reads it


@pytest.mark.parametrize(
    ("text", "source", "where"),
    [
        ("method: [grid\n", "s.yaml", "line 2, column 1: not valid YAML"),
        ('{\n  "method": "grid",,\n}', "s.json", "line 2, column 20: not valid JSON"),
        ("# a comment\n- method: grid\n", "s.yaml", "line 2, column 1: expected a mapping"),
        ("", "s.yaml", "line 1, column 1: expected a mapping of sweep keys (method, ...), got nothing"),
        ("[1, 2]", "s.json", "line 1, column 1: expected a mapping"),
    ],
)
def test_parse_errors_are_one_line_with_position(text: str, source: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text(text, source)
    (problem,) = caught.value.problems
    assert problem.startswith(where)
    assert str(caught.value).startswith(f"{source}: line ")


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("method: random\nparameters:\n  lr: {min: 0.1, max: 0.5}\n", encoding="utf-8")
    assert load_config(path).params == (
        Param(path=("lr",), kind="distribution", distribution="uniform", min=0.1, max=0.5),
    )


@pytest.mark.parametrize("content", [None, b"method: \xff\xfe\n"])
def test_load_config_unreadable_is_one_line(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "sweep.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.startswith("cannot read it: ")
    assert str(caught.value).startswith(f"{path}: ")


# --- refusals: one line each, naming the key path -------------------------------------------------


def cfg(params: dict[Any, Any] | None = None, **top: Any) -> dict[Any, Any]:
    """A valid random sweep, with ``params`` and top-level keys replaced."""
    return {"method": "random", "parameters": params or {"x": {"values": [1, 2]}}, **top}


def problems(raw: dict[Any, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate(raw, "sweep.yaml")
    return caught.value.problems


HB = {"type": "hyperband", "min_iter": 3}
LOSS = {"name": "loss"}

REFUSALS: list[tuple[str, dict[Any, Any], str, str]] = [
    ("no method", {"parameters": {"x": {"value": 1}}}, "method", "missing (grid, random or bayes)"),
    ("custom", cfg(method="custom"), "method", "sweepd runs grid, random and bayes itself"),
    ("method typo", cfg(method="grdi"), "method", "did you mean 'grid'?"),
    ("top-level typo", cfg(metrc=LOSS), "metrc", "unknown key; did you mean 'metric'?"),
    ("wrapped sweep", {"sweep": cfg()}, "sweep", "it holds a sweep config: move its keys to the top level"),
    ("metrics", cfg(metrics=[LOSS, LOSS]), "metrics", "optimises one metric"),
    ("values: typo", cfg({"c": {"values:": [2, 10]}}), "parameters.c.'values:'", "did you mean 'values'?"),
    (
        "max typo",
        cfg({"x": {"distribution": "uniform", "min": 0.1, "mxa": 1.0}}),
        "parameters.x.mxa",
        "unknown key; did you mean 'max'?",
    ),
    ("goal maximum", cfg(metric={"name": "a", "goal": "maximum"}), "metric.goal", "did you mean 'maximize'?"),
    ("goal minimise", cfg(metric={"name": "a", "goal": "minimise"}), "metric.goal", "did you mean 'minimize'?"),
    ("metric typo", cfg(metric={"nmae": "a"}), "metric.nmae", "did you mean 'name'?"),
    ("metric name", cfg(metric={"goal": "minimize"}), "metric.name", "missing"),
    ("metric target", cfg(metric={"name": "a", "target": "0.9"}), "metric.target", "remove the quotes"),
    ("impute", cfg(metric={"name": "a", "impute": "mean"}), "metric.impute", "not worst, best or latest"),
    (
        "impute running",
        cfg(metric={"name": "a", "impute_while_running": "yes"}),
        "metric.impute_while_running",
        "expected true or false",
    ),
    ("metric text", cfg(metric="loss"), "metric", "expected a mapping such as {name: 'loss', goal: minimize}"),
    ("bayes metric", cfg(method="bayes"), "metric", "bayes needs a metric"),
    ("controller", cfg(controller={"type": "invalid"}), "controller.type", "expected cloud or local"),
    ("entity", cfg(entity=5), "entity", "expected text"),
    ("kind", cfg(kind="Sweep"), "kind", "expected sweep"),
    ("no parameters", {"method": "grid"}, "parameters", "missing"),
    ("empty parameters", {"method": "grid", "parameters": None}, "parameters", "non-empty mapping"),
    ("name pattern", cfg({"a/b": {"value": 1}}), "parameters.a/b", "must match"),
    ("name digit", cfg({"1x": {"value": 1}}), "parameters.1x", "must match"),
    ("not a mapping", cfg({"lr": 0.01}), "parameters.lr", "expected a mapping such as {value: 0.01}"),
    (
        "value and values",
        cfg({"x": {"value": 1, "values": [1]}}),
        "parameters.x",
        "values cannot be combined with value",
    ),
    (
        "values + uniform",
        cfg({"x": {"distribution": "uniform", "values": [0.2]}}),
        "parameters.x",
        "values cannot be combined with distribution 'uniform', which takes min and max",
    ),
    ("constant", cfg({"x": {"distribution": "constant"}}), "parameters.x.value", "missing"),
    ("categorical", cfg({"x": {"distribution": "categorical"}}), "parameters.x.values", "missing"),
    ("values scalar", cfg({"x": {"values": 5}}), "parameters.x.values", "for one value write value: 5"),
    ("values empty", cfg({"x": {"values": []}}), "parameters.x.values", "non-empty list"),
    (
        "categorical probs",
        cfg({"x": {"distribution": "categorical", "values": [1], "probabilities": [1]}}),
        "parameters.x",
        "or drop distribution",
    ),
    (
        "probs sum",
        cfg({"x": {"values": [1, 2], "probabilities": [0.5, 0.45]}}),
        "parameters.x.probabilities",
        "sum to 0.95, not 1",
    ),
    (
        "probs length",
        cfg({"x": {"values": [1, 2], "probabilities": [1.0]}}),
        "parameters.x.probabilities",
        "expected a list of 2 numbers, one per value, got 1 probabilities",
    ),
    (
        "probs negative",
        cfg({"x": {"values": [1, 2], "probabilities": [1.5, -0.5]}}),
        "parameters.x.probabilities[1]",
        "must not be negative",
    ),
    (
        "probs in grid",
        cfg({"x": {"values": [1, 2], "probabilities": [0.5, 0.5]}}, method="grid"),
        "parameters.x.probabilities",
        "grid search tries every value once",
    ),
    ("min > max", cfg({"lr": {"min": 0.3, "max": 0.1}}), "parameters.lr.min", "0.3 is not less than max 0.1"),
    (
        "min == max",
        cfg({"n": {"distribution": "int_uniform", "min": 2, "max": 2}}),
        "parameters.n.min",
        "2 is not less than max 2",
    ),
    (
        "int bounds",
        cfg({"n": {"distribution": "int_uniform", "min": 0.5, "max": 3}}),
        "parameters.n.min",
        "expected a whole number (int_uniform draws integers",
    ),
    ("bool bound", cfg({"n": {"min": True, "max": 3}}), "parameters.n.min", "expected a number, got True"),
    ("mixed bounds", cfg({"t": {"min": 0, "max": 0.6}}), "parameters.t", "mix an integer and a float"),
    ("min alone", cfg({"t": {"min": 0.1}}), "parameters.t.max", "missing (min is given"),
    ("no form", cfg({"t": {"mu": 1}}), "parameters.t", "expected value, values, min and max, or a distribution"),
    (
        "distribution typo",
        cfg({"t": {"distribution": "loguniform", "min": 1, "max": 2}}),
        "parameters.t.distribution",
        "unknown distribution 'loguniform'; did you mean 'log_uniform'?",
    ),
    (
        "q",
        cfg({"t": {"distribution": "q_uniform", "min": 1, "max": 9, "q": 0}}),
        "parameters.t.q",
        "must be greater than 0",
    ),
    ("sigma", cfg({"t": {"distribution": "normal", "sigma": 0}}), "parameters.t.sigma", "greater than 0"),
    ("beta a", cfg({"t": {"distribution": "beta", "a": -1}}), "parameters.t.a", "greater than 0"),
    (
        "log min",
        cfg({"t": {"distribution": "log_uniform_values", "min": 0, "max": 1}}),
        "parameters.t.min",
        "log_uniform_values needs min > 0",
    ),
    (
        "overflow",
        cfg({"t": {"distribution": "q_log_uniform", "min": 1, "max": 1000.0}}),
        "parameters.t.max",
        "e^1000.0 does not fit in a float",
    ),
    (
        "nested extra",
        cfg({"opt": {"parameters": {"lr": {"value": 1}}, "value": 2}}),
        "parameters.opt",
        "cannot be combined with value",
    ),
    (
        "nested path",
        cfg({"opt": {"parameters": {"lr": {"min": 0.3, "max": 0.1}}}}),
        "parameters.opt.parameters.lr.min",
        "is not less than max",
    ),
    ("nested empty", cfg({"opt": {"parameters": {}}}), "parameters.opt.parameters", "non-empty mapping"),
    (
        "grid normal",
        cfg({"t": {"distribution": "normal"}}, method="grid"),
        "parameters.t",
        "grid search cannot enumerate distribution 'normal'",
    ),
    (
        "grid inferred",
        cfg({"t": {"min": 0.1, "max": 0.2}}, method="grid"),
        "parameters.t",
        "grid search cannot enumerate distribution 'uniform'",
    ),
    (
        "envelope",
        cfg(metric=LOSS, early_terminate={"type": "envelope"}),
        "early_terminate.type",
        "sweepd stops runs early with hyperband only",
    ),
    (
        "no iterations",
        cfg(metric=LOSS, early_terminate={"type": "hyperband", "eta": 2}),
        "early_terminate",
        "needs min_iter, or max_iter with s",
    ),
    (
        "max_iter no s",
        cfg(metric=LOSS, early_terminate={"type": "hyperband", "max_iter": 27}),
        "early_terminate",
        "needs min_iter, or max_iter with s",
    ),
    (
        "hyperband typo",
        cfg(metric=LOSS, early_terminate={"type": "hyperband", "min_iters": 3}),
        "early_terminate.min_iters",
        "did you mean 'min_iter'?",
    ),
    (
        "min_iter 0",
        cfg(metric=LOSS, early_terminate={**HB, "min_iter": 0}),
        "early_terminate.min_iter",
        "must be at least 1",
    ),
    (
        "s float",
        cfg(metric=LOSS, early_terminate={"type": "hyperband", "max_iter": 9, "s": 1.5}),
        "early_terminate.s",
        "expected a whole number",
    ),
    ("eta", cfg(metric=LOSS, early_terminate={**HB, "eta": 1}), "early_terminate.eta", "greater than 1"),
    (
        "strict",
        cfg(metric=LOSS, early_terminate={**HB, "strict": "yes"}),
        "early_terminate.strict",
        "expected true or false",
    ),
    ("type missing", cfg(metric=LOSS, early_terminate={"min_iter": 3}), "early_terminate.type", "missing (hyperband)"),
    ("hyperband metric", cfg(early_terminate=HB), "early_terminate", "hyperband needs a metric"),
    ("run_cap 0", cfg(run_cap=0), "run_cap", "must be at least 1"),
    ("run_cap text", cfg(run_cap="10"), "run_cap", "expected a number, got the string '10'"),
    ("name", cfg(name=5), "name", "expected text, got 5"),
    ("program", cfg(program=["a.py"]), "program", "expected text"),
    ("command text", cfg(command="python train.py"), "command", "write one list item per argument"),
    ("command bool", cfg(command=["python", "t.py", True]), "command[2]", "expected text or a number"),
    (
        "param macro",
        cfg({"lr": {"value": 1}}, command=["${env}", "python", "t.py", "--lr=${lr}"]),
        "command[3]",
        "unknown macro ${lr}: W&B would expand it to nothing, as parameters are not macros",
    ),
    ("unknown macro", cfg(command=["python", "${foo}"]), "command[1]", "unknown macro ${foo}"),
    (
        "embedded macro",
        cfg(command=["python", "--config=${args_json}"]),
        "command[1]",
        "${args_json} must be a list item of its own, not part of '--config=${args_json}'",
    ),
    ("envvar name", cfg(command=["python", "x/${envvar:1X}"]), "command[1]", "does not name an environment variable"),
    ("program macro", cfg(command=["python", "${program}"]), "command[1]", "${program} needs program"),
    (
        "date",
        cfg({"d": {"value": datetime.date(2024, 1, 2)}}),
        "parameters.d.value",
        "YAML read 2024-01-02 as a date: quote it ('2024-01-02')",
    ),
    ("nan", cfg({"d": {"values": [1.0, float("nan")]}}), "parameters.d.values[1]", "cannot be stored as JSON"),
    ("bool key", cfg({True: {"value": 1}}), "parameters.True", "keys must be text (YAML 1.1 reads yes/no"),
]


@pytest.mark.parametrize(("raw", "path", "fragment"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusal_is_one_line_naming_its_key_path(raw: dict[Any, Any], path: str, fragment: str) -> None:
    (problem,) = problems(raw)
    assert problem.startswith(f"{path}: ")
    assert fragment in problem


def test_string_bound_hint_is_exact() -> None:
    raw = cfg({"lr": {"distribution": "log_uniform_values", "min": "5e-4", "max": 0.1}})
    assert problems(raw) == [
        "parameters.lr.min: expected a number, got the string '5e-4' "
        "(YAML 1.1 reads 5e-4 without a dot as text: write 5.0e-4)"
    ]


def test_grid_over_uniform_is_exact() -> None:
    raw = cfg({"lr": {"distribution": "uniform", "min": 0.1, "max": 0.2}}, method="grid")
    assert problems(raw) == [
        "parameters.lr: grid search cannot enumerate distribution 'uniform' (use values, int_uniform or q_uniform)"
    ]


def test_every_problem_is_collected() -> None:
    raw = {
        "method": "grdi",
        "metric": {"name": "a", "goal": "up"},
        "parameters": {"lr": {"min": 0.3, "max": 0.1}, "b": {"values": []}},
        "command": ["${nope}"],
    }
    found = problems(raw)
    assert [p.split(": ")[0] for p in found] == [
        "method",
        "metric.goal",
        "parameters.lr.min",
        "parameters.b.values",
        "command[0]",
    ]
    with pytest.raises(ConfigError) as caught:
        validate(raw, "sweep.yaml")
    assert all(line.startswith("sweep.yaml: ") for line in str(caught.value).splitlines())


# --- what an accepted config holds ---------------------------------------------------------------


def one(spec: dict[str, Any], method: str = "random") -> Param:
    (param,) = validate(cfg({"p": spec}, method=method)).params
    return param


def test_min_max_without_distribution_infers_as_w_and_b() -> None:
    assert one({"min": 1, "max": 5}) == Param(("p",), "distribution", distribution="int_uniform", min=1, max=5)
    assert one({"min": 0.1, "max": 0.5}).distribution == "uniform"
    assert one({"distribution": "uniform", "min": 0, "max": 0.6}).max == 0.6  # file 005: explicit is fine
    assert isinstance(one({"min": 1, "max": 5}).min, int)


def test_defaults_are_filled_in() -> None:
    normal = one({"distribution": "normal"})
    assert (normal.mu, normal.sigma, normal.q) == (0.0, 1.0, 1.0)
    assert (one({"distribution": "beta"}).a, one({"distribution": "beta"}).b) == (1.0, 1.0)
    assert one({"distribution": "q_uniform", "min": 0, "max": 10}).q == 1.0
    given_ = one({"distribution": "q_log_normal", "mu": 2, "sigma": 3, "q": 10})
    assert (given_.mu, given_.sigma, given_.q) == (2, 3, 10)
    config = validate(cfg(metric=LOSS, early_terminate=HB))
    assert config.metric == Metric(name="loss", goal="minimize", target=None, impute="worst")
    assert config.early_terminate == EarlyTerminate(type="hyperband", min_iter=3, eta=3.0, strict=False)


def test_grid_accepts_what_it_can_enumerate() -> None:
    for spec in (
        {"value": 1},
        {"values": [1, 2]},
        {"min": 1, "max": 3},
        {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25},
    ):
        assert one(spec, method="grid").path == ("p",)


def test_probabilities_come_out_as_floats() -> None:
    param = one({"values": ["a", "b"], "probabilities": [1, 0]})
    assert param == Param(("p",), "categorical", values=("a", "b"), probabilities=(1.0, 0.0))


def test_nested_parameters_keep_order_and_paths() -> None:
    raw = cfg(
        {
            "batch": {"values": [32, 64]},
            "opt": {"parameters": {"lr": {"values": [0.1]}, "nadam": {"parameters": {"beta": {"value": 0.9}}}}},
            "a.b": {"value": 1},
        }
    )
    assert [p.path for p in validate(raw).params] == [("batch",), ("opt", "lr"), ("opt", "nadam", "beta"), ("a.b",)]


def test_numbers_yaml_reads_as_text_stay_text_with_a_note() -> None:
    config = validate(parse_text("method: random\nprogram: t.py\nparameters:\n  decay:\n    values: [1e-5, 1.0e-6]\n"))
    assert config.params[0].values == ("1e-5", 1e-6)
    assert config.notes == (
        "parameters.decay.values: '1e-5' is text, as in W&B (YAML 1.1 reads it so); for a number write 1.0e-5",
    )


def test_legacy_log_uniform_is_accepted_with_a_note() -> None:
    config = validate(cfg({"lr": {"distribution": "log_uniform", "min": -11, "max": -2}}))
    assert config.params[0].distribution == "log_uniform"
    assert config.notes[0].startswith("parameters.lr: log_uniform is deprecated")


def test_cloud_keys_are_ignored_with_notes() -> None:
    config = validate(
        cfg(
            entity="me",
            project="p",
            job="j:latest",
            image_uri="img",
            controller={"type": "local"},
            scheduler={"num_workers": 8},
            program="t.py",
        )
    )
    assert [n.split(":")[0] for n in config.notes] == [
        "entity",
        "project",
        "job",
        "image_uri",
        "controller",
        "scheduler",
    ]


def test_empty_metric_means_no_metric() -> None:
    config = validate(parse_text("method: random\nmetric:\nparameters: {x: {value: 1}}\nprogram: t.py\n"))
    assert config.metric is None
    assert config.notes == ("metric: empty, so the sweep has no metric",)


def test_metric_and_hyperband_values_are_kept() -> None:
    config = validate(
        cfg(
            metric={
                "name": "acc",
                "goal": "maximize",
                "target": 0.9,
                "impute": "best",
                "impute_while_running": "false",
            },
            early_terminate={"type": "hyperband", "max_iter": 27, "s": 2, "eta": 2.5, "strict": True},
        )
    )
    assert config.metric == Metric("acc", "maximize", 0.9, "best", False)
    assert config.early_terminate == EarlyTerminate("hyperband", None, 27, 2, 2.5, True)


def test_command_items_and_macros() -> None:
    items = [*sorted(WHOLE_MACROS), "x/${envvar:HOME}/${envvar:lower_ok}", 14, 0.5]
    config = validate(cfg(command=items, program="t.py"))
    assert config.command == (*sorted(WHOLE_MACROS), "x/${envvar:HOME}/${envvar:lower_ok}", "14", "0.5")
    assert ENVVAR_MACRO.findall("a${envvar:A_1}b${envvar:B}") == ["A_1", "B"]
    assert MACRO.findall("${a}-${b c}") == ["${a}", "${b c}"]
    assert "${args_json_file}" in WHOLE_MACROS and len(WHOLE_MACROS) == 11
    assert {"${args_append_hydra}", "${args_override_hydra}"} <= WHOLE_MACROS  # W&B's agent expands them


def test_raw_is_a_json_copy_that_validates_to_an_equal_config() -> None:
    raw = cfg(
        {
            "lr": {"distribution": "log_uniform", "min": -9, "max": -1},
            "arch": {"values": [[32, 32], (8, 8)]},
            "opt": {"parameters": {"m": {"values": ["1e-3", None, True], "probabilities": [0.2, 0.3, 0.5]}}},
        },
        metric=LOSS,
        early_terminate=HB,
        command=["${env}", 3, "${args}"],
        project="p",
        run_cap=4,
    )
    config = validate(raw)
    assert config.raw["parameters"]["arch"]["values"][1] == [8, 8]  # a tuple became a JSON list
    raw["parameters"]["lr"]["min"] = -5
    assert config.raw["parameters"]["lr"]["min"] == -9  # a copy, not the caller's dict
    assert _round_trips(config)
    assert json.loads(json.dumps(config.raw)) == config.raw


# --- robustness: anything JSON-shaped gives a SweepConfig or a ConfigError ------------------------

KEYS = [
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "command",
    "run_cap",
    "program",
    "name",
    "x",
    "value",
    "values",
    "probabilities",
    "distribution",
    "min",
    "max",
    "mu",
    "sigma",
    "q",
    "a",
    "b",
    "type",
    "min_iter",
    "max_iter",
    "s",
    "eta",
    "strict",
    "goal",
    "impute",
    "controller",
    "scheduler",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "grid",
            "random",
            "bayes",
            "uniform",
            "int_uniform",
            "q_uniform",
            "log_uniform",
            "normal",
            "beta",
            "hyperband",
            "minimize",
            "${args}",
            "--a=${args}",
            "${x}",
            "1e-5",
        ]
    ),
)
TREES = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(KEYS), kids, max_size=4),
    max_leaves=20,
)


NUMBERS = st.integers(-5, 50) | st.floats(-5, 50)
PARAM_SPECS = st.one_of(
    st.fixed_dictionaries({"value": SCALARS}),
    st.fixed_dictionaries({"values": st.lists(SCALARS, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"min": NUMBERS, "max": NUMBERS}),
    st.fixed_dictionaries(
        {"distribution": st.sampled_from(DISTRIBUTIONS), "min": NUMBERS, "max": NUMBERS}, optional={"q": NUMBERS}
    ),
    st.fixed_dictionaries(
        {"distribution": st.sampled_from(["normal", "q_log_normal", "beta", "q_beta"])},
        optional={"mu": NUMBERS, "sigma": NUMBERS, "a": NUMBERS, "b": NUMBERS, "q": NUMBERS},
    ),
)
CONFIGS = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["grid", "random", "bayes"]),
        "parameters": st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9_]{0,4}", fullmatch=True), PARAM_SPECS, min_size=1, max_size=3
        ),
    },
    optional={
        "metric": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=3)}),
        "command": st.lists(SCALARS, max_size=3),
        "run_cap": st.integers(-1, 5),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), TREES, max_size=6) | CONFIGS)
def test_any_input_is_accepted_or_refused_cleanly(raw: dict[str, Any]) -> None:
    try:
        config = validate(raw)
    except ConfigError as e:
        assert e.problems and all("\n" not in p and ": " in p for p in e.problems)
    else:
        assert len(config.params) == len(raw["parameters"])
        assert _round_trips(config)
