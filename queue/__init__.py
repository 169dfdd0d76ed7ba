"""sweepd.queue: everything sweepd keeps in Redis (sweeps, runs, the queue) and the search algorithms.

The card puts this package in a top-level folder named ``queue``. Installed, it is ``sweepd.queue``
and shadows nothing. But any Python started with the repository root on ``sys.path`` (``python -c``
from a checkout) finds this folder first when anything imports the standard library's ``queue``
(redis-py, ``concurrent.futures`` and ``logging.handlers`` all do). The guard below makes that import
load the standard library's ``queue.py`` in our place: the import system returns whatever
``sys.modules["queue"]`` holds once this file has run.
"""

if __name__ == "queue":  # imported as the top-level `queue`, not as sweepd.queue
    import importlib.util as _util
    import os as _os
    import sys as _sys
    import sysconfig as _sysconfig

    _spec = _util.spec_from_file_location("queue", _os.path.join(_sysconfig.get_path("stdlib"), "queue.py"))
    assert _spec is not None and _spec.loader is not None
    _stdlib_queue = _util.module_from_spec(_spec)
    _sys.modules["queue"] = _stdlib_queue
    _spec.loader.exec_module(_stdlib_queue)
