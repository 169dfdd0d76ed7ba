"""Expand a sweep's ``command`` into the argv list an agent executes. Pure: no I/O, and never a shell.

Follows wandb's agent: wandb/wandb_agent.py (Agent._command_run) and wandb/sdk/launch/sweeps/utils.py.

W&B's rules, kept so that scripts written for ``wandb agent`` parse the same argv here:

- A list item is a macro only when the *whole* item is ``${name}``; it expands to zero or more items.
  Anything else passes through as one item, except that ``${envvar:NAME}`` (NAME a variable name)
  is substituted anywhere inside an item.
- Params render in their own order with Python's ``str()``: ``True``/``False``/``None`` as is, floats
  as ``repr`` gives them (``1e-05``), and a nested dict or a list as its Python literal
  (``--opt={'lr': 0.1}``, ``--layers=[64, 32]``), not flattened to dotted keys. Each flag is one argv
  item, so spaces inside values need no quoting.

Stricter than W&B, which carries on silently: an unset environment variable (W&B substitutes its name)
and an unknown macro (W&B drops it) are ``ConfigError``s, as is ``${program}`` with no program. Unlike
W&B, an environment variable's value is never then read as a macro. ``${envvar:NAME}`` of one of the
agent's own variables (``AGENT_ONLY_ENV``: the Redis URL and its password) is refused: it would put
the password in argv, ``ps``, the agent's log and the run's kept output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .config import AGENT_ONLY_ENV as AGENT_ONLY_ENV  # re-exported: the agent scrubs these
from .config import ENVVAR_MACRO, agent_only
from .errors import ConfigError

#: W&B's default command, used when a sweep has none.
DEFAULT_COMMAND: tuple[str, ...] = ("${env}", "${interpreter}", "${program}", "${args}")

#: W&B's pattern: only upper-case letters, digits and underscores name a variable.
_ENVVAR = ENVVAR_MACRO  # one definition: what validation accepts is what expansion substitutes


def args(params: Mapping[str, Any]) -> list[str]:
    """``${args}``: one ``--k=v`` item per param."""
    return [f"--{k}={v}" for k, v in params.items()]


def args_no_equals(params: Mapping[str, Any]) -> list[str]:
    """``${args_no_equals}``: ``--k`` and ``v`` as two items, for parsers that want a separate value."""
    return [item for k, v in params.items() for item in (f"--{k}", f"{v}")]


def args_no_hyphens(params: Mapping[str, Any]) -> list[str]:
    """``${args_no_hyphens}``: ``k=v`` items, the form Hydra-style overrides take."""
    return [f"{k}={v}" for k, v in params.items()]


def args_append_hydra(params: Mapping[str, Any]) -> list[str]:
    """``${args_append_hydra}``: ``+k=v`` items, Hydra's "append to the config" (W&B's agent, 0.31)."""
    return [f"+{k}={v}" for k, v in params.items()]


def args_override_hydra(params: Mapping[str, Any]) -> list[str]:
    """``${args_override_hydra}``: ``++k=v`` items, Hydra's "append or override"."""
    return [f"++{k}={v}" for k, v in params.items()]


def args_no_boolean_flags(params: Mapping[str, Any]) -> list[str]:
    """``${args_no_boolean_flags}``: as ``${args}``, but True is a bare ``--k`` and False is omitted.

    This suits argparse's ``store_true`` flags, which take no value.
    """
    out: list[str] = []
    for k, v in params.items():
        if isinstance(v, bool):
            if v:
                out.append(f"--{k}")
        else:
            out.append(f"--{k}={v}")
    return out


def args_json(params: Mapping[str, Any]) -> list[str]:
    """``${args_json}``: the params as one JSON item (``json.dumps`` defaults, as W&B writes it)."""
    return [json.dumps(dict(params))]


#: The macros that render the params, by name.
_ARGS_MACROS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "args": args,
    "args_no_equals": args_no_equals,
    "args_no_hyphens": args_no_hyphens,
    "args_no_boolean_flags": args_no_boolean_flags,
    "args_json": args_json,
    "args_append_hydra": args_append_hydra,
    "args_override_hydra": args_override_hydra,
}


#: The agent's own environment: how it reaches Redis (and the password in that). Never handed to a
#: training process, neither in its environment (launch.py) nor through ``${envvar:...}``.
def _substitute_envvars(item: str, environ: Mapping[str, str], where: str, problems: list[str]) -> str:
    """Replace every ``${envvar:NAME}`` in ``item``; each unset NAME adds one line to ``problems``."""
    missing: list[str] = []

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        refused = agent_only(name)
        if refused is not None:
            problems.append(f"{where}: {refused}")
            return ""
        if name in environ:
            return environ[name]
        if name not in missing:
            missing.append(name)
        return m.group(0)

    out = _ENVVAR.sub(value, item)
    problems.extend(f"{where}: environment variable {name} is not set" for name in missing)
    return out


def expand(
    command: Sequence[str] | None,
    *,
    program: str | None,
    params: Mapping[str, Any],
    environ: Mapping[str, str],
    interpreter: str,
    params_file: str | None = None,
) -> list[str]:
    """Return the argv for one run: ``command`` (or ``DEFAULT_COMMAND``) with every macro expanded.

    ``params_file`` is where the caller writes the params as JSON; it is needed only when the command
    uses ``${args_json_file}``, and its absence then is the caller's bug (``ValueError``). Mistakes in
    the sweep itself (see the module docstring) are collected and raised together as one ``ConfigError``.
    """
    if isinstance(command, str):
        raise TypeError("command must be a list of strings, not one string")
    fixed: dict[str, list[str]] = {"env": ["/usr/bin/env"], "interpreter": [interpreter]}
    argv: list[str] = []
    problems: list[str] = []
    for i, raw in enumerate(DEFAULT_COMMAND if command is None else command):
        item = str(raw)  # as W&B does: YAML may give a number, such as an epoch count
        if _ENVVAR.search(item):
            argv.append(_substitute_envvars(item, environ, f"command[{i}]", problems))
            continue
        if not (item.startswith("${") and item.endswith("}")):
            argv.append(item)
            continue
        name = item[2:-1]
        if name in fixed:
            argv.extend(fixed[name])
        elif name in _ARGS_MACROS:
            argv.extend(_ARGS_MACROS[name](params))
        elif name == "program":
            if program is None:
                problem = "command: uses ${program} but the sweep has no program"
                if problem not in problems:
                    problems.append(problem)
            else:
                argv.append(program)
        elif name == "args_json_file":
            if params_file is None:
                raise ValueError("the command uses ${args_json_file}, so expand() needs params_file")
            argv.append(params_file)
        else:
            problems.append(f"command[{i}]: unknown macro {item}")
    if problems:
        raise ConfigError(problems)
    return argv
