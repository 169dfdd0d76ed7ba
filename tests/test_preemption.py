"""The preemption decision, driven with a clock of our own."""

from __future__ import annotations

from sweepd.agent.daemon.preemption import Preemption


def test_grace_counts_from_the_first_request() -> None:
    p = Preemption(grace=100)
    assert p.may_claim() and not p.requested
    assert p.request("signal", now=10.0)
    assert not p.request("aws-notice", now=50.0)  # repeats change neither the reason nor the clock
    assert (p.reason, p.kill_at()) == ("signal", 110.0)
    assert not p.may_claim()


def test_a_notice_deadline_caps_the_grace() -> None:
    p = Preemption(grace=100, margin=5)
    p.request("aws-notice", now=0.0, deadline=120.0)
    assert p.kill_at() == 100.0  # the grace fits before the deadline less the margin
    p.request("signal", now=1.0, deadline=30.0)
    assert p.kill_at() == 25.0
    assert p.reason == "aws-notice"


def test_a_deadline_already_past_kills_at_once() -> None:
    p = Preemption(grace=100)
    p.request("azure-notice", now=50.0, deadline=40.0)
    assert p.kill_at() == 50.0


def test_draining_stops_claims_without_preempting() -> None:
    p = Preemption(grace=100)
    p.drain()
    assert not p.may_claim() and not p.requested


def test_a_repeated_signal_halves_what_is_left_of_the_grace() -> None:
    p = Preemption(grace=20)
    p.request("signal", now=0.0)
    assert not p.repeat(now=0.0)  # the first signal is only remembered
    assert not p.repeat(now=0.5) and p.kill_at() == 20.0  # one burst: SIGTERM then SIGCONT, a storm
    assert p.repeat(now=2.0) and p.kill_at() == 11.0  # 18 s were left: 9 now
    assert not p.repeat(now=2.9)
    assert p.repeat(now=3.0) and p.kill_at() == 7.0


def test_a_repeat_never_moves_the_kill_later_nor_before_now() -> None:
    p = Preemption(grace=100, margin=5)
    p.request("aws-notice", now=0.0, deadline=10.0)
    p.repeat(now=1.0)
    assert p.repeat(now=3.0) and p.kill_at() == 4.0  # the deadline's 5 beat the grace; 2 were left: 1
    q = Preemption(grace=1)
    q.request("signal", now=0.0)
    q.repeat(now=0.0)
    assert q.repeat(now=5.0) and q.kill_at() == 1.0  # past the grace already: still killed at once
