"""One parsed copy of botocore's data files (service models, endpoint rules, partitions) per
process.

botocore decodes those JSON files once per session and keeps them in the session's Loader, so
every new session decodes them again: about 150 ms of CPU for an S3 and a Data API client. Some
processes build many sessions: the embedded emulator gives each Lambda invocation its own (as
each execution environment has its own), and the tests run many commands in one process. The
files are read-only data, which botocore already shares between the clients of one session, so
here sessions share one Loader; credentials, region and configuration stay each session's own.

The shared Loader is the first session's, with that session's search paths (its `data_path`:
AWS_DATA_PATH, a profile's `data_path`, `~/.aws/models`): a later session configured with
another data path reads the first one's models, not its own. Harmless for this tool, which sets
no data path anywhere; a caller that needs its own models must not share them.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_shared: list[Any] = []  # the process's one botocore Loader, once a session has made it


def share_models(session: Any) -> Any:
    """`session` (a boto3.Session) with its botocore session reading through the process's one
    Loader (botocore's `data_loader` component, https://github.com/boto/botocore/blob/develop/botocore/loaders.py).
    boto3 adds its own resource models' path to the Loader it made first (`_setup_loader`);
    the shared Loader is such a first one, so that path is on it once."""
    core = session._session  # boto3.Session's botocore session: where clients are made
    with _lock:
        if not _shared:
            _shared.append(core.get_component("data_loader"))
        else:
            core.register_component("data_loader", _shared[0])
    return session
