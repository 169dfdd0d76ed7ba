"""What the dashboard's tests and its benchmark share: a sweep filled through the Store, the
``sweepd ui`` server as a real subprocess, and Debian's Chromium driven by Playwright.

``ensure_chromium()`` installs Debian's ``chromium`` when it is missing (root and apt-get only, as
slurm_cluster.py installs SLURM): a machine that cannot have it skips with the reason; one where
apt-get is there but fails is a failure, with apt's output.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from support import apt_install, free_port, sweepd_cmd, wait_until
from sweepd.queue.config import validate
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

CHROMIUM = "/usr/bin/chromium"
#: No sandbox (root in a container), no GPU, and nothing that reaches the network on its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CONFIG: dict[str, Any] = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
        "optimizer": {"values": ["adam", "sgd"]},
    },
    "command": ["python", "train.py"],
}


def loss_of(params: dict[str, Any], rng: random.Random) -> float:
    """The synthetic metric: lr drives it (best near 1e-2), dropout barely, the optimizer a little."""
    return (
        (math.log10(params["lr"]) + 2) ** 2
        + 0.05 * params["dropout"]
        + (0.1 if params["optimizer"] == "sgd" else 0)
        + rng.gauss(0, 0.01)
    )


def start_run(store: Store, sid: str, agent: str = "host1-100-abcd") -> Claim:
    claim = store.create_next(sid, agent, 600)
    assert isinstance(claim, Claim), claim
    return claim


def finish(store: Store, claim: Claim, rng: random.Random, steps: int = 5) -> float:
    """Log ``steps`` rows of a falling loss toward the run's final value, then complete it."""
    final = loss_of(claim.params, rng)
    rows = [{"_step": s, "loss": final + (steps - 1 - s) * 0.1} for s in range(steps)]
    store.log_metrics(claim, rows)
    store.complete(claim, "finished", 0, "exit 0")
    return final


def fill_sweep(store: Store, n: int, *, seed: int = 0, steps: int = 5, name: str = "ui-demo") -> str:
    """A sweep of ``n`` finished runs made through the Store, as agents would make them."""
    sid = store.create_sweep(validate(CONFIG), name=name, seed=seed)
    rng = random.Random(seed)
    for _ in range(n):
        finish(store, start_run(store, sid), rng, steps)
    return sid


@contextmanager
def ui_server(env: dict[str, str], *args: str, log: Path | None = None) -> Iterator[str]:
    """``sweepd ui`` on a free loopback port (its output to ``log``); yields its base URL once it answers."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115  # closed below
    proc = subprocess.Popen(
        sweepd_cmd("ui", "--port", str(port), *args),
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or answers(base), timeout=30)
        assert proc.poll() is None, f"sweepd ui exited {proc.returncode}: {log.read_text() if log else ''}"
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/static/app.css", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 401 with a token: it answers
    except OSError:
        return False


def ensure_chromium() -> str:
    """The path of Debian's Chromium, installing it when missing; skips when that is impossible."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing and Debian's chromium cannot be installed here (needs root and apt-get)")
    code, output = apt_install(["chromium"])
    if code != 0 or not os.path.exists(CHROMIUM):
        pytest.fail(f"installing chromium with apt-get failed (exit {code}):\n{output[-3000:]}")
    return CHROMIUM


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright (no browser download: its executable_path)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (sweepd[test])")
    path = ensure_chromium()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
