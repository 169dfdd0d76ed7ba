"""The toy problem of Jaderberg et al. 2017 (figure 2) as a sweepd training script.

True objective Q(theta) = 1.2 - (theta0^2 + theta1^2); the member does gradient ascent on the
surrogate 1.2 - (h0 theta0^2 + h1 theta1^2) from theta = (0.9, 0.9), step size 0.01, with
h = (h0, h1) its parameters; it checkpoints theta (and its step) at every step and logs Q. Told to
stop (the agent's signal), it exits 3 with its checkpoint saved; it never ends by itself (PBT's
``steps`` ends a member). ``TOY_SLEEP``: seconds per step (default 0.01).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from sweepd.agent import run

STOP = False


def _stop(signum: int, frame: object) -> None:
    global STOP
    STOP = True


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    h0, h1 = float(run.params["h0"]), float(run.params["h1"])
    directory = Path(run.checkpoint_dir or ".")
    checkpoint = directory / "theta.json"
    state = json.loads(checkpoint.read_text()) if checkpoint.exists() else {"theta": [0.9, 0.9], "step": -1}
    theta, step = list(state["theta"]), int(state["step"]) + 1
    pause = float(os.environ.get("TOY_SLEEP", "0.01"))
    while not (STOP or run.preempting):
        theta = [theta[0] - 0.01 * 2 * h0 * theta[0], theta[1] - 0.01 * 2 * h1 * theta[1]]
        partial = directory / f"theta.json.{os.getpid()}"
        partial.write_text(json.dumps({"theta": theta, "step": step}))
        partial.replace(checkpoint)  # a copy never reads half a checkpoint
        run.log({"Q": 1.2 - (theta[0] ** 2 + theta[1] ** 2)}, step=step)
        step += 1
        time.sleep(pause)
    sys.exit(3)


if __name__ == "__main__":
    main()
