"""What a user names before anything connects, refused in one line that says what to do: a
region that is not one, an emulator URL that is not a URL."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import boto3

from loanstack.errors import UsageError

# Region codes are <area>-<subarea...>-<number>, e.g. us-east-1, us-gov-west-1, ap-southeast-4
# https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
REGION_FORM = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
LIST_REGIONS = "`aws ec2 describe-regions --all-regions --query 'Regions[].RegionName'` lists them"
EXAMPLE_URL = "http://127.0.0.1:4577"


def known_regions() -> set[str]:
    """Every region botocore's endpoint data knows, in every partition (aws, aws-cn,
    aws-us-gov, ...), for CloudFormation: the service every command needs."""
    session = boto3.Session()
    return {
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("cloudformation", partition)
    }


def check_region(region: str, source: str) -> None:
    """A malformed or unknown region is refused before any call (botocore would otherwise try
    a host such as cloudformation.mars-1.amazonaws.com and fail late, or hang)."""
    if not REGION_FORM.match(region):
        raise UsageError(
            f"region {region!r} (from {source}) is not a region code: they look like "
            f"us-east-1 or eu-west-2; {LIST_REGIONS}"
        )
    if region not in known_regions():
        raise UsageError(
            f"region {region} (from {source}) is not one this botocore knows: check the "
            f"spelling, or update boto3 for a new region; {LIST_REGIONS}"
        )


def check_emulator_url(url: str, source: str) -> None:
    """The emulator's URL is http(s)://HOST:PORT; anything else is refused in one line (boto3
    would report it as a ValueError deep inside the first client)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or port is None
        or parts.path not in ("", "/")
    ):
        raise UsageError(
            f"{source}={url!r} is not an emulator URL: it takes http://HOST:PORT, e.g. "
            f"{EXAMPLE_URL}; `loanstack emulator status` prints the running emulator's"
        )
