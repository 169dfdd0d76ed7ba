"""The training-script API: what a script imports as ``from sweepd.agent import run`` (run.py), the run
it holds (script.py), its end of the agent's socket (link.py), and a run held by the script itself
when no agent runs it (standalone.py, exits.py)."""
