"""systemd's notify protocol against a real AF_UNIX datagram socket, as systemd binds one."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweepd.agent.daemon.sdnotify import ENV_VARS, Notifier


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Listener:
    """The service manager's end: a bound datagram socket that collects what arrives."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def env(self, **extra: str) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.env_value, **extra}

    def messages(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        yield Listener(sock, str(path))


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"sweepd-test-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        yield Listener(sock, "@" + name)


def test_every_message_reaches_a_path_socket(listener: Listener) -> None:
    n = Notifier.from_env(listener.env())
    assert n.enabled
    n.ready()
    n.ready("working sweep abc")
    n.status("3 runs done")
    n.stopping()
    n.stopping("preempted: run r1 checkpointing")
    n.extend_timeout(140)
    n.extend_timeout(0.25)
    n.watchdog()
    assert listener.messages() == [
        "READY=1",
        "READY=1\nSTATUS=working sweep abc",
        "STATUS=3 runs done",
        "STOPPING=1",
        "STOPPING=1\nSTATUS=preempted: run r1 checkpointing",
        "EXTEND_TIMEOUT_USEC=140000000",
        "EXTEND_TIMEOUT_USEC=250000",
        "WATCHDOG=1",
    ]
    assert n.last_error is None


def test_an_abstract_socket_gets_the_messages_too(abstract_listener: Listener) -> None:
    n = Notifier.from_env(abstract_listener.env())
    assert n.enabled
    n.ready("up")
    n.watchdog()
    assert abstract_listener.messages() == ["READY=1\nSTATUS=up", "WATCHDOG=1"]


def test_a_status_stays_one_assignment(listener: Listener) -> None:
    n = Notifier.from_env(listener.env())
    n.status("line one\nREADY=1")
    n.ready("a\r\nb")
    assert listener.messages() == ["STATUS=line one READY=1", "READY=1\nSTATUS=a b"]


def test_a_negative_extension_is_zero(listener: Listener) -> None:
    Notifier.from_env(listener.env()).extend_timeout(-5)
    assert listener.messages() == ["EXTEND_TIMEOUT_USEC=0"]


def test_the_watchdog_interval_is_half_of_watchdog_usec(listener: Listener) -> None:
    assert Notifier.from_env(listener.env(WATCHDOG_USEC="60000000")).watchdog_interval() == 30.0
    ours = listener.env(WATCHDOG_USEC="3000000", WATCHDOG_PID=str(os.getpid()))
    assert Notifier.from_env(ours).watchdog_interval() == 1.5
    for bad in ("", "0", "-1", "soon"):
        assert Notifier.from_env(listener.env(WATCHDOG_USEC=bad)).watchdog_interval() is None
    assert Notifier.from_env(listener.env()).watchdog_interval() is None


def test_a_watchdog_meant_for_another_process_is_not_ours(listener: Listener) -> None:
    other = str(os.getpid() + 1)
    n = Notifier.from_env(listener.env(WATCHDOG_USEC="60000000", WATCHDOG_PID=other))
    assert n.watchdog_interval() is None
    n.maybe_watchdog()
    assert listener.messages() == []
    garbled = Notifier.from_env(listener.env(WATCHDOG_USEC="60000000", WATCHDOG_PID="nope"))
    assert garbled.watchdog_interval() is None


def test_maybe_watchdog_paces_pings_by_a_monotonic_clock(listener: Listener) -> None:
    clock = FakeClock()
    n = Notifier.from_env(listener.env(WATCHDOG_USEC="60000000"), clock=clock)  # ping every 30 s
    n.maybe_watchdog()  # never pinged: ping now
    assert listener.messages() == ["WATCHDOG=1"]
    for _ in range(14):  # 14 s later: nothing due
        clock.now += 1.0
        n.maybe_watchdog()
    assert listener.messages() == []
    clock.now += 1.0  # 15 s, half the interval: due
    n.maybe_watchdog()
    n.maybe_watchdog()
    assert listener.messages() == ["WATCHDOG=1"]
    clock.now += 100.0  # a long stall: one ping, not a burst
    n.maybe_watchdog()
    n.maybe_watchdog()
    assert listener.messages() == ["WATCHDOG=1"]
    n.watchdog()  # an explicit ping resets the pacing
    clock.now += 14.9
    n.maybe_watchdog()
    assert listener.messages() == ["WATCHDOG=1"]


def test_maybe_watchdog_without_a_watchdog_sends_nothing(listener: Listener) -> None:
    clock = FakeClock()
    n = Notifier.from_env(listener.env(), clock=clock)
    for _ in range(5):
        clock.now += 1000.0
        n.maybe_watchdog()
    assert listener.messages() == []


def test_without_notify_socket_everything_is_a_no_op() -> None:
    for env in ({}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "relative.sock"}, {"NOTIFY_SOCKET": "@"}):
        n = Notifier.from_env({**env, "WATCHDOG_USEC": "60000000"})
        assert not n.enabled
        assert n.watchdog_interval() is None
        n.ready("x")
        n.status("x")
        n.stopping("x")
        n.extend_timeout(1)
        n.watchdog()
        n.maybe_watchdog()
        assert n.last_error is None


def test_the_default_environment_is_the_process_s(monkeypatch: pytest.MonkeyPatch, listener: Listener) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = Notifier.from_env()
    assert n.watchdog_interval() == 1.0
    n.ready()
    assert listener.messages() == ["READY=1"]
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not Notifier.from_env().enabled


def test_a_send_that_fails_is_swallowed(tmp_path: Path) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert n.enabled
    n.ready("x")
    n.watchdog()
    assert isinstance(n.last_error, OSError)


def test_the_env_vars_it_reads_are_named() -> None:
    assert set(ENV_VARS) == {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}
