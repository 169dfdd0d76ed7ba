"""The exit-status table and the state machine, as pure logic."""

from __future__ import annotations

import pytest

from sweepd.queue import states
from sweepd.queue.records import RunRecord
from sweepd.queue.space import Metric, SweepConfig
from sweepd.queue.summary import best_run, counts


@pytest.mark.parametrize(
    ("returncode", "preempting", "state", "requeue"),
    [
        (0, False, "finished", False),
        (0, True, "finished", False),  # exit 0 while preempting: finished, never requeued
        (3, False, "failed", False),
        (3, True, "queued", True),  # non-zero while preempting: requeued
        (-9, False, "crashed", False),
        (-15, True, "queued", True),
        (None, False, "queued", True),  # no status at all: requeued
        (None, True, "queued", True),
    ],
)
def test_exit_status_table(returncode: int | None, preempting: bool, state: str, requeue: bool) -> None:
    end = states.outcome(returncode, preempting=preempting)
    assert (end.state, end.requeue) == (state, requeue)


def test_a_stopped_run_ends_stopped_unless_it_finished() -> None:
    assert states.outcome(1, preempting=False, stopping=True).state == "stopped"
    assert states.outcome(0, preempting=False, stopping=True).state == "finished"


def test_reasons_name_the_signal() -> None:
    assert states.outcome(-9, preempting=False).reason == "signal-SIGKILL"
    assert states.outcome(2, preempting=False).reason == "exit-2"


def test_terminal_states_leave_only_through_the_queue() -> None:
    for state in states.TERMINAL:
        assert states.MOVES[state] == {"queued"}
    assert not states.can_move("queued", "finished")
    assert states.can_move("running", "preempting")
    assert set(states.MOVES) == set(states.STATES)


def _run(rid: str, state: str, summary: dict[str, object]) -> RunRecord:
    return RunRecord(rid, "s", state, {}, 1, None, None, None, None, "search", None, None, None, summary)  # type: ignore[arg-type]


def test_best_run_follows_the_goal_and_ignores_runs_without_the_metric() -> None:
    runs = [_run("a", "finished", {"loss": 0.5}), _run("b", "running", {"loss": 0.2}), _run("c", "failed", {})]
    low = SweepConfig("grid", (), {}, metric=Metric("loss", "minimize"))
    high = SweepConfig("grid", (), {}, metric=Metric("loss", "maximize"))
    assert best_run(low, runs) == (runs[1], 0.2)
    assert best_run(high, runs) == (runs[0], 0.5)
    assert best_run(SweepConfig("grid", (), {}), runs) is None
    assert counts(runs)["finished"] == 1 and counts(runs)["queued"] == 0


def test_metric_target() -> None:
    assert Metric("acc", "maximize", target=0.9).reached(0.95)
    assert not Metric("loss", "minimize", target=0.1).reached(0.2)
    assert not Metric("loss").reached(-1e9)
