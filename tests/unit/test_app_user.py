"""The application's own database user (issue 18 item 7), without AWS or the emulator: the
template gives the validation function its own secret and no way to the master's, rotates the
app secret with alternating users, and asks for data privileges only; the rotation function's
alternating-users logic and the custom resource's input checks.
https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotation-strategy.html
"""

from __future__ import annotations

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


def test_the_app_secret_names_its_master_and_shares_the_key(instance: Environment) -> None:
    props = instance.resources["AppDatabaseSecret"].properties
    assert props["KmsKeyId"] == {"Ref": "KMSKey"}
    generated = props["GenerateSecretString"]
    text = str(generated["SecretStringTemplate"])
    assert f'"username":"loan_app_{instance.suffix}"' in text  # one user name per stack
    assert '"masterarn":"${DBSecret}"' in text
    assert generated["GenerateStringKey"] == "password"
    master = instance.resources["DBSecret"].properties["GenerateSecretString"]
    assert generated["ExcludeCharacters"] == master["ExcludeCharacters"]
    assert generated["PasswordLength"] == master["PasswordLength"]


def test_the_app_secret_rotates_every_30_days_with_the_rotation_function(
    instance: Environment,
) -> None:
    schedule = instance.resources["AppSecretRotationSchedule"]
    assert schedule.properties["SecretId"] == APP
    assert schedule.properties["RotationLambdaARN"] == {
        "Fn::GetAtt": ["SecretRotationLambda", "Arn"]
    }
    assert schedule.properties["RotationRules"] == {"AutomaticallyAfterDays": 30}
    assert {"AppSecretRotationPermission", "AppDatabaseSetup"} <= set(schedule.raw["DependsOn"])
    permission = instance.resources["AppSecretRotationPermission"].properties
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceArn"] == APP


def test_the_setup_grants_data_privileges_only_before_the_function_exists(
    instance: Environment,
) -> None:
    setup = instance.resources["AppDatabaseSetup"]
    assert setup.properties["ServiceToken"] == {"Fn::GetAtt": ["SecretRotationLambda", "Arn"]}
    assert setup.properties["AppSecretArn"] == APP
    assert set(setup.properties["Privileges"]) <= {"SELECT", "INSERT", "UPDATE"}
    assert setup.properties["Tables"] == ["loan_decisions"]
    assert "AppDatabaseSetup" in instance.resources["LoanValidationFunction"].raw["DependsOn"]


def test_the_validation_function_cannot_read_the_master_secret(instance: Environment) -> None:
    env = instance.resources["LoanValidationFunction"].properties["Environment"]["Variables"]
    assert env["DB_SECRET_ARN"] == APP
    for name in ROLES_OF_THE_VALIDATION_FUNCTION:
        for _, document in template.policy_documents(instance.resources[name]):
            for st in template.statements(document):
                actions = template.as_list(st["Action"])
                if any(a.startswith("secretsmanager:") or a == "*" for a in actions):
                    assert st["Resource"] == APP, st
                    assert not reaches(st["Resource"], MASTER)


def test_only_the_rotation_function_reads_the_master_secret(instance: Environment) -> None:
    """Every identity policy of the stack, iterated: the master secret is the rotation's."""
    readers = set()
    for resource in instance.of_type(
        "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"
    ):
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
def rotation() -> Any:
    return load_function("secret_rotation")


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
    assert rotation.clone_user(current, pending, "arn:a") == [
        "CREATE USER IF NOT EXISTS 'loan_app_clone'@'%' IDENTIFIED BY 'newPassword1'",
        "GRANT SELECT, INSERT, UPDATE ON `loans`.`loan_decisions` TO 'loan_app_clone'@'%'",
        "ALTER USER 'loan_app_clone'@'%' IDENTIFIED BY 'newPassword1'",
    ]


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
    assert sent == [
        ("CREATE DATABASE IF NOT EXISTS `loans`", None),
        (rotation.TABLES["loan_decisions"], "loans"),
        ("CREATE USER IF NOT EXISTS 'loan_app'@'%' IDENTIFIED BY 'pw123456'", None),
        ("ALTER USER 'loan_app'@'%' IDENTIFIED BY 'pw123456'", None),
        ("GRANT SELECT, INSERT, UPDATE ON `loan_decisions` TO 'loan_app'@'%'", "loans"),
    ]
    with pytest.raises(ValueError, match="tables"):
        rotation.set_up_database({**request, "Tables": ["mysql.user"], "Privileges": ["SELECT"]})
