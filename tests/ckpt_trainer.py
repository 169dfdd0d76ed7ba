"""A training program for the checkpoint tests: saves a checkpoint every step into
``run.checkpoint_dir`` (``step.json``, ``weights.bin`` that changes with the step, ``frozen.bin``
written once and never changed) and notes, in ``OUT_DIR/<run>.jsonl``, the SHA-256 of every file
it found at its start and left at its end. On SIGTERM it saves the step it is at and exits 1.

Parameters: ``steps`` (default 100000), ``delay`` (seconds a step takes, 0.05), ``size`` (bytes of
``weights.bin``, 65536), ``frozen`` (bytes of ``frozen.bin``, 1 MiB), ``linger`` (seconds it waits
after saving at the signal, before it exits: what is left of the grace for the upload shrinks),
``parting`` (bytes of ``parting.bin``, written only at the signal: a last snapshot that must send them).
"""

import hashlib
import json
import os
import signal
import sys
import time

from sweepd.agent import run

out, home = os.environ["OUT_DIR"], run.checkpoint_dir
steps = int(run.params.get("steps", 100000))
delay = float(run.params.get("delay", 0.05))
size = int(run.params.get("size", 65536))
frozen = int(run.params.get("frozen", 1 << 20))
linger = float(run.params.get("linger", 0))
parting = int(run.params.get("parting", 0))
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))


def files():
    found = {}
    for folder, _, names in os.walk(home):
        for name in names:
            if not name.startswith(".sweepd-"):
                path = os.path.join(folder, name)
                with open(path, "rb") as fh:
                    found[os.path.relpath(path, home)] = hashlib.sha256(fh.read()).hexdigest()
    return found


def note(**event):
    with open(os.path.join(out, f"{run.run_id}.jsonl"), "a") as fh:
        fh.write(json.dumps({"attempt": run.attempt, "t": time.time(), **event}) + "\n")


def write(name, data):
    path = os.path.join(home, name)
    with open(path + ".tmp", "wb") as fh:
        fh.write(data)
    os.replace(path + ".tmp", path)


def save(step):
    block = hashlib.sha256(str(step).encode()).digest()
    write("weights.bin", (block * (size // len(block) + 1))[:size])
    write("step.json", json.dumps({"step": step}).encode())
    if not os.path.exists(os.path.join(home, "frozen.bin")):
        write("frozen.bin", os.urandom(frozen))


start = 0
if os.path.exists(os.path.join(home, "step.json")):
    with open(os.path.join(home, "step.json")) as fh:
        start = json.load(fh)["step"]
note(event="start", step=start, files=files())
with open(os.path.join(out, f"{run.run_id}.ready"), "w") as fh:
    fh.write(str(os.getpid()))
for step in range(start, steps):
    save(step)
    if stop or run.preempting:
        if parting:
            write("parting.bin", os.urandom(parting))
        note(event="preempted", step=step, files=files())
        time.sleep(linger)
        sys.exit(1)
    time.sleep(delay)
note(event="done", step=steps, files=files())
