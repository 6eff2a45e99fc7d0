"""Fixtures for tests that need a real MySQL-compatible server (MariaDB) or the AWS emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from loanstack.aws.target import Target
from loanstack.emulator import ACCOUNT_ID, CREDENTIALS, Emulator
from loanstack.emulator.mariadb import MariaDB
from loanstack.emulator.rdsdata_bridge import DataApiBridge
from tests.support.cli import ci_env, detached_emulator
from tests.support.helpers import load_function
from tests.support.stacks import DEV_SUFFIX, deploy_stack, destroy_stack

REGION = "us-east-1"
BUCKET = f"s3-loandocuments-dev42-{ACCOUNT_ID}-{REGION}"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """One embedded emulator per test module (module scope, from this conftest): moto's
    in-memory mocks used by other modules reset the shared backends, so a module's stacks
    live and die with its own emulator."""
    try:
        emu = Emulator().start()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the emulator could not start: {exc}")
        pytest.skip(f"the emulator could not start: {exc}")
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def worker_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One detached emulator (`loanstack emulator start --detach`) per xdist worker, shared by
    the modules that drive `loanstack` against a running emulator (with
    `tests.support.cli.on_running_emulator`): a start and stop costs about 6 s of CPU, once per
    worker instead of once per module. It runs in its own process, so the in-memory mocks of
    other modules on this worker cannot reset its backends; modules keep apart by stack suffix
    (each module its own) and leave nothing they need for another."""
    yield from detached_emulator(ci_env(Path(tmp_path_factory.mktemp("emulator"))))


@pytest.fixture(scope="module")
def target(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Target:
    """The emulator as a deploy target whose outputs file is the module's own (the repository's
    cfn-outputs/ stays alone)."""
    session = boto3.Session(region_name=REGION, **CREDENTIALS)
    outputs = Path(tmp_path_factory.mktemp("cfn-outputs")) / "flat-outputs.json"
    return Target("local", REGION, session, endpoint_url=emulator.url, outputs_file=outputs)


@pytest.fixture(scope="module")
def deployed_dev_stack(
    target: Target, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The dev stack (tapstack-dev42) on this module's emulator, deployed once for the module
    and shared by its tests, which only read it; its outputs (as `loanstack deploy` writes them
    flat). A test that changes a stack deploys its own (tests/support/stacks.py)."""
    yield deploy_stack(target, "dev", DEV_SUFFIX, Path(tmp_path_factory.mktemp("out")))
    destroy_stack(target, DEV_SUFFIX)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    # the socket path must stay short (unix sockets allow ~100 bytes)
    server = MariaDB(Path(tmp_path_factory.mktemp("mdb", numbered=True)))
    try:
        server.start()
    except Exception as exc:  # any failure to start is reported the same way
        message = f"MariaDB could not start: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must install mariadb-server)")
        pytest.skip(message)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A second server, TCP on loopback with TLS required (the socket-only one stays as it is)."""
    server = MariaDB(Path(tmp_path_factory.mktemp("mdbtls", numbered=True)), tls=True)
    try:
        server.start()
    except Exception as exc:
        message = f"MariaDB (TLS) could not start: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must install mariadb-server)")
        pytest.skip(message)
    yield server
    server.stop()


@pytest.fixture
def loans(mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The validation function wired as deployed: Data API (bridged to MariaDB), S3 (moto)."""
    module = load_function("loan_validation")
    mariadb.reset()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "DB_CLUSTER_ARN": f"arn:aws:rds:{REGION}:{ACCOUNT_ID}:cluster:aurora-loanprocessing-dev42",
        "DB_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:secret-aurora-dev42-AbCdEf",
        "DB_NAME": "loans",
        "DOCUMENTS_BUCKET": BUCKET,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bridge = DataApiBridge(mariadb)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setattr(
            module, "rds_data_client", lambda: bridge.install(boto3.client("rds-data"))
        )
        module.bridge = bridge
        yield module
