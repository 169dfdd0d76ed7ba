"""A real Sentinel topology for tests: one master, one replica, three sentinels, all the embedded
server binary (``valkey-server`` runs as a sentinel with ``--sentinel``), on free loopback ports.

Data nodes keep nothing on disk: a killed master is started again as the new master's replica,
which copies it the whole data set.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from pathlib import Path

import redis

from support import free_port, wait_until
from sweepd.queue.connections import server_binary

MASTER_NAME = "sweepd"


class Topology:
    def __init__(
        self,
        directory: Path,
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int | None = None,
        password: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        self.dir, self.down_after_ms = directory, down_after_ms
        self.failover_timeout_ms = failover_timeout_ms or max(3 * down_after_ms, 2000)
        self.password, self.sentinel_password = password, sentinel_password
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        auth = f":{password}@" if password else ""
        self.url = (
            f"redis+sentinel://{auth}" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{MASTER_NAME}/0"
        )

    # starting ---------------------------------------------------------------------------------

    def start(self) -> Topology:
        master, replica = self.data_ports
        self._data(master)
        self._data(replica, "--replicaof", "127.0.0.1", str(master))
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
                + (f"sentinel auth-pass {MASTER_NAME} {self.password}\n" if self.password else "")
                + (
                    f"requirepass {self.sentinel_password}\nsentinel sentinel-pass {self.sentinel_password}\n"
                    if self.sentinel_password
                    else ""
                )
            )
            self._spawn(port, str(conf), "--sentinel")
        wait_until(self._settled, timeout=30)
        return self

    def _data(self, port: int, *extra: str) -> None:
        args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        self._spawn(port, *args, *extra)

    def _spawn(self, port: int, *args: str) -> None:
        log = open(self.dir / f"{port}.log", "ab")  # noqa: SIM115 - the server holds it
        self.procs[port] = subprocess.Popen([server_binary(), *args], stdout=log, stderr=log)
        sentinel = "--sentinel" in args
        wait_until(lambda: _answers(self.node(port, sentinel=sentinel)), timeout=15)

    def _settled(self) -> bool:
        """Every sentinel knows the master, its replica and the two other sentinels."""
        for port in self.sentinel_ports:
            try:
                state = self.node(port, sentinel=True).sentinel_master(MASTER_NAME)
            except redis.RedisError:
                return False
            if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2 or state["is_sdown"]:
                return False
        return self.replica_in_sync()

    # observing --------------------------------------------------------------------------------

    def node(self, port: int, *, sentinel: bool = False) -> redis.Redis:
        """A client of one server or of one sentinel, with its password."""
        return redis.Redis(port=port, socket_timeout=1, password=self.sentinel_password if sentinel else self.password)

    def master(self) -> int:
        """The master's port, as the sentinels say."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError):
                got = self.node(port, sentinel=True).sentinel_get_master_addr_by_name(MASTER_NAME)
                if got:
                    return int(got[1])
        raise AssertionError("no sentinel names a master")

    def replica_in_sync(self) -> bool:
        """The master has a replica that has copied the data set and follows the stream (online)."""
        try:
            info = self.node(self.master()).info("replication")
        except (redis.RedisError, AssertionError):
            return False
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return info.get("role") == "master" and any(r.get("state") == "online" for r in replicas)

    # failing ----------------------------------------------------------------------------------

    def kill_master(self, *, wait: bool = True) -> int:
        """SIGKILL the master; with ``wait``, until the sentinels have promoted the replica.
        Returns the dead master's port."""
        old = self.master()
        proc = self.procs.pop(old)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if wait:
            wait_until(lambda: self._promoted(old), timeout=60)
        return old

    def _promoted(self, old: int) -> bool:
        try:
            new = self.master()
        except AssertionError:
            return False
        if new == old:
            return False
        with contextlib.suppress(redis.RedisError):
            return self.node(new).info("replication").get("role") == "master"
        return False

    def revive(self, port: int) -> None:
        """Start a killed server again, empty, as the new master's replica: as an operator brings a
        failed node back. (Started empty as a master, it would hold no data until the sentinels
        convert it, and a sentinel slow to learn of the failover could send clients to it.)"""
        self._data(port, "--replicaof", "127.0.0.1", str(self.master()))
        wait_until(self.replica_in_sync, timeout=60)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        for proc in self.procs.values():
            proc.wait(10)
        self.procs.clear()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
