"""Sessions from ``new_session`` share the parsed service models and nothing else: each keeps
its own credentials, and their clients work against a real moto server."""

from __future__ import annotations

from typing import Any

from integrations.aws.sessions import new_session
from tests.moto_server import MotoServer, moto_fixtures

moto_server, moto = moto_fixtures()


def s3_client(moto: MotoServer, key: str) -> Any:
    return new_session().client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=f"{key}-secret",
    )


def access_key(client: Any) -> str:
    return str(client._request_signer._credentials.get_frozen_credentials().access_key)


def test_two_sessions_parse_a_service_model_once_and_keep_their_own_credentials(
    moto: MotoServer,
) -> None:
    first, second = s3_client(moto, "AKIAFIRST"), s3_client(moto, "AKIASECOND")

    first_model = first.meta.service_model._service_description
    assert second.meta.service_model._service_description is first_model
    assert (access_key(first), access_key(second)) == ("AKIAFIRST", "AKIASECOND")

    first.create_bucket(Bucket="shared-models")
    first.put_object(Bucket="shared-models", Key="a.json", Body=b"{}")
    listed = second.list_objects_v2(Bucket="shared-models")
    assert [item["Key"] for item in listed["Contents"]] == ["a.json"]
