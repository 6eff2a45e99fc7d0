"""cfn-lint's package data, read in one place: the CloudFormation registry schemas, its list of
stateful resource types and its IAM action table. A cfn-lint upgrade that moves one of them
fails here (tests/unit/test_moto_fence.py's sibling, test_judges.py), not in each reader."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any


def _package_dir() -> Path:
    """cfn-lint's installed directory, found without importing it: `import cfnlint` pulls in
    sympy and networkx (about 1.2 s of CPU), which every `loanstack` command paid at start-up
    through `template` although only the judges and the schema readers below need cfn-lint."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("cfn-lint is not installed (pip install loanstack)")
    return Path(next(iter(spec.submodule_search_locations)))


ADDITIONAL_SPECS = _package_dir() / "data" / "AdditionalSpecs"


@cache
def resource_schema(type_name: str) -> dict[str, Any]:
    """The registry schema of a resource type (us-east-1's, as cfn-lint bundles it); cfn-lint
    is imported on the first call (see `_package_dir`)."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    return dict(PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", type_name).schema)


@cache
def stateful_types() -> frozenset[str]:
    """Types whose data outlives a careless delete (cfn-lint's list, rule I3011)."""
    data = json.loads((ADDITIONAL_SPECS / "StatefulResources.json").read_text())
    return frozenset(data["ResourceTypes"])


@cache
def iam_actions() -> dict[str, dict[str, Any]]:
    """service prefix -> {action (lower case): {"Resources": [...]}} (cfn-lint's IAM data)."""
    data = json.loads((ADDITIONAL_SPECS / "Policies.json").read_text())
    return {service: spec.get("Actions", {}) for service, spec in data.items()}
