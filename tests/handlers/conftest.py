"""Handler tests: the real handler modules on moto (in-process, no server), with fake credentials."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from types import ModuleType

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"


def load_handler(name: str) -> ModuleType:
    """Import lambdas/<name>/handler.py under a distinct module name (every function has a handler.py)."""
    path = ROOT / "lambdas" / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"mlvault_lambda_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    function_name = "verify"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:verify"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sqs_event(*bodies: dict) -> dict:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "rh",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:ingest",
                "awsRegion": REGION,
            }
            for body in bodies
        ]
    }


def s3_body(bucket: str, key: str, version_id: str, size: int = 1) -> dict:
    return {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-25T12:00:00.000Z",
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": key, "versionId": version_id, "size": size, "sequencer": "01"},
                },
            }
        ]
    }


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def versioned_buckets(s3, *names: str) -> None:
    """Versioned buckets, as the storage stack makes every bucket (Object Lock aside: moto's own tests cover it)."""
    for name in names:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def key_value_table(ddb, name: str) -> None:
    """A table keyed like the ledger and the registry (string `pk`, string `sk`), billed per request."""
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )


@pytest.fixture
def ingest_env(aws, monkeypatch):
    """The storage stack's buckets, ledger, queue, topic and event rule as the handlers see them, and the
    functions' environment."""
    s3 = boto3.client("s3")
    ddb = boto3.client("dynamodb")
    sqs = boto3.client("sqs")
    names = {"ingest": "mlvault-test-ingest", "lake": "mlvault-test-lake", "quarantine": "mlvault-test-quarantine"}
    versioned_buckets(s3, *names.values())
    key_value_table(ddb, "ledger")
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    alerts = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=_arn(sqs, alerts), Attributes={"RawMessageDelivery": "true"})
    events = sqs.create_queue(QueueName="events")["QueueUrl"]
    eventbridge = boto3.client("events")
    eventbridge.put_rule(Name="ingest", EventPattern=json.dumps({"source": ["mlvault.ingest"]}))
    eventbridge.put_targets(Rule="ingest", Targets=[{"Id": "q", "Arn": _arn(sqs, events)}])
    ingest_queue = sqs.create_queue(QueueName="ingest")["QueueUrl"]
    env = {
        "MLVAULT_STAGE": "test",
        "MLVAULT_INGEST_BUCKET": names["ingest"],
        "MLVAULT_LAKE_BUCKET": names["lake"],
        "MLVAULT_QUARANTINE_BUCKET": names["quarantine"],
        "MLVAULT_LEDGER_TABLE": "ledger",
        "MLVAULT_MAX_UPLOAD_BYTES": "1048576",
        "POWERTOOLS_SERVICE_NAME": "verify",
        "MLVAULT_ALERT_TOPIC_ARN": topic,
        "MLVAULT_TRUST_FILE": "trust/dev.json",
        "MLVAULT_CONTRACTS_DIR": "contracts",
        "MLVAULT_INGEST_QUEUE_URL": ingest_queue,
        "LAMBDA_TASK_ROOT": str(ROOT),
        "MLVAULT_RECONCILE_DEADLINE_SECONDS": "0",
        "MLVAULT_RECONCILE_MAX_REDRIVES": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from mlvault import composition as service

    cached = (service.ingest_settings, service.default_verifier, service.default_reconciler, service.default_reviewer)
    for function in cached:
        function.cache_clear()
    yield {"s3": s3, "ddb": ddb, "sqs": sqs, "alerts": alerts, "events": events, "ingest_queue": ingest_queue, **names}
    for function in cached:
        function.cache_clear()


def _arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
