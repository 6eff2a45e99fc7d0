"""SPEC D9 without a stack: the region as the AWS CLI resolves it, and advice that names the
stack's suffix, region, target and profile (issue 21, items 1 and 2)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from loanstack.aws.target import Target, again, command_for, resolve_region
from loanstack.errors import UsageError


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    path.write_text("[profile bank]\nregion = eu-west-2\n[default]\nregion = sa-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    return path


def test_the_region_order_is_the_aws_clis(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html
    assert resolve_region(None, "bank") == ("eu-west-2", "profile bank")
    assert resolve_region(None, None) == ("sa-east-1", "profile default")
    monkeypatch.setenv("AWS_PROFILE", "bank")
    assert resolve_region(None, None) == ("eu-west-2", "profile bank")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert resolve_region(None, "bank") == ("ap-south-1", "AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    assert resolve_region(None, "bank") == ("eu-north-1", "AWS_REGION")
    assert resolve_region("us-west-2", "bank") == ("us-west-2", "--region")


def test_an_unknown_profile_is_one_line(config: Path) -> None:
    with pytest.raises(UsageError, match="nobody"):
        resolve_region(None, "nobody")


def test_advice_acts_on_the_stack_it_speaks_of(tmp_path: Path) -> None:
    target = Target("aws", "us-west-2", boto3.Session(region_name="us-west-2"), profile="bank")
    assert command_for(target, "destroy", "cc1") == (
        "loanstack destroy --suffix cc1 --region us-west-2 --target aws --profile bank"
    )
    target.outputs_file = tmp_path / "tapstack-cc1.json"
    assert again(target, "rotate") == (
        "loanstack rotate --suffix cc1 --region us-west-2 --target aws --profile bank"
    )
    target.outputs_file = tmp_path / "flat-outputs.json"
    assert (
        again(target, "rotate") == "loanstack rotate --region us-west-2 --target aws --profile bank"
    )
