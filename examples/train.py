"""A small training script for sweepd: reads its parameters, logs a metric, checkpoints each epoch.

Run it under an agent (`sweepd run examples/sweep.yaml`) or by hand (`python examples/train.py`:
init() then starts a run of its own; `SWEEPD_RUN_ID=... SWEEPD_RESUME=allow` resumes one).
"""

import json
import math
import os
import sys
import time

from sweepd.agent import run

run.init(params={"lr": 0.1, "epochs": 5, "width": 32})  # by hand these are the params; an agent's win

lr = float(run.params.get("lr", 0.1))
epochs = int(run.params.get("epochs", 5))
width = int(run.params.get("width", 32))

# A checkpoint per run, in the directory the agent gives every attempt of the same run: a later
# attempt continues where the last one stopped.
ckpt = os.path.join(run.checkpoint_dir or "checkpoints", "ckpt.json")
os.makedirs(os.path.dirname(ckpt), exist_ok=True)
start = 0
if os.path.exists(ckpt):
    with open(ckpt) as fh:
        start = json.load(fh)["epoch"]

for epoch in range(start, epochs):
    time.sleep(0.05)
    # A made-up loss surface with its minimum at lr=0.01, width=64.
    loss = (math.log10(lr) + 2) ** 2 + (math.log2(width) - 6) ** 2 / 4 + 1 / (epoch + 1)
    run.log({"loss": loss, "epoch": epoch})
    print(f"epoch={epoch} loss={loss:.4f}", flush=True)
    with open(ckpt + ".tmp", "w") as fh:  # write, then rename: a kill mid-write keeps the old one
        json.dump({"epoch": epoch + 1}, fh)
    os.replace(ckpt + ".tmp", ckpt)
    if run.preempting:
        sys.exit(1)  # checkpointed: a non-zero exit while preempting requeues the run
