"""The deploy options' rules without a stack: what prod's stack policy protects (from the template
model), the policy itself and how the emulator judges one, rollback triggers, tags and parameter
refusals, the change list of `--output json`, and `diff --exit-code`'s codes."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import pytest
from rich.console import Console

from loanstack import template
from loanstack.cli import stackopts
from loanstack.cli.common import overrides
from loanstack.cli.main import main as loanstack_main
from loanstack.emulator import stackguard
from loanstack.errors import DeployError, UsageError
from loanstack.stack import protection
from loanstack.stack.deploy import Deployment, parameters_for
from loanstack.stack.events import change_records

PROD = {"EnvironmentType": "prod", "EnvironmentSuffix": "p1", "AlarmEmail": "ops@example.com"}


def test_prod_protects_the_cluster_its_secrets_the_key_and_the_trail_bucket() -> None:
    found = protection.protected_ids(template.load(), PROD)
    assert {"DBCluster", "DBSecret", "KMSKey", "TrailBucket"} <= set(found)
    types = {n: r.type for n, r in template.instantiate(template.load(), PROD).resources.items()}
    assert {types[n] for n in found} == set(protection.PROTECTED_TYPES) | {"AWS::S3::Bucket"}
    without_trail = protection.protected_ids(template.load(), {**PROD, "EnableCloudTrail": "false"})
    assert "TrailBucket" not in without_trail


def test_an_update_guards_what_the_deployed_template_protects_and_the_new_one_lacks() -> None:
    """guarded() read the deployed stack through the new template: a protected resource the new
    template no longer has (here the trail bucket, its condition made false) went unguarded."""
    new = template.load()
    new["Conditions"]["CreateTrail"] = {"Fn::Equals": ["dropped", "here"]}
    assert "TrailBucket" not in protection.protected_ids(new, PROD)
    d = Deployment(cast(Any, None), "prod", "p1", dict(PROD), Console(), template_doc=new)
    d.deployed_parameters = dict(PROD)
    d.deployed_template = template.load()
    assert "TrailBucket" in d.guarded()
    assert "TrailBucket" not in d.protected(), "the policy set after the update: the new template's"


def test_the_policy_denies_replace_and_delete_of_what_is_not_allowed() -> None:
    policy = json.loads(protection.stack_policy(["DBCluster", "KMSKey"], ["KMSKey"]))
    allow, deny = policy["Statement"]
    assert (allow["Effect"], allow["Action"], allow["Resource"]) == ("Allow", "Update:*", "*")
    assert deny["Resource"] == ["LogicalResourceId/DBCluster"]
    assert deny["Action"] == ["Update:Replace", "Update:Delete"]
    everything = json.loads(protection.stack_policy(["DBCluster"], ["DBCluster"]))
    assert [s["Effect"] for s in everything["Statement"]] == ["Allow"]


def change(action: str, name: str, replacement: str = "False") -> Any:
    return SimpleNamespace(
        action=action, logical_resource_id=name, resource_type="AWS::RDS::DBCluster",
        replacement=replacement,
    )  # fmt: skip


def test_the_emulator_judges_a_policy_as_cloudformation_does() -> None:
    policy = protection.stack_policy(["DBCluster"])
    assert stackguard.policy_denial(policy, [change("Modify", "DBCluster")]) is None
    denied = stackguard.policy_denial(policy, [change("Modify", "DBCluster", "True")])
    assert denied is not None and denied[0] == "DBCluster" and "[Update:Replace]" in denied[1]
    removed = stackguard.policy_denial(policy, [change("Remove", "DBCluster")])
    assert removed is not None and "[Update:Delete]" in removed[1]
    conditional = stackguard.policy_denial(policy, [change("Modify", "DBCluster", "Conditional")])
    assert conditional is not None, "a conditional replacement may replace: denied"
    assert stackguard.policy_denial(policy, [change("Add", "DBCluster")]) is None
    assert stackguard.policy_denial("", [change("Remove", "DBCluster")]) is None
    # once a policy is set, what no statement allows is denied
    only_others = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Action": "Update:*", "Resource": "LogicalResourceId/X"}
            ]
        }
    )
    assert stackguard.policy_denial(only_others, [change("Modify", "DBCluster")]) is not None
    by_type = {"Statement": [
        {"Effect": "Allow", "Action": "Update:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "Update:*", "Resource": "*",
         "Condition": {"StringEquals": {"ResourceType": ["AWS::RDS::DBCluster"]}}},
    ]}  # fmt: skip
    assert stackguard.policy_denial(json.dumps(by_type), [change("Modify", "DBCluster")])


def test_allow_replace_names_a_protected_resource_of_prod() -> None:
    protection.check_allowed(["DBCluster"], ["DBCluster", "KMSKey"], "prod")
    with pytest.raises(UsageError, match="not a protected resource; protected: DBCluster, KMSKey"):
        protection.check_allowed(["Nope"], ["DBCluster", "KMSKey"], "prod")
    with pytest.raises(UsageError, match="prod stacks"):
        protection.check_allowed(["DBCluster"], ["DBCluster"], "dev")


def test_rollback_triggers_are_the_stacks_own_health_alarms_at_most_five() -> None:
    alarms = protection.health_alarms(template.load(), PROD)
    assert "ValidationErrorsAlarm" in alarms and "RootUseAlarm" not in alarms
    resources = [
        {"LogicalResourceId": n, "PhysicalResourceId": f"alarm-{n}"}
        for n in [*alarms, "RootUseAlarm"]
    ]
    stack_id = "arn:aws-us-gov:cloudformation:us-gov-west-1:111122223333:stack/tapstack-p1/x"
    config = protection.rollback_configuration(stack_id, resources, alarms, 10)
    assert config is not None and config["MonitoringTimeInMinutes"] == 10
    arns = [t["Arn"] for t in config["RollbackTriggers"]]
    assert len(arns) == min(5, len(alarms))
    assert (
        arns[0] == "arn:aws-us-gov:cloudwatch:us-gov-west-1:111122223333:alarm:alarm-" + alarms[0]
    )
    assert protection.rollback_configuration(stack_id, [], alarms, 0) is None


def test_termination_protection_defaults_by_environment() -> None:
    assert protection.StackOptions().protect("prod") is True
    assert protection.StackOptions().protect("dev") is False
    assert protection.StackOptions(termination_protection=False).protect("prod") is False
    assert protection.StackOptions(termination_protection=True).protect("dev") is True


def test_tags_parameters_given_twice_or_contradicting_are_refused() -> None:
    assert protection.stack_tags("dev", {"Owner": "x"}) == [
        {"Key": "Owner", "Value": "x"}, {"Key": "Environment", "Value": "dev"}
    ]  # fmt: skip
    with pytest.raises(UsageError, match="contradicts --env dev"):
        protection.stack_tags("dev", {"Environment": "prod"})
    with pytest.raises(UsageError, match="given twice"):
        overrides(["A=1", "A=2"])
    with pytest.raises(UsageError, match="--param EnvironmentType=prod contradicts --env dev"):
        parameters_for("dev", "d1", {"EnvironmentType": "prod"})
    with pytest.raises(UsageError, match="contradicts --suffix d1"):
        parameters_for("dev", "d1", {"EnvironmentSuffix": "d2"})
    assert parameters_for("dev", "d1", {"EnvironmentType": "dev"})["EnvironmentType"] == "dev"


def test_the_change_list_is_camel_case_with_before_and_after() -> None:
    described = [{"ResourceChange": {
        "Action": "Modify", "LogicalResourceId": "Fn", "PhysicalResourceId": "fn-1",
        "ResourceType": "AWS::Lambda::Function", "Replacement": "False",
        "Details": [{"Evaluation": "Static", "Target": {
            "Attribute": "Properties", "Name": "MemorySize", "RequiresRecreation": "Never",
            "BeforeValue": "1024", "AfterValue": "2048"}}],
    }}]  # fmt: skip
    assert change_records(described) == [
        {
            "action": "Modify", "logicalId": "Fn", "physicalId": "fn-1",
            "type": "AWS::Lambda::Function", "replacement": "False",
            "properties": [{"name": "MemorySize", "requiresRecreation": "Never",
                            "evaluation": "Static", "before": "1024", "after": "2048"}],
        }
    ]  # fmt: skip


@pytest.mark.parametrize(("flags", "code"), [((), 1), (("--exit-code",), 2)])
def test_diff_exit_codes_keep_1_for_changes_under_exit_code(
    monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...], code: int
) -> None:
    def failing(args: Any, console: Any) -> int:
        raise DeployError("the change set failed: something")

    monkeypatch.setattr(stackopts, "diff", failing)
    assert loanstack_main(["diff", "--env", "dev", "--suffix", "d1", *flags]) == code
