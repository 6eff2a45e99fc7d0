"""The RDS Data API on the emulator's endpoint: Aurora MySQL's SQL, for real, on any machine.

The loan validation function talks to Aurora only through `rds-data` (D1). moto's own rds-data
only echoes canned results; here each call is checked as Aurora checks it and run on MariaDB
(`rdsdata_execute.execute`). Like Aurora, it refuses a cluster without the Data API and a secret
whose password the cluster does not accept, so a broken rotation shows as a failing Data API
call. The same execution path answers in-process tests through `rdsdata_bridge.DataApiBridge`;
the errors are `rdsdata_errors`, the limits `rdsdata_limits`, the values `rdsdata_values`.
"""

from __future__ import annotations

import json
from typing import Any

from loanstack.emulator.clusterdata import data_api_schema
from loanstack.emulator.faults import ACCESS_DENIED
from loanstack.emulator.mariadb import DATABASE_USER, MariaDB
from loanstack.emulator.rds import master_password
from loanstack.emulator.rdsdata_errors import (
    PROVISIONED,
    SERVERLESS_V1,
    DataApiError,
    database_error,
)
from loanstack.emulator.rdsdata_execute import execute
from loanstack.emulator.rdsdata_limits import request_size
from loanstack.emulator.state import STATE


def serve(server: MariaDB) -> None:
    """Answer rds-data on the emulator from `server` (the routes and handlers are patches.py's)."""
    STATE.serve(server)


def execute_statement(response: Any) -> Any:
    return respond(response, "ExecuteStatement")


def batch_execute_statement(response: Any) -> Any:
    return respond(response, "BatchExecuteStatement")


def respond(response: Any, operation: str) -> Any:
    params = json.loads(response.body or "{}")
    try:
        credentials = check_access(response.current_account, response.region, params)
        server = STATE.mariadb
        if server is None:
            raise DataApiError(
                "InternalServerErrorException", "the emulator's Data API has no MariaDB server"
            )
        kind, sql_mode = cluster_settings(response.current_account, response.region, params)
        size = request_size(response.body or b"", getattr(response, "headers", None) or {})
        schema = data_api_schema(
            find_cluster(response.current_account, response.region, params), params
        )
        status, body = execute(server, operation, params, credentials, kind, sql_mode, size, schema)
    except DataApiError as err:
        status, body = err.status, {"__type": err.code, "message": str(err)}
    # moto takes the HTTP status from the headers' "status" (else 200: errors looked like success)
    return status, {"Content-Type": "application/json", "status": str(status)}, json.dumps(body)


def find_cluster(account_id: str, region: str, params: dict[str, Any]) -> Any:
    from moto.rds.models import rds_backends

    cluster_id = str(params.get("resourceArn", "")).rsplit(":", 1)[-1]
    try:
        return rds_backends[account_id][region].clusters.get(cluster_id)
    except KeyError:  # a region moto does not serve
        return None


def cluster_settings(
    account_id: str, region: str, params: dict[str, Any]
) -> tuple[str, str | None]:
    """The cluster's kind (Serverless v1 or not: it decides the error codes) and the sql_mode
    its cluster parameter group sets (None: Aurora's default)."""

    cluster = find_cluster(account_id, region, params)
    if cluster is None:
        return PROVISIONED, None
    kind = SERVERLESS_V1 if getattr(cluster, "engine_mode", "") == SERVERLESS_V1 else PROVISIONED
    groups = cluster.backend.db_cluster_parameter_groups
    group = groups.get(str(getattr(cluster, "parameter_group", "") or "").lower())
    value = group.parameters.get("sql_mode", {}).get("ParameterValue") if group else None
    return kind, (str(value) if value is not None else None)


def check_access(account_id: str, region: str, params: dict[str, Any]) -> tuple[str, ...]:
    """What Aurora checks before every statement: the cluster, its Data API, the secret.

    Returns the credentials, which select the pooled connections: the master user's (checked
    here against the cluster's master password; it runs as MariaDB's root, Aurora's master has
    every privilege the functions use), or another user's, marked `DATABASE_USER`, which the pool
    logs in as, so MariaDB itself authenticates it and enforces its grants. Error codes as the
    ExecuteStatement API reference lists them (NotFoundException, HttpEndpointNotEnabledException,
    SecretsErrorException, InvalidSecretException; a wrong password is MySQL's 1045):
    https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.troubleshooting.html
    """
    from moto.rds.models import rds_backends
    from moto.secretsmanager.models import secretsmanager_backends

    cluster = find_cluster(account_id, region, params)
    if cluster is None:
        raise DataApiError("NotFoundException", f"DB cluster {params.get('resourceArn')} not found")
    cluster_id = cluster.db_cluster_identifier
    if not cluster._enable_http_endpoint:
        raise DataApiError(
            "HttpEndpointNotEnabledException",
            f"HttpEndpoint is not enabled for cluster {cluster_id}",
        )
    from loanstack.emulator.capacity import CapacityError, admit

    try:
        admit(rds_backends[account_id][region], cluster)
    except CapacityError as err:
        raise DataApiError(err.code, str(err)) from err
    secrets: Any = secretsmanager_backends[account_id][region]
    try:
        secret = secrets.get_secret_value(params.get("secretArn", ""), None, "AWSCURRENT")
    except Exception as exc:
        raise DataApiError(
            "SecretsErrorException", f"cannot read secret {params.get('secretArn')}: {exc}"
        ) from exc
    try:
        credentials = json.loads(secret["SecretString"])
        username, password = credentials["username"], credentials["password"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataApiError(
            "InvalidSecretException",
            f"secret {params.get('secretArn')} holds no JSON username and password",
        ) from exc
    if username != cluster.master_username:
        # Any other user is one of the database's own (created by SQL the functions sent): MariaDB
        # checks its password when the pool logs in as it, and its grants on every statement
        # (MySQL's 1045 and 1142, as Aurora answers them).
        return str(username), str(password), DATABASE_USER
    accepted = (cluster.master_username, master_password(account_id, region, cluster_id))
    if (username, password) != accepted:
        kind = cluster_settings(account_id, region, params)[0]
        raise database_error(
            ACCESS_DENIED, f"Access denied for user '{username}'@'%' (using password: YES)", kind
        )
    return str(accepted[0]), accepted[1]
