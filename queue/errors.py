"""The one small hierarchy of errors sweepd raises on purpose.

``UserError`` and its children are the user's mistakes: the command line prints their message as one
line and exits 2, with no traceback and nothing stored.
"""

from __future__ import annotations


class SweepdError(Exception):
    """Base of every error sweepd raises on purpose."""


class UserError(SweepdError):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """A sweep config that sweepd refuses; ``problems`` holds one line per problem, each naming its key path."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__("\n".join(f"{where}{p}" for p in problems))


class NotFound(UserError):
    """A sweep or run ID that does not exist."""


class InvalidId(UserError):
    """An ID with characters or a length sweepd does not accept as part of a key name."""


class ResumeRefused(UserError):
    """The resume table refuses the start: ``must`` and the run does not exist, ``never`` and it does."""


class RunMissing(ResumeRefused):
    """``resume must``: the run ID does not exist."""


class RunExists(ResumeRefused):
    """``resume never``: the run ID exists already."""


class RunHeld(UserError):
    """Another live process (an agent's training process, or a script run by hand) holds the run:
    a second one is refused while the first holds it."""


class RedisUnavailable(SweepdError):
    """Redis could not be reached; the message names the URL tried (without its password)."""

    exit_code = 3
