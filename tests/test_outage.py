"""A store that comes back from an outage (restart, failover, a freeze) costs the fleet time, not its
runs: a lease that lapsed while nobody of the sweep could write is not reaped until its holder has
had a heartbeat to renew or record its end (reap.lua, design.md "After an outage"); one that lapsed
with the store up is reaped at once, as always. The agents' side is below the scripts'.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from support import RedisServer, Sweeps, run_sweepd, sweepd_cmd, wait_until
from sweepd.queue import keys, resume
from sweepd.queue.config import validate
from sweepd.queue.errors import RunHeld
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

GRID = {"method": "grid", "parameters": {"a": {"values": list(range(10))}}}
LEASE = 30.0  # seconds: a heartbeat of 10 s


def held(store: Store, sid: str) -> Claim:
    claim = store.create_next(sid, "ag", LEASE)
    assert isinstance(claim, Claim)
    assert store.renew(claim, LEASE) == "ok"  # the holder's heartbeat: lease_ms, the store is up
    return claim


def redis_ms(r: redis.Redis) -> int:
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


def silence(r: redis.Redis, sid: str, seconds: float) -> None:
    """As if nobody of the sweep could write for ``seconds``: the store's word that it is up has
    expired, and the last renewal or reap was that long ago."""
    r.delete(keys.sweep_up(sid))
    r.set(keys.sweep_seen(sid), redis_ms(r) - int(seconds * 1000))


def test_a_lease_that_lapsed_with_the_store_up_is_reaped_at_once(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 1})
    assert store.reap(sid) == [claim.run_id]


def test_a_lease_that_lapsed_in_an_outage_waits_a_heartbeat_and_its_holder_keeps_the_run(
    r: redis.Redis, store: Store
) -> None:
    sid = store.create_sweep(validate(GRID))
    claim, ended = held(store, sid), held(store, sid)
    silence(r, sid, 20)
    lapsed = redis_ms(r) - 5_000  # in the silence
    r.zadd(keys.sweep_held(sid), {claim.run_id: lapsed, ended.run_id: lapsed})
    got = store.reap_due(sid, heartbeat_s=1.0)
    assert got.requeued == [] and got.spared == 2
    # Each waits one heartbeat of its own holder (lease_ms / 3), from the store's return.
    assert got.earliest is not None and 9_000 <= got.earliest - got.now_ms <= 10_000
    assert store.reap(sid) == []  # every agent's reap sees the same
    assert store.renew(claim, LEASE) == "ok"  # a live holder keeps its run
    assert store.complete(ended, "finished", 0, "exit-0")  # and an ended one records its end
    assert store.run(ended.run_id).state == "finished"


def test_a_spared_lease_whose_holder_stays_silent_is_reaped_after_the_heartbeat(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    silence(r, sid, 20)
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 5_000})
    assert store.reap_due(sid).spared == 1
    back = int(r.get(keys.sweep_up(sid)).split(b":")[1])  # type: ignore[union-attr]
    r.set(keys.sweep_up(sid), f"{redis_ms(r) - 20_000}:{back - 10_001}")  # a heartbeat has passed
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 1})
    assert store.reap(sid) == [claim.run_id]
    assert store.renew(claim, LEASE) == "fenced"


def test_a_lease_that_lapsed_before_the_silence_is_reaped_at_once(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = held(store, sid)
    silence(r, sid, 20)
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 25_000})  # its holder died before it
    assert store.reap(sid) == [claim.run_id]


def test_a_script_resuming_a_run_by_name_waits_the_same_heartbeat(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    first = store.begin("r1", sid, resume.TABLE["allow"], {}, "first", "t1", LEASE, spelled="")
    assert store.renew(first.claim, LEASE) == "ok"
    silence(r, sid, 20)
    r.zadd(keys.sweep_held(sid), {"r1": redis_ms(r) - 5_000})  # lapsed in the silence
    with pytest.raises(RunHeld, match=r"running under first \(its lease runs 10 s more\)"):
        store.begin("r1", sid, resume.TABLE["must"], {}, "second", "t2", LEASE, spelled="")
    assert store.renew(first.claim, LEASE) == "ok"  # the live holder keeps its run
    back = int(r.get(keys.sweep_up(sid)).split(b":")[1])  # type: ignore[union-attr]
    r.set(keys.sweep_up(sid), f"{redis_ms(r) - 20_000}:{back - 10_001}")  # a heartbeat has passed
    r.zadd(keys.sweep_held(sid), {"r1": redis_ms(r) - 1})
    second = store.begin("r1", sid, resume.TABLE["must"], {}, "second", "t2", LEASE, spelled="")
    assert second.claim.attempt == 2 and store.renew(first.claim, LEASE) == "fenced"


def test_sweepd_reap_waits_the_heartbeat_a_lease_lapsed_in_an_outage_is_given(
    r: redis.Redis, store: Store, cli_env: dict[str, str]
) -> None:
    sid = store.create_sweep(validate(GRID))
    claim = store.create_next(sid, "ag", 3.0)
    assert isinstance(claim, Claim) and store.renew(claim, 3.0) == "ok"  # a heartbeat of 1 s
    silence(r, sid, 5)
    r.zadd(keys.sweep_held(sid), {claim.run_id: redis_ms(r) - 1_000})
    done = run_sweepd("reap", sid, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"1 lease(s) of sweep {sid} lapsed while Redis was away: waiting 1.0 s",
        f"requeued {claim.run_id} (sweep {sid}): its lease had expired",
    ]


def test_heartbeats_and_renewals_keep_the_store_up_and_a_silence_ends_it(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate(GRID))
    assert not r.exists(keys.sweep_up(sid))
    claim = held(store, sid)  # no renewal or reap before: nothing to come back from
    assert r.get(keys.sweep_up(sid)).endswith(b":0")  # type: ignore[union-attr]
    assert 14_000 < r.pttl(keys.sweep_up(sid)) <= 15_000  # half the lease: 1.5 heartbeats
    r.pexpire(keys.sweep_up(sid), 100)
    store.idle_beat(sid, "ag", 3.0)  # an idle agent's heartbeat pushes it on (its own 1.5 heartbeats)
    assert 1_000 < r.pttl(keys.sweep_up(sid)) <= 1_500
    r.delete(keys.sweep_up(sid))
    store.idle_beat(sid, "ag", 3.0)
    assert not r.exists(keys.sweep_up(sid))  # a heartbeat never says the store came back: a script does
    assert store.renew(claim, LEASE) == "ok"
    assert int(r.get(keys.sweep_up(sid)).split(b":")[1]) > 0  # type: ignore[union-attr]


# agents through a frozen Redis ----------------------------------------------------------------------

# A run of about a second that notes when each attempt started and ended.
PROGRAM = """
import json, os, sys, time
out = os.environ["OUT_DIR"]
rid, attempt = os.environ["SWEEPD_RUN_ID"], os.environ["SWEEPD_ATTEMPT"]
def note(event):
    with open(os.path.join(out, rid + ".jsonl"), "a") as fh:
        fh.write(json.dumps({"attempt": attempt, "event": event}) + "\\n")
