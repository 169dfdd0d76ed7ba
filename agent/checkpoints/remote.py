"""The object store a checkpoint root names, through fsspec and the store's maintained backend
(s3fs, gcsfs, adlfs; ``file://`` is fsspec's own). Credentials and endpoints are the backend's
standard configuration (for S3: the AWS variables and files, ``AWS_ENDPOINT_URL``): sweepd passes
none, stores none and prints none. Transfers are one batched call of the backend (s3fs, gcsfs and
adlfs send the files concurrently), bound by a deadline: past it the caller stops waiting (what is
in flight finishes on its own, uncommitted).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sweepd.queue.errors import UserError

T = TypeVar("T")
WORKERS = 8  # files in flight at once, each way
#: The extra that installs each scheme's backend.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}


def is_url(root: str) -> bool:
    """An object-store root (``scheme://...``, ``file://`` included); a plain path is shared storage."""
    scheme, sep, _ = root.partition("://")
    return bool(sep) and scheme.isidentifier()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Remote:
    """One checkpoint root in an object store: ``ROOT/SWEEP/RUN/{blobs,snapshots}/...``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        scheme = self.url.partition("://")[0]
        try:
            from fsspec.core import url_to_fs

            options: dict[str, Any] = {"auto_mkdir": True} if scheme == "file" else {}
            self.fs, self.base = url_to_fs(self.url, **options)
        except ImportError:
            extra = EXTRAS.get(scheme)
            hint = f'pip install "sweepd[{extra}]"' if extra else "install the fsspec backend for it"
            raise UserError(f"--checkpoint-root {url}: no backend installed for {scheme}:// ({hint})") from None
        except (ValueError, TypeError) as exc:
            raise UserError(f"--checkpoint-root {url}: not a store this machine can open ({exc})") from None
        self.base = str(self.base).rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def probe(self) -> None:
        """Write, read back and delete a small object: refuse at agent start a root that cannot be written."""
        name = self.path(f".sweepd-probe-{uuid.uuid4().hex}")
        try:
            self.fs.pipe_file(name, b"sweepd")
            if self.fs.cat_file(name) != b"sweepd":
                raise OSError("read back something else")
            self.fs.rm_file(name)
        except Exception as exc:
            raise UserError(
                f"--checkpoint-root {self.url}: cannot write there ({first_line(exc)}); check the bucket and "
                "the store's credentials"
            ) from None

    # transfers ----------------------------------------------------------------------------------

    def put_files(self, pairs: Sequence[tuple[str, str]], deadline: float | None) -> bool:
        """Upload (local, remote) pairs, as one batched call of the backend (s3fs sends them
        concurrently); False when the deadline passed first."""
        if not pairs:
            return True
        local, remote = [p[0] for p in pairs], [p[1] for p in pairs]
        return in_time(lambda: self.fs.put(local, remote), deadline)

    def get_files(self, pairs: Sequence[tuple[str, str]], deadline: float | None) -> bool:
        """Download (remote, local) pairs as one batched call, each to a temporary name renamed
        into place once all are down."""
        if not pairs:
            return True
        partials = []
        for _, local in pairs:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            partials.append(os.path.join(os.path.dirname(local), f".sweepd-part-{uuid.uuid4().hex}"))
        try:
            if not in_time(lambda: self.fs.get([p[0] for p in pairs], partials), deadline):
                return False
            for partial, (_, local) in zip(partials, pairs, strict=True):
                os.replace(partial, local)
            return True
        finally:
            for partial in partials:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)

    def write(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(path, data)

    def read(self, path: str) -> bytes:
        return bytes(self.fs.cat_file(path))

    def names(self, directory: str) -> list[str]:
        """Every object under ``directory`` (recursively), as paths relative to it."""
        self.fs.invalidate_cache(directory)  # another agent's writes are not in this one's listing cache
        try:
            found = self.fs.find(directory)
        except FileNotFoundError:
            return []
        prefix = directory.rstrip("/") + "/"
        return [str(p)[len(prefix) :] for p in found if str(p).startswith(prefix)]

    def delete(self, paths: Sequence[str]) -> None:
        """Delete objects, a missing one included (another clean-up may have been first)."""
        if paths:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(list(paths))


def in_time(call: Callable[[], Any], deadline: float | None) -> bool:
    """``call`` on a daemon thread; True once it returned, False when the deadline (monotonic) came
    first (it is left to finish in the background). Its error is raised."""
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="sweepd-transfer", daemon=True).start()
    if not done.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
        return False
    if errors:
        raise errors[0]
    return True


def parallel(work: Callable[[T], None], items: Sequence[T], deadline: float | None, workers: int = WORKERS) -> bool:
    """``work`` on every item from up to ``workers`` daemon threads. True when all are done; False
    when the deadline (monotonic) came first: nothing more is started, and what is in flight is
    left to finish in the background. The first error is raised at once (nothing more is started)."""
    todo = list(reversed(items))
    if not todo:
        return True
    state = {"done": 0, "stop": False}
    errors: list[BaseException] = []
    cond = threading.Condition()

    def worker() -> None:
        while True:
            with cond:
                if state["stop"] or not todo:
                    return
                item = todo.pop()
            try:
                work(item)
            except BaseException as exc:
                with cond:
                    errors.append(exc)
                    state["stop"] = True
                    cond.notify_all()
                return
            with cond:
                state["done"] += 1
                cond.notify_all()

    for _ in range(min(workers, len(todo))):
        threading.Thread(target=worker, name="sweepd-checkpoint", daemon=True).start()
    total = len(items)
    with cond:
        while state["done"] < total and not errors:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                state["stop"] = True
                return False
            cond.wait(left)
        state["stop"] = True
    if errors:
        raise errors[0]
    return True
