"""Redis behind Sentinel: ``redis+sentinel://`` URLs, parsed here and handed to redis-py's own
Sentinel support (discovery, failover, a demoted master's READONLY turned into a reconnect).

``redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB][?OPTIONS]``; the
scheme ``rediss+sentinel`` speaks TLS to the sentinels and to the master. The URL's password is the
master's; the sentinels' own password comes from ``SWEEPD_SENTINEL_PASSWORD`` (or the option
``sentinel_password``, how an agent carries it across its own re-exec). Other options are redis-py's
TLS ones (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``), for both.

Parsing is pure (``parse``): a malformed URL is a ValueError saying what is wrong, in one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import redis
from redis.sentinel import Sentinel

SCHEMES = ("redis+sentinel", "rediss+sentinel")
ENV_SENTINEL_PASSWORD = "SWEEPD_SENTINEL_PASSWORD"
SENTINEL_PASSWORD_OPTION = "sentinel_password"
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    tls_options: dict[str, str] = field(default_factory=dict)


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


def parse(url: str, environ: Mapping[str, str] = os.environ) -> SentinelURL:
    """The parts of a Sentinel URL; ValueError saying what is wrong for anything malformed (the
    caller names the URL, password redacted)."""
    bad = ValueError
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SCHEMES:
        raise bad(f"not a Sentinel URL (the schemes are {' and '.join(s + '://' for s in SCHEMES)})")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    auth, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(item, bad) for item in hosts.split(","))
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise bad("names no master: end it with /MASTER_NAME (as in `sentinel monitor MASTER_NAME ...`)")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise bad("the path must be /MASTER_NAME or /MASTER_NAME/DB (DB a number)")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {SENTINEL_PASSWORD_OPTION, *TLS_OPTIONS})
    if unknown:
        raise bad(f"unknown option {unknown[0]!r} (known: {', '.join((SENTINEL_PASSWORD_OPTION, *TLS_OPTIONS))})")
    sentinel_password = options.pop(SENTINEL_PASSWORD_OPTION, None) or environ.get(ENV_SENTINEL_PASSWORD) or None
    tls = scheme.lower() == "rediss+sentinel"
    if options and not tls:
        raise bad(f"{next(iter(options))} needs TLS: use rediss+sentinel://")
    return SentinelURL(
        sentinels,
        unquote(parts[0]),
        int(parts[1]) if len(parts) == 2 else 0,
        username,
        password,
        sentinel_password,
        tls,
        options,
    )


def _host_port(item: str, bad: type[ValueError]) -> tuple[str, int]:
    host, colon, port = item.strip().rpartition(":")
    if not colon:
        host, port = port, "26379"  # Sentinel's own default port
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise bad(f"{item!r} is not HOST:PORT (the sentinels are a comma list of HOST:PORT)")
    return host, int(port)


def with_sentinel_password(url: str, password: str) -> str:
    """The URL carrying the sentinels' password as an option, so one string is all an agent hands
    itself across its re-exec (secrets.py), and the environment can lose the variable."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}{SENTINEL_PASSWORD_OPTION}={quote(password, safe='')}"


def client(target: SentinelURL, **connection: Any) -> redis.Redis:
    """A client for the current master, rediscovered through the sentinels after a failover.

    ``connection`` is what every other sweepd client gets (timeouts, retry); the sentinels get the
    same timeouts, their own password and the same TLS.
    """
    tls: dict[str, Any] = {"ssl": True, **target.tls_options} if target.tls else {}
    sentinel_kwargs = {k: v for k, v in connection.items() if k.startswith("socket_")}
    sentinel_kwargs.update(tls)
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    # Any: redis-py types Sentinel in some releases and not in others (an ignore would be unused in one)
    make: Any = Sentinel
    sentinel = make(list(target.sentinels), sentinel_kwargs=sentinel_kwargs, **connection)
    master: redis.Redis = sentinel.master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=target.password,
        **tls,
    )
    return master


#: What a failover takes beside Sentinel's down-after-milliseconds, as bench/failover.py measures it
#: on the tests' topology (three sentinels, one replica): the vote and the promotion (about 1.3 s), and
#: the first move on the new master, whose WAIT may still count the dead master's replica (up to 1 s).
FAILOVER_EXTRA_S = 2.5


def failover_warning(master: str, down_after_ms: int, heartbeat_s: float) -> str | None:
    """One line when a failover could outlast what a held run survives, else None (pure).

    The rule (design.md, "Redis behind Sentinel"): a holder's guard stops its run 2.5 heartbeats
    after its last acknowledged renewal, which may be a heartbeat old when the master dies, and its
    retries come half a heartbeat apart at most: so detection (down-after) + election + reconnect
    must fit in one heartbeat for every run to survive, whatever the moment of the failure."""
    takes = down_after_ms / 1000 + FAILOVER_EXTRA_S
    if takes <= heartbeat_s:
        return None
    fits = max(0, int((heartbeat_s - FAILOVER_EXTRA_S) * 1000))
    return (
        f"Sentinel's down-after-milliseconds for {master} is {down_after_ms}: a failover takes about "
        f"{takes:.1f} s, longer than the {heartbeat_s:g} s a held run is sure to survive (a heartbeat; "
        f"lease {3 * heartbeat_s:g} s), so runs held then may be stopped and resumed from their "
        f"checkpoints: set it to {fits} ms or less, or raise --heartbeat"
    )


def down_after_ms(client: redis.Redis) -> tuple[str, int] | None:
    """The master's name and its ``down-after-milliseconds`` as the first sentinel that answers says
    (``SENTINEL MASTER``); None when the client is not Sentinel's or no sentinel answers."""
    pool: Any = client.connection_pool
    manager = getattr(pool, "sentinel_manager", None)
    if manager is None:
        return None
    for node in manager.sentinels:
        try:
            state = node.sentinel_master(pool.service_name)
        except redis.RedisError:
            continue
        return str(pool.service_name), int(state["down-after-milliseconds"])
    return None
