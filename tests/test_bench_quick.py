"""``python bench/run.py --quick`` never overwrites the full run's bench/results.md (it used to)."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_a_quick_run_writes_its_own_file() -> None:
    kept = (ROOT / "bench" / "results.md").read_bytes()
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--only", "none"],  # no benchmark: just the writing
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (ROOT / "bench" / "results.md").read_bytes() == kept
    assert "bench/results/quick.md" in done.stderr
    assert (ROOT / "bench" / "results" / "quick.md").read_text().startswith("# sweepd benchmarks")
