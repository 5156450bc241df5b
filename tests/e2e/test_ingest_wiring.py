"""An upload flows through the synthesized wiring: S3 notification -> SQS -> verify function -> ledger,
lake or quarantine."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote_plus

import pytest

from mlvault_tools.samples import iris_csv
from tests.e2e.conftest import eventually, run_cli


def test_a_signed_upload_lands_in_the_lake(ingest):
    key = "producers/acme/iris/batch-0001.csv"
    body = iris_csv(30, 1)
    version = ingest.signed_upload(key, body)
    record = ingest.verdict(key, version)
    assert record["status"] == "ACCEPTED", record.get("detail")
    assert record["size"] == str(len(body))
    assert record["sha256"] == hashlib.sha256(body).hexdigest()
    assert record["key_id"] == "acme-p256"
    lake = ingest.s3.get_object(Bucket=record["lake_bucket"], Key=record["lake_key"], VersionId=record["lake_version"])
    assert lake["Body"].read() == body
    assert lake["ObjectLockMode"] == "COMPLIANCE"
    # the verdict tag comes last, once the verdict is announced (it lets the lifecycle expire the version)
    eventually(
        lambda: (
            {"Key": "mlvault:verdict", "Value": "recorded"}
            in ingest.s3.get_object_tagging(Bucket=ingest.bucket, Key=key, VersionId=version)["TagSet"]
        )
    )


def test_an_unsigned_upload_is_quarantined(ingest):
    key = "producers/acme/iris/unsigned.csv"
    version = ingest.upload(key, b"1,2\n")
    record = ingest.verdict(key, version)
    assert record["status"] == "REJECTED"
    assert record["reason"] == "MISSING_SIGNATURE"
    quarantined = ingest.s3.get_object(
        Bucket=record["quarantine_bucket"], Key=record["quarantine_key"], VersionId=record["quarantine_version"]
    )
    assert quarantined["Body"].read() == b"1,2\n"


def test_keys_arrive_url_encoded_and_are_decoded(ingest):
    key = "producers/acme/iris/batch 2+final=ok.csv"
    version = ingest.signed_upload(key)
    assert ingest.verdict(key, version)["status"] == "ACCEPTED"
    notifications = [e for e in ingest.cloud.events("s3-notification") if e["key"] == key]
    assert notifications[0]["version_id"] == version
    assert quote_plus(key) != key  # the case is real: S3 encodes this key in its events


def test_every_version_of_an_overwritten_key_gets_its_own_verdict(ingest):
    key = "producers/acme/iris/overwritten.csv"
    first = ingest.signed_upload(key, iris_csv(10, 2))
    second = ingest.upload(key, b"2\n")  # overwritten at once by an unsigned version
    assert ingest.verdict(key, first)["status"] == "ACCEPTED"
    assert ingest.verdict(key, second)["reason"] == "MISSING_SIGNATURE"


def test_uploads_outside_producer_prefixes_are_refused(ingest):
    with pytest.raises(ingest.s3.exceptions.ClientError) as err:
        ingest.upload("elsewhere/file.csv")
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_a_redelivered_event_does_not_create_a_second_record(ingest):
    key = "producers/acme/iris/duplicate.csv"
    version = ingest.signed_upload(key)
    first = ingest.verdict(key, version)
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": ingest.bucket}, "object": {"key": key, "versionId": version, "size": 8}},
            }
        ]
    }
    before = len(ingest.cloud.events("sqs-batch"))
    ingest.sqs.send_message(QueueUrl=ingest.queue_url, MessageBody=json.dumps(event))
    eventually(lambda: len(ingest.cloud.events("sqs-batch")) > before)
    (record,) = ingest.records(key)
    assert record["verdict_at"]["S"] == first["verdict_at"]


def test_a_batch_reports_only_its_failed_messages(ingest):
    key = "producers/acme/iris/batch-item.csv"
    version = ingest.signed_upload(key)
    ingest.verdict(key, version)
    good = {"Records": [{"s3": {"bucket": {"name": ingest.bucket}, "object": {"key": key, "versionId": version}}}]}
    bad = {"Records": [{"s3": {"bucket": {"name": ingest.bucket}, "object": {"key": "producers/x/y.csv"}}}]}
    before = len(ingest.cloud.events("sqs-batch"))
    ingest.sqs.send_message_batch(
        QueueUrl=ingest.queue_url,
        Entries=[{"Id": str(i), "MessageBody": json.dumps(body)} for i, body in enumerate([good, bad, good])],
    )
    batches = eventually(lambda: [e for e in ingest.cloud.events("sqs-batch")[before:] if e["failed"]])
    assert batches[0]["failed"] == 1
    depth = ingest.sqs.get_queue_attributes(
        QueueUrl=ingest.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert int(depth["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) >= 1  # the failed one waits


def test_cli_status_reports_the_deployed_app(cloud):
    result = run_cli(cloud, "local", "status", "--json", "--state-dir", str(cloud.state_dir))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["endpoint"] == cloud.endpoint
    assert report["resources"]["AWS::S3::Bucket"] == 6  # ingest, lake, quarantine, models, access logs, signed code
    assert report["resources"]["AWS::Lambda::EventSourceMapping"] == 1
    functions = report["functions"].values()
    assert {f["handler"] for f in functions} == {"handler.handler"}
    signer = [f for f in functions if not f["layers"]]  # the bootstrap exception: runs unsigned, without layers
    assert len(signer) == 1
    assert all(any("third-party" in layer for layer in f["layers"]) for f in functions if f["layers"])
