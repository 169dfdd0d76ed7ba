"""``sweepd ui`` for real: the server as a subprocess on a free port, the suite's Redis, and Debian's
headless Chromium driven by Playwright (installed when missing: ui_support.ensure_chromium)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from support import ROOT, run_sweepd, sweepd_cmd, wait_until
from sweepd.queue.store import Store
from ui_support import answers, chromium, fill_sweep, finish, start_run, ui_server

#: Set to write the README's screenshot (docs/img/ui.png) from the sweep-page test.
ENV_SCREENSHOT = "SWEEPD_UI_SCREENSHOT"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as res:
            return res.status, res.read(), dict(res.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def open_sweep(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url)
    page.wait_for_selector("#runs tbody tr[data-id]")
    return page


def shown_runs(page: Any) -> tuple[int, int]:
    text = page.inner_text("#runcount")  # "N of M runs"
    shown, _, total, _ = text.split()
    return int(shown), int(total)


def column(page: Any, index: int) -> list[str]:
    cells = page.eval_on_selector_all(
        f"#runs tbody tr[data-id] td:nth-child({index})", "tds => tds.map(t => t.innerText)"
    )
    return list(cells)


def test_sweep_page_draws_sorts_and_brushes(
    browser: Any, store: Store, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sid = fill_sweep(store, 30, seed=3)
    with ui_server(cli_env, log=tmp_path / "ui.log") as base:
        page = open_sweep(browser, f"{base}/sweeps/{sid}")
        assert shown_runs(page) == (30, 30)
        # the plot draws: its canvas has painted pixels, its SVG one axis per parameter and the metric
        page.wait_for_function("document.querySelector('#pc').dataset.lines === '30'")
        painted = page.evaluate(
            """() => { const c = document.querySelector('#pc canvas');
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
        )
        assert painted > 1000
        axes = page.eval_on_selector_all("#pc svg g.axis", "gs => gs.map(g => g.dataset.name)")
        assert axes == ["lr", "dropout", "optimizer", "loss"]
        assert page.eval_on_selector_all("#metric-chart canvas", "cs => cs.length") == 1

        # the table sorts by the metric: ascending, then descending on a second click
        losses = sorted(float(run["summary"]["loss"]) for run in runs_of(store, sid))
        page.click("#runs th[data-key=value]")
        assert float(column(page, 3)[0]) == pytest.approx(losses[0], abs=1e-4)
        page.click("#runs th[data-key=value]")
        assert float(column(page, 3)[0]) == pytest.approx(losses[-1], abs=1e-4)

        # brushing the loss axis's lower half keeps only the runs in it, in the table too
        box = page.locator("#pc g.axis[data-name=loss] rect.hit").bounding_box()
        x, top, height = box["x"] + box["width"] / 2, box["y"] + 4, box["height"] - 8
        page.mouse.move(x, top + height * 0.5)
        page.mouse.down()
        page.mouse.move(x, top + height * 0.8, steps=5)
        page.mouse.move(x, top + height + 2, steps=5)
        page.mouse.up()
        wait_until(lambda: shown_runs(page)[0] < 30, timeout=10)
        shown, total = shown_runs(page)
        brush = page.evaluate("sweepdPage.pc.brushes.get('loss')")
        assert brush[0] == 0 and brush[1] == pytest.approx(0.5, abs=0.03)  # the axis's lower half
        # the axis is monotone in the loss: the runs kept are exactly the `shown` lowest losses
        assert 0 < shown < total
        assert sorted(float(v) for v in column(page, 3)) == pytest.approx(losses[:shown], abs=1e-4)
        page.wait_for_timeout(300)  # the plot repaints on the next animation frame (for the screenshot)
        page.screenshot(path=str(tmp_path / "sweep-brushed.png"), full_page=True)
        page.click("#pc-clear")
        wait_until(lambda: shown_runs(page) == (30, 30), timeout=10)

        # parameter importance is drawn, lr (which drives the loss) first
        page.wait_for_selector("#importance tbody tr td")
        assert page.inner_text("#importance tbody tr:first-child td:first-child") == "lr"
        # the best run's curve is drawn
        page.wait_for_function("document.querySelector('#curves-note').innerText.startsWith('1 run')")
        page.screenshot(path=str(tmp_path / "sweep.png"), full_page=True)
        if os.environ.get(ENV_SCREENSHOT):
            (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / "sweep.png", ROOT / "docs" / "img" / "ui.png")
        assert page.errors == []

        # the sweep list shows it with its counts and best run
        page.goto(base + "/")
        page.wait_for_selector(f"#sweeps tr[data-id='{sid}']")
        assert "finished 30" in page.inner_text(f"#sweeps tr[data-id='{sid}']")
        page.screenshot(path=str(tmp_path / "list.png"))


