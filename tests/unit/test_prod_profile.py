"""R6 and R12 amended (2026-11-30): dev stays disposable exactly as before; prod keeps its data
(final cluster snapshot, key, buckets), a year of locked audit archive, and access logs.

Each protection is read from the template as CloudFormation resolves it per environment, and
each check that guards one is shown to bite on a template that breaks it.
"""

from __future__ import annotations

from typing import Any

import pytest

from loanstack import template
from loanstack.compliance import rules
from loanstack.emulator import retention
from loanstack.stack import survival
from tests.support.helpers import build, ids

BUCKETS = ("LoanDocumentsBucket", "TrailBucket", "AccessLogsBucket")


def report(doc: dict[str, Any], env_type: str) -> set[tuple[str, str]]:
    return ids(rules.run_checks(build(doc, env_type)))


def policies(env_type: str, logical_id: str) -> tuple[Any, Any]:
    r = build(template.load(), env_type).resources[logical_id]
    return r.deletion_policy, r.update_replace_policy


# --- what each environment gets -------------------------------------------------------------


def test_r6_prod_cluster_leaves_a_final_snapshot_on_delete_and_on_replacement() -> None:
    assert policies("prod", "DBCluster") == ("Snapshot", "Snapshot")
    assert policies("dev", "DBCluster") == ("Delete", "Delete")


@pytest.mark.parametrize("logical_id", ["KMSKey", *BUCKETS])
def test_r6_prod_keeps_the_key_and_every_bucket_dev_deletes_them(logical_id: str) -> None:
    assert policies("prod", logical_id)[0] == "RetainExceptOnCreate"
    assert policies("dev", logical_id) == ("Delete", "Delete")


def test_r6_nothing_in_dev_would_stop_destroy() -> None:
    dev = build(template.load(), "dev")
    assert survival.survivors(template.load(), dev.parameters) == {}
    assert all(
        r.deletion_policy in (None, "Delete") and r.update_replace_policy in (None, "Delete")
        for r in dev.resources.values()
    )
    assert "ObjectLockEnabled" not in dev.resources["TrailBucket"].properties
    assert dev.resources["KMSKey"].properties["PendingWindowInDays"] == 7


def test_r6_prod_key_deletion_waits_30_days() -> None:
    prod = build(template.load(), "prod")
    assert prod.resources["KMSKey"].properties["PendingWindowInDays"] == 30


def test_r6_the_client_literals_hold() -> None:
    """No JSON string "Retain" anywhere; DeletionProtection the literal false."""
    text = template.canonical(template.load())
    assert '"Retain"' not in text
    assert template.load()["Resources"]["DBCluster"]["Properties"]["DeletionProtection"] is False


def test_r1_the_transform_is_declared_and_the_model_resolves_it() -> None:
    doc = template.load()
    assert template.transforms(doc) == [template.LANGUAGE_EXTENSIONS]
    assert isinstance(doc["Resources"]["DBCluster"]["DeletionPolicy"], dict)  # as written


