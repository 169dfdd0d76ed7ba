"""A training process's output, kept within bounds: raw chunks to lines (``Lines``: a line cut at
``LINE_BYTES``, a progress bar one line), and an attempt's kept lines (``Kept``: newest first, within
``LOG_BYTES``). Pure data, no process: process.py's pumps feed it, the attempt writes it."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

LINE_BYTES = 16_384  # bytes of one output line that are kept; the rest is cut, and the line says so
LOG_BYTES = 4 * 1024 * 1024  # bytes of an attempt's output kept (newest first), in Redis and waiting
CUT = " ... [line cut at {} bytes]"


class Lines:
    """Raw output, in chunks as read, to kept lines. A line is cut at ``limit`` bytes (and says so),
    so a program that never writes a newline costs the agent ``limit`` bytes, not its whole output;
    and a line keeps its text after its last ``\\r`` (a ``\\r\\n`` ending aside), the state a
    terminal shows, so a progress bar is one line, not every frame it drew."""

    def __init__(self, limit: int = LINE_BYTES) -> None:
        self.limit = limit
        self._part = bytearray()  # the current line since its last \r, up to limit bytes
        self._cut = False  # the current line had more than limit bytes
        self._cr = False  # the text so far ended with \r: a \n next makes it a CRLF, text a new state

    def feed(self, data: bytes) -> list[str]:
        """The lines ``data`` completes."""
        *ended, rest = data.split(b"\n")
        lines = []
        for piece in ended:
            self._add(piece)
            lines.append(self._take())
        self._add(rest)
        return lines

    def close(self) -> list[str]:
        """At the end of the output: the last line, if it was not ended and has text."""
        return [self._take()] if self._part or self._cut else []

    def _add(self, piece: bytes) -> None:
        if not piece:
            return
        if self._cr:  # text after a \r: the line starts over
            self._restart()
        cr = piece.endswith(b"\r")
        if cr:
            piece = piece[:-1]
        at = piece.rfind(b"\r")
        if at >= 0:
            self._restart()
            piece = piece[at + 1 :]
        room = self.limit - len(self._part)
        if len(piece) > room:
            self._cut = True
            piece = piece[: max(0, room)]
        self._part += piece
        self._cr = cr

    def _restart(self) -> None:
        self._part.clear()
        self._cut = self._cr = False

    def _take(self) -> str:
        raw, cut = bytes(self._part), self._cut
        self._restart()
        text = raw.decode(errors="replace")
        if 3 * len(raw) > self.limit and len(text.encode()) > self.limit:  # replacement characters grew it
            text, cut = text.encode()[: self.limit].decode(errors="ignore"), True
        return text + CUT.format(self.limit) if cut else text


class Kept:
    """An attempt's kept output, bounded in lines and bytes (newest kept), both waiting to be
    written and once written: the attempt is the only writer of its log, so it knows the size of
    each line it holds and tells the store how many to keep."""

    def __init__(self, max_lines: int, max_bytes: int = LOG_BYTES) -> None:
        self.max_lines, self.max_bytes = max_lines, max_bytes
        self._waiting: deque[tuple[str, int]] = deque()
        self._waiting_bytes = 0
        self._stored: deque[int] = deque()  # the size of each line written, oldest first
        self._stored_bytes = 0
        self._lock = threading.Lock()
        self._gap = False  # lines were dropped while waiting: every older one goes too
        self.dropped = 0  # lines never written: over the bounds while waiting

    def add(self, lines: list[str]) -> None:
        with self._lock:
            for line in lines:
                size = len(line.encode())
                self._waiting.append((line, size))
                self._waiting_bytes += size
            self._trim()

    def flush(self, write: Callable[[list[str], int], object]) -> None:
        """Write what waits with ``write(lines, keep)``: append, then keep the newest ``keep``. On an
        error the lines wait again (within the bounds) and it is raised."""
        with self._lock:
            taken, self._waiting, self._waiting_bytes = list(self._waiting), deque(), 0
            gap, self._gap = self._gap, False
        if not taken:
            return
        count, total = len(self._stored) + len(taken), self._stored_bytes + sum(size for _, size in taken)
        drop = 0
        for size in self._stored:  # taken alone is within the bounds (_trim): dropping stored lines suffices
            if not gap and count <= self.max_lines and total <= self.max_bytes:
                break
            count, total, drop = count - 1, total - size, drop + 1
        try:
            write([line for line, _ in taken], count)
        except BaseException:
            with self._lock:
                self._waiting.extendleft(reversed(taken))
                self._waiting_bytes += sum(size for _, size in taken)
                self._gap = self._gap or gap
                self._trim()
            raise
        for _ in range(drop):
            self._stored.popleft()
        self._stored.extend(size for _, size in taken)
        self._stored_bytes = total

    def _trim(self) -> None:
        while self._waiting and (len(self._waiting) > self.max_lines or self._waiting_bytes > self.max_bytes):
            self._waiting_bytes -= self._waiting.popleft()[1]
            self.dropped += 1
            self._gap = True
