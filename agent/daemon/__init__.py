"""The agent daemon: the loop that claims runs (loop.py), one attempt of a run (attempt.py), the
training process (process.py, launch.py, channel.py), and what tells it the machine is going away
(signals.py, notices/, preemption.py). Holding a run's lease is sweepd.agent.hold's, shared with the
script API."""
