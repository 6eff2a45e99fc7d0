"""boto3's default session in a test process reads botocore's data files through one Loader.

moto's `mock_aws` clears `boto3.DEFAULT_SESSION` each time it starts (moto/core/models.py), so
every test that mocks AWS builds a new default session at its first `boto3.client(...)` (the
Lambda functions' code makes its clients that way), and a new session decodes the endpoint
rules, partitions and service models again: about 0.2 s of CPU per test, over half of what
tests/unit/test_secret_rotation.py spent. `loanstack.botocore_models.share_models` is how the
tool's own sessions already share those read-only files; here each new default session gets
it too. Credentials, region and configuration stay the session's own, so what a test proves is
unchanged. Sessions a test makes itself (`boto3.Session()`) are left as they are: sharing stays
opt-in there (tests/unit/test_botocore_models.py).
"""

from __future__ import annotations

from typing import Any

import boto3

from loanstack.botocore_models import share_models

_plain = boto3.setup_default_session


def setup_default_session(**kwargs: Any) -> None:
    """boto3's own, then the new default session made to share the process's parsed models."""
    _plain(**kwargs)
    if boto3.DEFAULT_SESSION is not None:
        share_models(boto3.DEFAULT_SESSION)


def share_default_sessions() -> None:
    """From now on in this process (boto3.client() finds the function through the module)."""
    boto3.setup_default_session = setup_default_session


def session(**kwargs: Any) -> boto3.Session:
    """A new boto3 session for a test under moto (its own credentials and region), reading the
    process's parsed models: a test module's fixture made one per test, each decoding botocore's
    files again (about half of tests/unit/test_emulator_async_lambda.py's CPU)."""
    return share_models(boto3.Session(**kwargs))  # type: ignore[no-any-return]
