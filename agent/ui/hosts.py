"""Who may reach the dashboard, pure: which addresses are this machine's alone, which ``Host`` headers
name it, and how strong a token must be where others can connect.

Without a token the dashboard is safe only while nothing but this machine can talk to it, and a page
of another site can: once its name resolves to 127.0.0.1 (DNS rebinding) the browser sends it the
page's requests under that name. So a dashboard without a token answers only requests whose ``Host``
is a loopback name (``127.0.0.1``, ``localhost``, ``[::1]``, with or without the port): a rebound
name never is. With a token, a request without it is refused anyway, whatever its name.
"""

from __future__ import annotations

import ipaddress

#: The shortest token a dashboard reachable from other machines takes: a guess per request must not
#: find it (16 random characters are over 90 bits).
MIN_TOKEN = 16


def is_loopback(host: str) -> bool:
    """Only this machine can reach ``host``: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name of a ``Host`` header, without its port: ``[::1]:8765`` -> ``::1``, ``localhost:80`` ->
    ``localhost``; lower case; empty when malformed."""
    header = header.strip().lower()
    if header.startswith("["):
        inside, closed, rest = header[1:].partition("]")
        return inside if closed and (not rest or (rest[0] == ":" and rest[1:].isdigit())) else ""
    name, colon, port = header.rpartition(":")
    return name if colon and port.isdigit() else header


def loopback_host(header: str | None) -> bool:
    """A ``Host`` header a dashboard without a token answers (no header: not a browser's request)."""
    return header is None or is_loopback(host_name(header))


def weak_token(token: str) -> str | None:
    """Why ``token`` is too weak for a dashboard other machines can reach, else None."""
    if not token.strip():
        return "is blank"
    if len(token) < MIN_TOKEN:
        return f"has {len(token)} characters: give {MIN_TOKEN} or more"
    return None
