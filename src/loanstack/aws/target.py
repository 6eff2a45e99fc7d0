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
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    ProfileNotFound,
)

from loanstack.aws.outputs import default_outputs_file
from loanstack.aws.validate import check_emulator_url, check_region
from loanstack.botocore_models import share_models
from loanstack.errors import DeployError, UsageError
from loanstack.names import STACK_PREFIX

EMULATOR_URL_VARIABLE = "LOANSTACK_EMULATOR_URL"
EMULATOR_EXTRA = "pip install 'loanstack[emulator]'"  # moto and pymysql: pyproject's extra
DOOR = "loanstack.emulator.door"  # the one emulator module the tool imports, lazily
LOCAL_DEFAULT_REGION = "us-east-1"  # the emulator's, when nothing names one (AWS: refused)


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
    profile: str | None = None  # --profile (or AWS_PROFILE), as the AWS CLI takes it
    region_source: str = "--region"  # where the region came from, shown with it
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
        profile = f", profile {self.profile}" if self.profile else ""
        return f"{kind}, account {self.account()}, region {self.region}{profile}"

    def describe(self, stack: str) -> str:
        """The one line printed before every change set: where it is about to land."""
        return f"target: {self.where()}, stack {stack}"


def command_for(target: Target, verb: str, suffix: str) -> str:
    """Advice as a command that acts on exactly this stack (D9): its suffix, region and target,
    and the profile when one was used."""
    words = ["loanstack", verb, "--suffix", suffix, "--region", target.region]
    words += ["--target", target.name]
    if target.profile:
        words += ["--profile", target.profile]
    return " ".join(words)


def again(target: Target, verb: str) -> str:
    """Advice to run a follow-up command again, on the stack this one acted on: its suffix
    when the outputs came from its record (`tapstack-<suffix>.json`), its region and target."""
    stem = target.outputs_file.stem
    if stem.startswith(STACK_PREFIX):
        return command_for(target, verb, stem.removeprefix(STACK_PREFIX))
    profile = f" --profile {target.profile}" if target.profile else ""
    return f"loanstack {verb} --region {target.region} --target {target.name}{profile}"


def profile_session(profile: str | None, region: str | None = None) -> boto3.Session:
    """A session as the AWS CLI builds one: `--profile`, else AWS_PROFILE, else default;
    an unknown profile is one line."""
    try:
        return share_models(boto3.Session(profile_name=profile, region_name=region))
    except ProfileNotFound as exc:
        raise UsageError(f"{exc}: check --profile, AWS_PROFILE and AWS_CONFIG_FILE") from exc


def resolve_region(flag: str | None, profile: str | None) -> tuple[str | None, str]:
    """The region as the AWS CLI resolves it: --region, then AWS_REGION, then
    AWS_DEFAULT_REGION, then the profile's `region` in the config file (botocore's own lookup,
    https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html and
    https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html). Returns
    (region or None, where it came from)."""
    if flag:
        return flag, "--region"
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(variable):
            return os.environ[variable], variable
    session = profile_session(profile)
    if session.region_name:
        return session.region_name, f"profile {session.profile_name}"
    return None, "none"


def unreachable(target: Target) -> str:
    if target.name == "local":
        return (
            f"no emulator answers at {target.endpoint_url} ({EMULATOR_URL_VARIABLE}): start one "
            f"with `loanstack emulator start`, or unset {EMULATOR_URL_VARIABLE} to use one that "
            "lives as long as the command"
        )
    return f"cannot reach AWS in {target.region}: check the network, proxy and --region"


def has_aws_credentials(profile: str | None = None) -> bool:
    return profile_session(profile).get_credentials() is not None


def choose_target(
    explicit: str | None, confirm_aws: Callable[[str], bool], profile: str | None = None
) -> str:
    """The target rule: AWS only when asked for (`--target aws`) or confirmed at a terminal; an
    emulator URL, or no credentials, means local. Credentials alone never choose a real account
    (they are often dummies for the aws CLI against the emulator)."""
    if explicit:
        return explicit
    if os.environ.get(EMULATOR_URL_VARIABLE) or not has_aws_credentials(profile):
        return "local"
    session = profile_session(profile)
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
    target: str | None,
    region: str | None,
    confirm_aws: Callable[[str], bool] = lambda _: False,
    profile: str | None = None,
) -> Target:
    """Connect to the chosen target (see `choose_target`); local reuses a running emulator.
    The region and credentials are resolved as the AWS CLI resolves them (`resolve_region`,
    `profile_session`); on local the emulator's credentials, the profile's region."""
    if profile:
        profile_session(profile)  # an unknown profile is refused whatever else is given
    name = choose_target(target, confirm_aws, profile)
    chosen, source = resolve_region(region, profile)
    if chosen is not None:
        check_region(chosen, source)
    if name == "aws":
        if chosen is None:
            raise UsageError(
                "no region: pass --region, set AWS_REGION, or set `region` in the profile "
                "(as the AWS CLI needs)"
            )
        session = profile_session(profile, chosen)
        if session.get_credentials() is None:
            raise DeployError("no AWS credentials configured (use --target local for the emulator)")
        return Target("aws", chosen, session, profile=profile, region_source=source)
    if chosen is None:
        chosen, source = LOCAL_DEFAULT_REGION, "the emulator's default"
    door = local_door()
    session = share_models(boto3.Session(region_name=chosen, **door.credentials()))
    url = os.environ.get(EMULATOR_URL_VARIABLE) or door.running_url()
    if url:
        check_emulator_url(url, EMULATOR_URL_VARIABLE)
        running = Target(
            "local", chosen, session, endpoint_url=url, profile=profile, region_source=source
        )
        running.account()  # an emulator that has gone is reported now, in one line
        return running
    started: LocalTarget = door.start()
    return Target(
        "local",
        chosen,
        session,
        endpoint_url=started.url,
        started=started,
        profile=profile,
        region_source=source,
    )


def local_door() -> ModuleType:
    """The emulator's door, imported here and nowhere else in the tool: deploying to AWS never
    imports moto, and without the emulator extra the local target is one line, not a traceback.
    The door itself is light (no moto): a command that reaches a running emulator imports no
    more; one that starts an emulator in this process pays for moto then."""
    try:
        door = importlib.import_module(DOOR)
        door.require_extra()
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("loanstack"):
            raise
        raise DeployError(
            f"the local target needs the emulator ({exc.name} is not installed): {EMULATOR_EXTRA}"
        ) from exc
    return door


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
