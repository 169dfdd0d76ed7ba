"""A sweep config's text to a mapping: YAML 1.1 as the wandb CLI reads it, JSON for ``.json``, pure.

Its own module because reading text is one concern apart from the rules (config.py): which parser,
and a parse error as one line with its line and column, before any key is looked at. config.py
re-exports ``parse_text``, so ``sweepd.queue.config`` stays the one import for callers.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from .errors import ConfigError


def parse_text(text: str, source: str = "") -> dict[str, Any]:
    """Parse a config's text: JSON for a ``.json`` source, else YAML 1.1 as the wandb CLI reads it.

    A YAML error in text that starts with ``{`` gets a second chance as JSON, since JSON indented with
    a TAB is not YAML. Raises ``ConfigError`` (one line with line and column) on a parse error or a top
    level that is not a mapping.
    """
    if source.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            problem = f"line {e.lineno}, column {e.colno}: not valid JSON: {e.msg}"
            raise ConfigError([problem], source) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            data = _json_fallback(text)
            if data is None:
                raise ConfigError([_yaml_problem(e)], source) from None
    if not isinstance(data, dict):
        line, column = _start(text)
        got = "nothing (the file is empty)" if data is None else f"a {type(data).__name__}: {str(data)[:40]!r}"
        problem = f"line {line}, column {column}: expected a mapping of sweep keys (method, ...), got {got}"
        raise ConfigError([problem], source)
    return data


def _json_fallback(text: str) -> dict[str, Any] | None:
    """JSON that YAML refused (a TAB in the indentation), or None."""
    if not text.lstrip("\ufeff \t\r\n").startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line: where PyYAML stopped, and why."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {error.problem}"
    return "not valid YAML: " + " ".join(str(error).split())


def _start(text: str) -> tuple[int, int]:
    """Line and column (1-based) where the top-level value starts."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        node = None
    if node is not None:
        return node.start_mark.line + 1, node.start_mark.column + 1
    offset = len(text) - len(text.lstrip())
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1
