"""Redis behind Sentinel, with a real topology (tests/sentinels.py): URLs, the failover itself, the
moves that must survive it, and a chaos test of agents on a grid while masters are SIGKILLed.

``SWEEPD_SENTINEL_SEED`` and ``SWEEPD_SENTINEL_COUNT`` run the chaos test from another seed, as
many times as asked (e.g. ``SWEEPD_SENTINEL_COUNT=200``).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sentinels import Topology
from support import Sweeps, run_sweepd, sweepd_cmd, wait_until
from sweepd.queue import keys, sentinel
from sweepd.queue.config import validate
from sweepd.queue.connections import connect
from sweepd.queue.space import SweepConfig
from sweepd.queue.store import Store

# A run that takes about a second, records when it started and ended, and takes an exclusive lock
# on its run's file for its whole life: a second attempt alive at the same time says so.
PROGRAM = """
import fcntl, json, os, sys, time
out = os.environ["OUT_DIR"]
rid, attempt = os.environ["SWEEPD_RUN_ID"], os.environ["SWEEPD_ATTEMPT"]
def note(**event):
    with open(os.path.join(out, rid + ".jsonl"), "a") as fh:
        fh.write(json.dumps({"attempt": attempt, "t": time.time(), **event}) + "\\n")
lock = open(os.path.join(out, rid + ".lock"), "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    note(event="overlap")
    sys.exit(9)
note(event="start", x=sys.argv[1])
time.sleep(1.0)
note(event="end")
print("loss=0.5")
"""


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    top = Topology(tmp_path / "topology")
    top.dir.mkdir()
    try:
        yield top.start()
    finally:
        top.close()


# URLs ---------------------------------------------------------------------------------------------


def test_a_sentinel_url_names_its_sentinels_master_database_and_passwords() -> None:
    got = sentinel.parse("redis+sentinel://:pw@a:1,b:26380,c/mymaster/3", environ={"SWEEPD_SENTINEL_PASSWORD": "s"})
    assert got.sentinels == (("a", 1), ("b", 26380), ("c", 26379))
    assert (got.master, got.db, got.password, got.sentinel_password, got.tls) == ("mymaster", 3, "pw", "s", False)
    tls = sentinel.parse("rediss+sentinel://u:p%40w@h:5/m?ssl_ca_certs=ca.pem", environ={})
    assert (tls.username, tls.password, tls.tls, tls.tls_options) == ("u", "p@w", True, {"ssl_ca_certs": "ca.pem"})
    carried = sentinel.with_sentinel_password("redis+sentinel://h:5/m", "a b&c")
    assert sentinel.parse(carried, environ={}).sentinel_password == "a b&c"


def test_rediss_sentinel_speaks_tls_to_the_sentinels_and_the_master_each_with_its_password() -> None:
    """What redis-py is handed (the embedded server binary has no TLS to try it end to end)."""
    target = sentinel.parse(
        "rediss+sentinel://:pw@a:1,b:2/m/0?ssl_ca_certs=ca.pem", environ={"SWEEPD_SENTINEL_PASSWORD": "sp"}
    )
    pool = sentinel.client(target, socket_timeout=2).connection_pool
    assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    assert (pool.connection_kwargs["password"], pool.connection_kwargs["ssl_ca_certs"]) == ("pw", "ca.pem")
    first = pool.sentinel_manager.sentinels[0].connection_pool  # type: ignore[attr-defined]
    assert first.connection_class.__name__ == "SSLConnection"
    assert (first.connection_kwargs["password"], first.connection_kwargs["ssl_ca_certs"]) == ("sp", "ca.pem")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:5/", "names no master"),
        ("redis+sentinel://h:x/m", "is not HOST:PORT"),
        ("redis+sentinel://h:5/m/zero", "/MASTER_NAME/DB"),
        ("redis+sentinel://h:5/m?colour=red", "unknown option 'colour'"),
        ("redis+sentinel://h:5/m?ssl_ca_certs=ca.pem", "needs TLS"),
    ],
)
def test_a_malformed_sentinel_url_is_one_line_and_exit_2(tmp_path: Path, url: str, says: str) -> None:
    env = {**os.environ, "SWEEPD_HOME": str(tmp_path)}
    done = run_sweepd("status", "abcd1234", "--redis-url", f"{url.replace('://', '://:secret@', 1)}", env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and says in done.stderr and "secret" not in done.stderr


def test_sentinels_that_do_not_answer_are_one_line_and_exit_3(tmp_path: Path) -> None:
    env = {**os.environ, "SWEEPD_HOME": str(tmp_path)}
    done = run_sweepd("status", "abcd1234", "--redis-url", "redis+sentinel://127.0.0.1:1/m", env=env)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "sentinel" in done.stderr and "Traceback" not in done.stderr


# the failover --------------------------------------------------------------------------------------


def _config() -> SweepConfig:
    return validate({"method": "grid", "program": "p.py", "parameters": {"x": {"values": [1, 2, 3]}}})


def test_an_acknowledged_claim_survives_the_failover_and_scripts_load_on_the_new_master(
    topology: Topology,
) -> None:
    store = Store(connect(topology.url))
    sid = store.create_sweep(_config())
    claim = store.create_next(sid, "agent-1", 30.0)
    assert not isinstance(claim, str)
    replica = next(p for p in topology.data_ports if p != topology.master())
    sha = store._scripts["renew"].sha
    assert redis.Redis(port=replica).script_exists(sha) == [False]  # scripts are not replicated
    topology.kill_master()  # at once: the claim was acknowledged by the replica, so it is there
    new = redis.Redis(port=topology.master())
    assert new.hget(keys.run(claim.run_id), "token") == claim.token.encode()
    wait_until(lambda: _renews(store, claim), timeout=30)  # NOSCRIPT on the new master: loaded, sent again
    assert new.script_exists(sha) == [True]


def _renews(store: Store, claim: object) -> bool:
    try:
        return store.renew(claim, 30.0) == "ok"  # type: ignore[arg-type]
    except redis.ConnectionError:  # the pool is still finding the new master
        return False


def test_a_move_no_replica_acknowledged_is_not_relied_on(topology: Topology) -> None:
    store = Store(connect(topology.url))
    sid = store.create_sweep(_config())
    replica = next(p for p in topology.data_ports if p != topology.master())
    proc = topology.procs[replica]
    proc.send_signal(19)  # SIGSTOP: connected, but acknowledges nothing
    try:
        with pytest.raises(redis.ConnectionError, match="no replica acknowledged"):
            store.create_next(sid, "agent-1", 30.0)
    finally:
        proc.send_signal(18)  # SIGCONT


def test_with_no_replica_left_moves_still_stand(topology: Topology) -> None:
    """After a failover with the old master gone, nothing can be promoted without a move: it stands."""
    store = Store(connect(topology.url))
    sid = store.create_sweep(_config())
    topology.kill_master()
    claim = wait_until(lambda: _create(store, sid), timeout=30)
    assert not isinstance(claim, str)


def _create(store: Store, sid: str) -> object:
    try:
        return store.create_next(sid, "agent-1", 30.0)
    except redis.ConnectionError:
        return None


# the failover's length against the lease -----------------------------------------------------------


def test_the_rule_a_failover_must_fit_in_a_heartbeat() -> None:
    assert sentinel.failover_warning("m", 5000, 10.0) is None  # 5 s + 2.5 s of vote, promotion, reconnect
    said = sentinel.failover_warning("m", 60000, 10.0)  # the Bitnami chart's default
    assert said is not None and "\n" not in said
    assert "down-after-milliseconds for m is 60000" in said and "62.5 s" in said and "7500 ms or less" in said


def test_an_agent_behind_sentinel_warns_when_a_failover_could_outlast_its_lease(tmp_path: Path) -> None:
    top = Topology(tmp_path / "topology", down_after_ms=5000)
    top.dir.mkdir()
    try:
        top.start()
        env = {**os.environ, "SWEEPD_REDIS_URL": top.url, "SWEEPD_HOME": str(tmp_path / "home")}
        store = Store(connect(top.url))
        sid = store.create_sweep(_config())
        store.control(sid, "stopped")  # complete: the agent starts, says what it must, and exits 0
        said = {}
        for heartbeat in ("2", "10"):
            done = run_sweepd("agent", sid, "--notices", "none", "--heartbeat", heartbeat, env=env)
            assert done.returncode == 0, done.stderr
            said[heartbeat] = [line for line in done.stderr.splitlines() if "down-after-milliseconds" in line]
    finally:
        top.close()
    assert len(said["2"]) == 1 and "is 5000: a failover takes about 7.5 s" in said["2"][0]
    assert said["10"] == []


# chaos ---------------------------------------------------------------------------------------------


def _seeds() -> list[int]:
    first = int(os.environ.get("SWEEPD_SENTINEL_SEED", "1601"))
    count = int(os.environ.get("SWEEPD_SENTINEL_COUNT", "3"))
    return list(range(first, first + count))


@pytest.mark.parametrize("seed", _seeds())
def test_agents_on_a_grid_outlive_killed_masters(tmp_path: Path, topology: Topology, seed: int) -> None:
    rng = random.Random(seed)
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "SWEEPD_REDIS_URL": topology.url,
        "SWEEPD_HOME": str(tmp_path / "home"),
        "OUT_DIR": str(out),
        "PYTHONUNBUFFERED": "1",
    }
    sweeps = Sweeps(tmp_path, env, PROGRAM)
    points = ", ".join(str(i) for i in range(30))
    sid = sweeps.create(
        f"""
        method: grid
        metric: {{name: loss, goal: minimize}}
        command: ["${{interpreter}}", "${{program}}", "${{args_no_hyphens}}"]
        parameters:
          x: {{values: [{points}]}}
        """
    )
    agents = [
        subprocess.Popen(
            sweepd_cmd("agent", sid, "--notices", "none", "--heartbeat", "1"),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"agent-{i}.log").open("w"),
        )
        for i in range(3)
    ]
    t0 = time.monotonic()
    try:
        logs = [tmp_path / f"agent-{i}.log" for i in range(3)]
        wait_until(lambda: all("agent started" in p.read_text() for p in logs), timeout=60)  # connected
        kills = 1 + (rng.random() < 0.5)
        for k in range(kills):
            at = rng.randint(2, 12) + 10 * k  # runs started before this kill
            wait_until(lambda at=at: len(list(out.glob("*.jsonl"))) >= at or _all_done(agents), timeout=120)
            if _all_done(agents):
                break
            dead = topology.kill_master()
            if k + 1 < kills:
                topology.revive(dead)
        codes = [a.wait(timeout=240) for a in agents]
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
                a.wait()
    tails = {i: (tmp_path / f"agent-{i}.log").read_text()[-2000:] for i in range(3)}
    assert codes == [0, 0, 0], tails
    runs = sweeps.runs(sid)
    _check_sweep(out, runs, redis.Redis(port=topology.master()), sid)
    attempts = sum(int(r["attempt"]) for r in runs)  # type: ignore[call-overload]
    cut = _interrupted(out, runs)
    took = time.monotonic() - t0
    print(f"seed {seed}: {kills} master kill(s), {attempts} attempts for 30 runs, {cut} cut short, {took:.1f} s")
    # No run that finished was run again: every attempt but the one that ended was cut short by a failover.
    assert attempts == len(runs) + cut, tails


def _interrupted(out: Path, runs: list[dict[str, object]]) -> int:
    """Attempts a failover cut short: started and stopped by their own guard (their holder could not
    renew through it), or claimed by a reply the dead master never sent (never started, reaped).
    Fails if a run ended in any attempt but its last, or twice: a finished run run again."""
    last = {r["id"]: str(r["attempt"]) for r in runs}
    for path in out.glob("*.jsonl"):
        events = [json.loads(line) for line in path.read_text().splitlines()]
        ends = [e["attempt"] for e in events if e["event"] == "end"]
        assert ends == [last[path.stem]], f"{path.stem}: a finished run was run again: {events}"
    return sum(int(a) - 1 for a in last.values())


def _all_done(agents: list[subprocess.Popen[bytes]]) -> bool:
    return all(a.poll() is not None for a in agents)


def _check_sweep(out: Path, runs: list[dict[str, object]], master: redis.Redis, sid: str) -> None:
    assert Counter(r["state"] for r in runs) == {"finished": 30}, runs
    assert sorted(r["params"]["x"] for r in runs) == list(range(30))  # type: ignore[index]
    assert master.llen(keys.rq_queue(sid)) == 0 and master.zcard(keys.sweep_held(sid)) == 0
    for path in out.glob("*.jsonl"):
        events = [json.loads(line) for line in path.read_text().splitlines()]
        assert not [e for e in events if e["event"] == "overlap"], f"{path.stem}: two attempts at once"
        spans: dict[str, list[float]] = {}
        for e in events:
            spans.setdefault(e["attempt"], []).append(e["t"])
        ordered = sorted((min(ts), max(ts)) for ts in spans.values())
        for (_, end), (start, _) in itertools.pairwise(ordered):
            assert end <= start, f"{path.stem}: attempts overlapped"
