"""The template's rotation pieces (SPEC D2, R7, R10): who may reach the database, the rotation
function's time budget, and an alarm that says what is true."""

from __future__ import annotations

from typing import Any

from loanstack.template import Environment

GROUP_ID = "GroupId"


def group(ref: Any) -> str:
    """The logical id a GroupId reference points at."""
    return str(ref["Fn::GetAtt"][0] if "Fn::GetAtt" in ref else ref["Ref"])


def test_r10_only_the_rotation_function_reaches_the_database_on_3306(env: Environment) -> None:
    rules = list(env.resources["DBSecurityGroup"].properties.get("SecurityGroupIngress", []))
    rules += [
        r.properties
        for r in env.resources.values()
        if r.type == "AWS::EC2::SecurityGroupIngress"
        and group(r.properties["GroupId"]) == "DBSecurityGroup"
    ]
    assert rules, "testSecret's login needs a way in"
    for rule in rules:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 3306, 3306)
        assert group(rule["SourceSecurityGroupId"]) == "RotationFunctionSecurityGroup"
        assert "CidrIp" not in rule and "CidrIpv6" not in rule


def test_r10_the_rotation_function_may_open_mysql_to_the_database_only(
    env: Environment,
) -> None:
    egress = [
        r.properties
        for r in env.resources.values()
        if r.type == "AWS::EC2::SecurityGroupEgress"
        and group(r.properties["GroupId"]) == "RotationFunctionSecurityGroup"
    ]
    inline = env.resources["RotationFunctionSecurityGroup"].properties["SecurityGroupEgress"]
    mysql = [e for e in egress + inline if e.get("FromPort") == 3306]
    assert [group(e["DestinationSecurityGroupId"]) for e in mysql] == ["DBSecurityGroup"]
    validation = env.resources["LambdaSecurityGroup"].properties["SecurityGroupEgress"]
    assert all(e.get("FromPort") != 3306 for e in validation), (
        "the validation function uses the Data API"
    )


def test_d2_the_rotation_function_keeps_time_for_its_rollback(env: Environment) -> None:
    fn = env.resources["SecretRotationLambda"].properties
    reserve = float(fn["Environment"]["Variables"]["ROLLBACK_RESERVE_SECONDS"])
    assert fn["Timeout"] == 900, "Lambda's maximum: a password change can take minutes"
    assert 120 <= reserve <= fn["Timeout"] / 2


def test_r14_the_rotation_alarm_tells_the_operator_what_is_true(env: Environment) -> None:
    text = env.resources["RotationErrorsAlarm"].properties["AlarmDescription"]
    assert "still opens the database" not in text  # false when a rotation fails after setSecret
    assert "back on AWSCURRENT's password" in text and "rollback failed" in text
    assert "loanstack rotate" in text
