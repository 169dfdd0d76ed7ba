"""The agent's Prometheus metrics, scraped over HTTP from a real agent working a real sweep."""

from __future__ import annotations

import subprocess
import textwrap
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import free_port, run_sweepd, sweepd_cmd, wait_until
from sweepd.agent.daemon.metrics import Metrics
from sweepd.queue.config import validate
from sweepd.queue.errors import UserError
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

#: x=0 finishes, x=1 fails, x=2 marks itself preempting and exits 1 on its first attempt (requeued at
#: the front, then resumed by the same agent), and on its second waits for the test's go-ahead.
PROGRAM = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from sweepd.agent import run
    r = run.init()
    x = r.params["x"]
    if x == 0:
        run.log({"loss": 0.5})
        sys.exit(0)
    if x == 1:
        sys.exit(3)
    if os.environ["SWEEPD_ATTEMPT"] == "1":
        run.mark_preempting()
        sys.exit(1)
    go = Path(os.environ["GO_FILE"])
    while not go.exists():
        time.sleep(0.02)
    """
)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of /metrics, keyed by name and labels (the sweep label left out)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "sweep"))
            out[(sample.name, labels)] = sample.value
    return out


def test_an_agent_serves_its_counts_histograms_and_lag(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "p.py").write_text(PROGRAM)
    (tmp_path / "s.yaml").write_text(
        f"method: grid\nprogram: {tmp_path / 'p.py'}\nparameters:\n  x: {{values: [0, 1, 2]}}\n"
    )
    sid = run_sweepd("sweep", "create", str(tmp_path / "s.yaml"), "--quiet", env=cli_env).stdout.strip()
    port, go = free_port(), tmp_path / "go"
    env = {**cli_env, "GO_FILE": str(go)}
    agent = subprocess.Popen(
        sweepd_cmd("agent", sid, "--notices", "none", "--heartbeat", "0.5", "--metrics-port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        busy = ("sweepd_agent_busy", ())
        m = wait_until(lambda: _scrape_when(port, lambda s: s.get(("sweepd_runs_started_total", ())) == 4))
        assert isinstance(m, dict)
        assert m[("sweepd_runs_finished_total", ())] == 1
        assert m[("sweepd_runs_failed_total", (("state", "failed"),))] == 1
        assert m[("sweepd_runs_preempted_total", (("reason", "child-marked"),))] == 1
        assert m[("sweepd_runs_requeued_total", (("reason", "child-marked"),))] == 1
        assert m[("sweepd_handoff_seconds_count", ())] == 1
        assert 0 <= m[("sweepd_handoff_seconds_sum", ())] < 5
        assert m[("sweepd_recovery_seconds_count", ())] == 1  # the same agent took the run back
        assert 0 <= m[("sweepd_recovery_seconds_sum", ())] < 5
        assert m[("sweepd_redis_errors_total", ())] == 0
        assert 0 <= m[("sweepd_heartbeat_lag_seconds", ())] < 5
        assert m[busy] == 1
        go.touch()
        assert agent.wait(60) == 0
    finally:
        agent.kill()
        agent.wait(10)


def _scrape_when(port: int, cond: Callable[[Samples], bool]) -> Samples | None:
    try:
        samples = scrape(port)
    except OSError:
        return None  # not listening yet
    return samples if cond(samples) else None


def test_metrics_are_served_from_a_registry_of_their_own() -> None:
    a, b = Metrics("sweepa"), Metrics("sweepb")
    a.redis_error()
    a.requeued("lease-expired", None)
    a.recovered(2.0)
    port = a.serve(0, "127.0.0.1")
    samples = scrape(port)
    assert samples[("sweepd_redis_errors_total", ())] == 1
    assert samples[("sweepd_runs_requeued_total", (("reason", "lease-expired"),))] == 1
    assert samples[("sweepd_recovery_seconds_bucket", (("le", "2.5"),))] == 1
    assert samples[("sweepd_recovery_seconds_bucket", (("le", "1.0"),))] == 0
    assert b.registry.get_sample_value("sweepd_redis_errors_total", {"sweep": "sweepb"}) == 0


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path, cli_env: dict[str, str]) -> None:
    taken = Metrics("x")
    port = taken.serve(0, "127.0.0.1")
    with pytest.raises(UserError, match=f"--metrics-port {port}"):
        Metrics("y").serve(port, "127.0.0.1")
    (tmp_path / "s.yaml").write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1]}\n")
    sid = run_sweepd("sweep", "create", str(tmp_path / "s.yaml"), "--quiet", env=cli_env).stdout.strip()
    out = run_sweepd(
        "agent", sid, "--notices", "none", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1", env=cli_env
    )
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert errors == [
        f"sweepd: error: --metrics-port {port}: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "Traceback" not in out.stderr
    assert run_sweepd("runs", sid, "--json", env=cli_env).stdout.strip() == "[]"  # nothing claimed


def test_a_claim_measures_the_recovery_of_an_interrupted_run(store: Store) -> None:
    """From the holder's last renewal for a lost lease, from the preemption for a preempted run; the
    claim records a `resumed` event, and a new run has no recovery."""
    sid = store.create_sweep(validate({"method": "grid", "program": "p.py", "parameters": {"x": {"values": [1]}}}))
    first = store.create_next(sid, "a1", 0.2)
    assert isinstance(first, Claim) and first.recovered_after is None
    assert store.renew(first, 0.2) == "ok"
    wait_until(lambda: store.reap(sid) == [first.run_id])  # a1 vanished: its lease lapsed
    second = store.claim(sid, "a2", 30)
    assert second is not None and second.recovered_after is not None
    assert 0.2 <= second.recovered_after < 5  # at least the lease since a1's last renewal
    event = store.events(sid)[0]
    assert (event["event"], event["run_id"], event["attempt"], event["agent_id"], event["reason"]) == (
        "resumed",
        first.run_id,
        2,
        "a2",
        "lease-expired",
    )
    assert event["after_ms"] == round(second.recovered_after * 1000)
    assert store.mark_preempting(second, "signal")
    assert store.requeue(second, reason="signal")
    third = store.claim(sid, "a3", 30)
    assert third is not None and third.recovered_after is not None and third.recovered_after < 5
    store.operate(first.run_id, "stop")
    assert store.renew(third, 30) == "stop"
    assert store.complete(third, "stopped", None, "operator-stop")
    store.operate(first.run_id, "requeue")  # an operator's requeue of an ended run is no recovery
    fourth = store.claim(sid, "a4", 30)
    assert fourth is not None and fourth.recovered_after is None
