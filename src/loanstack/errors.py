"""One hierarchy of the errors a user sees, each as one line, next to its exit code.

Exit codes (the same for the same kind of error): 0 done (also "no changes", destroying a
stack that is not there, and a question answered "no" at a terminal: nothing changed), 1 failure
(AWS or the emulator refused, the stack failed, `check` found an unexplained finding), 2 usage
(bad arguments or input files, an action that needs confirming run without a terminal and
without --yes), 130 interrupted (Ctrl-C), 141 the reader of stdout went away (`| head`: quietly,
as other Unix tools end on SIGPIPE), 143 terminated (SIGTERM). No traceback reaches the user
(`LOANSTACK_DEBUG=1` shows one for an unexpected error).
"""

from __future__ import annotations

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
EXIT_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`'s `yes`


class DeployError(Exception):
    """A deployment problem reported to the user as one line (exit 1)."""


class UsageError(DeployError):
    """Bad input (a parameter, a file, an unconfirmed action): one line, exit 2."""


class Interrupted(DeployError):
    """Ctrl-C: one line saying what carries on without us (exit 130)."""


class Terminated(BaseException):
    """SIGTERM (CI, `timeout`, `docker stop`): unwinds like Ctrl-C so the emulator is stopped
    (exit 143)."""


class Declined(Exception):
    """A question answered "no" at a terminal: the user's choice, not an error (exit 0, one
    line saying nothing changed). Without a terminal there is no answer: that stays a
    `UsageError` (exit 2), so CI never takes "not done" for done."""
