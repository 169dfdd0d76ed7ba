"""The preemption-notice watchers against local stand-ins of AWS's, GCP's and Azure's metadata services."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from structlog.testing import capture_logs

from standins import AwsImds, AzureScheduledEvents, GcpMetadata
from support import wait_until
from sweepd.agent.daemon.notices import Notice, Watcher, make_watchers
from sweepd.agent.daemon.notices.base import BaseWatcher
from sweepd.queue.errors import UserError

INTERVAL = 0.1
SOON = 10.0  # a deadline for what should take one poll: generous, so a loaded machine does not fail the test


class Recorder:
    """An ``on_notice`` that records, as the agent's must, and lets a test wait for a notice."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.arrived = threading.Event()

    def __call__(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.arrived.set()

    def first(self) -> Notice:
        assert self.arrived.wait(SOON), "no notice arrived"
        return self.notices[0]


@contextlib.contextmanager
def watching(mode: str, environ: dict[str, str]) -> Iterator[tuple[Recorder, list[Watcher]]]:
    """The watchers ``mode`` gives, started; stopped on the way out (before the stand-in closes)."""
    recorder = Recorder()
    watchers = make_watchers(mode, INTERVAL, environ)
    try:
        for w in watchers:
            w.start(recorder)
        yield recorder, watchers
    finally:
        for w in watchers:
            w.stop()


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=SOON)
    try:
        conn.request(method, url[len(f"{parts.scheme}://{parts.netloc}") :], headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), dict(resp.getheaders())
    finally:
        conn.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def unix(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


# AWS ---------------------------------------------------------------------------------------------


def test_aws_standin_follows_imdsv2() -> None:
    with AwsImds() as imds:
        ttl = "X-aws-ec2-metadata-token-ttl-seconds"
        assert request(imds.url + AwsImds.TOKEN, "PUT")[0] == 400
        for bad in ("0", "21601", "abc", ""):
            assert request(imds.url + AwsImds.TOKEN, "PUT", {ttl: bad})[0] == 400
        status, token, _ = request(imds.url + AwsImds.TOKEN, "PUT", {ttl: "21600"})
        assert status == 200 and token
        assert request(imds.url + AwsImds.ACTION)[0] == 401
        assert request(imds.url + AwsImds.ACTION, headers={"X-aws-ec2-metadata-token": "nope"})[0] == 401
        status, body, headers = request(imds.url + AwsImds.ACTION, headers={"X-aws-ec2-metadata-token": token})
        assert status == 404 and "<html" in body and headers["Content-Type"] == "text/html"
        imds.expire_tokens()
        assert request(imds.url + AwsImds.ACTION, headers={"X-aws-ec2-metadata-token": token})[0] == 401


def test_aws_no_notice_no_callback() -> None:
    with AwsImds() as imds, watching("aws", {"SWEEPD_AWS_METADATA_URL": imds.url}) as (recorder, _):
        wait_until(lambda: len(imds.seen(AwsImds.ACTION, 404)) >= 3, timeout=SOON)
        assert recorder.notices == []
        assert len(imds.seen(AwsImds.TOKEN, 200)) == 1  # one token serves every poll
        assert all(s.headers.get("x-aws-ec2-metadata-token") for s in imds.seen(AwsImds.ACTION))


def test_aws_notice_reaches_the_callback_once_with_its_deadline() -> None:
    with AwsImds() as imds, watching("aws", {"SWEEPD_AWS_METADATA_URL": imds.url}) as (recorder, _):
        wait_until(lambda: imds.seen(AwsImds.ACTION, 404), timeout=SOON)
        imds.set_notice("terminate", "2026-11-21T12:00:00Z")
        assert recorder.first() == Notice("aws-notice", unix("2026-11-21T12:00:00"), detail="terminate")
        polls = len(imds.seen(AwsImds.ACTION, 200))
        wait_until(lambda: len(imds.seen(AwsImds.ACTION, 200)) >= polls + 3, timeout=SOON)
        assert len(recorder.notices) == 1  # the same body is the same notice
        imds.set_notice("stop", "2026-11-21T12:01:00Z")  # a changed body is a new one
        wait_until(lambda: len(recorder.notices) == 2, timeout=SOON)
        assert recorder.notices[1] == Notice("aws-notice", unix("2026-11-21T12:01:00"), detail="stop")


def test_aws_expired_token_is_replaced_and_polling_carries_on() -> None:
    with AwsImds() as imds, watching("aws", {"SWEEPD_AWS_METADATA_URL": imds.url}) as (recorder, _):
        wait_until(lambda: imds.seen(AwsImds.ACTION, 404), timeout=SOON)
        imds.expire_tokens()
        wait_until(lambda: imds.seen(status=401), timeout=SOON)  # on whichever GET came next
        wait_until(lambda: len(imds.seen(AwsImds.TOKEN, 200)) >= 2, timeout=SOON)
        imds.set_notice("hibernate")
        assert recorder.first().reason == "aws-notice"
        assert recorder.notices[0].detail == "hibernate"


def test_aws_rebalance_is_drain_only_and_reported_once() -> None:
    with AwsImds() as imds, watching("aws", {"SWEEPD_AWS_METADATA_URL": imds.url}) as (recorder, _):
        wait_until(lambda: imds.seen(AwsImds.REBALANCE, 404), timeout=SOON)
        imds.set_rebalance("2026-11-21T11:58:00Z")
        notice = recorder.first()
        assert notice.reason == "aws-rebalance" and notice.drain_only and notice.deadline is None
        polls = len(imds.seen(AwsImds.ACTION))
        wait_until(lambda: len(imds.seen(AwsImds.ACTION)) >= polls + 3, timeout=SOON)
        assert len(recorder.notices) == 1
        assert len(imds.seen(AwsImds.REBALANCE, 200)) == 1  # not asked again once seen


# GCP ---------------------------------------------------------------------------------------------


def test_gcp_standin_wants_and_sends_the_flavor_header() -> None:
    with GcpMetadata() as gcp:
        status, _, headers = request(gcp.url + GcpMetadata.PATH)
        assert status == 403 and headers["Metadata-Flavor"] == "Google"
        status, body, headers = request(gcp.url + GcpMetadata.PATH, headers={"Metadata-Flavor": "Google"})
        assert (status, body, headers["Metadata-Flavor"]) == (200, "FALSE", "Google")


def test_gcp_no_notice_reissues_the_hanging_get() -> None:
    with GcpMetadata(max_hang=0.2) as gcp, watching("gcp", {"SWEEPD_GCP_METADATA_URL": gcp.url}) as (recorder, _):
        wait_until(lambda: len(gcp.seen(status=200)) >= 4, timeout=SOON)
        assert recorder.notices == []
        seen = gcp.seen()
        assert seen[0].query == {}  # a plain GET first: is it already TRUE?
        assert all(s.query.get("wait_for_change") == "true" for s in seen[1:])
        assert all(s.headers.get("metadata-flavor") == "Google" for s in seen)
        assert gcp.seen(status=403) == []


def test_gcp_preemption_during_a_hanging_get() -> None:
    with GcpMetadata() as gcp, watching("gcp", {"SWEEPD_GCP_METADATA_URL": gcp.url}) as (recorder, _):
        wait_until(lambda: gcp.waiting == 1, timeout=SOON)
        gcp.preempt()
        notice = recorder.first()
        assert notice.reason == "gcp-notice" and not notice.drain_only
        assert notice.deadline is not None and abs(notice.deadline - (time.time() + 30)) < SOON


def test_gcp_already_preempted_at_start() -> None:
    with GcpMetadata() as gcp:
        gcp.preempt()
        with watching("gcp", {"SWEEPD_GCP_METADATA_URL": gcp.url}) as (recorder, [w]):
            assert recorder.first().reason == "gcp-notice"
            assert isinstance(w, BaseWatcher) and w.join(SOON)  # nothing more to learn: the thread ends
            assert len(recorder.notices) == 1


def test_gcp_answer_without_the_flavor_header_is_not_trusted() -> None:
    with GcpMetadata(flavor=False) as impostor:
        impostor.preempt()
        with watching("gcp", {"SWEEPD_GCP_METADATA_URL": impostor.url}) as (recorder, _):
            wait_until(lambda: len(impostor.seen(status=200)) >= 3, timeout=SOON)
            assert recorder.notices == []


def test_gcp_stop_cuts_a_hanging_get() -> None:
    with GcpMetadata() as gcp, watching("gcp", {"SWEEPD_GCP_METADATA_URL": gcp.url}) as (_, [w]):
        wait_until(lambda: gcp.waiting == 1, timeout=SOON)
        began = time.monotonic()
        w.stop()
        assert isinstance(w, BaseWatcher) and w.join(0) and time.monotonic() - began < 5


# Azure -------------------------------------------------------------------------------------------


def test_azure_standin_wants_the_metadata_header() -> None:
    with AzureScheduledEvents() as azure:
        events = azure.url + "/metadata/scheduledevents?api-version=2020-07-01"
        assert request(events)[0] == 400
        assert request(events, headers={"Metadata": "true"})[0] == 200
        name = azure.url + "/metadata/instance/compute/name?api-version=2021-02-01&format=text"
        assert request(name, headers={"Metadata": "true"})[:2] == (200, "sweepd-vm-0")


def test_azure_only_our_preempt_counts_and_acknowledge_reaches_the_service() -> None:
    with AzureScheduledEvents(vm_name="vm-ours") as azure:
        azure.add_event("other", ["vm-other"], "Mon, 19 Sep 2016 18:29:47 GMT")
        azure.add_event("reboot", ["vm-ours"], event_type="Reboot")
        with watching("azure", {"SWEEPD_AZURE_METADATA_URL": azure.url}) as (recorder, [w]):
            w.acknowledge()  # nothing reported yet: nothing posted
            wait_until(lambda: len(azure.seen(AzureScheduledEvents.EVENTS, 200)) >= 3, timeout=SOON)
            assert recorder.notices == [] and azure.acknowledged == []
            azure.add_event("ours", ["VM-OTHER", "vm-ours"], "Mon, 19 Sep 2016 18:29:47 GMT")
            assert recorder.first() == Notice("azure-notice", unix("2016-09-19T18:29:47"), detail="ours")
            polls = len(azure.seen(AzureScheduledEvents.EVENTS))
            wait_until(lambda: len(azure.seen(AzureScheduledEvents.EVENTS)) >= polls + 3, timeout=SOON)
            assert len(recorder.notices) == 1  # once per EventId
            w.acknowledge()
            assert azure.acknowledged == ["ours"]
            assert [e["EventId"] for e in azure.events] == ["other", "reboot"]
            assert all(s.headers.get("metadata") == "true" for s in azure.seen())
            w.acknowledge()  # already acknowledged: not posted again
            assert azure.acknowledged == ["ours"]


# the factory and auto-detection ------------------------------------------------------------------


def test_modes() -> None:
    assert make_watchers("none", 5.0, {}) == []
    assert [w.name for w in make_watchers("auto", 5.0, {})] == ["aws", "gcp", "azure"]
    assert [w.name for w in make_watchers("azure", 5.0, {})] == ["azure"]
    with pytest.raises(UserError):
        make_watchers("openstack", 5.0, {})
    with pytest.raises(UserError):
        make_watchers("aws", 0, {})


def test_auto_off_cloud_ends_quietly() -> None:
    nothing = closed_port_url()
    env = {f"SWEEPD_{c}_METADATA_URL": nothing for c in ("AWS", "GCP", "AZURE")}
    with capture_logs() as lines, watching("auto", env) as (recorder, watchers):
        assert all(isinstance(w, BaseWatcher) and w.join(SOON) for w in watchers)
    assert recorder.notices == []
    assert [line["log_level"] for line in lines] in ([], ["debug"])  # one debug line, if debug is on


def test_auto_finds_aws() -> None:
    with AwsImds() as imds:
        # AWS and Azure share an address: the Azure probe meets AWS's service and must not take it for Azure's.
        env = {
            "SWEEPD_AWS_METADATA_URL": imds.url,
            "SWEEPD_AZURE_METADATA_URL": imds.url,
            "SWEEPD_GCP_METADATA_URL": closed_port_url(),
        }
        with watching("auto", env) as (recorder, [aws, gcp, azure]):
            assert isinstance(gcp, BaseWatcher) and gcp.join(SOON)
            assert isinstance(azure, BaseWatcher) and azure.join(SOON)
            assert imds.seen("/metadata/instance/compute/name", 401)
            imds.set_notice("terminate")
            notice = recorder.first()
            assert notice.reason == "aws-notice" and notice.deadline is not None
            assert isinstance(aws, BaseWatcher) and not aws.join(0)  # still watching
