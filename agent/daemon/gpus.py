"""Which GPUs an agent shares out, and how: ``--gpus LIST|all`` and ``--gpus-per-run K``.

Pure parsing, apart from the one look-up ``all`` may need (``nvidia-smi -L``), which is passed in so
that it is tested without a GPU. An agent given N devices and K per run holds N // K runs at once,
each started with ``CUDA_VISIBLE_DEVICES`` naming its own slot's K devices, in the order given.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence

from sweepd.queue.errors import UserError

#: A device as ``CUDA_VISIBLE_DEVICES`` names one: an index, or a GPU or MIG instance's UUID.
_DEVICE = re.compile(r"^(?:\d+|(?:GPU|MIG)-[0-9A-Za-z][0-9A-Za-z/-]*)$")
#: ``nvidia-smi -L``: ``GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)``; its MIG lines are indented.
_SMI_LINE = re.compile(r"^GPU (\d+): .*\(UUID: ([^)]+)\)\s*$")

Lister = Callable[[], str | None]


class GpuError(UserError):
    """A ``--gpus`` or ``--gpus-per-run`` the agent cannot share out: one line, exit 2."""


def parse_list(text: str, where: str = "--gpus") -> tuple[str, ...]:
    """``0,1,2`` or ``GPU-…,GPU-…`` -> the devices in order; GpuError for anything else."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise GpuError(f"{where} {text!r}: give a comma list of device indices or UUIDs (e.g. 0,1,2), or all")
    for item in items:
        if not _DEVICE.match(item):
            raise GpuError(f"{where} {text!r}: {item!r} is neither a device index nor a GPU UUID")
        if item.isdigit() and item != str(int(item)):
            raise GpuError(f"{where} {text!r}: {item!r}: write a device index without leading zeros")
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise GpuError(f"{where} {text!r}: device {item} is listed twice (two runs would share it)")
        seen.add(item)
    return tuple(items)


def parse_smi(output: str) -> tuple[str, ...]:
    """The device indices ``nvidia-smi -L`` lists (MIG instances' indented lines are not GPUs)."""
    return tuple(m.group(1) for line in output.splitlines() if (m := _SMI_LINE.match(line.rstrip())))


def nvidia_smi() -> str | None:
    """What ``nvidia-smi -L`` prints, or None where it is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def discover(environ: Mapping[str, str], lister: Lister = nvidia_smi) -> tuple[str, ...]:
    """``all``: an inherited ``CUDA_VISIBLE_DEVICES`` (SLURM's ``--gres``, Kubernetes' device plugin),
    else what ``nvidia-smi -L`` lists; GpuError when neither names a device."""
    inherited = environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is not None:
        if inherited.strip() in ("", "-1", "NoDevFiles"):
            raise GpuError(f"--gpus all: CUDA_VISIBLE_DEVICES is {inherited!r}: this process may use no GPU")
        return parse_list(inherited, "--gpus all: CUDA_VISIBLE_DEVICES")
    listed = lister()
    if listed is None:
        raise GpuError("--gpus all: no CUDA_VISIBLE_DEVICES, and nvidia-smi -L is missing or failed: give --gpus 0,1")
    found = parse_smi(listed)
    if not found:
        raise GpuError("--gpus all: nvidia-smi -L lists no GPU")
    return found


def slots(
    gpus: str | None, per_run: int | None, environ: Mapping[str, str], lister: Lister = nvidia_smi
) -> tuple[tuple[str, ...], ...]:
    """The slots an agent holds runs in, each its devices; ``()`` without ``--gpus`` (one run at a
    time, as an agent always did)."""
    if gpus is None or gpus == "":
        if per_run is not None:
            raise GpuError(f"--gpus-per-run {per_run}: give --gpus too (SWEEPD_GPUS)")
        return ()
    devices = discover(environ, lister) if gpus.strip().lower() == "all" else parse_list(gpus)
    return group(devices, 1 if per_run is None else per_run)


def group(devices: Sequence[str], per_run: int) -> tuple[tuple[str, ...], ...]:
    """``devices`` cut into slots of ``per_run`` each, in order; GpuError unless it divides them."""
    if per_run < 1:
        raise GpuError(f"--gpus-per-run {per_run}: give a whole number of at least 1")
    if len(devices) % per_run:
        raise GpuError(
            f"--gpus-per-run {per_run} does not divide the {len(devices)} device(s) of --gpus "
            f"({','.join(devices)}): every run gets the same number"
        )
    return tuple(tuple(devices[i : i + per_run]) for i in range(0, len(devices), per_run))


def parse_per_run(text: str | None) -> int | None:
    """``--gpus-per-run`` as given (a string: its error is ours, one line, not click's usage)."""
    if text is None or text.strip() == "":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise GpuError(f"--gpus-per-run {text!r}: give a whole number of at least 1")
    return int(text)
