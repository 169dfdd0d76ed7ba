"""Checkpoints that travel with the run: snapshots of a run's checkpoint directory in an object
store (fsspec: s3://, gs://, az://, file://), committed in Redis by the run's holder only.

manifest.py  what a snapshot is, and what to upload, keep and delete (pure)
remote.py    the store through fsspec: the URL, the probe, parallel transfers bound by a deadline
sync.py      one attempt's working copy: restore the latest committed snapshot, snapshot, commit
"""
