"""ruff and mypy, configured in pyproject.toml, are clean: part of the one test command."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support import ROOT


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the dev extra: pip install -e '.[dev]'")
def test_ruff_is_clean() -> None:
    done = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy is in the dev extra: pip install -e '.[dev]'")
def test_mypy_is_clean() -> None:
    done = subprocess.run(["bash", ".ci/typecheck"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
