"""The application's own database user (issue 18 item 7), without AWS or the emulator: the
template gives the validation function its own secret and no way to the master's, rotates the
app secret with alternating users, and asks for data privileges only; the rotation function's
alternating-users logic and the custom resource's input checks.
https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotation-strategy.html
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from loanstack import template
from loanstack.template import Environment
from tests.support.helpers import load_function

MASTER, APP = {"Ref": "DBSecret"}, {"Ref": "AppDatabaseSecret"}
ROLES_OF_THE_VALIDATION_FUNCTION = ("LoanValidationFunctionRole",)


def reaches(resource: Any, secret: dict[str, str]) -> bool:
    """Whether `resource` (a statement's Resource) covers `secret`: by reference or wildcard."""
    return any(r == secret or r == "*" or "secret:" in str(r) for r in template.as_list(resource))


def test_the_app_secret_names_its_master_and_shares_the_key(env: Environment) -> None:
    props = env.resources["AppDatabaseSecret"].properties
    assert props["KmsKeyId"] == {"Ref": "KMSKey"}
    generated = props["GenerateSecretString"]
    text = str(generated["SecretStringTemplate"])
    assert f'"username":"loan_app_{env.suffix}"' in text  # one user name per stack
    assert '"masterarn":"${DBSecret}"' in text
    assert generated["GenerateStringKey"] == "password"
    master = env.resources["DBSecret"].properties["GenerateSecretString"]
    assert generated["ExcludeCharacters"] == master["ExcludeCharacters"]
    assert generated["PasswordLength"] == master["PasswordLength"]


def test_the_app_secret_rotates_every_30_days_with_the_rotation_function(
    env: Environment,
) -> None:
    schedule = env.resources["AppSecretRotationSchedule"]
    assert schedule.properties["SecretId"] == APP
    assert schedule.properties["RotationLambdaARN"] == {
        "Fn::GetAtt": ["SecretRotationLambda", "Arn"]
    }
    assert schedule.properties["RotationRules"] == {"AutomaticallyAfterDays": 30}
    assert {"AppSecretRotationPermission", "AppDatabaseSetup"} <= set(schedule.raw["DependsOn"])
    permission = env.resources["AppSecretRotationPermission"].properties
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceArn"] == APP


def test_the_setup_grants_data_privileges_only_before_the_function_exists(
    env: Environment,
) -> None:
    setup = env.resources["AppDatabaseSetup"]
    assert setup.properties["ServiceToken"] == {"Fn::GetAtt": ["SecretRotationLambda", "Arn"]}
    assert setup.properties["AppSecretArn"] == APP
    assert set(setup.properties["Privileges"]) <= {"SELECT", "INSERT", "UPDATE"}
    assert setup.properties["Tables"] == ["loan_decisions"]
    assert "AppDatabaseSetup" in env.resources["LoanValidationFunction"].raw["DependsOn"]


def test_the_validation_function_cannot_read_the_master_secret(env: Environment) -> None:
    variables = env.resources["LoanValidationFunction"].properties["Environment"]["Variables"]
    assert variables["DB_SECRET_ARN"] == APP
    for name in ROLES_OF_THE_VALIDATION_FUNCTION:
        for _, document in template.policy_documents(env.resources[name]):
            for st in template.statements(document):
                actions = template.as_list(st["Action"])
                if any(a.startswith("secretsmanager:") or a == "*" for a in actions):
                    assert st["Resource"] == APP, st
                    assert not reaches(st["Resource"], MASTER)


def test_only_the_rotation_function_reads_the_master_secret(env: Environment) -> None:
    """Every identity policy of the stack, iterated: the master secret is the rotation's."""
    readers = set()
    for resource in env.of_type("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for _, document in template.policy_documents(resource):
            for st in template.statements(document):
                actions = template.as_list(st["Action"])
                if "secretsmanager:GetSecretValue" in actions and reaches(st["Resource"], MASTER):
                    readers.add(resource.logical_id)
    assert readers == {"SecretRotationLambdaRole"}


def test_the_setup_creates_the_table_the_function_writes() -> None:
    """The table's one definition lives in the validation function; the rotation function's
    setup holds the same text (a change to one without the other fails here)."""
    rotation, validation = load_function("secret_rotation"), load_function("loan_validation")
    assert rotation.TABLES["loan_decisions"] == validation.TABLE


# --- the rotation function's alternating-users logic ---------------------------------------


@pytest.fixture
def rotation(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("APP_USERNAME", "loan_app")  # the template sets loan_app_<suffix>
    return load_function("secret_rotation")


def native_hash(password: str) -> str:
    """mysql_native_password's stored form, computed here independently of the function."""
    inner = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    return "*" + hashlib.sha1(inner, usedforsecurity=False).hexdigest().upper()


def test_users_alternate_and_stay_mysql_names(rotation: Any) -> None:
    assert rotation.alternate("loan_app") == "loan_app_clone"
    assert rotation.alternate("loan_app_clone") == "loan_app"
    with pytest.raises(ValueError, match="1-32"):
        rotation.alternate("a" * 27)  # 33 with _clone: MySQL 8.0 names are at most 32
    assert rotation.alternate("loan_app_dev-42") == "loan_app_dev-42_clone"  # 31: fits
    with pytest.raises(ValueError, match="1-32"):
        rotation.account("loan'app")


def test_a_password_with_a_quote_is_refused_never_escaped(rotation: Any) -> None:
    assert rotation.password_literal("abcDEF123") == "'abcDEF123'"
    for bad in ("ab'cd", "ab\\cd", "", "ab\ncd"):
        with pytest.raises(ValueError):
            rotation.password_literal(bad)


def test_the_cluster_arn_comes_from_the_secret_arn(rotation: Any) -> None:
    arn = "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-AbCdEf"
    assert (
        rotation.cluster_arn(arn, "c1")
        == "arn:aws-us-gov:rds:us-gov-west-1:123456789012:cluster:c1"
    )


def test_the_clone_gets_the_grants_never_the_password_hash(
    rotation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB's SHOW GRANTS prints the password hash in the USAGE line; MySQL 8.0's does not."""
    shown = [
        "GRANT USAGE ON *.* TO `loan_app`@`%` IDENTIFIED BY PASSWORD '*D51DA1B949C1D36CB'",
        "GRANT SELECT, INSERT, UPDATE ON `loans`.`loan_decisions` TO `loan_app`@`%`",
    ]
    monkeypatch.setattr(
        rotation,
        "as_master",
        lambda *_: {"records": [[{"stringValue": g}] for g in shown]},
    )
    current = {"username": "loan_app", "password": "old", "masterarn": "arn:m"}
    pending = {**current, "username": "loan_app_clone", "password": "newPassword1"}
    password = f"IDENTIFIED WITH mysql_native_password AS '{native_hash('newPassword1')}'"
    assert rotation.clone_user(current, pending, "arn:a") == [
        f"CREATE USER IF NOT EXISTS 'loan_app_clone'@'%' {password}",
        "GRANT SELECT, INSERT, UPDATE ON `loans`.`loan_decisions` TO 'loan_app_clone'@'%'",
        f"ALTER USER 'loan_app_clone'@'%' {password}",
    ]


def test_no_statement_carries_a_password_the_audit_log_could_keep(
    rotation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster audits DCL text (server_audit_events QUERY_DCL): only the hash is sent."""
    sent: list[str] = []
    monkeypatch.setattr(rotation, "secrets_client", lambda: None)
    monkeypatch.setattr(
        rotation, "read", lambda *_: {"username": "loan_app", "password": "Pw-123456789",
                                      "masterarn": "arn:m"}
    )  # fmt: skip
    monkeypatch.setattr(rotation, "as_master", lambda _s, _a, sql, *__: sent.append(sql))
    rotation.set_up_database(
        {"AppSecretArn": "arn:a", "DatabaseName": "loans", "Tables": ["loan_decisions"],
         "Privileges": ["SELECT"]}
    )  # fmt: skip
    assert sent and not any("Pw-123456789" in sql for sql in sent)
    assert any(native_hash("Pw-123456789") in sql for sql in sent)


@pytest.mark.parametrize("username", ["loanadmin", "loan_app_other", "root"])
def test_only_the_applications_pair_of_users_is_ever_managed(rotation: Any, username: str) -> None:
    """A confused deputy: whoever may write the app secret must not make this function (which
    acts as the master) create, grant or set a password for another user, the master's above
    all (AWS's multi-user rotation guards the same way)."""
    with pytest.raises(ValueError, match="not the application's"):
        rotation.account(username)
    with pytest.raises(ValueError, match="not the application's"):
        rotation.clone_user(
            {"username": username, "password": "a", "masterarn": "arn:m"},
            {"username": username + "_clone", "password": "b", "masterarn": "arn:m"},
            "arn:a",
        )


def test_without_app_username_no_user_is_managed(
    rotation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APP_USERNAME")
    with pytest.raises(ValueError, match="APP_USERNAME unset"):
        rotation.account("loan_app")


class Resuming(Exception):
    pass


def test_the_master_waits_for_a_resuming_writer_then_gives_up(
    rotation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paused dev writer answers DatabaseResumingException for ~15 s: the setup (run on every
    upgrade of a paused dev stack) waits, within RESUME_WAIT_SECONDS, then gives up."""
    from botocore.exceptions import ClientError

    resuming = ClientError({"Error": {"Code": "DatabaseResumingException"}}, "ExecuteStatement")
    answers: list[Any] = [resuming, resuming, {"records": []}]
    slept: list[float] = []

    class Client:
        def execute_statement(self, **_: Any) -> Any:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    monkeypatch.setattr(rotation, "rds_data_client", Client)
    monkeypatch.setattr(rotation.time, "sleep", slept.append)
    secret = {
        "masterarn": "arn:aws:secretsmanager:us-east-1:1:secret:m",
        "dbClusterIdentifier": "c",
    }
    assert rotation.as_master(secret, "arn:a", "SELECT 1") == {"records": []}
    assert slept == [1.0, 2.0]
    answers[:] = [resuming] * 50
    monkeypatch.setenv("RESUME_WAIT_SECONDS", "0")
    with pytest.raises(ClientError):
        rotation.as_master(secret, "arn:a", "SELECT 1")


def test_set_secret_of_the_app_refuses_a_pending_version_that_is_not_the_other_user(
    rotation: Any,
) -> None:
    current = {"username": "loan_app", "password": "a", "masterarn": "arn:m", "host": "h",
               "port": 3306, "dbClusterIdentifier": "c"}  # fmt: skip
    for pending in (
        {**current, "password": "b"},  # the same user: would change AWSCURRENT's password
        {**current, "username": "loan_app_clone", "masterarn": "arn:other"},
    ):
        with pytest.raises(ValueError, match=r"not the other user|another cluster or master"):
            rotation.set_user_secret(None, "arn:a", "t", current, pending, None)


@pytest.mark.parametrize(
    "props",
    [
        {"Privileges": ["SELECT", "DROP"]},
        {"Privileges": ["ALL PRIVILEGES"]},
        {"Privileges": ["SELECT"], "DatabaseName": "loans`; DROP DATABASE x; --"},
    ],
)
def test_the_setup_refuses_ddl_and_odd_names(
    rotation: Any, monkeypatch: pytest.MonkeyPatch, props: dict[str, Any]
) -> None:
    app = {"username": "loan_app", "password": "p", "masterarn": "arn:m"}
    monkeypatch.setattr(rotation, "secrets_client", lambda: None)
    monkeypatch.setattr(rotation, "read", lambda *_: app)
    sent: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        rotation, "as_master", lambda _s, _a, sql, database=None: sent.append((sql, database))
    )
    request = {"AppSecretArn": "arn:a", "DatabaseName": "loans", "Tables": ["loan_decisions"]}
    with pytest.raises(ValueError, match="refused"):
        rotation.set_up_database({**request, **props})
    assert sent == []


def test_the_setup_answers_cloudformation_even_when_it_fails(
    rotation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A custom resource that never hears back holds the stack for an hour."""
    sent: list[Any] = []

    class Reply:
        def __enter__(self) -> Reply:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def read(self) -> bytes:
            return b""

    def urlopen(request: Any, timeout: float) -> Reply:
        sent.append(request)
        return Reply()

    monkeypatch.setattr(rotation.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(rotation, "set_up_database", lambda _: 1 / 0)
    event = {"RequestType": "Create", "ResponseURL": "https://example.invalid/r", "StackId": "s",
             "RequestId": "r", "LogicalResourceId": "AppDatabaseSetup", "ResourceProperties": {}}  # fmt: skip
    rotation.handler(event, None)
    [request] = sent

    body = json.loads(request.data)
    assert request.get_method() == "PUT" and body["Status"] == "FAILED"
    assert "ZeroDivisionError" in body["Reason"] and body["RequestId"] == "r"


def test_the_setup_makes_the_table_and_the_user_with_awscurrents_password(
    rotation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing user (a replaced secret, a second run) ends on AWSCURRENT's password too."""
    app = {"username": "loan_app", "password": "pw123456", "masterarn": "arn:m"}
    monkeypatch.setattr(rotation, "secrets_client", lambda: None)
    monkeypatch.setattr(rotation, "read", lambda *_: app)
    sent: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        rotation, "as_master", lambda _s, _a, sql, database=None: sent.append((sql, database))
    )
    request = {"AppSecretArn": "arn:a", "DatabaseName": "loans", "Tables": ["loan_decisions"]}
    assert rotation.set_up_database({**request, "Privileges": ["SELECT", "INSERT", "UPDATE"]}) == {
        "Username": "loan_app"
    }
    identified = f"IDENTIFIED WITH mysql_native_password AS '{native_hash('pw123456')}'"
    assert sent == [
        ("CREATE DATABASE IF NOT EXISTS `loans`", None),
        (rotation.TABLES["loan_decisions"], "loans"),
        (f"CREATE USER IF NOT EXISTS 'loan_app'@'%' {identified}", None),
        (f"ALTER USER 'loan_app'@'%' {identified}", None),
        ("GRANT SELECT, INSERT, UPDATE ON `loan_decisions` TO 'loan_app'@'%'", "loans"),
    ]
    with pytest.raises(ValueError, match="tables"):
        rotation.set_up_database({**request, "Tables": ["mysql.user"], "Privileges": ["SELECT"]})


def answer_path(doc: dict[str, Any], custom: str) -> set[str]:
    """What a custom resource's answer needs until it is deleted: its function reaches
    CloudFormation's pre-signed S3 URL from private subnets, so the subnets' route tables (their
    associations), the S3 gateway endpoint and the subnets' NACL entries must outlive it. Nothing
    else depends on those, so CloudFormation deletes them first and the answer would time out
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudformation-customresource.html)."""
    resources = doc["Resources"]
    function = resources[custom]["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    subnets = {s["Ref"] for s in resources[function]["Properties"]["VpcConfig"]["SubnetIds"]}
    needed: set[str] = set()
    acls: set[str] = set()
    for name, r in resources.items():
        props = r.get("Properties", {})
        subnet = (
            props.get("SubnetId", {}).get("Ref")
            if isinstance(props.get("SubnetId"), dict)
            else None
        )
        if r["Type"] == "AWS::EC2::SubnetRouteTableAssociation" and subnet in subnets:
            needed.add(name)
        if r["Type"] == "AWS::EC2::SubnetNetworkAclAssociation" and subnet in subnets:
            acls.add(props["NetworkAclId"]["Ref"])
        if r["Type"] == "AWS::EC2::VPCEndpoint" and "s3" in str(props.get("ServiceName")):
            needed.add(name)
    for name, r in resources.items():
        props = r.get("Properties", {})
        acl = props.get("NetworkAclId", {})
        if r["Type"] == "AWS::EC2::NetworkAclEntry" and acl.get("Ref") in acls:
            https = (
                int(props.get("PortRange", {}).get("To", 0) or 0)
                >= 443
                >= int(props.get("PortRange", {}).get("From", 65536) or 65536)
            )
            back = int(props.get("PortRange", {}).get("From", 0) or 0) >= 1024
            if props.get("RuleAction") == "allow" and (
                (props.get("Egress") and https) or (not props.get("Egress") and back)
            ):
                needed.add(name)
    return needed


def missing_from_depends_on(doc: dict[str, Any]) -> dict[str, set[str]]:
    found = {}
    for name, r in doc["Resources"].items():
        if r["Type"] == "AWS::CloudFormation::CustomResource" or r["Type"].startswith("Custom::"):
            gap = answer_path(doc, name) - set(template.as_list(r.get("DependsOn", [])))
            if gap:
                found[name] = gap
    return found


def test_a_custom_resource_can_still_answer_when_the_stack_is_deleted(
    pristine: dict[str, Any],
) -> None:
    assert missing_from_depends_on(pristine) == {}
    for r in pristine["Resources"].values():
        if r["Type"] == "AWS::CloudFormation::CustomResource":
            assert 60 <= int(r["Properties"]["ServiceTimeout"]) <= 600  # not the default hour
    broken = json.loads(json.dumps(pristine))
    broken["Resources"]["AppDatabaseSetup"]["DependsOn"].remove("S3GatewayEndpoint")
    assert missing_from_depends_on(broken) == {"AppDatabaseSetup": {"S3GatewayEndpoint"}}


def test_a_regenerated_app_password_reruns_the_setup(pristine: dict[str, Any]) -> None:
    """CloudFormation generates a new password whenever GenerateSecretString's inputs change;
    the setup (which sets the user's password to AWSCURRENT) must then run again, so its
    properties carry the same inputs."""
    setup = pristine["Resources"]["AppDatabaseSetup"]["Properties"]
    secret = pristine["Resources"]["AppDatabaseSecret"]["Properties"]
    assert setup["GeneratedFrom"] == secret["GenerateSecretString"]
