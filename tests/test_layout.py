"""The card's layout: top-level agent/ and queue/ without shadowing the standard library's queue."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_repository_root_still_imports_the_standard_library_queue() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import queue, concurrent.futures, redis, rq; print(queue.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out) == Path(sysconfig.get_path("stdlib")) / "queue.py"


def test_standard_queue_works_from_the_root_and_sweepd_queue_is_ours() -> None:
    code = (
        "import queue, sweepd.queue.keys as k; q = queue.Queue(); q.put(1); "
        "print(q.get(), queue.Empty.__module__, k.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "_queue", "sweepd.queue.keys"]  # Empty comes from C


def test_nothing_in_agent_imports_rq() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "agent").rglob("*.py")
        if re.search(r"^\s*(import rq\b|from rq\b)", path.read_text(), re.M)
    ]
    assert offenders == []


def test_only_the_store_imports_rq() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "queue").rglob("*.py")
        if re.search(r"^\s*(import rq\b|from rq\b)", path.read_text(), re.M)
    )
    assert importers == ["queue/store.py"]
