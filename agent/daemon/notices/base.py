"""What every watcher shares: the thread, one request per connection, de-duplication, auto-detection.

Requests go through ``http.client`` on a fresh connection each: no proxy (the services are
link-local), no redirects, and a connect timeout apart from the read timeout. Nothing raises out of
the thread: a failed request is logged once and asked again at the next poll.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from .. import logs

log = logs.get("sweepd.agent.notices")

PROBE_TIMEOUT = 0.3  # auto mode: a metadata service answers in milliseconds; off-cloud we must not wait
PROBE_TRIES = 2  # only a timeout is tried again; a refusal or a foreign answer is final
REQUEST_TIMEOUT = 2.0  # per request once the cloud is known (AWS's node-termination-handler uses 2 s)
MAX_BODY = 1 << 16


@dataclass(frozen=True)
class Notice:
    """The machine goes away at ``deadline`` (unix time, if known); ``drain_only``: just stop taking runs."""

    reason: str  # "aws-notice", "gcp-notice", "azure-notice" or "aws-rebalance"
    deadline: float | None
    drain_only: bool = False
    detail: str = ""  # the AWS action, the Azure EventId


class UnexpectedAnswer(Exception):
    """An answer outside the protocol: logged, and asked again at the next poll."""


TRANSIENT = (OSError, http.client.HTTPException, ValueError, UnexpectedAnswer)  # retried, never raised


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: http.client.HTTPMessage

    def header(self, name: str) -> str:
        return str(self.headers.get(name, ""))


class Detection:
    """Auto mode's tally, so that off-cloud the three probes leave one debug line between them."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._left = set(names)
        self._found = False
        self._lock = threading.Lock()

    def settle(self, name: str, found: bool) -> None:
        with self._lock:
            self._left.discard(name)
            self._found = self._found or found
            if not self._left and not self._found:
                log.debug("no cloud metadata service answered: no preemption notices to watch")


class BaseWatcher:
    """The thread, the requests, de-duplication; subclasses give ``_probe`` and ``_poll``."""

    name = "base"

    def __init__(self, base_url: str, interval: float, detection: Detection | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.interval = interval
        self._detection = detection  # None: the mode names this cloud, so never give up on it
        self._stopped = threading.Event()
        self._done = False  # set by a subclass that has nothing more to learn
        self._failing = False
        self._seen: set[object] = set()
        self._on_notice: Callable[[Notice], None] = lambda notice: None
        self._thread: threading.Thread | None = None
        self._conn: http.client.HTTPConnection | None = None

    def start(self, on_notice: Callable[[Notice], None]) -> None:
        if self._thread is not None:
            return
        self._on_notice = on_notice
        self._thread = threading.Thread(target=self._main, name=f"sweepd-notices-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread; a hanging request is cut by shutting its socket down."""
        self._stopped.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        self.join(REQUEST_TIMEOUT)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (off-cloud in auto mode it ends by itself); True once it has."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        return not thread.is_alive()

    def acknowledge(self) -> None:
        """Only Azure's events can be acknowledged."""

    def _main(self) -> None:
        try:
            if self._detect():
                self._watch()
        except Exception:  # a bug here must not take the agent down: notices are best effort
            log.exception("notice watcher failed", watcher=self.name)

    def _detect(self) -> bool:
        if self._detection is None:
            return True
        found = False
        for _ in range(PROBE_TRIES):
            try:
                found = self._probe(PROBE_TIMEOUT)
            except TimeoutError:
                continue
            except TRANSIENT:
                pass
            break
        self._detection.settle(self.name, found)
        if found:
            log.info("watching for preemption notices", watcher=self.name, url=self.base_url)
        return found

    def _watch(self) -> None:
        while not self._done and not self._stopped.is_set():
            try:
                wait = self._poll()
                if self._failing:
                    log.info("metadata service answering again", watcher=self.name)
                self._failing = False
            except TRANSIENT as exc:
                if self._stopped.is_set():
                    return
                if not self._failing:
                    log.warning("metadata service not answering; retrying", watcher=self.name, error=repr(exc))
                self._failing = True
                wait = self.interval
            if self._stopped.wait(wait):
                return

    def _probe(self, timeout: float) -> bool:
        """Auto mode: is this cloud's service here? One quick request, whose answer is kept."""
        raise NotImplementedError

    def _poll(self) -> float:
        """Ask once; return how long to wait before asking again."""
        raise NotImplementedError

    def _emit(self, key: object, notice: Notice) -> None:
        """Call ``on_notice`` once per distinct notice; a failing callback is logged, not raised."""
        if key in self._seen:
            return
        self._seen.add(key)
        log.info("preemption notice", watcher=self.name, **asdict(notice))
        try:
            self._on_notice(notice)
        except Exception:
            log.exception("on_notice failed", watcher=self.name)

    def _fetch(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT,
        read_timeout: float | None = None,
    ) -> Response:
        """One request on its own connection; ``stop()`` can cut the watcher thread's own."""
        url = urllib.parse.urlsplit(self.base_url + path)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
        track = threading.current_thread() is self._thread
        if track:
            self._conn = conn
        try:
            conn.connect()
            if track and self._stopped.is_set():
                raise ConnectionAbortedError("watcher stopped")
            if read_timeout is not None and conn.sock is not None:
                conn.sock.settimeout(read_timeout)
            conn.request(method, url.path + (f"?{url.query}" if url.query else ""), body=body, headers=dict(headers))
            resp = conn.getresponse()
            return Response(resp.status, resp.read(MAX_BODY), resp.headers)
        finally:
            if track:
                self._conn = None
            conn.close()
