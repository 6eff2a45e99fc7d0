"""Post-deploy assertions through AWS's own APIs, shared by the emulator tests (CI) and the
opt-in tests against a real deployment (LOANSTACK_AWS_TESTS=1): the same checks, both targets.
They read the stack only through its outputs (R1b), as the client's pipeline does."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from loanstack.contract import OUTPUTS as R1B_OUTPUTS
from loanstack.testing.loanbook import approved_application


def assert_r1b_outputs_present(outputs: dict[str, str]) -> None:
    missing = [k for k in R1B_OUTPUTS if not outputs.get(k)]
    assert missing == [], f"R1b outputs missing: {missing}"


def assert_network(client: Any, outputs: dict[str, str]) -> None:
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs(VpcIds=[outputs["VPCId"]])["Vpcs"][0]
    assert vpc["VpcId"] == outputs["VPCId"]
    ids = [
        outputs[k] for k in ("PublicSubnet1", "PublicSubnet2", "PrivateSubnet1", "PrivateSubnet2")
    ]
    subnets = ec2.describe_subnets(SubnetIds=ids)["Subnets"]
    assert {s["VpcId"] for s in subnets} == {outputs["VPCId"]}
    assert len({s["AvailabilityZone"] for s in subnets}) == 2, "two AZs (R7)"


def assert_database(client: Any, outputs: dict[str, str]) -> dict[str, Any]:
    cluster_id = outputs["DBClusterArn"].rsplit(":", 1)[-1]
    cluster = client("rds").describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    assert cluster["Endpoint"] == outputs["DBClusterEndpoint"]
    assert cluster["StorageEncrypted"] is True
    assert cluster["HttpEndpointEnabled"] is True, "the Data API (D1)"
    assert cluster.get("DeletionProtection") is False
    return dict(cluster)


def assert_security_group_names(client: Any, outputs: dict[str, str]) -> None:
    """Issue 10 item 1: EC2 refuses names that start with sg-; none of ours does."""
    groups = client("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [outputs["VPCId"]]}]
    )["SecurityGroups"]
    names = {g["GroupName"] for g in groups} - {"default"}
    assert names and all(n.startswith("secgroup-") for n in names), names


def assert_trail_uses_the_key(client: Any, outputs: dict[str, str], wait: float = 0) -> None:
    """Item 2: the trail exists, logs, is encrypted with the stack's key; with `wait` (real AWS
    delivers every ~5 minutes) a log file has been delivered, which needs the key policy."""
    if "TrailArn" not in outputs:
        return  # EnableCloudTrail=false: an organisation trail records the account
    trails = client("cloudtrail").describe_trails(trailNameList=[outputs["TrailArn"]])["trailList"]
    (trail,) = [t for t in trails if t["TrailARN"] == outputs["TrailArn"]]
    assert trail["KmsKeyId"] == outputs["KMSKeyArn"]
    status = client("cloudtrail").get_trail_status(Name=outputs["TrailArn"])
    assert status["IsLogging"] is True
    if wait:
        status = wait_for(
            lambda: (
                (s := client("cloudtrail").get_trail_status(Name=outputs["TrailArn"]))
                and (s.get("LatestDeliveryTime") or s.get("LatestDeliveryError"))
                and s
            ),
            timeout=wait,
            every=30,
        )
        assert status, f"no delivery within {wait:.0f} s"
        assert status.get("LatestDeliveryTime"), status
    assert not status.get("LatestDeliveryError"), status.get("LatestDeliveryError")


def assert_database_takes_the_data_api(client: Any, outputs: dict[str, str]) -> None:
    """Item 3: no T class in the cluster (the Data API refuses them); a statement runs."""
    cluster_id = outputs["DBClusterArn"].rsplit(":", 1)[-1]
    members = client("rds").describe_db_instances(
        Filters=[{"Name": "db-cluster-id", "Values": [cluster_id]}]
    )["DBInstances"]
    assert members and not [m for m in members if m["DBInstanceClass"].startswith("db.t")]
    reply = wait_for_resume(
        lambda: client("rds-data").execute_statement(
            resourceArn=outputs["DBClusterArn"], secretArn=outputs["DBSecretArn"], sql="SELECT 1"
        )
    )
    assert reply["records"] == [[{"longValue": 1}]]


def wait_for_resume(call: Any, timeout: float = 120) -> Any:
    """A paused Serverless v2 cluster answers DatabaseResumingException until it is back."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code != "DatabaseResumingException" or time.monotonic() > deadline:
                raise
            time.sleep(2)


