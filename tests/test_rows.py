"""Metric rows as pure logic: steps continue across attempts, printed lines become rows, and the
sweep's ``stdout_metrics`` key validates like the others."""

from __future__ import annotations

import re

import pytest

from sweepd.queue import rows
from sweepd.queue.config import validate
from sweepd.queue.errors import ConfigError

DEFAULT = re.compile(rows.DEFAULT_PATTERN)


def test_steps_start_at_zero_and_count_on() -> None:
    steps = rows.Steps()
    assert [steps.assign() for _ in range(3)] == [0, 1, 2]
    assert steps.assign(10) == 10 and steps.assign() == 11


def test_a_resumed_attempt_continues_from_the_last_step_and_never_goes_back() -> None:
    steps = rows.Steps(last=41)
    assert steps.next == 42
    assert steps.assign() == 42
    assert steps.assign(30) is None  # before the last step: dropped, as W&B drops it
    assert steps.assign(42) == 42  # the same step again is allowed
    assert steps.assign() == 43


@pytest.mark.parametrize(
    ("line", "metrics"),
    [
        ("loss=0.25 acc=0.9", {"loss": 0.25, "acc": 0.9}),
        ("epoch=3 loss=1.5e-3", {"epoch": 3, "loss": 0.0015}),
        ("epoch=3 loss = 1.5e-3", {"epoch": 3}),  # name=value only: spaces around = are not a pair
        ("step = 0", {}),
        ("for step = 0 to 9: x =1 y= 2", {}),
        ("val/loss=.5 train.acc=-2", {"val/loss": 0.5, "train.acc": -2}),
        ("step 5: loss=0.1, acc=0.2;", {"loss": 0.1, "acc": 0.2}),
        ("_step=7 loss=1", {"_step": 7, "loss": 1}),
        ("no metrics here", {}),
        ("name=adam lr=abc", {}),  # numbers only
        ("--lr=0.1 -x=2", {}),  # a command-line flag is not a metric
        ("version=1.2.3 loss=0.5x", {}),  # glued to more text
        ("loss=nan acc=inf", {}),  # not finite
        ("a=1 a=2", {"a": 2}),  # the last wins
    ],
)
def test_the_default_pattern_reads_name_value_pairs_of_numbers(line: str, metrics: dict[str, float]) -> None:
    assert rows.parse_line(DEFAULT, line) == metrics


def test_a_pattern_of_its_own_with_named_or_numbered_groups() -> None:
    named = rows.compile_pattern(r"(?P<name>\w+): (?P<value>\S+)")
    assert rows.parse_line(named, "loss: 0.5 | acc: 0.75 | opt: adam") == {"loss": 0.5, "acc": 0.75}
    numbered = rows.compile_pattern(r"\[(\w+)\] ([-\d.]+)")
    assert rows.parse_line(numbered, "[loss] 0.5 [acc] 1") == {"loss": 0.5, "acc": 1}


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(unclosed", "not a valid regular expression"),
        (r"loss=(\d+)", "needs two groups"),
        (r"(?P<name>\w+)=(\d+)", "but not the other"),
    ],
)
def test_a_bad_pattern_says_why(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        rows.compile_pattern(pattern)


BASE = {"method": "grid", "program": "train.py", "parameters": {"x": {"values": [1, 2]}}}


def test_stdout_metrics_is_on_by_default_and_can_be_set_or_turned_off() -> None:
    assert validate(dict(BASE)).stdout_metrics == rows.DEFAULT_PATTERN
    assert validate({**BASE, "stdout_metrics": True}).stdout_metrics == rows.DEFAULT_PATTERN
    assert validate({**BASE, "stdout_metrics": False}).stdout_metrics is None
    own = r"(?P<name>\w+): (?P<value>\S+)"
    assert validate({**BASE, "stdout_metrics": own}).stdout_metrics == own


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("(?P<name>\\w+=(?P<value>", "stdout_metrics: '(?P<name>\\\\w+=(?P<value>': not a valid regular expression"),
        (3, "stdout_metrics: expected true, false or a regular expression, got 3"),
        ("", "stdout_metrics: expected true, false or a regular expression, got ''"),
    ],
)
def test_a_bad_stdout_metrics_key_is_one_clear_problem(value: object, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate({**BASE, "stdout_metrics": value}, source="sweep.yaml")
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(problem)


def test_plain_turns_array_scalars_into_numbers() -> None:
    class Scalar:
        def item(self) -> float:
            return 0.5

    assert rows.plain(Scalar()) == 0.5
    assert rows.plain(object()).startswith("<object")
