"""The template deployed on a test module's emulator, through the deploy code `loanstack deploy`
runs: the one way tests get a stack, so a new test takes the fast path by default.

A deploy is the dearest thing a test does (seconds of CPU for the template's ~90 resources, then
as much again to destroy). The rules (docs/testing.md, "Keeping it fast"): a test that only
reads a stack asks for `deployed_dev_stack` (tests/integration/conftest.py), deployed once per
module and shared by the module's tests on one worker; a test that changes its stack (an update,
a rotation, a fault, a destroy) deploys its own with `deploy_stack` under a suffix of its own.
The emulator is per module because moto's in-memory mocks used by other modules on the same
worker reset the backends it shares, so a stack cannot outlive its module.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from loanstack.aws.target import Target
from loanstack.emulator import awslambda_async
from loanstack.stack import deploy
from loanstack.stack.destroy import destroy

DEV_SUFFIX = "dev42"


def quiet() -> Console:
    """A console that records instead of printing (the deploy's progress is not the test's)."""
    return Console(record=True, width=200)


def deploy_stack(
    target: Target, env: str, suffix: str, out_dir: Path, **params: str
) -> dict[str, str]:
    """Deploy `env` as tapstack-<suffix> and return its outputs, written flat to
    out_dir/<suffix>.json (the target's outputs file from then on)."""
    target.outputs_file = out_dir / f"{suffix}.json"
    d = deploy.Deployment(
        target, env, suffix, deploy.parameters_for(env, suffix, dict(params)), quiet()
    )
    return deploy.deploy(d, confirm=lambda: True)


def destroy_stack(target: Target, suffix: str, idle_seconds: float = 60) -> None:
    """Wait until the emulator's asynchronous invocations are done, then destroy: the
    backends outlive the emulator in this process, so no reservation is left behind."""
    assert awslambda_async.wait_idle(idle_seconds), (
        f"asynchronous invocations still running after {idle_seconds:.0f} s"
    )
    destroy(target, suffix, quiet())


def tune_validation_function(target: Target, outputs: dict[str, str], **knobs: str) -> None:
    """Add environment variables to the deployed validation function (a test's shorter waits)."""
    lam = target.client("lambda")
    name = outputs["LoanValidationFunctionName"]
    variables = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**variables, **knobs}}
    )


def tune_rotation_function(target: Target, outputs: dict[str, str], **knobs: str) -> None:
    """Add environment variables to the deployed rotation function: `FIRST_POLL_SECONDS` (2 s,
    doubling to 15) is how long each step waits before it looks at the cluster again, which is
    most of a rotation's wall time on the emulator (about 10 s of 11, for 1 s of CPU)."""
    lam = target.client("lambda")
    name = outputs["SecretRotationLambdaArn"]
    variables = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**variables, **knobs}}
    )


# A page of ids in values of 500 ids each, joined by the database (numbered as
# ops/verify_db.py numbers its pages): at most 500 x 65 bytes a value, inside the Data API's 64 KB
# per row, and 10,000 x 65 bytes a page, inside its 1 MiB per response.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html
IDS_PAGE = """SELECT /*+ SET_VAR(group_concat_max_len = 1048576) */
 COUNT(*) AS n, CAST(GROUP_CONCAT(loan_id ORDER BY k SEPARATOR ',') AS CHAR) AS g
 FROM (SELECT loan_id, ROW_NUMBER() OVER (ORDER BY loan_id) AS k FROM (
 SELECT loan_id FROM loan_decisions WHERE ({where}) AND loan_id > :after
 ORDER BY loan_id LIMIT 10000) AS p) AS q
 GROUP BY (k - 1) DIV 500 ORDER BY MIN(k)"""


def stored_ids(target: Target, outputs: dict[str, str], where: str = "TRUE") -> list[str]:
    """Every stored loan id matching `where`, duplicates kept, in pages: the Data API answers
    at most 1 MiB (100,000 ids in one reply are refused). A value holds many ids, joined by the
    database (an id never holds a comma: the function's `ID`): one record per id made botocore
    parse 100,000 records for a 100,000-row migration, 2.8 s of CPU. MySQL cuts a GROUP_CONCAT
    at `group_concat_max_len` (1,024 bytes unless raised, and the emulator's MariaDB is set as
    MySQL is; SET_VAR raises it for the statement); the count beside each value proves the join
    was not cut short."""
    ids: list[str] = []
    while True:
        reply = target.client("rds-data").execute_statement(
            resourceArn=outputs["DBClusterArn"],
            secretArn=outputs["DBSecretArn"],
            database="loans",
            sql=IDS_PAGE.format(where=where),
            parameters=[{"name": "after", "value": {"stringValue": ids[-1] if ids else ""}}],
        )
        if not reply["records"]:
            return ids
        for count, joined in reply["records"]:
            value = joined["stringValue"].split(",")
            assert len(value) == count["longValue"], "GROUP_CONCAT cut a value short"
            ids += value
