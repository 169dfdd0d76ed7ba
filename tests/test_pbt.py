"""PBT end to end (``method: pbt``) on the toy problem of Jaderberg et al. 2017, figure 2: real agents,
real Redis, real processes (tests/pbt_toy.py).

The paper's two members, h = (1, 0) and (0, 1), enqueued as the first generation: trained alone each
stalls at Q = 1.2 - 0.81 = 0.39; under PBT the population reaches about 1.2. Every member ends at its
budget, with exactly one decision per member and interval, however many agents race; a member
preempted in the middle resumes and changes none of that.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import run_sweepd, sweepd_cmd, wait_until
from sweepd.queue.store import Store

TOY = Path(__file__).resolve().parents[1] / "examples" / "pbt_toy.py"
STEPS, INTERVAL = 300, 10


def _sweep(
    tmp_path: Path, env: dict[str, str], population: int, quantile: float, resample: float = 0.25, seed: str = "1"
) -> str:
    config = tmp_path / "sweep.yaml"
    config.write_text(
        f"program: {TOY}\nmethod: pbt\nmetric: {{name: Q, goal: maximize}}\n"
        "parameters:\n  h0: {distribution: uniform, min: 0.0, max: 1.0}\n"
        "  h1: {distribution: uniform, min: 0.0, max: 1.0}\n"
        f"pbt: {{population: {population}, interval: {INTERVAL}, steps: {STEPS}, quantile: {quantile}, "
        f"perturb: [0.8, 1.2], resample_probability: {resample}}}\n"
    )
    done = run_sweepd("sweep", "create", str(config), "--quiet", "--seed", seed, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _agents(n: int, sid: str, env: dict[str, str], cwd: Path) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            sweepd_cmd("agent", sid, "--notices", "none", "--heartbeat", "0.5", "--grace", "5"),
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]


def _finish(procs: list[subprocess.Popen[str]], timeout: float = 240) -> None:
    try:
        for proc in procs:
            proc.wait(timeout=timeout)
            assert proc.returncode == 0, (proc.stderr.read() if proc.stderr else "")[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _check_members(store: Store, sid: str, population: int) -> dict[str, Any]:
    runs = store.runs(sid)
    by_member: dict[int, list[Any]] = {}
    for run in runs:
        assert run.pbt is not None
        by_member.setdefault(run.pbt["member"], []).append(run)
    assert sorted(by_member) == list(range(population))
    for member, chain in by_member.items():
        last = chain[-1]
        assert last.state == "finished" and last.reason in ("pbt-budget", "exit-0"), (member, last)
        assert last.summary["_step"] >= STEPS - 1
        assert all(r.state == "stopped" and r.reason == "pbt-exploited" for r in chain[:-1]), chain
        for run in chain[1:]:
            assert run.pbt["parent"] in {r.id for r in runs}
    decisions = store.decisions(sid)
    for member in range(population):
        mine = sorted(int(key.split(":")[1]) for key in decisions if int(key.split(":")[0]) == member)
        assert mine == list(range(INTERVAL, STEPS, INTERVAL)), (member, mine)  # once each, every one
    return {"runs": runs, "decisions": decisions}


def _best_q(store: Store, sid: str) -> float:
    return max(float(run.summary["Q"]) for run in store.runs(sid) if "Q" in run.summary)


def _reaches(population: Callable[[str, Path], float], tmp_path: Path) -> None:
    """PBT is asynchronous (a member is ranked among those that reached the step, so which steps decide
    depends on the agents' pace), and a population of two ends short of 1.2 now and then (about one in
    twenty here, 0.47 to 1.07: an exploit late in the budget that draws poorly). The claim, that PBT
    reaches what neither member reaches alone, is asserted of the best of up to three populations
    (seeds 1, 2, 3), each one checked in full by ``population``; bench/pbt.py measures the figure."""
    best: list[float] = []
    for seed in ("1", "2", "3"):
        best.append(population(seed, tmp_path / f"seed{seed}"))
        if best[-1] > 1.0:  # the fixed members stall at 0.39
            return
    raise AssertionError(f"best Q of three populations: {best}, none above 1.0 (each member alone: 0.39)")


def _papers_members(sid: str, env: dict[str, str]) -> None:
    for h0, h1 in ((1, 0), (0, 1)):
        done = run_sweepd("enqueue", sid, "--param", f"h0={h0}", "--param", f"h1={h1}", env=env)
        assert done.returncode == 0, done.stderr


def test_pbt_on_the_papers_two_members_reaches_what_neither_reaches_alone(
    tmp_path: Path, cli_env: dict[str, str], store: Store
) -> None:
    def population(seed: str, work: Path) -> float:
        work.mkdir()
        env = {**cli_env, "SWEEPD_CHECKPOINT_ROOT": str(work / "ckpt"), "TOY_SLEEP": "0.01"}
        sid = _sweep(work, env, population=2, quantile=0.5, resample=0.5, seed=seed)
        _papers_members(sid, env)
        _finish(_agents(2, sid, env, work))
        seen = _check_members(store, sid, 2)
        assert any(r.pbt and r.pbt["generation"] > 0 for r in seen["runs"])
        status = run_sweepd("status", sid, "--json", env=env)
        assert '"lineage"' in status.stdout
        return _best_q(store, sid)

    _reaches(population, tmp_path)


def test_a_member_preempted_in_the_middle_still_ends_at_its_budget(
    tmp_path: Path, cli_env: dict[str, str], store: Store
) -> None:
    env = {**cli_env, "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt"), "TOY_SLEEP": "0.01"}
    sid = _sweep(tmp_path, env, population=3, quantile=0.34)
    procs = _agents(3, sid, env, tmp_path)
    wait_until(lambda: any(r.summary.get("_step", 0) >= STEPS // 3 for r in store.runs(sid)), timeout=120)
    for _ in range(3):  # an agent caught between two runs (an exploit's) has nothing to hand back: again
        victim = procs.pop(0)
        os.kill(victim.pid, signal.SIGTERM)  # its run is requeued at the front and resumed by another
        assert victim.wait(timeout=60) == 0
        procs += _agents(1, sid, env, tmp_path)
        if any(e["event"] == "requeued" for e in store.events(sid, 100)):
            break
    _finish(procs)
    seen = _check_members(store, sid, 3)
    assert any(r.requeues for r in seen["runs"]), store.events(sid, 50)


def test_the_issue_yaml_from_random_starts_matches_its_best_first_member_alone(
    tmp_path: Path, cli_env: dict[str, str], store: Store
) -> None:
    """examples/pbt-sweep.yaml as it is (population 4, interval 5, steps 200, quantile 0.25), from
    random starts, beside its best first-generation member trained alone (the same arithmetic)."""
    env = {**cli_env, "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt"), "TOY_SLEEP": "0.01"}
    text = (TOY.parent / "pbt-sweep.yaml").read_text().replace("program: examples/pbt_toy.py", f"program: {TOY}")
    (tmp_path / "sweep.yaml").write_text(text)
    done = run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", "--seed", "3", env=env)
    assert done.returncode == 0, done.stderr
    sid = done.stdout.strip()
    _finish(_agents(4, sid, env, tmp_path))
    runs = store.runs(sid)
    first = [r for r in runs if r.pbt and r.pbt["generation"] == 0]
    assert len(first) == 4
    alone = max(_alone(r.params["h0"], r.params["h1"], 200) for r in first)
    assert _best_q(store, sid) >= alone - 0.05, (alone, _best_q(store, sid))
    listed = {r["id"]: r["pbt"] for r in json.loads(run_sweepd("runs", sid, "--json", env=env).stdout)}
    assert all(set(p) == {"member", "generation", "parent"} for p in listed.values())


def _alone(h0: float, h1: float, steps: int) -> float:
    theta = [0.9, 0.9]
    for _ in range(steps):
        theta = [theta[0] - 0.02 * h0 * theta[0], theta[1] - 0.02 * h1 * theta[1]]
    return 1.2 - (theta[0] ** 2 + theta[1] ** 2)


def test_with_an_object_store_root_the_copy_is_the_parents_committed_snapshot(
    tmp_path: Path, cli_env: dict[str, str], store: Store
) -> None:
    """Checkpoints that travel (``file://``, a cache per agent: machines without shared storage): an
    exploit's new run starts from the parent's latest committed snapshot, by reference (committed
    as its first, read from the parent's objects until it commits its own), and PBT still beats the
    members alone."""

    def population(seed: str, work: Path) -> float:
        work.mkdir()
        root = f"file://{work / 'store'}"
        env = {**cli_env, "SWEEPD_CHECKPOINT_ROOT": root, "TOY_SLEEP": "0.01", "SWEEPD_CHECKPOINT_SYNC": "0.2"}
        sid = _sweep(work, env, population=2, quantile=0.5, resample=0.5, seed=seed)
        _papers_members(sid, env)
        procs = [
            subprocess.Popen(
                sweepd_cmd(
                    "agent", sid, "--notices", "none", "--heartbeat", "0.5", "--grace", "5",
                    "--checkpoint-cache", str(work / f"cache{i}"),
                ),
                env=env,
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]  # fmt: skip
        _finish(procs)
        seen = _check_members(store, sid, 2)
        children = [r for r in seen["runs"] if r.pbt and r.pbt["parent"]]
        assert children
        started = [r for r in children if store.checkpoints(r.id)]
        assert started, "no exploit started from a committed snapshot"
        for run in started:
            kept = store.checkpoints(run.id)[-1]  # the oldest kept: the reference, or a later own one
            holder = work / "store" / sid / (kept.run or run.id)
            assert (holder / "snapshots" / f"{kept.snapshot}.json").exists()  # a live reference: never deleted
            assert any((holder / "blobs").rglob("*"))
        return _best_q(store, sid)

    _reaches(population, tmp_path)
