"""`loanstack cost`: what one environment of the template costs a month, resource by resource.

Prices and usage assumptions live in `data/prices-<region>.json`, each price with its source;
every resource type the template uses must be priced there or listed as free of charge. The
estimate walks the resources that environment really creates (conditions evaluated), so a
parameter change (instance class, environment type) moves it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loanstack.errors import UsageError
from loanstack.names import ENVIRONMENT_TYPE
from loanstack.template import ROOT, Environment, Resource

DAYS = 30


@dataclass(frozen=True)
class Line:
    resource: str
    item: str
    quantity: float
    unit: str
    unit_price: float

    @property
    def monthly(self) -> float:
        return self.quantity * self.unit_price


def price_file(region: str) -> str:
    """The region's price file, relative to the repository (where `cost` says it read)."""
    return f"data/prices-{region}.json"


def priced_regions() -> list[str]:
    return sorted(p.stem.removeprefix("prices-") for p in (ROOT / "data").glob("prices-*.json"))


class PriceBook:
    def __init__(self, region: str) -> None:
        path = ROOT / price_file(region)
        if not path.exists():
            priced = priced_regions()
            raise UsageError(
                f"no prices for region {region}: priced are {', '.join(priced)}; to add it, copy "
                f"{price_file(priced[0])} to {price_file(region)} and set each price from the "
                "AWS pricing page in its `source` (docs/operations.md, Cost)"
            )
        self.data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.hours = float(self.data["hours_per_month"])

    def price(self, key: str, variant: str | None = None) -> tuple[float, str]:
        entry = self.data["prices"][key]
        value = entry["by_class"][variant] if variant else entry["price"]
        return float(value), str(entry["unit"])

    def assumptions(self, env: str) -> dict[str, float]:
        return {k: float(v) for k, v in self.data["assumptions"][env].items()}


Pricer = Callable[[Resource, PriceBook, dict[str, float], Environment], Iterator[Line]]
PRICERS: dict[str, Pricer] = {}


def prices(type_name: str) -> Callable[[Pricer], Pricer]:
    def register(fn: Pricer) -> Pricer:
        PRICERS[type_name] = fn
        return fn

    return register


def line(
    r: Resource, book: PriceBook, item: str, quantity: float, key: str, variant: str | None = None
) -> Line:
    unit_price, unit = book.price(key, variant)
    return Line(r.logical_id, item, quantity, unit, unit_price)


@prices("AWS::EC2::NatGateway")
def nat(r: Resource, book: PriceBook, a: dict[str, float], _: Environment) -> Iterator[Line]:
    yield line(r, book, "NAT gateway hours", book.hours, "nat_gateway_hour")
    yield line(r, book, "data processed (assumed)", a["nat_gb_per_gateway"], "nat_gateway_gb")
    yield line(r, book, "its Elastic IP (public IPv4)", book.hours, "public_ipv4_hour")


@prices("AWS::RDS::DBInstance")
def db_instance(
    r: Resource, book: PriceBook, a: dict[str, float], env: Environment
) -> Iterator[Line]:
    cls = str(r.properties["DBInstanceClass"])
    if cls != "db.serverless":
        yield line(r, book, f"{cls} hours", book.hours, "aurora_instance_hour", cls)
        return
    # Serverless v2 bills ACU-seconds while active; a paused instance (0 ACU) bills none.
    scaling: dict[str, Any] = next(
        (
            c.properties.get("ServerlessV2ScalingConfiguration", {})
            for c in env.of_type("AWS::RDS::DBCluster")
        ),
        {},
    )
    floor = float(scaling.get("MinCapacity", 0.5))
    acu = max(floor, a["serverless_average_acu"])
    active = a["serverless_active_hours_per_day"] if floor == 0 else 24
    item = f"Serverless v2: {active:g} h/day at {acu:g} ACU on average"
    item += ", paused otherwise" if floor == 0 else f", never below {floor:g} ACU"
    yield line(r, book, item, active * DAYS * acu, "aurora_serverless_v2_acu_hour")


@prices("AWS::RDS::DBCluster")
def db_cluster(r: Resource, book: PriceBook, a: dict[str, float], _: Environment) -> Iterator[Line]:
    yield line(r, book, "storage (assumed)", a["aurora_storage_gb"], "aurora_storage_gb_month")
    yield line(r, book, "I/O (assumed)", a["aurora_io_million"], "aurora_io_million")
    requests = a["validations_per_day"] * DAYS * a["data_api_requests_per_validation"] / 1e6
    yield line(r, book, "Data API requests", requests, "data_api_million")


@prices("AWS::KMS::Key")
def kms(r: Resource, book: PriceBook, a: dict[str, float], _: Environment) -> Iterator[Line]:
    yield line(r, book, "customer-managed key", 1, "kms_key_month")
    yield line(r, book, "requests (assumed)", a["kms_requests_per_month"] / 1e4, "kms_10k_requests")


