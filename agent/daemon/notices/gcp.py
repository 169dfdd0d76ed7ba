"""GCP Spot and preemptible VMs: ``instance/preempted`` turns TRUE about 30 s before the power-off.

We hold a hanging GET (``wait_for_change=true``) rather than poll, so the notice arrives at once. The
ETag of each answer goes back as ``last_etag``, so a change between two requests is not missed. Only
an answer carrying ``Metadata-Flavor: Google`` counts: that is how GCP's own clients tell the real
server from anything else that answers on the address.
"""

from __future__ import annotations

import time
import urllib.parse

from .base import BaseWatcher, Notice, Response, UnexpectedAnswer

PATH = "/computeMetadata/v1/instance/preempted"
HEADERS = {"Metadata-Flavor": "Google"}
HANG = 60  # seconds the server holds a wait_for_change GET (timeout_sec) before answering anyway
READ_TIMEOUT = HANG + 15.0  # ours: a little longer than the server's, so its answer wins
LEAD_TIME = 30.0  # Spot's notice; preemptionNoticeDuration can give more, never less


class GcpWatcher(BaseWatcher):
    """A first plain GET (already preempted?), then hanging GETs re-issued until TRUE; then it ends."""

    name = "gcp"
    _etag: str | None = None  # None until the first plain GET has been answered

    def _probe(self, timeout: float) -> bool:
        self._answer(self._fetch("GET", PATH, HEADERS, timeout=timeout))
        return True

    def _poll(self) -> float:
        asked = time.monotonic()
        if self._etag is None:
            self._answer(self._fetch("GET", PATH, HEADERS))
            return 0.0
        query = {"wait_for_change": "true", "timeout_sec": str(HANG)}
        if self._etag:
            query["last_etag"] = self._etag
        resp = self._fetch("GET", f"{PATH}?{urllib.parse.urlencode(query)}", HEADERS, read_timeout=READ_TIMEOUT)
        self._answer(resp)
        # A server that answers FALSE at once (not holding the GET) is asked at most once an interval.
        return max(0.0, self.interval - (time.monotonic() - asked))

    def _answer(self, resp: Response) -> None:
        if resp.header("Metadata-Flavor") != "Google":
            raise UnexpectedAnswer(f"HTTP {resp.status} without Metadata-Flavor: Google: not GCP's metadata server")
        if resp.status != 200:
            raise UnexpectedAnswer(f"{PATH} answered HTTP {resp.status}")
        self._etag = resp.header("ETag")
        if resp.body.strip().upper() == b"TRUE":
            self._emit("preempted", Notice("gcp-notice", time.time() + LEAD_TIME, detail="preempted"))
            self._done = True  # the value never goes back to FALSE on this VM
