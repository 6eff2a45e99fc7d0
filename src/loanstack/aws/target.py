"""Where the stack lives (the target rule) and the connection to it: AWS or a local target."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from loanstack.aws.outputs import default_outputs_file
from loanstack.errors import DeployError, UsageError

EMULATOR_URL_VARIABLE = "LOANSTACK_EMULATOR_URL"
EMULATOR_EXTRA = "pip install 'loanstack[emulator]'"  # moto and pymysql: pyproject's extra
DOOR = "loanstack.emulator.door"  # the one emulator module the tool imports, lazily


class LocalTarget(Protocol):
    """A local endpoint this command started (the emulator's door implements it): it lives as
    long as the command."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


@dataclass
class Target:
    """Where the stack lives: AWS (the default credential chain) or the embedded emulator."""

    name: str
    region: str
    session: boto3.Session
    endpoint_url: str | None = None
    started: LocalTarget | None = None  # stopped by `close`
    outputs_file: Path = field(default_factory=default_outputs_file)  # R1b's flat-outputs.json
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    @property
    def poll_seconds(self) -> float:
        return 0.2 if self.name == "local" else 5.0

    @property
    def ephemeral(self) -> bool:
        """Whether the stack lives only as long as this command (its own emulator)."""
        return self.started is not None

    def close(self) -> None:
        if self.started is not None:
            self.started.stop()

    def account(self) -> str:
        """The account the calls land in (STS GetCallerIdentity; the emulator's on local)."""
        if "account" not in self._clients:
            sts = self.session.client(
                "sts",
                endpoint_url=self.endpoint_url,
                config=Config(connect_timeout=3, retries={"max_attempts": 1}),
            )
            try:
                self._clients["account"] = sts.get_caller_identity()["Account"]
            except EndpointConnectionError as exc:
                raise DeployError(unreachable(self)) from exc
            except (ClientError, BotoCoreError) as exc:
                raise DeployError(
                    f"cannot tell which AWS account these credentials reach: {exc}"
                ) from exc
        return str(self._clients["account"])

    def where(self) -> str:
        kind = "AWS" if self.name == "aws" else f"local emulator {self.endpoint_url}"
        return f"{kind}, account {self.account()}, region {self.region}"

    def describe(self, stack: str) -> str:
        """The one line printed before every change set: where it is about to land."""
        return f"target: {self.where()}, stack {stack}"


def unreachable(target: Target) -> str:
    if target.name == "local":
        return (
            f"no emulator answers at {target.endpoint_url} ({EMULATOR_URL_VARIABLE}): start one "
            f"with `loanstack emulator start`, or unset {EMULATOR_URL_VARIABLE} to use one that "
            "lives as long as the command"
        )
    return f"cannot reach AWS in {target.region}: check the network, proxy and --region"


def has_aws_credentials() -> bool:
    return boto3.Session().get_credentials() is not None


def choose_target(explicit: str | None, confirm_aws: Callable[[str], bool]) -> str:
    """The target rule: AWS only when asked for (`--target aws`) or confirmed at a terminal; an
    emulator URL, or no credentials, means local. Credentials alone never choose a real account
    (they are often dummies for the aws CLI against the emulator)."""
    if explicit:
        return explicit
    if os.environ.get(EMULATOR_URL_VARIABLE) or not has_aws_credentials():
        return "local"
    session = boto3.Session()
    question = (
        f"AWS credentials are configured ({session.region_name or 'no region'}): use the real "
        "AWS account?"
    )
    if confirm_aws(question):
        return "aws"
    raise UsageError(
        "AWS credentials are configured but no target was chosen: pass --target aws to use "
        "that account, or --target local for the emulator"
    )


def connect(
    target: str | None, region: str, confirm_aws: Callable[[str], bool] = lambda _: False
) -> Target:
    """Connect to the chosen target (see `choose_target`); local reuses a running emulator."""
    name = choose_target(target, confirm_aws)
    if name == "aws":
        session = boto3.Session(region_name=region)
        if session.get_credentials() is None:
            raise DeployError("no AWS credentials configured (use --target local for the emulator)")
        return Target("aws", region, session)
    door = local_door()
    session = boto3.Session(region_name=region, **door.credentials())
    url = os.environ.get(EMULATOR_URL_VARIABLE)
    if url:
        running = Target("local", region, session, endpoint_url=url)
        running.account()  # an emulator that has gone is reported now, in one line
        return running
    started: LocalTarget = door.start()
    return Target("local", region, session, endpoint_url=started.url, started=started)


def local_door() -> ModuleType:
    """The emulator's door, imported here and nowhere else in the tool: deploying to AWS never
    imports moto, and without the emulator extra the local target is one line, not a traceback."""
    try:
        return importlib.import_module(DOOR)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("loanstack"):
            raise
        raise DeployError(
            f"the local target needs the emulator ({exc.name} is not installed): {EMULATOR_EXTRA}"
        ) from exc


def not_here(target: Target) -> str:
    """What to do when the stack's resources are not where we looked."""
    if target.name == "local":
        return (
            f"the stack is not on the emulator at {target.endpoint_url}: a stack lives only as "
            "long as the emulator that holds it; keep one running with `loanstack emulator "
            f"start`, export {EMULATOR_URL_VARIABLE}, and deploy again"
        )
    return (
        f"not found in account {target.account()}, region {target.region}: check --region, "
        "or deploy first"
    )


def identity(target: Target) -> tuple[str, str]:
    """(account, partition) of the caller: the partition from its ARN (aws, aws-cn, aws-us-gov)."""
    me = target.client("sts").get_caller_identity()
    return str(me["Account"]), str(me["Arn"]).split(":")[1]
