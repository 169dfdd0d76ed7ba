"""Azure Spot: ``Preempt`` events from Scheduled Events, at least 30 s before ``NotBefore``.

Events are broadcast to the whole availability set, so only those whose ``Resources`` name this VM
count (the name from instance metadata). ``acknowledge()`` lets the preemption start before
``NotBefore``: the agent calls it only once its run is safe. Azure asks for a poll every second, so
the interval is capped at 1 s here whatever ``--notice-interval`` says.
"""

from __future__ import annotations

import http.client
import json
import threading
from email.utils import parsedate_to_datetime
from typing import Any

from .base import REQUEST_TIMEOUT, BaseWatcher, Detection, Notice, UnexpectedAnswer, log

API = "api-version=2020-07-01"
EVENTS_PATH = f"/metadata/scheduledevents?{API}"
NAME_PATH = "/metadata/instance/compute/name?api-version=2021-02-01&format=text"
HEADERS = {"Metadata": "true"}
FIRST_CALL_TIMEOUT = 120.0  # the first request turns Scheduled Events on, which can take minutes
MAX_INTERVAL = 1.0


def parse_not_before(text: object) -> float | None:
    """``Mon, 19 Sep 2016 18:29:47 GMT`` (RFC 1123) -> unix time; None when empty or unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


class AzureWatcher(BaseWatcher):
    name = "azure"

    def __init__(self, base_url: str, interval: float, detection: Detection | None = None) -> None:
        super().__init__(base_url, min(interval, MAX_INTERVAL), detection)
        self._vm: str | None = None
        self._first = True
        self._unacknowledged: list[str] = []
        self._lock = threading.Lock()

    def _probe(self, timeout: float) -> bool:
        self._learn_name(timeout)
        return True

    def _learn_name(self, timeout: float = REQUEST_TIMEOUT) -> None:
        resp = self._fetch("GET", NAME_PATH, HEADERS, timeout=timeout)
        name = resp.body.decode("utf-8", "replace").strip()
        if resp.status != 200 or not name:
            raise UnexpectedAnswer(f"compute name answered HTTP {resp.status}")
        self._vm = name

    def _poll(self) -> float:
        if self._vm is None:
            self._learn_name()
        read_timeout = FIRST_CALL_TIMEOUT if self._first else None
        resp = self._fetch("GET", EVENTS_PATH, HEADERS, read_timeout=read_timeout)
        self._first = False
        if resp.status != 200:
            raise UnexpectedAnswer(f"scheduledevents answered HTTP {resp.status}")
        doc = json.loads(resp.body)
        events = doc.get("Events") if isinstance(doc, dict) else None
        for event in events if isinstance(events, list) else []:
            if self._ours(event):
                event_id = str(event["EventId"])
                if event_id not in self._seen:
                    with self._lock:
                        self._unacknowledged.append(event_id)
                notice = Notice("azure-notice", parse_not_before(event.get("NotBefore")), detail=event_id)
                self._emit(event_id, notice)
        return self.interval

    def _ours(self, event: Any) -> bool:
        """A Preempt of this VM (names compare without case, as Azure's do)."""
        if not isinstance(event, dict) or event.get("EventType") != "Preempt" or "EventId" not in event:
            return False
        resources = event.get("Resources")
        vm = (self._vm or "").casefold()
        return isinstance(resources, list) and any(str(r).casefold() == vm for r in resources)

    def acknowledge(self) -> None:
        """POST StartRequests for the events we reported; a failure is logged, and may be retried."""
        with self._lock:
            ids = list(self._unacknowledged)
        if not ids:
            return
        body = json.dumps({"StartRequests": [{"EventId": i} for i in ids]}).encode()
        headers = {**HEADERS, "Content-Type": "application/json"}
        try:
            resp = self._fetch("POST", EVENTS_PATH, headers, body)
        except (OSError, http.client.HTTPException) as exc:
            log.warning("could not acknowledge the preemption", watcher=self.name, events=ids, error=str(exc))
            return
        if resp.status != 200:
            log.warning("preemption acknowledgement refused", watcher=self.name, events=ids, status=resp.status)
            return
        with self._lock:
            self._unacknowledged = [i for i in self._unacknowledged if i not in ids]
        log.info("preemption acknowledged", watcher=self.name, events=ids)
