"""``--gpus`` and ``--gpus-per-run``: the pure parsing (gpus.py), ``all``'s look-ups, and the
command line's one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from standins import SMI, stand_in_smi
from support import run_sweepd
from sweepd.agent.daemon import gpus
from sweepd.agent.daemon.gpus import GpuError


def test_a_list_keeps_its_order() -> None:
    assert gpus.parse_list("3,1,2") == ("3", "1", "2")
    assert gpus.parse_list(" 0 , 1 ") == ("0", "1")
    uuids = "GPU-5a4c1b3e-0f6e-4a51-9b0e-2c5d8e7f1a01,MIG-1e2d3c4b-5a69-5b8c-9d0e-1f2a3b4c5d6e"
    assert gpus.parse_list(uuids) == tuple(uuids.split(","))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "comma list"),
        ("0,,1", "comma list"),
        ("0,1,", "comma list"),
        ("0,x", "'x' is neither"),
        ("-1", "neither"),
        ("0;1", "neither"),
        ("01", "leading zeros"),
        ("0,1,0", "device 0 is listed twice"),
        ("GPU-a,GPU-a", "listed twice"),
    ],
)
def test_a_bad_list_is_one_line_naming_it(text: str, says: str) -> None:
    with pytest.raises(GpuError) as err:
        gpus.parse_list(text)
    assert says in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith("--gpus ")


def test_slots_group_the_devices_in_order() -> None:
    assert gpus.slots("0,1,2", None, {}) == (("0",), ("1",), ("2",))
    assert gpus.slots("7,6,5,4", 2, {}) == (("7", "6"), ("5", "4"))
    assert gpus.slots("0,1,2,3", 4, {}) == (("0", "1", "2", "3"),)
    assert gpus.slots(None, None, {}) == ()  # no --gpus: one run at a time, as always


@pytest.mark.parametrize(("given", "k"), [("0,1,2", 2), ("0,1", 3), ("0", 0)])
def test_a_k_that_does_not_divide_the_list_is_refused(given: str, k: int) -> None:
    with pytest.raises(GpuError, match="--gpus-per-run"):
        gpus.slots(given, k, {})


def test_k_without_gpus_is_refused() -> None:
    with pytest.raises(GpuError, match="give --gpus too"):
        gpus.slots(None, 2, {})


@pytest.mark.parametrize("text", ["x", "-1", "0", "1.5"])
def test_a_k_that_is_no_whole_number_is_refused(text: str) -> None:
    with pytest.raises(GpuError, match="whole number"):
        gpus.parse_per_run(text)
    assert gpus.parse_per_run("2") == 2 and gpus.parse_per_run(None) is None


def test_all_reads_an_inherited_cuda_visible_devices_first() -> None:
    def never() -> str:
        raise AssertionError("nvidia-smi is not asked when CUDA_VISIBLE_DEVICES is set")

    assert gpus.slots("all", None, {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}, never) == (("4",), ("5",), ("6",), ("7",))
    assert gpus.slots("ALL", 2, {"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b"}, never) == (("GPU-a", "GPU-b"),)
    for empty in ("", "-1", "NoDevFiles"):
        with pytest.raises(GpuError, match="may use no GPU"):
            gpus.slots("all", None, {"CUDA_VISIBLE_DEVICES": empty}, never)
    with pytest.raises(GpuError, match="CUDA_VISIBLE_DEVICES '0,0'"):
        gpus.slots("all", None, {"CUDA_VISIBLE_DEVICES": "0,0"}, never)


def test_all_else_reads_nvidia_smi_and_skips_mig_lines() -> None:
    assert gpus.parse_smi(SMI) == ("0", "1", "2", "3")
    assert gpus.slots("all", 2, {}, lambda: SMI) == (("0", "1"), ("2", "3"))
    with pytest.raises(GpuError, match="missing or failed"):
        gpus.slots("all", None, {}, lambda: None)
    with pytest.raises(GpuError, match="lists no GPU"):
        gpus.slots("all", None, {}, lambda: "No devices were found\n")


def test_nvidia_smi_is_run_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{stand_in_smi(tmp_path, SMI)}{os.pathsep}{os.environ['PATH']}")
    assert gpus.parse_smi(gpus.nvidia_smi() or "") == ("0", "1", "2", "3")
    stand_in_smi(tmp_path, "NVIDIA-SMI has failed\n", code=9)
    assert gpus.nvidia_smi() is None


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--gpus", "0,0"], {}, "--gpus '0,0': device 0 is listed twice"),
        (["--gpus", "0,1,2", "--gpus-per-run", "2"], {}, "--gpus-per-run 2 does not divide the 3 device(s)"),
        (["--gpus", "0,1", "--gpus-per-run", "two"], {}, "--gpus-per-run 'two'"),
        (["--gpus", "all"], {"CUDA_VISIBLE_DEVICES": ""}, "CUDA_VISIBLE_DEVICES is ''"),
        ([], {"SWEEPD_GPUS": "a,b"}, "--gpus 'a,b': 'a' is neither"),
        ([], {"SWEEPD_GPUS": "0,1,2", "SWEEPD_GPUS_PER_RUN": "2"}, "does not divide"),
    ],
)
def test_the_agent_refuses_bad_gpus_in_one_line_with_exit_2(
    cli_env: dict[str, str], args: list[str], env: dict[str, str], says: str
) -> None:
    done = run_sweepd("agent", "nosuchsw", *args, env={**cli_env, **env})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and says in done.stderr and "Traceback" not in done.stderr


def test_run_refuses_bad_gpus_before_creating_a_sweep(cli_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text("method: grid\nprogram: prog.py\nparameters:\n  a: {values: [1, 2]}\n")
    done = run_sweepd("run", str(config), "--gpus", "0,1,2", "--gpus-per-run", "2", env=cli_env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "does not divide" in done.stderr
    listed = run_sweepd("sweep", "list", "--json", env=cli_env)
    assert listed.returncode != 0 or listed.stdout.strip() in ("", "[]")