note("start")
time.sleep(1.0)
note("end")
"""


def test_a_redis_frozen_for_most_of_a_lease_costs_no_finished_run_and_no_live_holder_its_run(tmp_path: Path) -> None:
    """SIGSTOP of the server for 2.2 s of a 3 s lease (--heartbeat 1), twice: runs that ended meanwhile
    are recorded once it is back, holders that renew keep their runs, and the only attempts run
    again are those the freeze cut short (stopped by their own guard, or claimed by a reply lost to
    it: held by nobody, reaped)."""
    server = RedisServer(tmp_path / "redis")
    server.dir.mkdir()
    server.start()
    try:
        runs, attempts, told = _frozen_twice(tmp_path, server)
    finally:
        server.stop()
    assert [r["state"] for r in runs] == ["finished"] * 20
    started = _one_end_each(tmp_path / "out", runs)
    print(f"{attempts} attempts for 20 runs: {started - 20} cut short, {attempts - started} never started")
    assert "requeued elsewhere" not in told  # no holder that renewed found its run reaped


def _frozen_twice(tmp_path: Path, server: RedisServer) -> tuple[list[dict[str, Any]], int, str]:
    """Three agents on a 20-point grid of 1 s runs, the server frozen twice: the runs, their attempts
    and what the agents said."""
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "SWEEPD_REDIS_URL": server.url, "SWEEPD_HOME": str(tmp_path / "home"), "OUT_DIR": str(out)}
    sweeps = Sweeps(tmp_path, env, PROGRAM)
    sid = sweeps.create(f"method: grid\nparameters:\n  x: {{values: {list(range(20))}}}\n")
    logs = [tmp_path / f"agent-{i}.log" for i in range(3)]
    agents = [
        subprocess.Popen(
            sweepd_cmd("agent", sid, "--notices", "none", "--heartbeat", "1"),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for log in logs
    ]
    try:
        assert server.proc is not None
        for n in (4, 12):
            wait_until(lambda n=n: _started(out) >= n, timeout=60)
            server.proc.send_signal(signal.SIGSTOP)
            time.sleep(2.2)
            server.proc.send_signal(signal.SIGCONT)
        codes = [a.wait(timeout=120) for a in agents]
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
                a.wait()
    told = "\n".join(log.read_text() for log in logs)
    assert codes == [0, 0, 0], told[-3000:]
    runs = sweeps.runs(sid)
    return runs, sum(int(r["attempt"]) for r in runs), told


def _one_end_each(out: Path, runs: list[dict[str, Any]]) -> int:
    """Every run ended once, in its last attempt: no finished run was run again. Returns how many
    attempts started."""
    last = {r["id"]: str(r["attempt"]) for r in runs}
    started = 0
    for path in out.glob("*.jsonl"):
        events = [json.loads(line) for line in path.read_text().splitlines()]
        ends = [e["attempt"] for e in events if e["event"] == "end"]
        assert ends == [last[path.stem]], f"{path.stem}: a finished run was run again: {events}"
        started += sum(e["event"] == "start" for e in events)
    return started


def _started(out: Path) -> int:
    return sum(path.read_text().count('"start"') for path in out.glob("*.jsonl"))
