"""An upload flows through the synthesized wiring: S3 notification -> SQS -> verify function -> ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import quote_plus

import pytest

from tests.e2e.conftest import eventually


def test_an_upload_reaches_the_verify_function_and_the_ledger(ingest):
    key = "producers/acme/iris/batch-0001.csv"
    version = ingest.upload(key, b"x,y\n1,2\n3,4\n")
    (record,) = eventually(lambda: ingest.records(key))
    assert record["version_id"]["S"] == version
    assert record["status"]["S"] == "RECEIVED"
    assert record["size"]["N"] == "12"
    assert record["bucket"]["S"] == ingest.bucket


def test_keys_arrive_url_encoded_and_are_decoded(ingest):
    key = "producers/acme/iris/batch 2+final=ok.csv"
    version = ingest.upload(key)
    (record,) = eventually(lambda: ingest.records(key))
    assert record["key"]["S"] == key
    assert record["version_id"]["S"] == version
    notifications = [e for e in ingest.cloud.events("s3-notification") if e["key"] == key]
    assert notifications
    assert notifications[0]["version_id"] == version
    assert quote_plus(key) != key  # the case is real: S3 encodes this key in its events


def test_every_version_of_an_overwritten_key_is_recorded(ingest):
    key = "producers/acme/iris/overwritten.csv"
    first = ingest.upload(key, b"1\n")
    second = ingest.upload(key, b"2\n")
    records = eventually(lambda: (r := ingest.records(key)) and len(r) == 2 and r)
    assert {r["version_id"]["S"] for r in records} == {first, second}


def test_uploads_outside_producer_prefixes_are_refused(ingest):
    with pytest.raises(ingest.s3.exceptions.ClientError) as err:
        ingest.upload("elsewhere/file.csv")
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_a_redelivered_event_does_not_create_a_second_record(ingest):
    key = "producers/acme/iris/duplicate.csv"
    version = ingest.upload(key)
    eventually(lambda: ingest.records(key))
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-25T00:00:00.000Z",
                "s3": {
                    "bucket": {"name": ingest.bucket},
                    "object": {"key": key, "versionId": version, "size": 8, "sequencer": "00"},
                },
            }
        ]
    }
    before = len(ingest.cloud.events("sqs-batch"))
    ingest.sqs.send_message(QueueUrl=ingest.queue_url, MessageBody=json.dumps(event))
    eventually(lambda: len(ingest.cloud.events("sqs-batch")) > before)
    assert len(ingest.records(key)) == 1


def test_a_batch_reports_only_its_failed_messages(ingest):
    keys = [f"producers/acme/iris/batch-item-{i}.csv" for i in range(2)]
    versions = [ingest.s3.put_object(Bucket=ingest.bucket, Key=k, Body=b"1")["VersionId"] for k in keys]
    for key in keys:
        eventually(lambda key=key: ingest.records(key))
    good = [
        {"Records": [{"s3": {"bucket": {"name": ingest.bucket}, "object": {"key": k, "versionId": v, "size": 1}}}]}
        for k, v in zip(keys, versions, strict=True)
    ]
    bad = {"Records": [{"s3": {"bucket": {"name": ingest.bucket}, "object": {"key": "producers/x/y.csv"}}}]}
    before = len(ingest.cloud.events("sqs-batch"))
    ingest.sqs.send_message_batch(
        QueueUrl=ingest.queue_url,
        Entries=[{"Id": str(i), "MessageBody": json.dumps(body)} for i, body in enumerate([*good, bad])],
    )
    batches = eventually(lambda: [e for e in ingest.cloud.events("sqs-batch")[before:] if e["failed"]])
    assert batches[0]["failed"] == 1
    assert batches[0]["messages"] - batches[0]["failed"] >= 0
    depth = ingest.sqs.get_queue_attributes(
        QueueUrl=ingest.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert int(depth["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) >= 1  # the failed one waits


def test_cli_status_reports_the_deployed_app(cloud):
    result = subprocess.run(
        [sys.executable, "-m", "mlvault.cli", "local", "status", "--json", "--state-dir", str(cloud.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["endpoint"] == cloud.endpoint
    assert report["resources"]["AWS::S3::Bucket"] == 5
    assert report["resources"]["AWS::Lambda::EventSourceMapping"] == 1
    (function,) = report["functions"].values()
    assert function["handler"] == "handler.handler"
    assert any("third-party" in layer for layer in function["layers"])
    assert any(e["kind"] == "ready" for e in cloud.events())
