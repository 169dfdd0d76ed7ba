"""Correctness that is also security: no pickle from Redis, checked ids, no password in sight."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest
import redis
from rq import Queue
from rq.registry import StartedJobRegistry

from support import RedisServer, run_sweepd, sweepd_cmd, wait_until
from sweepd.queue import keys
from sweepd.queue.config import validate
from sweepd.queue.errors import InvalidId
from sweepd.queue.records import Claim
from sweepd.queue.store import Store
from tlsproxy import TlsProxy, make_ca


class Planted:
    """Unpickling this creates a file: proof that something deserialised pickle from Redis."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_job_is_never_executed(tmp_path: Path, r: redis.Redis, cli_env: dict[str, str]) -> None:
    (tmp_path / "p.py").write_text("print('ok')\n")
    config = tmp_path / "sweep.yaml"
    config.write_text(f"method: grid\nprogram: {tmp_path / 'p.py'}\nparameters:\n  x: {{values: [1]}}\n")
    sid = run_sweepd("sweep", "create", str(config), "--quiet", env=cli_env).stdout.strip()
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Planted(marker))
    # Someone with write access plants a job the way rq's default (pickle) serializer would write it.
    r.hset(keys.rq_job("evil"), mapping={"data": payload, "status": "queued", "origin": keys.rq_queue_name(sid)})
    r.lpush(keys.rq_queue(sid), "evil")
    r.hset(keys.run("evil2"), mapping={"state": "queued", "params": "{}", "sweep_id": sid})
    r.hset(keys.rq_job("evil2"), mapping={"data": payload})
    r.lpush(keys.rq_queue(sid), "evil2")
    done = run_sweepd("agent", sid, "--notices", "none", env=cli_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    runs = json.loads(run_sweepd("runs", sid, "--json", env=cli_env).stdout)
    assert [run["params"] for run in runs] == [{"x": 1}]  # the real run ran; the planted ones did not


def test_ids_are_checked_before_they_reach_a_key(store: Store, cli_env: dict[str, str]) -> None:
    for bad in ("../x", "a:b", "a b", "x" * 65, "", "*"):
        with pytest.raises(InvalidId):
            store.run(bad)
        with pytest.raises(InvalidId):
            store.sweep(bad)
    done = run_sweepd("logs", "sweepd:sweeps", env=cli_env)
    assert done.returncode == 2 and done.stderr.startswith("sweepd: error: run id 'sweepd:sweeps' is not valid")


def test_rq_s_own_cleanup_never_touches_a_sweepd_run(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate({"method": "grid", "program": "p", "parameters": {"x": {"values": [1, 2]}}}))
    running = store.create_next(sid, "a", 30)
    queued = store.create_next(sid, "a", 30)
    assert isinstance(running, Claim) and isinstance(queued, Claim)
    store.requeue(queued, reason="test")
    queue = Queue(keys.rq_queue_name(sid), connection=r)
    registry = StartedJobRegistry(queue=queue)
    registry.cleanup()  # what rq's workers run every 10 minutes
    assert registry.count == 0  # sweepd's held runs are not in rq's started registry
    assert queue.job_ids == [queued.run_id]
    assert store.run(running.run_id).state == "running" and store.renew(running, 30) == "ok"


def test_the_password_stays_out_of_process_lists_logs_and_the_training_env(tmp_path: Path) -> None:
    secret = "s3cr3t-pass-word"
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis", password=secret).start()
    try:
        prog = tmp_path / "p.py"
        prog.write_text(
            "import json, os, time\n"
            "open(os.environ['ENV_OUT'], 'w').write(json.dumps(dict(os.environ)))\n"
            "time.sleep(30)\n"
        )
        config = tmp_path / "sweep.yaml"
        config.write_text(f"method: grid\nprogram: {prog}\nparameters:\n  x: {{values: [1]}}\n")
        env = {**os.environ, "SWEEPD_REDIS_URL": server.url, "ENV_OUT": str(tmp_path / "env.json")}
        sid = run_sweepd("sweep", "create", str(config), "--quiet", env=env).stdout.strip()
        agent = subprocess.Popen(
            sweepd_cmd("agent", sid, "--notices", "none"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: (tmp_path / "env.json").exists() and (tmp_path / "env.json").read_text())
        tree = [psutil.Process(agent.pid), *psutil.Process(agent.pid).children(recursive=True)]
        assert all(secret not in " ".join(p.cmdline()) for p in tree)
        assert secret not in (tmp_path / "env.json").read_text()
        agent.terminate()
        out, err = agent.communicate(timeout=60)
        assert secret not in out + err
        # and an error names the URL without its password
        bad = run_sweepd("status", sid, env={**env, "SWEEPD_REDIS_URL": f"redis://:{secret}@127.0.0.1:1/0"})
        assert bad.returncode == 3 and secret not in bad.stderr and "***" in bad.stderr
    finally:
        server.stop()


def test_a_url_file_keeps_the_password_out_of_the_environment(tmp_path: Path, redis_url: str) -> None:
    url_file = tmp_path / "url"
    url_file.write_text(redis_url + "\n")
    env = {k: v for k, v in os.environ.items() if k != "SWEEPD_REDIS_URL"}
    env["SWEEPD_REDIS_URL_FILE"] = str(url_file)
    (tmp_path / "s.yaml").write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1]}\n")
    done = run_sweepd("sweep", "create", str(tmp_path / "s.yaml"), "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    assert redis.Redis.from_url(redis_url).exists(keys.sweep(done.stdout.strip()))


def test_rediss_with_a_ca_file(tmp_path: Path, redis_url: str, cli_env: dict[str, str]) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: it makes the test's certificates")
    ca, cert, key = make_ca(tmp_path)
    proxy = TlsProxy(cert, key, int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    try:
        (tmp_path / "s.yaml").write_text("method: grid\nprogram: p.py\nparameters:\n  x: {values: [1]}\n")
        url = f"rediss://127.0.0.1:{proxy.port}/0"
        ok = run_sweepd(
            "sweep",
            "create",
            str(tmp_path / "s.yaml"),
            "--quiet",
            env={**cli_env, "SWEEPD_REDIS_URL": f"{url}?ssl_ca_certs={ca}"},
        )
        assert ok.returncode == 0, ok.stderr
        assert redis.Redis.from_url(redis_url).exists(keys.sweep(ok.stdout.strip()))
        untrusted = run_sweepd("status", ok.stdout.strip(), env={**cli_env, "SWEEPD_REDIS_URL": url})
        assert untrusted.returncode == 3 and "certificate" in untrusted.stderr.lower()
        assert "Traceback" not in untrusted.stderr
    finally:
        proxy.close()


@pytest.mark.parametrize("path", ["/abc", "/0/1", "/db0"])
def test_a_url_path_that_is_not_a_database_number_is_refused(
    cli_env: dict[str, str], redis_url: str, path: str
) -> None:
    """redis-py would quietly use database 0 for it: the user meant something else."""
    url = redis_url.rsplit("/", 1)[0] + path
    done = run_sweepd("check", env={**cli_env, "SWEEPD_REDIS_URL": url})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"sweepd: error: --redis-url {url}: the path {path!r} is not a database number (redis://HOST:PORT/0)"
    ]
    assert run_sweepd("check", env={**cli_env, "SWEEPD_REDIS_URL": redis_url.rsplit("/", 1)[0] + "/"}).returncode == 0
