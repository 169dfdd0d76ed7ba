"""Read a W&B sweep config (YAML or JSON) and validate it into a ``SweepConfig``.

sweepd follows W&B's schema (wandb/sweeps ``src/sweeps/config/schema.json``) and the wandb client's
checks, and departs from them on purpose in three ways:

- It refuses what W&B accepts but cannot run well: ``method: custom`` (sweepd is the scheduler),
  unknown command macros (W&B expands them to nothing), legacy exponent bounds that overflow.
  W&B's cloud-only keys (``entity``, ``job``, ...) are accepted and ignored, with a note.
- It takes one key of its own, ``stdout_metrics`` (how the agent reads metrics from printed lines,
  see rows.py); W&B's configs never have it and validate unchanged.
- It reports every problem at once, one line each starting with its key path, with a hint where
  W&B's message would be cryptic (``1e-5`` read as text by YAML 1.1, a typo in a key).

Pure apart from ``load_config`` reading the file. The text's parsing (YAML or JSON, one-line parse
errors) is parsing.py's; ``parse_text`` is re-exported here. ``SweepConfig.raw`` is plain JSON data, so
a stored config validates again, to an equal ``SweepConfig``, on any machine.
"""

from __future__ import annotations

import datetime
import io
import math
import os
import re
from collections.abc import Collection
from typing import Any, Literal

from . import rows, schedulers
from .errors import ConfigError
from .params import KeyPath, Report, did_you_mean, is_number, number, unknown_keys, validate_parameters
from .parsing import MAX_CONFIG_BYTES, TOO_LARGE
from .parsing import parse_text as parse_text  # re-exported: callers import it from here
from .search import hyperband
from .space import EarlyTerminate, Goal, Method, Metric, Pbt, SweepConfig

# fmt: off
_MACRO_ORDER = ("${env}", "${interpreter}", "${program}", "${args}", "${args_no_equals}",
                "${args_no_hyphens}", "${args_no_boolean_flags}", "${args_json}", "${args_json_file}",
                "${args_append_hydra}", "${args_override_hydra}")
#: Macros that must be a whole ``command`` item: each expands to zero or more argv items.
WHOLE_MACROS: frozenset[str] = frozenset(_MACRO_ORDER)
#: ``${envvar:NAME}``, substituted anywhere inside an item.
ENVVAR_MACRO = re.compile(r"\$\{envvar:([A-Za-z_][A-Za-z0-9_]*)\}")
#: The agent's own variables: how it reaches Redis, password included. Never handed to a run, so
#: ``${envvar:...}`` of one is refused when the sweep is created and again at expansion.
AGENT_ONLY_ENV = (
    "SWEEPD_REDIS_URL",
    "SWEEPD_REDIS_URL_FILE",
    "SWEEPD_REDIS_URL_FD",
    "SWEEPD_SENTINEL_PASSWORD",
)


def agent_only(name: str) -> str | None:
    """Why ``${envvar:name}`` is refused, or None when it may be used."""
    if name in AGENT_ONLY_ENV:
        return f"${{envvar:{name}}} is the agent's own (how it reaches Redis, password included): never passed to a run"
    return None


#: Anything that looks like a macro; what is neither of the above is refused.
MACRO = re.compile(r"\$\{[^}]*\}")

_METHODS: dict[str, Method] = {"grid": "grid", "random": "random", "bayes": "bayes", "pbt": "pbt"}
_GOALS: dict[str, Goal] = {"minimize": "minimize", "maximize": "maximize"}
Impute = Literal["worst", "best", "latest"]
_IMPUTES: dict[str, Impute] = {"worst": "worst", "best": "best", "latest": "latest"}
_KEYS = ("method", "metric", "parameters", "early_terminate", "run_cap", "command", "program", "name",
         "description", "stdout_metrics", "pbt")
# fmt: on
#: Keys W&B's schema allows that mean nothing to sweepd: accepted, ignored, noted.
_IGNORED = {
    "entity": "a W&B cloud setting",
    "project": "a W&B cloud setting",
    "job": "W&B Launch only",
    "image_uri": "W&B Launch only",
    "scheduler": "W&B Launch only; sweepd schedules the runs itself",
    "controller": "sweepd is the controller",
    "apiVersion": "W&B metadata",
    "kind": "W&B metadata",
}
_METRIC_KEYS = ("name", "goal", "target", "impute", "impute_while_running")
_HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")