def runs_of(store: Store, sid: str) -> list[dict[str, Any]]:
    return [run.to_json() for run in store.runs(sid)]


def test_a_run_finishing_elsewhere_appears_without_a_reload(
    browser: Any, store: Store, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sid = fill_sweep(store, 4, seed=5)
    claim = start_run(store, sid)
    with ui_server(cli_env, log=tmp_path / "ui.log") as base:
        page = open_sweep(browser, f"{base}/sweeps/{sid}")
        row = f"#runs tr[data-id='{claim.run_id}']"
        assert "running" in page.inner_text(row)
        page.wait_for_function("document.querySelector('#live').classList.contains('on')")
        page.evaluate("window.loadedAt = performance.timeOrigin")
        finish(store, claim, random.Random(0))  # through the Store, as an agent would
        page.wait_for_function(
            f'document.querySelector("{row}") && document.querySelector("{row}").innerText.includes(\'finished\')',
            timeout=15_000,
        )
        assert "finished 5" in page.inner_text("#summary")
        another = start_run(store, sid)  # a new run shows up too
        page.wait_for_selector(f"#runs tr[data-id='{another.run_id}']", timeout=15_000)
        assert shown_runs(page) == (6, 6)
        assert page.evaluate("window.loadedAt === performance.timeOrigin")  # the same page: no reload
        assert page.errors == []


def test_a_token_guards_pages_json_and_the_live_channel(
    browser: Any, store: Store, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sid = fill_sweep(store, 3, seed=7)
    env = {**cli_env, "SWEEPD_UI_TOKEN": "s3cret-t0ken"}
    with ui_server(env, log=tmp_path / "ui.log") as base:
        for path in ("/", f"/sweeps/{sid}", f"/api/sweeps/{sid}", f"/api/sweeps/{sid}/live", "/static/app.js"):
            assert get(base + path)[0] == 401, path
            assert get(base + path, {"Authorization": "Bearer wrong"})[0] == 401, path
        assert get(base + f"/api/sweeps/{sid}/live?token=wrong")[0] == 401
        code, body, _ = get(base + f"/api/sweeps/{sid}", {"Authorization": "Bearer s3cret-t0ken"})
        assert code == 200 and json.loads(body)["status"]["id"] == sid

        page = browser.new_page()
        assert page.goto(f"{base}/sweeps/{sid}?token=wrong").status == 401
        assert page.goto(f"{base}/sweeps/{sid}").status == 401
        assert page.goto(f"{base}/sweeps/{sid}?token=s3cret-t0ken").status == 200
        page.wait_for_selector("#runs tbody tr[data-id]")  # JSON and static files by the cookie
        page.wait_for_function("document.querySelector('#live').classList.contains('on')")  # and the SSE
        page.screenshot(path=str(tmp_path / "token.png"))
        page.context.clear_cookies()
        assert page.goto(f"{base}/api/sweeps/{sid}/live").status == 401


def test_ids_in_urls_are_checked_and_nothing_is_written(
    store: Store, r: redis.Redis, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sid = fill_sweep(store, 2, seed=9)
    other = fill_sweep(store, 1, seed=10, name="other")
    rid = store.runs(other)[0].id
    with ui_server(cli_env, log=tmp_path / "ui.log") as base:
        r.config_resetstat()
        assert get(f"{base}/api/sweeps/-bad")[0] == 400
        assert get(f"{base}/api/sweeps/{'x' * 65}")[0] == 400
        assert get(f"{base}/sweeps/no_such_sweep")[0] == 404
        assert get(f"{base}/api/sweeps/no_such_sweep/live")[0] == 404
        assert get(f"{base}/api/sweeps/{sid}/runs/{rid}/history")[0] == 404  # a run of another sweep
        assert get(f"{base}/api/sweeps/{sid}/runs/bad%20id/history")[0] == 400
        code, body, _ = get(f"{base}/api/sweeps/{other}/runs/{rid}/history")
        assert code == 200 and json.loads(body)["metrics"] == ["loss"]
        for path in ("/api/sweeps", f"/api/sweeps/{sid}", f"/api/sweeps/{sid}/importance"):
            assert get(base + path)[0] == 200, path
        stats = r.info("commandstats")
    log = (tmp_path / "ui.log").read_text()
    assert "Traceback" not in log, log
    writes = {"cmdstat_" + c for c in ("set", "hset", "del", "lpush", "rpush", "zadd", "evalsha", "eval", "expire")}
    assert not writes & set(stats), sorted(stats)  # read-only: no write reached Redis


def test_without_a_token_only_loopback_host_names_are_answered(
    store: Store, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """DNS rebinding: a page of another site whose name now resolves to 127.0.0.1 reads nothing."""
    sid = fill_sweep(store, 1, seed=3)
    env = {k: v for k, v in cli_env.items() if k != "SWEEPD_UI_TOKEN"}
    with ui_server(env, log=tmp_path / "ui.log") as base:
        port = base.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", "127.0.0.1.nip.io"):
            for path in ("/", f"/api/sweeps/{sid}", "/api/sweeps", f"/api/sweeps/{sid}/live", "/static/app.js"):
                assert get(base + path, {"Host": host})[0] == 421, (host, path)
        for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"localhost:{port}", "[::1]", f"[::1]:{port}"):
            code, body, _ = get(f"{base}/api/sweeps/{sid}", {"Host": host})
            assert code == 200 and json.loads(body)["status"]["id"] == sid, host


def test_a_public_address_without_a_token_is_refused(cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "SWEEPD_UI_TOKEN"}
    done = run_sweepd("ui", "--host", "0.0.0.0", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sweepd: error: --host 0.0.0.0 is reachable from other machines: give --token or $SWEEPD_UI_TOKEN"
    ]
    for weak in (["--token", "a"], ["--token", " "]):
        done = run_sweepd("ui", "--host", "0.0.0.0", *weak, env=env)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith("sweepd: error: --token ")
        assert ("16 or more" if weak[1].strip() else "is blank") in done.stderr
    done = run_sweepd("ui", "--host", "0.0.0.0", env={**env, "SWEEPD_UI_TOKEN": "short"})
    assert done.returncode == 2 and "--token has 5 characters: give 16 or more" in done.stderr


def test_run_with_ui_serves_the_sweep_beside_it_and_ends_it_with_the_sweep(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    program = tmp_path / "wait.py"  # holds its run until the test has seen the dashboard
    program.write_text(
        f"import os, time\nwhile not os.path.exists({str(go)!r}):\n    time.sleep(0.05)\nprint('loss=1.0')\n"
    )
    config = tmp_path / "sweep.yaml"
    config.write_text(f"method: grid\nprogram: {program}\nparameters:\n  x: {{values: [1]}}\n")
    env = {**cli_env, "SWEEPD_CHECKPOINT_ROOT": str(tmp_path / "ckpt")}
    proc = subprocess.Popen(
        sweepd_cmd("run", str(config), "--ui"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("dashboard: "):
                break
        found = re.match(r"dashboard: (http://127\.0\.0\.1:(\d+))/sweeps/(\w+)$", lines[-1].strip())
        assert found, lines
        base, sid = found.group(1), found.group(3)
        wait_until(lambda: answers(base), timeout=30)
        code, body, _ = get(f"{base}/api/sweeps/{sid}")
        assert code == 200 and json.loads(body)["status"]["id"] == sid
        dashboard = [p for p in psutil.Process(proc.pid).children() if " ui " in " ".join(p.cmdline())]
        assert len(dashboard) == 1  # the URL (and its password) reached it by a pipe, not its environment
        assert cli_env["SWEEPD_REDIS_URL"] not in Path(f"/proc/{dashboard[0].pid}/environ").read_text(errors="replace")
        go.write_text("")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"sweep {sid}" in out  # the summary, as without --ui
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_until(lambda: not answers(base), timeout=15)  # the dashboard ended with the sweep
