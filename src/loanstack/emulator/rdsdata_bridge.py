"""The Data API as a botocore hook on one client, for tests and benchmarks that run a function
in process on moto's in-memory mocks: each rds-data call is answered by `execute` on MariaDB,
without the emulator's HTTP endpoint."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

from loanstack.emulator.mariadb import MariaDB
from loanstack.emulator.rdsdata_execute import RoundTrips, execute
from loanstack.emulator.rdsdata_limits import request_size


class DataApiBridge:
    """Answers rds-data calls from a MariaDB connection; counts the calls made."""

    def __init__(self, server: MariaDB, measure: bool = True) -> None:
        self.server, self.measure = server, measure
        self.calls: dict[str, int] = {"ExecuteStatement": 0, "BatchExecuteStatement": 0}
        self.statements: list[str] = []  # the SQL of each call, in order
        self.largest = {"request": 0, "response": 0}  # bytes of the JSON bodies, as sent
        self.seconds = 0.0  # spent answering, i.e. inside the stand-in for the Data API
        self.cpu_seconds = 0.0  # of it, the calling thread's CPU time (pymysql's side of the calls)
        self.round_trips = RoundTrips()  # of it, MariaDB's round trips (the database's time)

    def install(self, client: Any) -> Any:
        for operation in self.calls:
            client.meta.events.register(f"before-parameter-build.rds-data.{operation}", self.keep)
            client.meta.events.register(f"before-call.rds-data.{operation}", self.answer)
        return client

    @staticmethod
    def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """At before-call the request is already serialised; keep the API parameters for it."""
        context["data_api_params"] = dict(params)

    def answer(
        self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> tuple[Any, dict[str, Any]]:
        """`params` is botocore's serialised request: its size is the request's, as sent."""
        start, cpu = time.perf_counter(), time.thread_time()
        self.calls[model.name] += 1
        api_params = context["data_api_params"]
        self.statements.append(api_params.get("sql", ""))
        size = request_size(params.get("body") or b"", params.get("headers") or {})
        status, body = execute(
            self.server,
            model.name,
            api_params,
            ("bridge",),
            request_bytes=size,
            round_trips=self.round_trips,
        )
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.thread_time() - cpu
        if self.measure:  # sizes as sent, to hold the function to the Data API's limits
            self.largest["request"] = max(self.largest["request"], size)
            self.largest["response"] = max(self.largest["response"], len(json.dumps(body)))
        if status != 200:
            body = {"Error": {"Code": body["__type"], "Message": body["message"]}}
        return SimpleNamespace(status_code=status), body