def load_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read, parse and validate a config file; every failure is a ``ConfigError`` naming the file.

    At most ``MAX_CONFIG_BYTES`` + 1 bytes are read, so a huge file (or ``/dev/zero``) is refused at
    once; the bytes are then decoded as ``open`` in text mode would (BOM, universal newlines).
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError([TOO_LARGE], source)
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig").read()
    except UnicodeDecodeError as e:
        raise ConfigError([f"cannot read it: not UTF-8 text (byte {e.start})"], source) from None
    except OSError as e:
        raise ConfigError([f"cannot read it: {e.strerror or e}"], source) from None
    return validate(parse_text(text, source), source)


def validate(raw: dict[str, Any], source: str = "") -> SweepConfig:
    """Check a parsed config against W&B's rules and sweepd's; one ``ConfigError`` holds every problem."""
    report = Report()
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): expected a mapping of sweep keys, got {raw!r:.60}"], source)
    plain: dict[str, Any] = _plain(report, (), raw, ())
    wrapped = False  # a sweep nested under another key: one line says so, not one per missing key
    for key, value in plain.items():
        if key in _IGNORED:
            _ignored(report, key, value)
        elif key == "metrics":
            report.problem(
                (key,),
                "multi-objective metrics need a W&B custom scheduler; sweepd optimises "
                "one metric (write metric: {name: ..., goal: ...})",
            )
        elif isinstance(key, str) and key not in _KEYS:
            if isinstance(value, dict) and ("method" in value or "parameters" in value):
                wrapped = True
                report.problem((key,), "unknown key; it holds a sweep config: move its keys to the top level")
            else:
                unknown_keys(report, (), {key: value}, (*_KEYS, *_IGNORED))
    method = _method(report, plain, wrapped)
    metric = _metric(report, plain["metric"]) if "metric" in plain else None
    if "parameters" in plain:
        params = validate_parameters(report, plain["parameters"], method)
    else:
        if not wrapped:
            report.problem(("parameters",), "missing (the parameters to search)")
        params = ()
    early = _early_terminate(report, plain["early_terminate"]) if "early_terminate" in plain else None
    if plain.get("metric") is None and method == "bayes":
        report.problem(("metric",), "missing: bayes needs a metric to optimise")
    if plain.get("metric") is None and early is not None:
        report.problem(("early_terminate",), f"{early.type} needs a metric to compare runs: add metric")
    pbt = _pbt(report, plain, method, early)
    run_cap = None
    if "run_cap" in plain:
        cap = number(report, ("run_cap",), plain["run_cap"], integer=True)
        if cap is not None and cap < 1:
            report.problem(("run_cap",), f"must be at least 1, got {cap!r}")
        run_cap = int(cap) if cap is not None else None
    name, description, program = (_text(report, plain, key) for key in ("name", "description", "program"))
    names = plain["parameters"] if isinstance(plain.get("parameters"), dict) else ()
    command = _command(report, plain["command"], program, names) if "command" in plain else None
    stdout_metrics, problem = rows.config_pattern(plain.get("stdout_metrics", True))  # sweepd's own key
    if problem:
        report.problem(("stdout_metrics",), problem)
    if program is None and "program" not in plain and "command" not in plain:
        report.note(("program",), "missing: the default command runs ${program}, so give program or command")
    if report.problems or method is None or not params:
        raise ConfigError(report.problems, source)
    return SweepConfig(
        method=method,
        params=params,
        raw=plain,
        metric=metric,
        early_terminate=early,
        run_cap=run_cap,
        program=program,
        command=command,
        name=name,
        description=description,
        stdout_metrics=stdout_metrics,
        notes=tuple(report.notes),
        pbt=pbt,
    )


def _pbt(report: Report, plain: dict[str, Any], method: Method | None, early: EarlyTerminate | None) -> Pbt | None:
    """``method: pbt`` takes a ``pbt:`` block (schedulers.py), a metric, and no early_terminate."""
    if method != "pbt":
        if "pbt" in plain:
            report.problem(("pbt",), "only with method: pbt")
        return None
    if "pbt" not in plain:
        report.problem(("pbt",), "missing: method pbt needs pbt: {population, interval, steps}")
        return None
    if plain.get("metric") is None:
        report.problem(("metric",), "missing: pbt needs a metric to rank its members")
    if early is not None:
        report.problem(("early_terminate",), "does not go with method: pbt (pbt decides at every interval)")
    if "run_cap" in plain:
        report.problem(("run_cap",), "does not go with method: pbt (its runs are pbt.population members' generations)")
    return schedulers.pbt_block(report, plain["pbt"])


