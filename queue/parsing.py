"""A sweep config's text to a mapping: YAML 1.1 as the wandb CLI reads it, JSON for ``.json``, pure.

Its own module because reading text is one concern apart from the rules (config.py): which parser,
and a parse error as one line with its line and column, before any key is looked at. config.py
re-exports ``parse_text``, so ``sweepd.queue.config`` stays the one import for callers.

Text is hostile until bounded: a sweep file comes from anywhere, and what it parses to is copied,
validated and stored. So a config is refused, as one line, when its file is larger than
``MAX_CONFIG_BYTES``, when it nests deeper than ``MAX_DEPTH`` (before the parser's recursion can fail),
or when YAML aliases would make it larger than ``MAX_EXPANDED`` ("billion laughs").
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from .errors import ConfigError
from .params import KeyPath, render

#: The largest sweep file sweepd reads. W&B's configs are a few KB (the largest of the 78 real ones
#: the tests read is 15 KB), so this is generous, and it keeps a stray 50 MB file out of Redis.
MAX_CONFIG_BYTES = 1024 * 1024
#: How deeply mappings and lists may nest (the deepest real config nests 15): deeper input would
#: exhaust the parsers' and the checks' recursion instead of getting a clear line.
MAX_DEPTH = 64
#: How large a config may be with its YAML aliases expanded, counted as one per value plus the
#: characters of its text: no more than a file may hold, so a few lines of aliases cannot become
#: gigabytes when the config is copied and stored.
MAX_EXPANDED = MAX_CONFIG_BYTES


#: The one line for a file or text over ``MAX_CONFIG_BYTES``.
TOO_LARGE = f"larger than a sweep file may be ({MAX_CONFIG_BYTES} bytes, 1 MiB)"


def parse_text(text: str, source: str = "") -> dict[str, Any]:
    """Parse a config's text: JSON for a ``.json`` source, else YAML 1.1 as the wandb CLI reads it.

    A YAML error in text that starts with ``{`` gets a second chance as JSON, since JSON indented with
    a TAB is not YAML. Raises ``ConfigError`` (one line with line and column, or the key path) on a parse
    error, a config over the bounds above, or a top level that is not a mapping.
    """
    if len(text) > MAX_CONFIG_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise ConfigError([TOO_LARGE], source)
    if source.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            problem = f"line {e.lineno}, column {e.colno}: not valid JSON: {e.msg}"
            raise ConfigError([problem], source) from None
        except RecursionError:
            raise ConfigError([f"nested deeper than {MAX_DEPTH} levels"], source) from None
        except ValueError as e:  # a number of more than 4300 digits
            raise ConfigError([f"not valid JSON: {_reason(e)}"], source) from None
    else:
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as e:
            data = _json_fallback(text)
            if data is None:
                raise ConfigError([_yaml_problem(e)], source) from None
    unbounded = _unbounded(data)
    if unbounded:
        raise ConfigError([unbounded], source)
    if not isinstance(data, dict):
        line, column = _start(text)
        got = "nothing (the file is empty)" if data is None else f"a {type(data).__name__}: {str(data)[:40]!r}"
        problem = f"line {line}, column {column}: expected a mapping of sweep keys (method, ...), got {got}"
        raise ConfigError([problem], source)
    return data


class _Refused(yaml.MarkedYAMLError):
    """Text PyYAML would read, refused by sweepd's bounds or by Python (a date that does not exist)."""


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, with two guards: nesting is counted while composing (PyYAML
    recurses once per level, so ``{a: `` x5000 would end in a RecursionError), and a scalar that
    Python cannot build (``2001-13-01``, an int of 5000 digits, an empty ``!!int``) is refused where
    it stands, with its line and column."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as e:  # what PyYAML's constructors let out: ValueError, IndexError (`!!int `)...
            kind = str(node.tag).rsplit(":", 1)[-1]
            value = str(node.value)
            shown = repr(value if len(value) <= 40 else value[:40] + "...")
            problem = f"cannot read {shown} as a YAML {kind} ({_reason(e)}): quote it to keep it as text"
            raise _Refused(problem=problem, problem_mark=node.start_mark) from None


def _reason(error: Exception) -> str:
    """Python's message without its advice (``...; use sys.set_int_max_str_digits()``)."""
    return str(error).split(";")[0]


def _unbounded(data: Any) -> str | None:
    """Why ``data`` is too deep, or too large with its aliases expanded; None when it is neither.

    Walks the tree as it will be copied and stored (an aliased part once per use) and stops at the
    bound, so an alias bomb costs no more than ``MAX_EXPANDED`` steps. A part that contains itself is
    not walked again: ``config._plain`` reports it.
    """
    size = 0
    walking: set[int] = set()

    def walk(obj: Any, path: KeyPath) -> str | None:
        nonlocal size
        size += 1 + (len(obj) if isinstance(obj, str) else 0)
        if size > MAX_EXPANDED:
            return (
                f"{_where(path)}: the config is larger than {MAX_EXPANDED} characters and values "
                "(1 MiB) with its YAML aliases expanded: write it out without aliases, or smaller"
            )
        if not isinstance(obj, (dict, list)) or id(obj) in walking:
            return None
        if len(path) >= MAX_DEPTH:
            return f"{_where(path)}: nested deeper than {MAX_DEPTH} levels"
        walking.add(id(obj))
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for key, value in items:
            if isinstance(obj, dict):
                size += len(key) if isinstance(key, str) else 1
            problem = walk(value, (*path, key if isinstance(key, (str, int)) else repr(key)))
            if problem:
                return problem
        walking.discard(id(obj))
        return None

    return walk(data, ())


def _where(path: KeyPath) -> str:
    """A key path for a message, its first few parts only: a path 64 levels deep is no help."""
    return render(path) if len(path) <= 6 else render(path[:6]) + "..."


def _json_fallback(text: str) -> dict[str, Any] | None:
    """JSON that YAML refused (a TAB in the indentation), or None."""
    if not text.lstrip("\ufeff \t\r\n").startswith("{"):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON either, or too deep for it
        return None
    return data if isinstance(data, dict) else None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line: where PyYAML stopped, and why."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        kind = "" if isinstance(error, _Refused) else "not valid YAML: "
        return f"line {mark.line + 1}, column {mark.column + 1}: {kind}{error.problem}"
    return "not valid YAML: " + " ".join(str(error).split())


def _start(text: str) -> tuple[int, int]:
    """Line and column (1-based) where the top-level value starts."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        node = None
    if node is not None:
        return node.start_mark.line + 1, node.start_mark.column + 1
    offset = len(text) - len(text.lstrip())
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1
