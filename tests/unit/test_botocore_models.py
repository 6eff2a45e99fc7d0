"""Sessions of one process share botocore's parsed data files, and nothing else."""

from __future__ import annotations

import boto3

from loanstack.botocore_models import share_models


def test_sessions_share_the_parsed_models_but_not_their_credentials_or_region() -> None:
    first = share_models(
        boto3.Session(region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    )
    second = share_models(
        boto3.Session(region_name="us-east-1", aws_access_key_id="c", aws_secret_access_key="d")
    )
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    model = loader.load_service_model("rds-data", "service-2")
    assert (
        second._session.get_component("data_loader").load_service_model("rds-data", "service-2")
        is model
    )  # decoded once
    assert first.get_credentials().access_key == "a" and second.get_credentials().access_key == "c"
    client = second.client("rds-data", endpoint_url="http://127.0.0.1:1")
    assert client.meta.region_name == "us-east-1"
    assert boto3.Session()._session.get_component("data_loader") is not loader  # opt-in only
