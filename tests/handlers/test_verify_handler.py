"""The verify handler on moto: SQS batches of S3 notifications -> ledger records, with partial failures."""

from __future__ import annotations

from mlvault.ledger import Ledger
from tests.handlers.conftest import LambdaContext, load_handler, s3_body, sqs_event

verify = load_handler("verify")


def test_records_each_announced_version(ingest_env):
    s3 = ingest_env["s3"]
    version = s3.put_object(Bucket=ingest_env["ingest"], Key="producers/acme/d/f.csv", Body=b"abc")["VersionId"]
    result = verify.handler(
        sqs_event(s3_body(ingest_env["ingest"], "producers/acme/d/f.csv", version)), LambdaContext()
    )
    assert result == {"batchItemFailures": []}
    record = Ledger(ingest_env["ddb"], "ledger").get(ingest_env["ingest"], "producers/acme/d/f.csv", version)
    assert record.status == "RECEIVED"
    assert record.size == 3
    assert record.attributes["sequencer"] == "01"


def test_duplicates_are_harmless(ingest_env):
    s3 = ingest_env["s3"]
    version = s3.put_object(Bucket=ingest_env["ingest"], Key="producers/acme/d/g.csv", Body=b"abc")["VersionId"]
    body = s3_body(ingest_env["ingest"], "producers/acme/d/g.csv", version)
    assert verify.handler(sqs_event(body, body), LambdaContext()) == {"batchItemFailures": []}
    assert len(Ledger(ingest_env["ddb"], "ledger").versions(ingest_env["ingest"], "producers/acme/d/g.csv")) == 1


def test_only_the_failed_messages_are_reported(ingest_env):
    s3 = ingest_env["s3"]
    version = s3.put_object(Bucket=ingest_env["ingest"], Key="producers/acme/d/h.csv", Body=b"abc")["VersionId"]
    good = s3_body(ingest_env["ingest"], "producers/acme/d/h.csv", version)
    missing = s3_body(ingest_env["ingest"], "producers/acme/d/never-uploaded.csv", "v-missing")
    other_bucket = s3_body("someone-elses-bucket", "producers/acme/d/h.csv", version)
    event = sqs_event(good, missing, other_bucket)
    result = verify.handler(event, LambdaContext())
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert failed == {event["Records"][1]["messageId"], event["Records"][2]["messageId"]}
    assert Ledger(ingest_env["ddb"], "ledger").get(ingest_env["ingest"], "producers/acme/d/h.csv", version)
