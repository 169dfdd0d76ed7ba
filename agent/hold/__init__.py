"""Holding a run, for whoever holds it: the agent's attempt (sweepd.agent.daemon) and a script that
holds its own run (sweepd.agent.api.standalone) both use this package, and nothing else of each other.

hold.py      the lease, renewal answers, the end recorded once (every holder)
tick.py      one turn of a holder's supervision, which the attempt's loop and the script's worker both take
guard.py     one thread that fences every hold of the process in time
watchdog.py  a process outside the holder that kills a held run's tree when its deadline passes unfed
reports.py   what a held run reports (rows, summary), cut to the bounds; buffer.py what waits to go
backoff.py   when Redis does not answer: bounded, jittered retries
"""
