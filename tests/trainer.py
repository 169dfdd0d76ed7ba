"""A training program for the tests: checkpoints every step, and reports what it saw.

Parameters (from the sweep): ``steps``, ``mode`` (``normal``; ``exit0`` exits 0 when told to stop;
``stubborn`` ignores every request to stop and starts a grandchild; ``mark`` calls
``mark_preempting()`` and exits 3 on its first attempt), ``slow_checkpoint`` (seconds a checkpoint
takes). It writes ``OUT_DIR/<run>.jsonl`` (one line per event) and ``OUT_DIR/<run>.ready`` once it
is part-way through, holding its pid. An exclusive lock on the run's checkpoint directory detects
two executions of one run at the same time (event ``overlap``, exit 9).
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

from sweepd.agent import run

out = os.environ["OUT_DIR"]
steps = int(run.params.get("steps", 40))
mode = run.params.get("mode", "normal")
slow = float(run.params.get("slow_checkpoint", 0))
terms = 0


def on_term(signum, frame):
    global terms
    terms += 1


def note(**event):
    with open(os.path.join(out, f"{run.run_id}.jsonl"), "a") as fh:
        fh.write(json.dumps({"attempt": run.attempt, "t": time.time(), **event}) + "\n")


if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    note(event="grandchild", pid=grandchild.pid)
else:
    signal.signal(signal.SIGTERM, on_term)

# Two executions of one run at the same time would both take this lock: the second one says so.
lock = open(os.path.join(run.checkpoint_dir, "lock"), "w")  # noqa: SIM115 - held for the whole run
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    note(event="overlap")
    sys.exit(9)

ckpt = os.path.join(run.checkpoint_dir, "ckpt.json")


def save(step):
    """Write the checkpoint atomically: a process killed mid-write leaves the previous one whole."""
    with open(ckpt + ".tmp", "w") as fh:
        json.dump({"step": step}, fh)
    os.replace(ckpt + ".tmp", ckpt)


start = 0
if os.path.exists(ckpt):
    with open(ckpt) as fh:
        start = json.load(fh)["step"]
note(event="start", step=start, resumed=run.resumed, env_attempt=os.environ["SWEEPD_ATTEMPT"])

if mode == "mark" and run.attempt == 1:
    run.mark_preempting()
    note(event="marked")
    sys.exit(3)

for step in range(start, steps):
    if mode != "stubborn" and (terms or run.preempting):
        time.sleep(slow)  # a checkpoint that takes a while: repeated signals must not cut it short
        save(step)
        note(event="preempted", step=step, terms=terms, flag=run.preempting)
        sys.exit(0 if mode == "exit0" else 1)
    time.sleep(0.05)
    run.log({"loss": 1.0 / (step + 1)})
    save(step + 1)
    if step == start + 3:
        with open(os.path.join(out, f"{run.run_id}.ready"), "w") as fh:
            fh.write(str(os.getpid()))
note(event="done", step=steps)