def _plain(report: Report, path: KeyPath, obj: Any, ancestors: tuple[int, ...]) -> Any:
    """A copy of ``obj`` that is plain JSON data (tuples become lists); report what cannot be."""
    if isinstance(obj, (dict, list, tuple)) and id(obj) in ancestors:
        report.problem(path, "contains itself (a recursive YAML alias)")
        return None
    inner = (*ancestors, id(obj))
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, str):
                why = " (YAML 1.1 reads yes/no/on/off as booleans)" if isinstance(key, bool) else ""
                report.problem((*path, repr(key)), f"keys must be text{why}: quote it")
        return {k: _plain(report, (*path, k if isinstance(k, str) else repr(k)), v, inner) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(report, (*path, i), value, inner) for i, value in enumerate(obj)]
    if obj is None or isinstance(obj, (str, bool, int)) or (isinstance(obj, float) and math.isfinite(obj)):
        return obj
    if isinstance(obj, float):
        report.problem(path, f"{obj!r} cannot be stored as JSON: use a finite number")
    elif isinstance(obj, datetime.date):
        report.problem(path, f"YAML read {obj} as a date: quote it ('{obj}') to keep it as text")
    else:
        report.problem(path, f"a YAML {type(obj).__name__} cannot be stored as JSON")
    return obj


def _ignored(report: Report, key: str, value: Any) -> None:
    """Cloud-only keys: checked as W&B's schema would, then noted as ignored."""
    if key == "controller":
        kind = value.get("type") if isinstance(value, dict) else None
        if kind not in ("cloud", "local"):
            report.problem(("controller", "type"), f"expected cloud or local, got {kind!r}")
            return
    elif key == "kind" and value != "sweep":
        report.problem((key,), f"expected sweep, got {value!r}")
        return
    elif key != "scheduler" and not isinstance(value, str):
        report.problem((key,), f"expected text, got {value!r}")
        return
    report.note((key,), f"ignored ({_IGNORED[key]})")


def _method(report: Report, raw: dict[str, Any], wrapped: bool) -> Method | None:
    if "method" not in raw:
        if not wrapped:
            report.problem(("method",), "missing (grid, random or bayes)")
        return None
    method = raw["method"]
    if isinstance(method, str) and method in _METHODS:
        return _METHODS[method]
    if method == "custom":
        report.problem(("method",), "custom needs a W&B custom scheduler; sweepd runs grid, random and bayes itself")
    else:
        report.problem(
            ("method",),
            f"{method!r} is not one of grid, random, bayes or pbt{did_you_mean(method, tuple(_METHODS))}",
        )
    return None


def _metric(report: Report, spec: Any) -> Metric | None:
    """``metric``; an empty ``metric:`` means no metric, as a missing one would."""
    where: KeyPath = ("metric",)
    if spec is None:
        report.note(where, "empty, so the sweep has no metric")
        return None
    if not isinstance(spec, dict):
        report.problem(where, f"expected a mapping such as {{name: {spec!r}, goal: minimize}}, got {spec!r}")
        return None
    before = len(report.problems)
    typos = unknown_keys(report, where, spec, _METRIC_KEYS)
    name = spec.get("name")
    if "name" not in spec:
        if not typos:  # a typo ("nmae") already explains it
            report.problem((*where, "name"), "missing (the name the runs log the metric under)")
    elif not isinstance(name, str) or not name:
        report.problem((*where, "name"), f"expected the metric's name as text, got {name!r}")
    goal = spec.get("goal", "minimize")
    if not isinstance(goal, str) or goal not in _GOALS:
        report.problem((*where, "goal"), f"{goal!r} is not minimize or maximize{did_you_mean(goal, _GOALS)}")
    target = number(report, (*where, "target"), spec["target"]) if "target" in spec else None
    impute = spec.get("impute", "worst")
    if not isinstance(impute, str) or impute not in _IMPUTES:
        report.problem(
            (*where, "impute"),
            f"{impute!r} is not worst, best or latest{did_you_mean(impute, ('worst', 'best', 'latest'))}",
        )
    running = spec.get("impute_while_running", False)
    if running == "false":  # W&B's schema spells false as a string
        running = False
    if not isinstance(running, bool):
        report.problem((*where, "impute_while_running"), f"expected true or false, got {running!r}")
    if len(report.problems) > before or not isinstance(name, str):
        return None
    return Metric(name=name, goal=_GOALS[goal], target=target, impute=_IMPUTES[impute], impute_while_running=running)


