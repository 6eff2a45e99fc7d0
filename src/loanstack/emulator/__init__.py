"""The embedded default (SPEC D4): moto's server on loopback, in this process, extended so the
template deploys as a whole and its functions run.

In process matters: Lambda code runs here (`lambdas`), the Data API answers from a private
MariaDB (`dataapi`), and tests can look at moto's own service backends to prove a resource
really exists, not only in the stack's resource list.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loanstack.emulator import (  # noqa: F401 (importing an extension registers it)
    data,
    dataapi,
    keys,
    lambdaperm,
    lambdas,
    monitoring,
    network,
    secrets,
    storage,
)
from loanstack.emulator.engine import install, modelled_types

ACCOUNT_ID = "123456789012"
CREDENTIALS = {"aws_access_key_id": "emulator", "aws_secret_access_key": "emulator"}

__all__ = ["ACCOUNT_ID", "CREDENTIALS", "Emulator", "install", "modelled_types"]


class EmulatorError(RuntimeError):
    pass


@dataclass
class Emulator:
    """moto's ThreadedMotoServer on a free loopback port, with MariaDB behind its Data API."""

    url: str = ""
    _server: Any = field(default=None, repr=False)
    _mariadb: Any = field(default=None, repr=False)

    def start(self) -> Emulator:
        from moto.server import ThreadedMotoServer

        install()
        self._start_mariadb()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        lambdas.install(self.url)
        return self

    def _start_mariadb(self) -> None:
        # a short path: unix socket names are limited to about 100 bytes
        # TLS on a loopback port too: the clusters' endpoint for MySQL logins (data.serve_logins)
        server = dataapi.MariaDB(Path(tempfile.mkdtemp(prefix="loanstack-db-")), tls=True)
        try:
            server.start()
        except Exception as exc:
            raise EmulatorError(
                f"the emulator's Data API needs MariaDB ({exc}); install it with "
                "`sudo scripts/ensure-mariadb.sh` (Debian/Ubuntu: apt-get install mariadb-server)"
            ) from exc
        server.reset()
        dataapi.serve(server)
        self._mariadb = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._mariadb is not None:
            dataapi.SERVED.pop("server", None)
            self._mariadb.stop()
            shutil.rmtree(self._mariadb.root, ignore_errors=True)
            self._mariadb = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
