"""What the commands are made of but is not a command: the live views, the tables and figures, and
`sweepd run`'s local agents and last lines. agent/cli/*.py are the commands alone (and main.py, kit.py)."""
