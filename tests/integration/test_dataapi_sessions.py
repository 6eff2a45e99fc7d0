"""Issue 12, item 10: the emulator's Data API reuses one MariaDB connection per cluster and
credentials, and still checks the secret's password against the cluster's on every call."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from loanstack.emulator import rdsdata
from loanstack.emulator.mariadb import MariaDB
from loanstack.emulator.rdsdata import execute


def connection_id(server: MariaDB, cluster: str, credentials: tuple[str, str]) -> int:
    params = {"resourceArn": cluster, "database": "loans", "sql": "SELECT CONNECTION_ID()"}
    status, body = execute(server, "ExecuteStatement", params, credentials)
    assert status == 200, body
    return int(body["records"][0][0]["longValue"])


def test_one_connection_per_cluster_and_credentials(mariadb: MariaDB) -> None:
    mariadb.reset()
    first = connection_id(mariadb, "arn:c1", ("admin", "p1"))
    assert connection_id(mariadb, "arn:c1", ("admin", "p1")) == first  # reused
    other = connection_id(mariadb, "arn:c2", ("admin", "p1"))
    rotated = connection_id(mariadb, "arn:c1", ("admin", "p2"))  # a rotation: a new connection
    assert len({first, other, rotated}) == 3
    assert sorted(k for k in mariadb.sessions if k[0] == "arn:c1") == [("arn:c1", "admin", "p2")]


def test_a_failed_batch_leaves_nothing_on_the_reused_connection(mariadb: MariaDB) -> None:
    mariadb.reset()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    value = [{"name": "id", "value": {"longValue": 1}}]
    params = {"resourceArn": "arn:c1", "sql": "INSERT INTO t VALUES (:id)",
              "parameterSets": [value, value]}  # fmt: skip
    status, _ = execute(mariadb, "BatchExecuteStatement", params, ("admin", "p"))
    assert status == 400  # the duplicate fails the batch
    count = {"resourceArn": "arn:c1", "sql": "SELECT COUNT(*) FROM t"}
    status, body = execute(mariadb, "ExecuteStatement", count, ("admin", "p"))
    assert (status, body["records"]) == (200, [[{"longValue": 0}]])


def test_the_password_is_checked_on_every_call(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    mariadb.reset()
    checks: list[str] = []

    def check_access(account: str, region: str, params: dict[str, Any]) -> tuple[str, str]:
        checks.append(params["secretArn"])
        if params["secretArn"] != "good":
            raise rdsdata.DataApiError("BadRequestException", "Access denied for user 'admin'")
        return "admin", "p"

    monkeypatch.setattr(rdsdata, "check_access", check_access)
    monkeypatch.setitem(rdsdata.SERVED, "server", mariadb)

    def call(secret: str) -> tuple[int, dict[str, Any]]:
        body = {"resourceArn": "arn:c1", "secretArn": secret, "sql": "SELECT 1"}
        response = SimpleNamespace(body=json.dumps(body), current_account="1", region="r")
        status, _, text = rdsdata.respond(response, "ExecuteStatement")
        return status, json.loads(text)

    assert call("good")[0] == 200 and call("good")[0] == 200
    status, body = call("stale")
    assert status == 400 and "Access denied" in body["message"]
    assert checks == ["good", "good", "stale"]
    assert [k for k in mariadb.sessions if k[0] == "arn:c1"] == [("arn:c1", "admin", "p")]
