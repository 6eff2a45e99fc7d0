"""`loanstack deploy --env prod` by a caller without `cloudformation:GetTemplate`: the update goes
on, says in one line that its stack policy guard judged the new template only, and exits 0.
The refusal is IAM's (403 AccessDenied), made by moto's own AccessDeniedError.
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_GetTemplate.html"""

from __future__ import annotations

from typing import Any

import pytest
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.exceptions import AccessDeniedError

from loanstack import cli
from loanstack.aws.target import EMULATOR_URL_VARIABLE, Target
from loanstack.emulator import Emulator

SUFFIX = "gt1"
DEPLOY = [
    *("deploy", "--env", "prod", "--suffix", SUFFIX, "--param", "AlarmEmail=ops@example.com"),
    *("--no-termination-protection", "--yes"),
]
DENIED = "arn:aws:iam::123456789012:user/deployer"


def refuse_get_template(self: Any) -> Any:
    raise AccessDeniedError(DENIED, "cloudformation:GetTemplate")


def test_a_prod_update_without_get_template_says_so_in_one_line_and_exits_0(
    emulator: Emulator,
    target: Target,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(EMULATOR_URL_VARIABLE, emulator.url)
    monkeypatch.setenv("LOANSTACK_OUTPUTS_FILE", str(target.outputs_file))
    monkeypatch.setenv("COLUMNS", "80")
    try:
        assert cli.main(DEPLOY) == 0
        capsys.readouterr()
        with monkeypatch.context() as refused:
            refused.setattr(CloudFormationResponse, "get_template", refuse_get_template)
            assert cli.main(DEPLOY) == 0
        out = capsys.readouterr().out
        [line] = [ln for ln in out.splitlines() if "deployed template" in ln]
        assert line == (
            f"note: cannot read the deployed template of tapstack-{SUFFIX} (GetTemplate refused: "
            f"AccessDenied: User: {DENIED} is not authorized to perform: "
            "cloudformation:GetTemplate): the stack policy guard judges the new template only; "
            "allow cloudformation:GetTemplate on the stack to guard what the deployed template "
            "protects"
        )
    finally:
        confirm = ["--confirm-stack", f"tapstack-{SUFFIX}"]
        assert cli.main(["destroy", "--suffix", SUFFIX, *confirm]) == 0