@prices("AWS::SecretsManager::Secret")
def secret(r: Resource, book: PriceBook, _: dict[str, float], __: Environment) -> Iterator[Line]:
    yield line(r, book, "secret", 1, "secret_month")


@prices("AWS::Logs::LogGroup")
def log_group(r: Resource, book: PriceBook, a: dict[str, float], _: Environment) -> Iterator[Line]:
    yield line(r, book, "ingestion (assumed)", a["log_gb_per_group"], "logs_ingest_gb")
    kept = a["log_gb_per_group"] * r.properties["RetentionInDays"] / DAYS  # steady state
    yield line(
        r,
        book,
        f"storage, {r.properties['RetentionInDays']} days kept",
        kept,
        "logs_store_gb_month",
    )


@prices("AWS::Lambda::Function")
def function(r: Resource, book: PriceBook, a: dict[str, float], env: Environment) -> Iterator[Line]:
    is_validation = any(
        "LambdaConfigurations" in b.properties.get("NotificationConfiguration", {})
        and r.logical_id in str(b.properties["NotificationConfiguration"])
        for b in env.of_type("AWS::S3::Bucket")
    )
    invocations = (
        a["validations_per_day"] * DAYS if is_validation else 4
    )  # rotation: 4 steps a month
    gb_seconds = (
        invocations * a["lambda_seconds_per_validation"] * float(r.properties["MemorySize"]) / 1024
    )
    yield line(r, book, "compute (arm64)", gb_seconds, "lambda_arm_gb_second")
    yield line(r, book, "requests", invocations / 1e6, "lambda_million_requests")


@prices("AWS::S3::Bucket")
def bucket(r: Resource, book: PriceBook, a: dict[str, float], _: Environment) -> Iterator[Line]:
    documents = "NotificationConfiguration" in r.properties
    stored = a["s3_stored_gb"] if documents else a["trail_bucket_gb"]
    yield line(r, book, "storage (assumed)", stored, "s3_gb_month")
    if documents:
        yield line(
            r, book, "result documents written", a["validations_per_day"] * DAYS / 1e3, "s3_1k_puts"
        )


@prices("AWS::CloudTrail::Trail")
def trail(r: Resource, book: PriceBook, a: dict[str, float], _: Environment) -> Iterator[Line]:
    events = a["validations_per_day"] * DAYS * 2  # each document written and read once
    yield line(r, book, "S3 data events", events / 1e5, "cloudtrail_100k_data_events")
    # A multi-region trail's management events are free only as the account's first copy; where
    # an organisation trail already records them, this one is a billed second copy in every
    # region ("Managing CloudTrail costs"): EnableCloudTrail=false switches it off.
    yield line(
        r,
        book,
        "management events, billed if an organisation trail already records them "
        "(then deploy with EnableCloudTrail=false)",
        a["management_events_per_month"] / 1e5,
        "cloudtrail_100k_management_events_copy",
    )


@prices("AWS::SQS::Queue")
def queue(r: Resource, book: PriceBook, a: dict[str, float], _: Environment) -> Iterator[Line]:
    yield line(
        r, book, "requests (assumed)", a["dlq_requests_per_month"] / 1e6, "sqs_million_requests"
    )


@prices("AWS::CloudWatch::Alarm")
def alarm(r: Resource, book: PriceBook, _: dict[str, float], __: Environment) -> Iterator[Line]:
    yield line(r, book, "standard alarm", 1, "alarm_month")


@prices("AWS::Logs::MetricFilter")
def metric_filter(
    r: Resource, book: PriceBook, _: dict[str, float], __: Environment
) -> Iterator[Line]:
    yield line(r, book, "custom metric", 1, "custom_metric_month")


@prices("AWS::Backup::BackupVault")
def backup_vault(
    r: Resource, book: PriceBook, a: dict[str, float], _: Environment
) -> Iterator[Line]:
    yield line(
        r, book, "recovery points stored (assumed)", a["backup_gb"], "backup_aurora_gb_month"
    )


def unpriced_types(env: Environment, book: PriceBook) -> set[str]:
    known = set(PRICERS) | set(book.data["no_charge"])
    return {r.type for r in env.resources.values()} - known


def estimate(env: Environment, region: str = "us-east-1") -> tuple[list[Line], dict[str, float]]:
    """(priced lines, assumptions used) for one environment."""
    book = PriceBook(region)
    missing = unpriced_types(env, book)
    if missing:
        raise KeyError(
            f"no price entry for {', '.join(sorted(missing))} in data/prices-{region}.json"
        )
    assumptions = book.assumptions(env.parameters[ENVIRONMENT_TYPE])
    lines = [
        priced
        for r in env.resources.values()
        if r.type in PRICERS
        for priced in PRICERS[r.type](r, book, assumptions, env)
    ]
    return lines, assumptions
