"""`loanstack cost`: the estimate follows the template, the environment and the parameters."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest

from loanstack import cli, cost, template
from tests.support.helpers import build


def total(env: template.Environment) -> float:
    lines, _ = cost.estimate(env)
    return sum(line.monthly for line in lines)


def test_dev_costs_less_than_prod(pristine: dict[str, Any]) -> None:
    dev, prod = total(build(pristine, "dev")), total(build(pristine, "prod"))
    assert 0 < dev < prod


def test_prod_pays_for_a_second_nat_gateway_and_the_reader(pristine: dict[str, Any]) -> None:
    lines, _ = cost.estimate(build(pristine, "prod"))
    priced = {line.resource for line in lines}
    assert {"NATGateway2", "DBInstance2"} <= priced
    dev_lines, _ = cost.estimate(build(pristine, "dev"))
    assert not {"NATGateway2", "DBInstance2"} & {line.resource for line in dev_lines}


def test_instance_class_moves_the_estimate(pristine: dict[str, Any]) -> None:
    small = total(build(pristine, "prod", DBInstanceClass="db.r7g.large"))
    large = total(build(pristine, "prod", DBInstanceClass="db.r7g.xlarge"))
    hours = cost.PriceBook("us-east-1").hours
    assert large - small == pytest.approx(2 * hours * (0.553 - 0.276))


def test_serverless_v2_is_priced_by_acu_hours_and_dev_pauses(pristine: dict[str, Any]) -> None:
    book = cost.PriceBook("us-east-1")
    acu_hour, _ = book.price("aurora_serverless_v2_acu_hour")
    dev_lines, dev_a = cost.estimate(build(pristine, "dev"))
    (dev_db,) = [x for x in dev_lines if x.resource == "DBInstance1"]
    assert "paused" in dev_db.item
    expected = dev_a["serverless_active_hours_per_day"] * 30 * dev_a["serverless_average_acu"]
    assert dev_db.monthly == pytest.approx(expected * acu_hour)
    floor = total(build(pristine, "prod", DBServerlessMinCapacityProd="8"))
    assert floor > total(build(pristine, "prod"))  # a higher prod floor costs more


def test_every_resource_type_of_the_template_has_a_price_entry(pristine: dict[str, Any]) -> None:
    types = {r["Type"] for r in pristine["Resources"].values()}
    book = cost.PriceBook("us-east-1")
    assert types - set(cost.PRICERS) - set(book.data["no_charge"]) == set()
    classes = set(pristine["Parameters"]["DBInstanceClass"]["AllowedValues"]) - {"db.serverless"}
    assert classes <= set(book.data["prices"]["aurora_instance_hour"]["by_class"])
    assert all(
        entry["source"].startswith("https://aws.amazon.com/")
        for entry in book.data["prices"].values()
    )


def test_an_unpriced_type_is_refused(doc: dict[str, Any]) -> None:
    doc["Resources"]["Cache"] = {"Type": "AWS::ElastiCache::CacheCluster", "Properties": {}}
    with pytest.raises(KeyError, match="AWS::ElastiCache::CacheCluster"):
        cost.estimate(build(doc, "dev"))


def test_cli_prints_every_assumption_and_refuses_an_unknown_region(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["cost", "--env", "dev"]) == 0
    out = capsys.readouterr().out
    for name in cost.PriceBook("us-east-1").assumptions("dev"):
        assert name in out.replace("\n", "")
    assert cli.main(["cost", "--env", "dev", "--region", "eu-west-1"]) == 2
    err = capsys.readouterr().err
    assert "no prices for region eu-west-1: priced are us-east-1; to add it, copy" in err
    assert "data/prices-eu-west-1.json" in err and len(err.strip().splitlines()) == 1


def test_cost_numbers_are_plain_decimals_under_camel_case_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`1.33334e-05` was printed for the Lambda request price; JSON keys were snake_case."""
    assert cli.main(["cost", "--env", "dev", "--output", "json"]) == 0
    text = capsys.readouterr().out
    assert not re.search(r"[0-9]e-?[0-9]", text, re.IGNORECASE), text
    doc = json.loads(text, parse_float=Decimal)
    assert doc["monthlyTotal"] == sum(line["monthly"] for line in doc["lines"])
    assert all(isinstance(line["unitPrice"], (Decimal, int)) for line in doc["lines"])
    small = [line["unitPrice"] for line in doc["lines"] if line["unitPrice"] < Decimal("0.0001")]
    assert small, "the per-request prices are the ones that came out as 1.33334e-05"
    assert all("_" not in key for key in [*doc, *doc["assumptions"], *doc["lines"][0]])
    assert cli.main(["cost", "--env", "dev"]) == 0
    human = capsys.readouterr().out
    assert not re.search(r"[0-9]e-[0-9]", human), human
    assert f"{doc['monthlyTotal']:,.2f}" in human


def test_the_trail_says_what_a_second_copy_costs_and_how_to_switch_it_off(
    pristine: dict[str, Any],
) -> None:
    """Where an organisation trail already records the account, this stack's trail is a billed
    second copy of the management events ("Managing CloudTrail costs"); EnableCloudTrail=false
    removes it and every line it brings."""
    lines, _ = cost.estimate(build(pristine, "prod"))
    [copy] = [ln for ln in lines if ln.resource == "Trail" and "management events" in ln.item]
    assert "EnableCloudTrail=false" in copy.item and copy.unit_price == 2.0
    without, _ = cost.estimate(build(pristine, "prod", EnableCloudTrail="false"))
    assert not [ln for ln in without if ln.resource.startswith("Trail")]
    assert total(build(pristine, "prod", EnableCloudTrail="false")) < total(build(pristine, "prod"))
