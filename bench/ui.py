"""The dashboard: a 10,000-run sweep's page load in Chromium, and what the live channel costs Redis.

- **page load**: from navigation to the runs table filled, the parallel-coordinates plot drawn with
  every run and the metric chart drawn, in Debian's headless Chromium (Playwright). Cold: the first
  load (the server reads the sweep); warm: the median of the next loads. Baseline: the same page of a
  10-run sweep (the browser's and the page's fixed cost), so the ratio is what the size adds.
- **live update**: from a run's completion through the Store to the page showing it, no reload.
- **live channel**: Redis commands per second (``INFO commandstats``) while 1, 10 and 50 pages hold
  the sweep's server-sent-events stream open, the sweep idle, then with a run finishing every second
  (the writer's own commands, measured alone first, left out). Bounded: the figure does not grow with
  the number of pages (ratio: 50 pages over 1).

    python bench/ui.py [--runs 10000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis
from common import ROOT, Row, Section, bench_env, markdown, median, num, private_redis, ratio, show, verdict
from idle import calls

from sweepd.queue.store import Store

sys.path.insert(0, str(ROOT / "tests"))
from ui_support import chromium, fill_sweep, finish, start_run, ui_server  # the tests' helpers: one definition

PAGES = (1, 10, 50)


def load_time(browser: Any, url: str, runs: int) -> float:
    """Seconds from navigation to the table, the plot (every run) and the metric chart drawn."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    try:
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_function(
            f"""() => document.querySelector('#runs tbody tr[data-id]')
                && document.querySelector('#pc').dataset.lines === '{runs}'
                && document.querySelector('#metric-chart canvas')""",
            timeout=60_000,
            polling="raf",
        )
        return time.perf_counter() - t0
    finally:
        page.close()


def loads(browser: Any, url: str, runs: int, n: int) -> tuple[float, float]:
    """(cold, warm median) load seconds."""
    cold = load_time(browser, url, runs)
    return cold, median([load_time(browser, url, runs) for _ in range(n)])


def update_latency(browser: Any, base: str, store: Store, sid: str, trials: int) -> list[float]:
    """Seconds from a run's completion (through the Store) to the open page showing it finished."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    rng, out = random.Random(1), []
    try:
        page.goto(f"{base}/sweeps/{sid}")
        page.wait_for_function("document.querySelector('#live').classList.contains('on')", timeout=60_000)
        for _ in range(trials):
            claim = start_run(store, sid)
            row = f"#runs tr[data-id='{claim.run_id}']"
            page.fill("#filter", claim.run_id)  # the new run in view, whatever the order
            page.wait_for_selector(row, timeout=60_000)
            t0 = time.perf_counter()
            finish(store, claim, rng, steps=1)
            page.wait_for_function(
                f'document.querySelector("{row}") && document.querySelector("{row}").innerText.includes(\'finished\')',
                timeout=60_000,
                polling="raf",
            )
            out.append(time.perf_counter() - t0)
    finally:
        page.close()
    return out


@contextmanager
def streams(base: str, path: str, n: int) -> Iterator[list[int]]:
    """``n`` open server-sent-events streams (one thread each); yields each one's count of events."""
    counts = [0] * n
    stop = threading.Event()
    conns: list[http.client.HTTPConnection] = []

    def listen(i: int) -> None:
        where = urlsplit(base)
        conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
        conns.append(conn)
        conn.request("GET", path)
        res = conn.getresponse()
        while not stop.is_set():
            line = res.fp.readline()
            if not line:
                return
            if line.startswith(b"event: change"):
                counts[i] += 1

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while min(counts) == 0 and time.monotonic() < deadline:  # every stream heard its first event
        time.sleep(0.05)
    try:
        yield counts
    finally:
        stop.set()
        for conn in conns:
            conn.close()


def rate(r: redis.Redis, seconds: float, during: Callable[[], None] | None = None) -> float:
    """Redis commands per second over ``seconds`` (INFO left out), running ``during`` meanwhile."""
    before, t0 = calls(r), time.monotonic()
    if during is None:
        time.sleep(seconds)
    else:
        during()
    after, took = calls(r), time.monotonic() - t0
    return sum(v - before.get(k, 0) for k, v in after.items()) / took


