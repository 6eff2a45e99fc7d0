"""Each Aurora cluster's data on the emulator's one MariaDB server: schemas of its own, copied
by snapshots and restores, so two clusters never share a row.

On Aurora every cluster has its own storage volume: a database `loans` of one cluster and a
database `loans` of another are unrelated, a snapshot holds a copy of the cluster's volume, and
a restore creates a new volume from it.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.Overview.StorageReliability.html
The emulator serves all clusters from one MariaDB, so it names schemas after their owner:
`schema(cluster, database)` is the one mapping from the Data API's (cluster, database) to a
MariaDB schema; a snapshot's copy lives under the snapshot's own prefix. Tables are copied
(CREATE TABLE LIKE, INSERT SELECT) under LOCK TABLES, so a copy is one consistent point in
time; views, routines and triggers are not copied (the stack's database has none).
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

from loanstack.emulator.mariadb import DATABASE, MariaDB
from loanstack.emulator.state import STATE

DATABASE_CHARS = 49  # a MariaDB name holds 64 characters; the owner's prefix takes 15


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:13]


def cluster_prefix(cluster: Any) -> str:
    """The schemas of one cluster: by its ARN and resource id (a cluster deleted and created
    again under the same name is a new cluster with an empty volume)."""
    return f"c{digest(f'{cluster.db_cluster_arn}|{cluster.db_cluster_resource_id}')}_"


def snapshot_prefix(snapshot: Any) -> str:
    return f"s{digest(snapshot.db_cluster_snapshot_arn)}_"


def schema(cluster: Any, database: str) -> str:
    """The MariaDB schema behind the Data API's `database` of `cluster`."""
    if len(database) > DATABASE_CHARS:  # still unique, within MariaDB's 64 characters
        database = f"{database[: DATABASE_CHARS - 14]}_{digest(database)}"
    return cluster_prefix(cluster) + database


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def server() -> MariaDB | None:
    """The emulator's MariaDB (None: moto alone, nothing to copy)."""
    return STATE.mariadb


def schemas(db: MariaDB, prefix: str) -> list[str]:
    """The schemas under `prefix` (its `_` escaped: LIKE reads it as any character)."""
    pattern = prefix.replace("_", "\\_") + "%"
    with db.connect(None) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
            (pattern,),
        )
        return sorted(str(row[0]) for row in cur.fetchall())


def create_database(cluster: Any, database: str | None) -> None:
    """A new cluster's initial database (CreateDBCluster's DatabaseName), empty."""
    db = server()
    if db is None or not database:
        return
    with db.connect(None) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quoted(schema(cluster, database))}")


def drop(prefix: str) -> None:
    """Every schema of a deleted cluster or snapshot."""
    db = server()
    if db is None:
        return
    with db.connect(None) as conn, conn.cursor() as cur:
        for name in schemas(db, prefix):
            cur.execute(f"DROP DATABASE IF EXISTS {quoted(name)}")


def copy(source: str, destination: str) -> None:
    """Copy every schema under `source` to the same database name under `destination`, as one
    point in time (the source tables read-locked while they are copied)."""
    db = server()
    if db is None:
        return
    tables: list[tuple[str, str]] = []
    with db.connect(None) as conn, conn.cursor() as cur:
        for name in schemas(db, source):
            target = destination + name[len(source) :]
            cur.execute(f"DROP DATABASE IF EXISTS {quoted(target)}")
            cur.execute(f"CREATE DATABASE {quoted(target)}")
            cur.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                (name,),
            )
            for (table,) in cur.fetchall():
                tables.append(
                    (f"{quoted(name)}.{quoted(table)}", f"{quoted(target)}.{quoted(table)}")
                )
                cur.execute(f"CREATE TABLE {tables[-1][1]} LIKE {tables[-1][0]}")
        if not tables:
            return
        locks = [f"{src} READ" for src, _ in tables] + [f"{dst} WRITE" for _, dst in tables]
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute("LOCK TABLES " + ", ".join(locks))
        try:
            for src, dst in tables:
                cur.execute(f"INSERT INTO {dst} SELECT * FROM {src}")  # noqa: S608 (quoted names)
        finally:
            cur.execute("UNLOCK TABLES")


def last_write(prefix: str) -> datetime.datetime | None:
    """When a table under `prefix` was last created or written (UTC, to the second), from
    InnoDB's own bookkeeping (information_schema.TABLES UPDATE_TIME, CREATE_TIME); None when
    nothing was."""
    db = server()
    if db is None:
        return None
    pattern = prefix.replace("_", "\\_") + "%"
    with db.connect(None) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(
            "SELECT MAX(GREATEST(COALESCE(update_time, create_time), create_time)) "
            "FROM information_schema.tables WHERE table_schema LIKE %s",
            (pattern,),
        )
        row = cur.fetchone()
    found = row[0] if row else None
    return found.replace(tzinfo=datetime.UTC) if isinstance(found, datetime.datetime) else None


def data_api_schema(cluster: Any, params: dict[str, Any]) -> str | None:
    """The schema a Data API call on `cluster` uses (None: no cluster known, e.g. the test
    bridge, which keeps the database name as it is)."""
    if cluster is None:
        return None
    return schema(cluster, str(params.get("database") or DATABASE))
