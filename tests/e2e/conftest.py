"""The running local cloud, provisioned from the app synthesized for this test run (the same assembly
`cdk synth` writes). Tests drive it only through its public surface: uploads, the CLI, queries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mlvault.localcloud import control


@pytest.fixture(scope="session")
def cloud(synthesized, tmp_path_factory) -> Iterator[control.Handle]:
    state_dir = tmp_path_factory.mktemp("local-cloud")
    handle = control.up(cdk_out=synthesized.outdir, state_dir=state_dir)
    try:
        yield handle
    finally:
        control.down(state_dir)


def eventually(probe: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until probe() is truthy; fail with the last value after the timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s (last value: {value!r})")


class Ingest:
    """The ingest side of the deployed app, as a producer and an operator see it."""

    def __init__(self, cloud: control.Handle) -> None:
        self.cloud = cloud
        self.s3 = cloud.client("s3")
        self.ddb = cloud.client("dynamodb")
        self.sqs = cloud.client("sqs")
        self.bucket = cloud.physical_id("-storage", "AWS::S3::Bucket", "IngestBucket")
        self.lake = cloud.physical_id("-storage", "AWS::S3::Bucket", "LakeBucket")
        self.ledger = cloud.physical_id("-storage", "AWS::DynamoDB::Table", "LedgerTable")
        self.queue_url = cloud.physical_id("-storage", "AWS::SQS::Queue", "IngestEventsQueue")

    def upload(self, key: str, body: bytes = b"a,b\n1,2\n", **kwargs: Any) -> str:
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **kwargs)["VersionId"]

    def records(self, key: str) -> list[dict[str, Any]]:
        return self.ddb.query(
            TableName=self.ledger,
            KeyConditionExpression="pk = :pk",
            ConsistentRead=True,
            ExpressionAttributeValues={":pk": {"S": f"OBJ#{self.bucket}/{key}"}},
        )["Items"]


@pytest.fixture(scope="session")
def ingest(cloud) -> Ingest:
    return Ingest(cloud)
