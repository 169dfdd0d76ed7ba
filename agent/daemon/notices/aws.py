"""AWS Spot: the interruption notice and the rebalance recommendation, from IMDSv2.

IMDSv2 needs a session token (``PUT /latest/api/token``) sent on every GET; a 401 means it expired,
so we take a new one and ask again. Status codes decide, never bodies: a 404 body is an HTML page.
In a container the token PUT needs the instance's hop limit raised to 2, else it times out.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from .base import REQUEST_TIMEOUT, BaseWatcher, Notice, Response, UnexpectedAnswer

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL = 21600  # the longest AWS allows: one token for six hours of polls
ACTION_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"


def parse_time(text: object) -> float | None:
    """``2026-11-21T12:00:00Z`` -> unix time; None for anything else (the notice still counts)."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


class AwsWatcher(BaseWatcher):
    """Polls the instance action and the rebalance recommendation every interval (AWS suggests 5 s)."""

    name = "aws"
    _token: str | None = None
    _rebalanced = False

    def _probe(self, timeout: float) -> bool:
        return self._new_token(timeout).status == 200 and self._token is not None

    def _new_token(self, timeout: float) -> Response:
        resp = self._fetch("PUT", TOKEN_PATH, {TTL_HEADER: str(TOKEN_TTL)}, timeout=timeout)
        token = resp.body.decode("ascii", "replace").strip()
        self._token = token if resp.status == 200 and token else None
        return resp

    def _get(self, path: str) -> Response:
        """GET with the token; on a 401 (expired or unknown) take a new token and ask once more."""
        resp = self._get_once(path)
        if resp.status == 401:
            self._token = None
            resp = self._get_once(path)
        return resp

    def _get_once(self, path: str) -> Response:
        if self._token is None:
            put = self._new_token(REQUEST_TIMEOUT)
            if self._token is None:
                raise UnexpectedAnswer(f"token PUT answered HTTP {put.status}")
        return self._fetch("GET", path, {TOKEN_HEADER: self._token})

    def _poll(self) -> float:
        resp = self._get(ACTION_PATH)
        if resp.status == 200:
            self._emit(("action", resp.body), self._action_notice(resp.body))
        elif resp.status != 404:
            raise UnexpectedAnswer(f"{ACTION_PATH} answered HTTP {resp.status}")
        if not self._rebalanced:
            resp = self._get(REBALANCE_PATH)
            if resp.status == 200:
                self._rebalanced = True  # AWS sends it once; it is not withdrawn
                detail = str(_json(resp.body).get("noticeTime") or _text(resp.body))
                self._emit("rebalance", Notice("aws-rebalance", None, drain_only=True, detail=detail))
            elif resp.status != 404:
                raise UnexpectedAnswer(f"{REBALANCE_PATH} answered HTTP {resp.status}")
        return self.interval

    @staticmethod
    def _action_notice(body: bytes) -> Notice:
        """A 200 is a notice even if its body cannot be read: then the deadline is unknown."""
        doc = _json(body)
        return Notice("aws-notice", parse_time(doc.get("time")), detail=str(doc.get("action") or _text(body)))


def _json(body: bytes) -> dict[str, object]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace").strip()[:200]
