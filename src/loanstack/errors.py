"""One hierarchy of the errors a user sees, each as one line, next to its exit code.

Exit codes (the same for the same kind of error): 0 done (also "no changes" and destroying a
stack that is not there), 1 failure (AWS or the emulator refused, the stack failed, `check` found
an unexplained finding), 2 usage (bad arguments or input files, an action not confirmed), 130
interrupted (Ctrl-C), 143 terminated (SIGTERM). No traceback reaches the user
(`LOANSTACK_DEBUG=1` shows one for an unexpected error).
"""

from __future__ import annotations

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143


class DeployError(Exception):
    """A deployment problem reported to the user as one line (exit 1)."""


class UsageError(DeployError):
    """Bad input (a parameter, a file, an unconfirmed action): one line, exit 2."""


class Interrupted(DeployError):
    """Ctrl-C: one line saying what carries on without us (exit 130)."""


class Terminated(BaseException):
    """SIGTERM (CI, `timeout`, `docker stop`): unwinds like Ctrl-C so the emulator is stopped
    (exit 143)."""