def _early_terminate(report: Report, spec: Any) -> EarlyTerminate | None:
    where: KeyPath = ("early_terminate",)
    if not isinstance(spec, dict):
        report.problem(where, f"expected a mapping such as {{type: hyperband, min_iter: 3}}, got {spec!r}")
        return None
    before = len(report.problems)
    if spec.get("type") == "asha":
        return schedulers.asha(report, spec)
    typos = unknown_keys(report, where, spec, _HYPERBAND_KEYS)
    if "type" not in spec:
        report.problem((*where, "type"), "missing (hyperband)")
    elif spec["type"] != "hyperband":
        report.problem(
            (*where, "type"),
            f"{spec['type']!r} is not supported: sweepd stops runs early with hyperband only (or its own asha)",
        )
        return None  # the other keys belong to that other kind
    counts: dict[str, int] = {}
    for key in ("min_iter", "max_iter", "s"):
        value = number(report, (*where, key), spec[key], integer=True) if key in spec else None
        if value is not None and value < 1:
            report.problem((*where, key), f"must be at least 1, got {value!r}")
        elif value is not None:
            counts[key] = int(value)
    if not ({"min_iter"} <= spec.keys() or {"max_iter", "s"} <= spec.keys() or typos):
        report.problem(where, "needs min_iter, or max_iter with s")
    eta = number(report, (*where, "eta"), spec["eta"]) if "eta" in spec else 3.0
    if eta is not None and eta <= 1:
        report.problem((*where, "eta"), f"must be greater than 1, got {eta!r}")
    strict = spec.get("strict", False)
    if not isinstance(strict, bool):
        report.problem((*where, "strict"), f"expected true or false, got {strict!r}")
    if len(report.problems) > before or eta is None:
        return None
    early = EarlyTerminate(
        type="hyperband",
        min_iter=counts.get("min_iter"),
        max_iter=counts.get("max_iter"),
        s=counts.get("s"),
        eta=eta,
        strict=strict,
    )
    try:
        hyperband.brackets(early)  # a config whose hyperband could never judge a run is a mistake
    except ValueError as exc:
        report.problem(where, str(exc))
        return None
    return early


def _text(report: Report, raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if isinstance(value, str):
        return value
    if key in raw:
        report.problem((key,), f"expected text, got {value!r}")
    return None


def _command(report: Report, spec: Any, program: str | None, names: Collection[object]) -> tuple[str, ...] | None:
    """``command`` as argv text (numbers become text, as W&B passes them), with its macros checked."""
    if not isinstance(spec, list) or not spec:
        hint = " (write one list item per argument)" if isinstance(spec, str) else ""
        report.problem(("command",), f"expected a non-empty list of arguments, got {spec!r}{hint}")
        return None
    items: list[str] = []
    for i, item in enumerate(spec):
        if isinstance(item, str) or is_number(item):
            items.append(str(item))
            _macros(report, ("command", i), str(item), program, names)
        else:
            report.problem(("command", i), f"expected text or a number, got {item!r}")
    if not any(item.startswith("${args") for item in items):
        report.note(("command",), "has no ${args...} macro, so the command line carries no parameters")
    return tuple(items)


def _macros(report: Report, where: KeyPath, item: str, program: str | None, names: Collection[object]) -> None:
    """Every ``${...}`` in one command item must be a macro W&B knows, used where W&B expands it."""
    for found in MACRO.finditer(item):
        macro = found.group(0)
        if (envvar := ENVVAR_MACRO.fullmatch(macro)) is not None:
            if (why := agent_only(envvar.group(1))) is not None:
                report.problem(where, why)
            continue
        if macro.startswith("${envvar:"):
            report.problem(where, f"{macro} does not name an environment variable (letters, digits and _)")
        elif macro not in WHOLE_MACROS and macro[2:-1] in names:
            report.problem(
                where,
                f"unknown macro {macro}: W&B would expand it to nothing, as parameters "
                "are not macros; ${args} (or a variant) passes them all as --name=value",
            )
        elif macro not in WHOLE_MACROS:
            report.problem(
                where,
                f"unknown macro {macro}: W&B would expand it to nothing (the macros are "
                f"{', '.join(_MACRO_ORDER)} and ${{envvar:NAME}})",
            )
        elif item != macro:
            report.problem(where, f"{macro} must be a list item of its own, not part of {item!r}")
        elif macro == "${program}" and program is None:
            report.problem(where, "${program} needs program: set it, or write the script in the command")
