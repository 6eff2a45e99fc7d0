"""The emulator in this process (SPEC D4): moto's server on loopback, extended so the template
deploys as a whole and its functions run, with MariaDB behind the Data API. Importing this module
imports moto and, through `patches`, registers every extension; the package's light names
(`loanstack.emulator`) and the door do not import it until an emulator starts here.

In process matters: Lambda code runs here (`awslambda`), the Data API answers from a private
MariaDB (`rdsdata`), and tests can look at moto's own service backends to prove a resource
really exists, not only in the stack's resource list.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loanstack.emulator import EmulatorError, awslambda, rdsdata
from loanstack.emulator.cloudformation import modelled_types
from loanstack.emulator.control import check_port
from loanstack.emulator.faults import Faults
from loanstack.emulator.mariadb import MariaDB
from loanstack.emulator.patches import install, uninstall
from loanstack.emulator.state import STATE

__all__ = ("Emulator", "check_port", "install", "modelled_types", "uninstall")


@dataclass
class Emulator:
    """moto's ThreadedMotoServer on a free loopback port, with MariaDB behind its Data API."""

    url: str = ""
    port: int = 0  # 0: a free one
    # each concurrent Lambda execution in a warm process of its own (awslambda_sandbox.py), or
    # (False, the embedded emulator's default) as a thread of this process (awslambda.py)
    lambda_processes: bool = False
    _server: Any = field(default=None, repr=False)
    _mariadb: Any = field(default=None, repr=False)

    def start(self) -> Emulator:
        """Start, or stop whatever had started (MariaDB included) before raising, even on
        Ctrl-C or SIGTERM: nothing is left running."""
        from moto.server import ThreadedMotoServer

        check_port(self.port)
        install()
        try:
            self._start_mariadb()
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
        except BaseException:
            self.stop()
            raise
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        awslambda.install(self.url)
        STATE.run_functions_in_processes(self.lambda_processes)
        return self

    @property
    def faults(self) -> Faults:
        """Fault injection for tests (faults.py): Data API outages, access denied, deadlocks,
        duplicate S3 notifications."""
        return STATE.faults

    @property
    def mariadb_pid(self) -> int | None:
        process = getattr(self._mariadb, "process", None)
        return process.pid if process is not None else None

    @property
    def data_dir(self) -> Path | None:
        return self._mariadb.root if self._mariadb is not None else None

    def _start_mariadb(self) -> None:
        # a short path: unix socket names are limited to about 100 bytes
        # TLS on a loopback port too: the clusters' endpoint for MySQL logins (rds.serve_logins)
        self._mariadb = server = MariaDB(Path(tempfile.mkdtemp(prefix="loanstack-db-")), tls=True)
        try:
            server.start()
        except Exception as exc:
            raise EmulatorError(
                f"the emulator's Data API needs MariaDB ({exc}); install it with "
                "`sudo scripts/ensure-mariadb.sh` (Debian/Ubuntu: apt-get install mariadb-server)"
            ) from exc
        server.reset()
        STATE.reset()
        rdsdata.serve(server)

    def stop(self) -> None:
        STATE.run_functions_in_processes(False)  # every sandbox process killed
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._mariadb is not None:
            STATE.serve(None)
            self._mariadb.stop()
            shutil.rmtree(self._mariadb.root, ignore_errors=True)
            self._mariadb = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
