"""The process environment as Lambda invocations in this process share it (awslambda.py)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Lease:
    """The process environment, shared by the invocations that need the same one.

    Concurrent invocations of one function want identical variables, so they may hold the
    environment together; an invocation that needs other values (another function) waits until
    the last holder has left and the saved environment is back. Nothing else is serialised.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.values: dict[str, str] | None = None
        self.holders = 0
        self.saved: dict[str, str | None] = {}
        self.saved_level = logging.NOTSET

    @contextmanager
    def holding(self, values: dict[str, str], log_level: str = "INFO") -> Iterator[None]:
        """Hold the environment `values` with the root logger at `log_level` (also shared)."""
        import boto3

        wanted = {**values, "": log_level}
        root = logging.getLogger()
        with self.changed:
            while self.holders and self.values != wanted:
                self.changed.wait()
            if not self.holders:
                self.saved_level = root.level
                root.setLevel(log_level)
                keys = [*values, "AWS_SESSION_TOKEN", "AWS_PROFILE"]
                self.saved = {k: os.environ.get(k) for k in keys}
                os.environ.pop("AWS_SESSION_TOKEN", None)
                os.environ.pop("AWS_PROFILE", None)
                os.environ.update(values)
                boto3.DEFAULT_SESSION = None  # the handler's clients must see this environment
                self.values = wanted
            self.holders += 1
        try:
            yield
        finally:
            with self.changed:
                self.holders -= 1
                if not self.holders:
                    for key, value in self.saved.items():
                        if value is None:
                            os.environ.pop(key, None)
                        else:
                            os.environ[key] = value
                    boto3.DEFAULT_SESSION = None
                    root.setLevel(self.saved_level)
                    self.values = None
                    self.changed.notify_all()
