"""The template's names the tool uses (`loanstack.names`) are the template's: a rename in
lib/TapStack.json fails here, not in a command at deploy time."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from loanstack import functions, names, template
from loanstack.stack import deploy, preflight


@pytest.mark.parametrize(
    "parameter",
    [
        names.ENVIRONMENT_TYPE,
        names.ENVIRONMENT_SUFFIX,
        names.RESERVED_CONCURRENCY,
        names.MIN_CAPACITY_PROD,
        names.MAX_CAPACITY,
        names.ALARM_EMAIL,
        names.BACKUP_VAULT_LOCK_DAYS,
        names.BACKUP_DAILY_RETENTION_DAYS,
    ],
)
def test_each_parameter_name_is_declared_by_the_template(parameter: str) -> None:
    assert parameter in template.load()["Parameters"]


@pytest.mark.parametrize(
    "output",
    [
        names.VPC_ID,
        names.CLUSTER_ARN,
        names.MASTER_SECRET_ARN,
        names.APP_SECRET_ARN,
        names.DOCUMENTS_BUCKET,
        names.VALIDATION_FUNCTION_NAME,
        names.ROTATION_FUNCTION_ARN,
        names.DEAD_LETTER_QUEUE_URL,
    ],
)
def test_each_output_the_tool_reads_is_declared_by_the_template(output: str) -> None:
    assert output in template.load()["Outputs"]


def test_the_validation_function_name_comes_from_the_template_for_these_parameters() -> None:
    doc: dict[str, Any] = template.load()
    planned = deploy.Deployment(
        target=None,  # type: ignore[arg-type]  # the name needs no target
        env="dev",
        suffix="dev42",
        parameters=deploy.parameters_for("dev", "dev42", {}),
        console=None,  # type: ignore[arg-type]
        template_doc=doc,
    )
    assert preflight.validation_function_name(planned) == "lambda-loanvalidator-dev42"
    doc["Resources"][names.VALIDATION_FUNCTION]["Properties"]["FunctionName"] = {
        "Fn::Sub": "renamed-${EnvironmentSuffix}"
    }
    assert preflight.validation_function_name(planned) == "renamed-dev42"


@pytest.mark.parametrize(
    ("partition", "suffix"),
    [
        ("aws", "amazonaws.com"),
        ("aws-us-gov", "amazonaws.com"),
        ("aws-cn", "amazonaws.com.cn"),
        ("aws-iso", "c2s.ic.gov"),
        ("aws-iso-b", "sc2s.sgov.gov"),
    ],
)
def test_the_url_suffix_follows_the_partition(partition: str, suffix: str) -> None:
    assert names.url_suffix(partition) == suffix
    context = template.Context(partition=partition)
    assert context.pseudo()["AWS::URLSuffix"] == suffix


def test_the_stack_name_is_the_prefix_and_the_suffix() -> None:
    assert names.stack_name("dev42") == "tapstack-dev42"


def test_the_database_name_is_the_validation_functions_and_the_templates() -> None:
    """One source: the validation function's DATABASE_NAME (read by the tool and the emulator
    through `loanstack.functions`), which the template's cluster and DB_NAME must repeat."""
    name = functions.contract(functions.VALIDATION).DATABASE_NAME
    env = template.instantiate(parameters={"EnvironmentType": "dev", "EnvironmentSuffix": "dev42"})
    assert env.resources["DBCluster"].properties["DatabaseName"] == name
    variables = env.resources[names.VALIDATION_FUNCTION].properties["Environment"]["Variables"]
    assert variables["DB_NAME"] == name


def spelled(path: Path, text: str) -> list[int]:
    """The lines of `path` where `text` is a string literal of its own (not part of a longer one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value == text
    ]


def test_the_database_name_is_spelled_once_in_the_tool_the_emulator_and_the_function() -> None:
    """Anywhere else a rename of the database would leave a stale copy (the emulator's defaults
    once were one): the function's own constant is the only literal."""
    name = functions.contract(functions.VALIDATION).DATABASE_NAME
    function = functions.FUNCTIONS_DIR / functions.VALIDATION / "index.py"
    sources = [*sorted((template.ROOT / "src" / "loanstack").rglob("*.py")), function]
    found = {str(p.relative_to(template.ROOT)): spelled(p, name) for p in sources}
    found = {path: lines for path, lines in found.items() if lines}
    assert list(found) == [str(function.relative_to(template.ROOT))]
    assert len(found[str(function.relative_to(template.ROOT))]) == 1