def assert_reservation_as_deployed(client: Any, outputs: dict[str, str]) -> None:
    """Item 4: the function holds exactly the reservation its stack parameter asks (none for 0),
    which CREATE only grants when the account had the headroom the preflight checked."""
    suffix = outputs["LoanValidationFunctionName"].removeprefix("lambda-loanvalidator-")
    stack = client("cloudformation").describe_stacks(StackName=f"tapstack-{suffix}")["Stacks"][0]
    asked = next(
        int(p["ParameterValue"])
        for p in stack["Parameters"]
        if p["ParameterKey"] == "ValidationReservedConcurrency"
    )
    held = client("lambda").get_function_concurrency(
        FunctionName=outputs["LoanValidationFunctionName"]
    )
    assert int(held.get("ReservedConcurrentExecutions") or 0) == asked


def assert_alarm_reaches_the_encrypted_topic(client: Any, outputs: dict[str, str]) -> None:
    """The key policy lets CloudWatch publish to the KMS-encrypted topic: an alarm forced into
    ALARM records a successful action in its history (a refused key shows "Failed")."""
    suffix = outputs["LoanValidationFunctionName"].removeprefix("lambda-loanvalidator-")
    name = f"alarm-validatordlq-{suffix}"
    cloudwatch = client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="loanstack test")
    try:
        actions = wait_for(
            lambda: [
                h["HistorySummary"]
                for h in cloudwatch.describe_alarm_history(
                    AlarmName=name, HistoryItemType="Action", MaxRecords=10
                )["AlarmHistoryItems"]
            ],
            timeout=120,
            every=10,
        )
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="loanstack test")
    assert actions, "no alarm action recorded"
    assert not [a for a in actions if "Failed" in a], actions


def assert_private_subnets_take_replies(client: Any, outputs: dict[str, str]) -> None:
    """Item 5: the ACL of the Lambda subnets admits TCP 1024-65535 back in."""
    acls = client("ec2").describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [outputs["PrivateSubnet1"]]}]
    )["NetworkAcls"]
    entries = [e for acl in acls for e in acl["Entries"] if not e["Egress"]]
    assert any(
        e["RuleAction"] == "allow"
        and e["Protocol"] in ("6", "-1")
        and e.get("CidrBlock") == "0.0.0.0/0"
        and e.get("PortRange", {"From": 0, "To": 65535})["From"] <= 1024
        and e.get("PortRange", {"From": 0, "To": 65535})["To"] >= 65535
        for e in entries
    ), entries


def assert_secret(client: Any, outputs: dict[str, str]) -> None:
    described = client("secretsmanager").describe_secret(SecretId=outputs["DBSecretArn"])
    assert described["RotationEnabled"] is True
    assert described["RotationRules"]["AutomaticallyAfterDays"] == 30
    assert described["KmsKeyId"]


def assert_documents_bucket(client: Any, outputs: dict[str, str]) -> None:
    s3 = client("s3")
    bucket = outputs["LoanDocumentsBucketName"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def application(loan_id: str) -> dict[str, Any]:
    return approved_application(loan_id, "A-POST-DEPLOY")


def assert_validation_records_and_documents(client: Any, outputs: dict[str, str]) -> str:
    """Invoke the deployed function; the decision is in Aurora and the document in S3."""
    loan_id = f"POST-{uuid.uuid4().hex[:10]}"
    reply = client("lambda").invoke(
        FunctionName=outputs["LoanValidationFunctionName"], Payload=json.dumps(application(loan_id))
    )
    body = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, body
    assert body["decision"] == "APPROVED"
    rows = client("rds-data").execute_statement(
        resourceArn=outputs["DBClusterArn"],
        secretArn=outputs["DBSecretArn"],
        database="loans",
        sql="SELECT decision FROM loan_decisions WHERE loan_id = :id",
        parameters=[{"name": "id", "value": {"stringValue": loan_id}}],
    )["records"]
    assert rows == [[{"stringValue": "APPROVED"}]]
    document = client("s3").get_object(
        Bucket=outputs["LoanDocumentsBucketName"], Key=f"validations/{loan_id}.json"
    )
    assert json.loads(document["Body"].read())["decision"] == "APPROVED"
    return loan_id


def wait_for(check: Any, timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)
