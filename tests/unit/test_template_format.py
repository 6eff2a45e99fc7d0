"""The emulator reads a JSON template as JSON (emulator/template_format.py): the same template,
at a fraction of the CPU of moto's YAML-first reader, and a YAML template as moto reads it."""

from __future__ import annotations

import json

import pytest
import yaml
from moto.cloudformation import models as cfn_models
from moto.cloudformation.exceptions import ValidationError

from loanstack import template
from loanstack.emulator import install

YAML_TEMPLATE = """
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "b-${AWS::Region}"
"""


@pytest.fixture(autouse=True)
def _installed() -> None:
    install()  # idempotent; this process keeps the patches, as the other emulator tests do


def test_the_template_reads_the_same_as_motos_yaml_reader_gives() -> None:
    body = template.TEMPLATE_PATH.read_text()
    expected = yaml.load(body, Loader=yaml.Loader)  # what moto's reader gives
    assert cfn_models.Stack.parse_template(body) == expected


def test_a_json_template_is_not_read_through_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.5 s of CPU a read of the template through PyYAML; a deploy reads it twice."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a JSON template went through PyYAML")

    monkeypatch.setattr(yaml, "load", refuse)
    body = template.TEMPLATE_PATH.read_text()
    assert "Resources" in cfn_models.Stack.parse_template(body)
    change_set = object.__new__(cfn_models.ChangeSet)
    change_set.template = body
    change_set._parse_template()
    assert change_set.template_dict == json.loads(body)


def test_a_json_number_stays_a_number_as_cloudformation_reads_json() -> None:
    """YAML 1.1 reads `1e5` as a string; CloudFormation reads a JSON template as JSON
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-formats.html)."""
    body = '{"Parameters": {"N": {"Type": "Number", "Default": 1e5}}}'
    assert cfn_models.Stack.parse_template(body)["Parameters"]["N"]["Default"] == 100000.0


def test_a_yaml_template_is_still_read_by_motos_reader() -> None:
    parsed = cfn_models.Stack.parse_template(YAML_TEMPLATE)
    assert parsed["Resources"]["Bucket"]["Properties"]["BucketName"] == {
        "Fn::Sub": "b-${AWS::Region}"
    }
    change_set = object.__new__(cfn_models.ChangeSet)
    change_set.template = YAML_TEMPLATE
    change_set._parse_template()
    assert change_set.template_dict == parsed


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_as_cloudformation_reads_it(constant: str) -> None:
    """ECMA-404 JSON has no NaN or Infinity (Python's json accepts them): CloudFormation answers
    "Template format error: JSON not well-formed."
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-formats.html)."""
    body = '{"Resources": {}, "Metadata": {"N": ' + constant + "}}"
    with pytest.raises(ValidationError, match=r": Template format error: JSON not well-formed\.$"):
        cfn_models.Stack.parse_template(body)
    change_set = object.__new__(cfn_models.ChangeSet)
    change_set.template = body
    with pytest.raises(ValidationError, match="JSON not well-formed"):
        change_set._parse_template()


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("- a\n- b\n", "unsupported structure"),
        ("foo", "unsupported structure"),
        ("42", "unsupported structure"),
        ("Resources: [a\n", "YAML not well-formed"),
        ('{"Resources": [a}', "JSON not well-formed"),
    ],
)
def test_a_body_that_is_no_template_is_a_validation_error(body: str, said: str) -> None:
    """Not moto's raw ValueError (HTTP 500): CloudFormation's ValidationError
    (https://repost.aws/knowledge-center/cloudformation-template-validation)."""
    with pytest.raises(ValidationError, match=f": Template format error: {said}\\.$"):
        cfn_models.Stack.parse_template(body)
