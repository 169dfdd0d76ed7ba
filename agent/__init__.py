"""sweepd.agent: the daemon that claims runs and supervises training processes, and the command line.

Nothing here imports rq: the queue's internals stay behind ``sweepd.queue``.
"""