def test_r12_prod_trail_archive_is_a_locked_year_dev_keeps_90_days() -> None:
    prod = build(template.load(), "prod").resources["TrailBucket"].properties
    assert prod["ObjectLockEnabled"] is True
    assert prod["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {
        "Mode": "GOVERNANCE",
        "Days": 365,
    }
    (rule,) = prod["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 365
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 365
    dev = build(template.load(), "dev").resources["TrailBucket"].properties
    assert dev["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 90


def test_r12_compliance_mode_and_a_longer_archive_by_parameter() -> None:
    prod = build(template.load(), "prod", TrailObjectLockMode="COMPLIANCE", TrailArchiveDays="2555")
    retention_rule = prod.resources["TrailBucket"].properties["ObjectLockConfiguration"]["Rule"]
    assert retention_rule["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": 2555}


def test_r12_the_archive_parameter_refuses_less_than_a_year() -> None:
    with pytest.raises(template.ParameterError, match="smaller than 365"):
        build(template.load(), "prod", TrailArchiveDays="364")


def test_r12_documents_and_trail_buckets_log_access_into_the_stack_log_bucket() -> None:
    for env_type in ("dev", "prod"):
        resources = build(template.load(), env_type).resources
        for logical_id in ("LoanDocumentsBucket", "TrailBucket"):
            logging = resources[logical_id].properties["LoggingConfiguration"]
            assert logging["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}


# --- the checks bite --------------------------------------------------------------------------


def test_r6_dev_check_bites_on_a_keeping_policy_in_dev(doc: dict[str, Any]) -> None:
    doc["Resources"]["LoanDocumentsBucket"]["DeletionPolicy"] = {
        "Fn::If": ["IsProduction", "Delete", "RetainExceptOnCreate"]
    }
    assert ("LS006", "LoanDocumentsBucket") in report(doc, "dev")


@pytest.mark.parametrize("logical_id", ["DBCluster", "KMSKey", *BUCKETS])
def test_r6_prod_check_bites_when_prod_would_lose_it(doc: dict[str, Any], logical_id: str) -> None:
    doc["Resources"][logical_id]["DeletionPolicy"] = "Delete"
    assert ("LS006", logical_id) in report(doc, "prod")
    assert ("LS006", logical_id) not in report(doc, "dev")


def test_r6_prod_check_bites_when_a_replacement_would_drop_the_cluster(
    doc: dict[str, Any],
) -> None:
    doc["Resources"]["DBCluster"]["UpdateReplacePolicy"] = "Delete"
    assert ("LS006", "DBCluster") in report(doc, "prod")


def test_r1_transform_check_bites_without_the_transform(doc: dict[str, Any]) -> None:
    del doc["Transform"]
    assert ("LS026", "DBCluster") in report(doc, "dev")


def test_r1b_client_literal_check_bites(doc: dict[str, Any]) -> None:
    doc["Resources"]["KMSKey"]["DeletionPolicy"] = {"Fn::If": ["IsProduction", "Retain", "Delete"]}
    doc["Resources"]["DBCluster"]["Properties"]["DeletionProtection"] = {
        "Fn::If": ["IsProduction", True, False]
    }
    found = report(doc, "dev")
    assert {("LS027", "KMSKey"), ("LS027", "DBCluster")} <= found


def test_r6_key_window_check_bites(doc: dict[str, Any]) -> None:
    doc["Resources"]["KMSKey"]["Properties"]["PendingWindowInDays"] = 7
    assert ("LS028", "KMSKey") in report(doc, "prod")
    assert ("LS028", "KMSKey") not in report(doc, "dev")


@pytest.mark.parametrize(
    "breakage",
    [
        lambda b: b["Properties"].pop("ObjectLockEnabled"),
        lambda b: b["Properties"]["ObjectLockConfiguration"]["Fn::If"][1]["Rule"][
            "DefaultRetention"
        ].update(Days=90),
        lambda b: b["Properties"]["LifecycleConfiguration"]["Rules"][0].update(ExpirationInDays=90),
        lambda b: b["Properties"]["LifecycleConfiguration"]["Rules"][0][
            "NoncurrentVersionExpiration"
        ].update(NoncurrentDays=30),
    ],
    ids=["no-lock", "short-lock", "short-expiry", "short-noncurrent"],
)
def test_r12_archive_check_bites_in_prod(doc: dict[str, Any], breakage: Any) -> None:
    breakage(doc["Resources"]["TrailBucket"])
    assert ("LS029", "TrailBucket") in report(doc, "prod")


def test_r12_archive_check_bites_on_object_lock_in_dev(doc: dict[str, Any]) -> None:
    doc["Resources"]["TrailBucket"]["Properties"]["ObjectLockEnabled"] = True
    assert ("LS029", "TrailBucket") in report(doc, "dev")


def test_r14_log_file_validation_check_bites(doc: dict[str, Any]) -> None:
    doc["Resources"]["Trail"]["Properties"]["EnableLogFileValidation"] = False
    assert ("LS030", "Trail") in report(doc, "dev")


def test_r12_access_logging_check_bites_on_a_bucket_without_it(doc: dict[str, Any]) -> None:
    del doc["Resources"]["LoanDocumentsBucket"]["Properties"]["LoggingConfiguration"]
    assert ("LS031", "LoanDocumentsBucket") in report(doc, "prod")


def test_r12_access_logging_check_bites_on_a_kms_log_bucket(doc: dict[str, Any]) -> None:
    encryption = doc["Resources"]["AccessLogsBucket"]["Properties"]["BucketEncryption"]
    encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] = {
        "SSEAlgorithm": "aws:kms"
    }
    assert ("LS031", "AccessLogsBucket") in report(doc, "dev")


def test_r12_access_logging_check_bites_when_the_policy_names_another_bucket(
    doc: dict[str, Any],
) -> None:
    statement = doc["Resources"]["AccessLogsBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ][0]
    statement["Condition"]["ArnEquals"]["aws:SourceArn"][1] = {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::s3-loantrail-other-${AWS::AccountId}"
    }
    found = report(doc, "dev")
    assert ("LS031", "TrailBucket") in found
    assert ("LS031", "LoanDocumentsBucket") not in found


# --- the emulator and the tool read the same policies -----------------------------------------


def test_emulator_resolves_policy_functions_with_the_stack_conditions() -> None:
    node = {"Fn::If": ["IsProduction", "Snapshot", "Delete"]}
    assert retention.resolve_policy(node, {"IsProduction": True}) == "Snapshot"
    assert retention.resolve_policy(node, {"IsProduction": False}) == "Delete"
    assert retention.resolve_policy("Delete", {}) == "Delete"


@pytest.mark.parametrize(
    "node",
    [{"Fn::If": ["Unknown", "Snapshot", "Delete"]}, {"Fn::Sub": "Delete"}],
    ids=["unknown-condition", "unsupported-function"],
)
def test_emulator_refuses_what_the_transform_refuses(node: Any) -> None:
    from moto.cloudformation.exceptions import ValidationError

    with pytest.raises(ValidationError):
        retention.resolve_policy(node, {"IsProduction": True})


def test_destroy_knows_what_prod_leaves_and_says_it() -> None:
    found = survival.survivors(template.load(), template.judged_parameters("prod", "dev42"))
    assert set(found) == {"DBCluster", "KMSKey", "BackupVault", *BUCKETS}
    assert not found["DBCluster"].kept and found["KMSKey"].kept
    lines = survival.summary(
        found,
        {"DBCluster": "aurora-x", "KMSKey": "key-1"},
        {"aurora-x": ["tapstack-x-dbcluster-snapshot-1"]},
    )
    [snapshot] = [ln for ln in lines if "final snapshot of" in ln]
    assert "final snapshot of AWS::RDS::DBCluster DBCluster aurora-x: " in snapshot
    assert snapshot.endswith("tapstack-x-dbcluster-snapshot-1")
    assert "kept: AWS::KMS::Key KMSKey key-1" in lines


# --- items 5 and 6: audit alarms, RDS events, AWS Backup ---------------------------------------


@pytest.fixture(scope="module")
def with_alarms() -> dict[str, Any]:
    """The template as it is (the audit alarms and the backup plan are part of it)."""
    return template.load()


@pytest.mark.parametrize("env_type", ["dev", "prod"])
def test_r14_audit_alarms_and_backups_pass_every_check(
    with_alarms: dict[str, Any], env_type: str
) -> None:
    found = ids(rules.run_checks(build(with_alarms, env_type, AlarmEmail="ops@example.com")))
    assert found == set()


def test_r6_prod_without_a_backup_plan_bites(with_alarms: dict[str, Any]) -> None:
    import copy

    doc = copy.deepcopy(with_alarms)
    for name in ("BackupPlan", "BackupSelection"):
        del doc["Resources"][name]
    assert ("LS032", "template") in report(doc, "prod")


def test_r8_the_rds_event_publisher_is_replayed_against_the_key(
    with_alarms: dict[str, Any],
) -> None:
    import copy

    doc = copy.deepcopy(with_alarms)
    statements = doc["Resources"]["KMSKey"]["Properties"]["KeyPolicy"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "RdsEventsToTopic"]
    assert ("LS018", "KMSKey") in report(doc, "prod")


def test_r6_prod_backups_are_kept_dev_has_none(with_alarms: dict[str, Any]) -> None:
    prod = build(with_alarms, "prod")
    assert prod.resources["BackupVault"].deletion_policy == "RetainExceptOnCreate"
    assert "BackupVault" in survival.survivors(
        with_alarms, template.judged_parameters("prod", "dev42")
    )
    rules_ = prod.resources["BackupPlan"].properties["BackupPlan"]["BackupPlanRule"]
    assert {r["RuleName"]: r["Lifecycle"]["DeleteAfterDays"] for r in rules_} == {
        "daily": 35,
        "monthly": 365,
    }
    assert "CopyActions" not in rules_[0]
    assert not [r for r in build(with_alarms, "dev").resources if r.startswith("Backup")]


def test_r6_backup_copy_and_vault_lock_by_parameter(with_alarms: dict[str, Any]) -> None:
    prod = build(with_alarms, "prod", BackupCopyRegion="us-west-2", BackupVaultLockDays="35")
    (copy_action,) = prod.resources["BackupPlan"].properties["BackupPlan"]["BackupPlanRule"][0][
        "CopyActions"
    ]
    assert ":backup:us-west-2:" in copy_action["DestinationBackupVaultArn"]
    assert prod.resources["BackupVault"].properties["LockConfiguration"] == {"MinRetentionDays": 35}


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["Resources"]["BackupPlan"]["Properties"]["BackupPlan"]["BackupPlanRule"][0][
            "Lifecycle"
        ].update(DeleteAfterDays=7),
        lambda d: d["Resources"]["BackupPlan"]["Properties"]["BackupPlan"]["BackupPlanRule"].pop(),
        lambda d: d["Resources"]["BackupSelection"]["Properties"]["BackupSelection"].update(
            Resources=[]
        ),
        lambda d: d["Resources"]["BackupVault"]["Properties"].update(
            EncryptionKeyArn="alias/aws/backup"
        ),
    ],
    ids=["short-daily", "no-monthly", "cluster-not-selected", "vault-not-on-the-cmk"],
)
def test_r6_backup_check_bites(with_alarms: dict[str, Any], breakage: Any) -> None:
    import copy

    doc = copy.deepcopy(with_alarms)
    breakage(doc)
    found = {finding for finding in report(doc, "prod") if finding[0] == "LS032"}
    assert found & {("LS032", "BackupPlan"), ("LS032", "BackupVault")}


def test_r6_backup_check_bites_on_a_plan_in_dev(with_alarms: dict[str, Any]) -> None:
    import copy

    doc = copy.deepcopy(with_alarms)
    for name in ("BackupVault", "BackupPlan", "BackupSelection", "BackupRole"):
        del doc["Resources"][name]["Condition"]
    assert ("LS032", "BackupPlan") in report(doc, "dev")


class FakeCloudFormation:
    """GetTemplate as boto3 answers it for a JSON template (already parsed into a dict)."""

    def __init__(self, body: Any) -> None:
        self.body = body

    def get_template(self, **_: str) -> dict[str, Any]:
        return {"TemplateBody": self.body}


def stack(**parameters: str) -> dict[str, Any]:
    return {
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/tapstack-prod42/1",
        "StackName": "tapstack-prod42",
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    }


def test_destroy_reads_what_survives_from_the_deployed_template_and_parameters() -> None:
    doc = template.load()
    deployed = stack(
        EnvironmentType="prod",
        EnvironmentSuffix="prod42",
        AlarmEmail="ops@example.com",
        Retired="x",
    )
    for body in (doc, template.minified(doc)):  # a dict (boto3, JSON) or the text
        found = survival.deployed_survivors(FakeCloudFormation(body), deployed)
        assert set(found) == {"DBCluster", "KMSKey", "BackupVault", *BUCKETS}
    dev = stack(EnvironmentType="dev", EnvironmentSuffix="dev42")
    assert survival.deployed_survivors(FakeCloudFormation(doc), dev) == {}


def test_destroy_refuses_to_guess_when_the_deployed_parameters_do_not_resolve() -> None:
    deployed = stack(EnvironmentType="staging", EnvironmentSuffix="prod42")
    with pytest.raises(survival.SurvivalUnknown, match="cannot tell what its delete keeps"):
        survival.deployed_survivors(FakeCloudFormation(template.load()), deployed)


class FakeResourceMap:
    """What retention.on_delete reads of moto's ResourceMap."""

    def __init__(self, policy: Any, production: bool) -> None:
        self._resource_json_map = {"Docs": {"Type": "AWS::S3::Bucket", "DeletionPolicy": policy}}
        self.lazy_condition_map = {"IsProduction": production}


KEEP_IN_PROD = {"Fn::If": ["IsProduction", "RetainExceptOnCreate", "Delete"]}


@pytest.mark.parametrize(
    ("policy", "production", "status", "stays"),
    [
        (KEEP_IN_PROD, True, "DELETE_IN_PROGRESS", True),
        (KEEP_IN_PROD, True, "ROLLBACK_IN_PROGRESS", False),  # a failed create keeps nothing
        (KEEP_IN_PROD, False, "DELETE_IN_PROGRESS", False),
        ("Retain", False, "ROLLBACK_IN_PROGRESS", True),
        ("Delete", True, "DELETE_IN_PROGRESS", False),
    ],
    ids=["prod-delete", "prod-rollback", "dev-delete", "retain-rollback", "plain-delete"],
)
def test_emulator_applies_the_resolved_deletion_policy(
    policy: Any, production: bool, status: str, stays: bool
) -> None:
    resources = FakeResourceMap(policy, production)
    assert retention.on_delete(resources, "Docs", object(), status) is stays


def test_r8_the_backup_vault_on_the_key_is_replayed_against_its_policy(
    with_alarms: dict[str, Any],
) -> None:
    """AWS Backup creates the vault's grants through backup.<region> for the caller: a key
    policy without that service refuses CreateBackupVault (a failed prod create)."""
    import copy

    doc = copy.deepcopy(with_alarms)
    for st in doc["Resources"]["KMSKey"]["Properties"]["KeyPolicy"]["Statement"]:
        if st.get("Sid") == "UseThroughStackServices":
            services = st["Condition"]["StringEquals"]["kms:ViaService"]
            services[:] = [s for s in services if "backup." not in s["Fn::Sub"]]
    assert ("LS018", "KMSKey") in report(doc, "prod")
    assert ("LS018", "KMSKey") not in report(with_alarms, "prod")


def test_r6_a_vault_lock_longer_than_the_daily_retention_is_refused_before_deploy() -> None:
    from loanstack.errors import UsageError
    from loanstack.stack import deploy

    given = {"AlarmEmail": "ops@example.com", "BackupVaultLockDays": "90"}
    with pytest.raises(UsageError, match="BackupVaultLockDays=90 is above"):
        deploy.parameters_for("prod", "p1", given)
    assert deploy.parameters_for("prod", "p1", {**given, "BackupVaultLockDays": "35"})


def test_r6_monthly_copies_keep_the_monthly_retention(with_alarms: dict[str, Any]) -> None:
    prod = build(with_alarms, "prod", BackupCopyRegion="us-west-2")
    rules_ = prod.resources["BackupPlan"].properties["BackupPlan"]["BackupPlanRule"]
    kept = {r["RuleName"]: r["CopyActions"][0]["Lifecycle"]["DeleteAfterDays"] for r in rules_}
    assert kept == {"daily": "35", "monthly": "365"} or kept == {"daily": 35, "monthly": 365}
