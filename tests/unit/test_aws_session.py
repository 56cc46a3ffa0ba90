"""aws/session.py: botocore's data files read lean, the record counts still merged in."""

from __future__ import annotations

import pytest

from batch_poller.aws.session import SERVICES, aws_session


def test_service_models_are_plain_dicts_without_documentation_and_keep_the_extras() -> None:
    loader = aws_session("us-east-1").core.get_component("data_loader")

    model = loader.load_service_model("bedrock", "service-2")

    assert type(model) is dict and type(model["shapes"]) is dict
    assert model["operations"]["GetModelInvocationJob"]["documentation"] == ""
    # service-2.sdk-extras.json, merged into the model as before
    assert "totalRecordCount" in model["shapes"]["GetModelInvocationJobResponse"]["members"]


def test_endpoint_data_is_kept_for_the_services_clients_are_made_for() -> None:
    loader = aws_session("us-east-1").core.get_component("data_loader")

    partitions = loader.load_data("endpoints")["partitions"]

    aws = next(p for p in partitions if p["partition"] == "aws")
    assert {"bedrock", "s3", "sqs", "sts"} <= aws["services"].keys()
    assert all(p["services"].keys() <= SERVICES for p in partitions)
    assert aws["regions"]  # what a partition says of itself stays whole


async def test_a_client_is_made_in_the_sessions_region() -> None:
    session = aws_session("eu-west-3", aws_access_key_id="id", aws_secret_access_key="secret")

    async with session.client("s3", endpoint_url="http://127.0.0.1:9") as s3:
        assert s3.meta.region_name == "eu-west-3"


def test_a_service_whose_endpoint_data_is_not_kept_is_refused() -> None:
    with pytest.raises(ValueError, match="add it to SERVICES"):
        aws_session("us-east-1").client("ec2")
