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
