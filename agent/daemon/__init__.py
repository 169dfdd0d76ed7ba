"""The agent daemon: the loop that claims runs (loop.py), one attempt of a run (attempt.py), holding
a run's lease (hold.py), the training process (process.py, launch.py, channel.py), and what tells it
the machine is going away (signals.py, notices/, preemption.py)."""
