"""Local stand-ins for the clouds' metadata services, each following its provider's documented protocol;
and an ``nvidia-smi`` that prints what ``nvidia-smi -L`` prints (``stand_in_smi``).

Each is a ``ThreadingHTTPServer`` on 127.0.0.1, port 0, served from its own thread, with ``url`` and
``close()`` (and usable as a context manager). A test drives it (``set_notice``, ``preempt``,
``add_event``...) and reads what it saw in ``requests``.
"""

from __future__ import annotations

import json
import secrets
import stat
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

Answer = tuple[int, bytes | str, dict[str, str]]
S = TypeVar("S", bound="_Standin")


class Seen(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    status: int
    at: float = 0.0  # time.monotonic() when it was answered


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    standin: _Standin


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.standin.handle(self)

    do_PUT = do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read ``requests``
        pass


class _Standin:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.cond = threading.Condition()
        self.closed = False
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()  # lets held requests answer
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, handler: _Handler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        status, payload, headers = self.route(handler.command, url.path, query, handler.headers, body)
        seen = {k.lower(): v for k, v in handler.headers.items()}
        with self.cond:
            self.requests.append(Seen(handler.command, url.path, query, seen, status, time.monotonic()))
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except ConnectionError:  # the client hung up (a stopped watcher): as a real server, say nothing
            pass

    def route(self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes) -> Answer:
        raise NotImplementedError

    def seen(self, path: str | None = None, status: int | None = None) -> list[Seen]:
        with self.cond:
            return [s for s in self.requests if path in (None, s.path) and status in (None, s.status)]


NOT_FOUND_HTML = (
    '<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html>\n<html><head><title>404 - Not Found</title>'
    "</head><body><h1>404 - Not Found</h1></body></html>\n"
)


class AwsImds(_Standin):
    """IMDSv2 with tokens required: a PUT for the token, then the token on every GET."""

    TOKEN = "/latest/api/token"
    ACTION = "/latest/meta-data/spot/instance-action"
    REBALANCE = "/latest/meta-data/events/recommendations/rebalance"

    def __init__(self) -> None:
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.notice: dict[str, str] | None = None
        self.rebalance: dict[str, str] | None = None
        super().__init__()

    def set_notice(self, action: str = "terminate", time: str | None = None) -> None:
        """The 200 answer from now on; ``time`` defaults to two minutes from now, as AWS gives."""
        self.notice = {"action": action, "time": time or _iso(120)}

    def clear_notice(self) -> None:
        """Back to 404: no notice (a new machine, for the next trial of a benchmark)."""
        self.notice = None

    def set_rebalance(self, notice_time: str | None = None) -> None:
        self.rebalance = {"noticeTime": notice_time or _iso(0)}

    def expire_tokens(self) -> None:
        with self.cond:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def route(self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes) -> Answer:
        if path == self.TOKEN:
            if method != "PUT":
                return 405, "", {}
            ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return 400, "", {}
            token = secrets.token_urlsafe(32)
            with self.cond:
                self.tokens[token] = time.monotonic() + int(ttl)
            return 200, token, {"X-aws-ec2-metadata-token-ttl-seconds": ttl, "Content-Type": "text/plain"}
        if method != "GET":
            return 405, "", {}
        with self.cond:
            expiry = self.tokens.get(headers.get("X-aws-ec2-metadata-token", ""), 0.0)
        if expiry <= time.monotonic():
            return 401, "", {}
        found = {self.ACTION: self.notice, self.REBALANCE: self.rebalance}.get(path)
        if found is None:
            return 404, NOT_FOUND_HTML, {"Content-Type": "text/html"}
        return 200, json.dumps(found), {"Content-Type": "text/plain"}


class GcpMetadata(_Standin):
    """``instance/preempted``; ``wait_for_change=true`` holds the GET until the value moves or a timeout."""

    PATH = "/computeMetadata/v1/instance/preempted"

    def __init__(self, max_hang: float = 60.0, flavor: bool = True) -> None:
        self.preempted = False
        self.max_hang = max_hang  # caps the client's timeout_sec, so tests see re-issued GETs
        self.flavor = flavor  # False: an impostor that answers without Metadata-Flavor: Google
        self.waiting = 0  # GETs being held right now
        super().__init__()

    def preempt(self) -> None:
        with self.cond:
            self.preempted = True
            self.cond.notify_all()

    def _etag(self) -> str:
        return "e7a9" if self.preempted else "0f1c"

    def route(self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes) -> Answer:
        answer = {"Metadata-Flavor": "Google"} if self.flavor else {}
        if headers.get("Metadata-Flavor") != "Google":
            return 403, "Missing Metadata-Flavor:Google header.\n", {**answer, "Content-Type": "text/html"}
        if path != self.PATH:
            return 404, "Not Found\n", answer
        if method != "GET":
            return 405, "", answer
        with self.cond:
            if query.get("wait_for_change") == "true" and query.get("last_etag") in (None, self._etag()):
                start = self.preempted
                timeout = min(float(query.get("timeout_sec", self.max_hang)), self.max_hang)
                self.waiting += 1
                self.cond.wait_for(lambda: self.preempted != start or self.closed, timeout)
                self.waiting -= 1
            value, etag = ("TRUE" if self.preempted else "FALSE"), self._etag()
        return 200, value, {**answer, "ETag": etag, "Content-Type": "application/text"}


class AzureScheduledEvents(_Standin):
    """Scheduled Events and the compute name from instance metadata; ``Metadata: true`` required."""

    EVENTS = "/metadata/scheduledevents"
    NAME = "/metadata/instance/compute/name"

    def __init__(self, vm_name: str = "sweepd-vm-0") -> None:
        self.vm_name = vm_name
        self.incarnation = 1
        self.events: list[dict[str, Any]] = []
        self.acknowledged: list[str] = []
        super().__init__()

    def add_event(
        self,
        event_id: str,
        resources: list[str],
        not_before: str | float | None = None,
        event_type: str = "Preempt",
        status: str = "Scheduled",
    ) -> None:
        when = not_before if isinstance(not_before, str) else formatdate(not_before or time.time() + 30, usegmt=True)
        event = {
            "EventId": event_id,
            "EventType": event_type,
            "ResourceType": "VirtualMachine",
            "Resources": resources,
            "EventStatus": status,
            "NotBefore": when,
            "Description": "",
            "EventSource": "Platform",
            "DurationInSeconds": -1,
        }
        with self.cond:
            self.events.append(event)
            self.incarnation += 1

    def route(self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes) -> Answer:
        as_json = {"Content-Type": "application/json; charset=utf-8"}
        if (headers.get("Metadata") or "").lower() != "true":
            return 400, json.dumps({"error": "Bad request. Required metadata header not specified"}), as_json
        if "api-version" not in query:
            return 400, json.dumps({"error": "Bad request. api-version was not specified in the request"}), as_json
        if path == self.NAME and method == "GET":
            if query.get("format") == "text":
                return 200, self.vm_name, {"Content-Type": "text/plain; charset=utf-8"}
            return 200, json.dumps(self.vm_name), as_json
        if path != self.EVENTS:
            return 404, json.dumps({"error": "Not found"}), as_json
        with self.cond:
            if method == "GET":
                return 200, json.dumps({"DocumentIncarnation": self.incarnation, "Events": self.events}), as_json
            try:
                ids = [str(r["EventId"]) for r in json.loads(body)["StartRequests"]]
            except (ValueError, KeyError, TypeError):
                return 400, json.dumps({"error": "Bad request. StartRequests expected"}), as_json
            self.acknowledged.extend(ids)
            self.events = [e for e in self.events if e["EventId"] not in ids]
            self.incarnation += 1
        return 200, "", {}


def _iso(seconds_from_now: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds_from_now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: What ``nvidia-smi -L`` prints on an 8-GPU machine with MIG on its first GPU.
SMI = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5a4c1b3e-0f6e-4a51-9b0e-2c5d8e7f1a01)
  MIG 3g.20gb     Device  0: (UUID: MIG-1e2d3c4b-5a69-5b8c-9d0e-1f2a3b4c5d6e)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-6b5d2c4f-1a7f-4b62-8c1f-3d6e9f8a2b02)
GPU 2: NVIDIA A100-SXM4-40GB (UUID: GPU-7c6e3d5a-2b8a-4c73-9d2a-4e7f0a9b3c03)
GPU 3: NVIDIA A100-SXM4-40GB (UUID: GPU-8d7f4e6b-3c9b-4d84-8e3b-5f8a1b0c4d04)
"""


def stand_in_smi(directory: Path, output: str, code: int = 0) -> Path:
    """An ``nvidia-smi`` on PATH that prints ``output`` for ``-L``."""
    (directory / "smi.txt").write_text(output)
    exe = directory / "nvidia-smi"
    exe.write_text(f'#!/bin/sh\n[ "$1" = "-L" ] || exit 9\ncat "{directory / "smi.txt"}"\nexit {code}\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return directory