def writer(store: Store, sid: str, seconds: float) -> Callable[[], None]:
    """A run finishing every second for ``seconds``, as agents would."""

    def go() -> None:
        rng = random.Random(2)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            finish(store, start_run(store, sid), rng, steps=1)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))

    return go


def measure(quick: bool = False, runs: int | None = None, seconds: float | None = None) -> Section:
    runs = runs or (1000 if quick else 10_000)
    seconds = seconds or (3 if quick else 10)
    trials = 3 if quick else 5
    section = Section("ui")
    with private_redis() as server:
        store = Store(server.client())
        t0 = time.monotonic()
        big = fill_sweep(store, runs, steps=1, name="bench-big")
        filled = time.monotonic() - t0
        small = fill_sweep(store, 10, steps=1, name="bench-small")
        env = bench_env(server.url, server.work)
        with ui_server(env, log=server.work / "ui.log") as base, chromium() as browser:
            small_cold, small_warm = loads(browser, f"{base}/sweeps/{small}", 10, trials)
            big_cold, big_warm = loads(browser, f"{base}/sweeps/{big}", runs, trials)
            latency = update_latency(browser, base, store, big, trials)
        r = server.client()
        live_rows: list[list[Any]] = []
        with ui_server(env, log=server.work / "ui-live.log") as base:  # a fresh server: no channel open
            write_alone = rate(r, seconds, writer(store, big, seconds))
            idle: dict[int, float] = {}
            active: dict[int, float] = {}
            for n in PAGES:
                with streams(base, f"/api/sweeps/{big}/live", n) as heard:
                    time.sleep(1.5)  # past the first snapshot's read
                    idle[n] = rate(r, seconds)
                    active[n] = rate(r, seconds, writer(store, big, seconds)) - write_alone
                    live_rows.append([n, num(idle[n]), num(active[n]), min(heard)])
    runs_total = runs
    ok = big_warm < 2.0 and big_cold < 2.0
    section.rows = [
        Row(
            f"page load, {runs_total:,}-run sweep (cold / warm)",
            f"{big_cold:.2f} s / {big_warm:.2f} s",
            f"{small_warm:.2f} s (10 runs, warm)",
            ratio(big_warm, small_warm),
            f"< 2 s: {verdict(ok)}",
        ),
        Row(
            "live update: run finished to page shows it",
            f"median {median(latency):.2f} s, max {max(latency):.2f} s",
            "—",
            "—",
            f"< 2 s: {verdict(max(latency) < 2.0)}",
        ),
        Row(
            "live channel, Redis commands/s, idle sweep (1 / 10 / 50 pages)",
            " / ".join(num(idle[n]) for n in PAGES),
            f"{num(idle[1])} (1 page)",
            ratio(idle[50], idle[1]),
            "bounded (≈ 1x)",
        ),
        Row(
            "live channel, Redis commands/s, a run finishing each second (1 / 10 / 50 pages)",
            " / ".join(num(active[n]) for n in PAGES),
            f"{num(active[1])} (1 page)",
            ratio(active[50], active[1]),
            "bounded (≈ 1x)",
        ),
    ]
    section.detail = "\n\n".join(
        [
            markdown(
                [
                    [f"{runs_total:,} runs", f"{big_cold:.3f}", f"{big_warm:.3f}"],
                    ["10 runs (baseline)", f"{small_cold:.3f}", f"{small_warm:.3f}"],
                ],
                ["sweep", "cold load (s)", f"warm load, median of {trials} (s)"],
            ),
            f"Filling the {runs_total:,}-run sweep through the Store took {filled:.0f} s. Live update "
            f"latencies (s): {', '.join(f'{v:.2f}' for v in latency)}.",
            markdown(
                live_rows, ["open pages", "commands/s, idle", "commands/s, a run ending each second", "events per page"]
            ),
            f"The writer alone (a run created and finished each second, no page open): {num(write_alone)} "
            "commands/s, left out of the second column. Each change re-reads the whole sweep once "
            "(every run's two hashes), whatever the number of pages.",
        ]
    )
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    show(measure(args.quick, None if args.quick else args.runs, None if args.quick else args.seconds))


if __name__ == "__main__":
    main()
