"""The verify handler on moto: every reason code, acceptance into the lake, idempotency and crash safety."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError

from mlvault.errors import IngestReason
from mlvault.ingest.protocol import METADATA_KEY, Claim, encode_metadata, sign
from mlvault.ledger import Ledger
from mlvault.signing.dsse import PAYLOAD_TYPE, Envelope, pae
from mlvault_tools import testkeys
from mlvault_tools.samples import iris_csv
from mlvault_tools.testkeys import signer
from tests.handlers.conftest import LambdaContext, load_handler, s3_body, sqs_event

verify = load_handler("verify")
reconcile = load_handler("reconcile")
BODY = iris_csv(20, seed=1)  # satisfies contracts/iris.json
TAMPERED = BODY[:-3] + bytes([BODY[-3] ^ 1]) + BODY[-2:]  # one bit flipped in the last label


def claim_for(key: str, body: bytes = BODY, **changes) -> Claim:
    return testkeys.claim_for(key, body, **changes)


def upload(env, key: str, body: bytes = BODY, metadata: dict | None = None) -> str:
    return env["s3"].put_object(Bucket=env["ingest"], Key=key, Body=body, Metadata=metadata or {})["VersionId"]


def signed(claim: Claim, key_id: str = "acme-p256") -> dict:
    return testkeys.signed_metadata(claim, key_id)


def handle(env, key: str, version: str, size: int = len(BODY)) -> dict:
    return verify.handler(sqs_event(s3_body(env["ingest"], key, version, size)), LambdaContext())


def record(env, key: str, version: str):
    return Ledger(env["ddb"], "ledger").get(env["ingest"], key, version)


K = "producers/acme/iris/batch.csv"
SOON = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# reason -> (object key, body, metadata builder, extra setup)
CASES = {
    IngestReason.INVALID_OBJECT_KEY: ("producers/acme/batch.csv", BODY, lambda: {}, None),
    IngestReason.MISSING_SIGNATURE: (K, BODY, lambda: {}, None),
    IngestReason.ENVELOPE_TOO_LARGE: (K, BODY, lambda: {METADATA_KEY: "A" * 1900}, None),
    IngestReason.MALFORMED_ENVELOPE: (K, BODY, lambda: {METADATA_KEY: "bm90IGpzb24="}, None),
    IngestReason.UNKNOWN_PRODUCER: (
        "producers/initech/iris/b.csv",
        BODY,
        lambda: signed(claim_for("producers/initech/iris/b.csv")),
        None,
    ),
    IngestReason.UNKNOWN_KEY: (K, BODY, lambda: signed(claim_for(K), "mallory-p256"), None),
    IngestReason.KEY_EXPIRED: (K, BODY, lambda: signed(claim_for(K), "acme-old-p256"), None),
    IngestReason.KEY_REVOKED: (
        K,
        BODY,
        lambda: signed(claim_for(K), "acme-ed25519"),
        lambda env: Ledger(env["ddb"], "ledger").revoke(
            "acme-ed25519", effective_at=datetime.now(UTC) - timedelta(minutes=1), reason="leaked", revoked_by="test"
        ),
    ),
    IngestReason.INVALID_SIGNATURE: (
        K,
        BODY,
        lambda: {METADATA_KEY: encode_metadata(replace(sign(claim_for(K), signer("globex-p256")), keyid="acme-p256"))},
        None,
    ),
    IngestReason.MALFORMED_STATEMENT: (
        K,
        BODY,
        lambda: {
            METADATA_KEY: encode_metadata(
                Envelope(PAYLOAD_TYPE, b"{}", "acme-p256", signer("acme-p256").sign(pae(PAYLOAD_TYPE, b"{}")))
            )
        },
        None,
    ),
    IngestReason.SUBJECT_MISMATCH: (K, BODY, lambda: signed(claim_for("producers/acme/iris/other.csv")), None),
    IngestReason.PRODUCER_MISMATCH: (K, BODY, lambda: signed(claim_for(K, producer="globex")), None),
    IngestReason.DATASET_MISMATCH: (K, BODY, lambda: signed(claim_for(K, dataset="sales")), None),
    IngestReason.DATASET_NOT_ALLOWED: (
        "producers/acme/weather/b.csv",
        BODY,
        lambda: signed(claim_for("producers/acme/weather/b.csv")),
        None,
    ),
    IngestReason.FUTURE_SIGNATURE: (
        K,
        BODY,
        lambda: signed(claim_for(K, issued_at=iso(SOON), expires_at=iso(SOON + timedelta(hours=1)))),
        None,
    ),
    IngestReason.STALE_SIGNATURE: (
        K,
        BODY,
        lambda: signed(
            claim_for(K, issued_at=iso(SOON - timedelta(hours=5)), expires_at=iso(SOON - timedelta(hours=4)))
        ),
        None,
    ),
    IngestReason.SIZE_MISMATCH: (K, BODY + b"x", lambda: signed(claim_for(K)), None),
    IngestReason.DIGEST_MISMATCH: (K, TAMPERED, lambda: signed(claim_for(K)), None),
    IngestReason.TOO_LARGE: (K, b"x" * 2048, lambda: signed(claim_for(K, b"x" * 2048)), lambda env: None),
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_each_reason_code_is_recorded_and_quarantined(ingest_env, monkeypatch, reason):
    key, body, metadata, setup = CASES[reason]
    if reason == IngestReason.TOO_LARGE:
        monkeypatch.setenv("MLVAULT_MAX_UPLOAD_BYTES", "1024")
    if setup:
        setup(ingest_env)
    version = upload(ingest_env, key, body, metadata())
    assert handle(ingest_env, key, version, len(body)) == {"batchItemFailures": []}
    rec = record(ingest_env, key, version)
    assert rec.status == "REJECTED"
    assert rec.attributes["reason"] == reason, rec.attributes["detail"]
    quarantined = ingest_env["s3"].get_object(
        Bucket=ingest_env["quarantine"],
        Key=rec.attributes["quarantine_key"],
        VersionId=rec.attributes["quarantine_version"],
    )
    assert quarantined["Body"].read() == body
    assert not ingest_env["s3"].list_objects_v2(Bucket=ingest_env["lake"]).get("Contents")
    alert = json.loads(ingest_env["sqs"].receive_message(QueueUrl=ingest_env["alerts"])["Messages"][0]["Body"])
    assert alert["reason"] == reason
    event = json.loads(ingest_env["sqs"].receive_message(QueueUrl=ingest_env["events"])["Messages"][0]["Body"])
    assert event["detail-type"] == "Upload Rejected"
    assert event["detail"]["version_id"] == version
    tags = ingest_env["s3"].get_object_tagging(Bucket=ingest_env["ingest"], Key=key, VersionId=version)["TagSet"]
    assert {"Key": "mlvault:verdict", "Value": "recorded"} in tags


def test_every_reason_code_has_a_test():
    elsewhere = {
        IngestReason.SOURCE_MISSING,
        IngestReason.REPLAYED_SIGNATURE,
        IngestReason.LAKE_CONFLICT,
        IngestReason.UNVERIFIED_TIMEOUT,
    }
    assert set(CASES) | elsewhere == set(tuple(IngestReason))


def test_a_valid_upload_lands_in_the_lake_version_pinned(ingest_env):
    version = upload(ingest_env, K, BODY, signed(claim_for(K)))
    handle(ingest_env, K, version)
    rec = record(ingest_env, K, version)
    assert rec.status == "ACCEPTED"
    digest = hashlib.sha256(BODY).hexdigest()
    assert rec.attributes["sha256"] == digest
    assert rec.attributes["key_id"] == "acme-p256"
    assert rec.attributes["lake_key"] == f"datasets/iris/acme/sha256={digest}/batch.csv"
    lake = ingest_env["s3"].get_object(
        Bucket=ingest_env["lake"], Key=rec.attributes["lake_key"], VersionId=rec.attributes["lake_version"]
    )
    assert lake["Body"].read() == BODY
    assert lake["Metadata"]["mlvault-ingest-version"] == version
    event = json.loads(ingest_env["sqs"].receive_message(QueueUrl=ingest_env["events"])["Messages"][0]["Body"])
    assert event["detail-type"] == "Upload Accepted"
    assert not ingest_env["sqs"].receive_message(QueueUrl=ingest_env["alerts"]).get("Messages")


def test_source_missing_when_the_version_is_deleted_before_it_is_read(ingest_env):
    version = upload(ingest_env, K, BODY, signed(claim_for(K)))
    ingest_env["s3"].delete_object(Bucket=ingest_env["ingest"], Key=K, VersionId=version)
    handle(ingest_env, K, version)
    rec = record(ingest_env, K, version)
    assert rec.status == "REJECTED"
    assert rec.attributes["reason"] == IngestReason.SOURCE_MISSING
    assert "quarantine_key" not in rec.attributes


def test_a_replayed_envelope_is_rejected(ingest_env):
    metadata = signed(claim_for(K))
    first = upload(ingest_env, K, BODY, metadata)
    second = upload(ingest_env, K, BODY, metadata)  # the same signed envelope, uploaded again
    handle(ingest_env, K, first)
    handle(ingest_env, K, second)
    assert record(ingest_env, K, first).status == "ACCEPTED"
    assert record(ingest_env, K, second).attributes["reason"] == IngestReason.REPLAYED_SIGNATURE


def test_lake_conflict_when_the_content_address_holds_other_bytes(ingest_env):
    digest = hashlib.sha256(BODY).hexdigest()
    ingest_env["s3"].put_object(
        Bucket=ingest_env["lake"],
        Key=f"datasets/iris/acme/sha256={digest}/batch.csv",
        Body=b"other",
        Metadata={"mlvault-sha256": "0" * 64},
    )
    version = upload(ingest_env, K, BODY, signed(claim_for(K)))
    handle(ingest_env, K, version)
    assert record(ingest_env, K, version).attributes["reason"] == IngestReason.LAKE_CONFLICT


def test_duplicate_and_redelivered_events_leave_one_record_and_one_lake_version(ingest_env):
    version = upload(ingest_env, K, BODY, signed(claim_for(K)))
    body = s3_body(ingest_env["ingest"], K, version, len(BODY))
    verify.handler(sqs_event(body, body), LambdaContext())
    verify.handler(sqs_event(body), LambdaContext())
    assert len(Ledger(ingest_env["ddb"], "ledger").versions(ingest_env["ingest"], K)) == 1
    versions = ingest_env["s3"].list_object_versions(Bucket=ingest_env["lake"])["Versions"]
    assert len(versions) == 1


def test_a_crash_between_the_lake_write_and_the_ledger_write_is_safe_to_retry(ingest_env, monkeypatch):
    version = upload(ingest_env, K, BODY, signed(claim_for(K)))
    original = Ledger.record_verdict

    def crash(self, **kwargs):
        raise ClientError(
            {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "UpdateItem",
        )

    monkeypatch.setattr(Ledger, "record_verdict", crash)
    event = sqs_event(s3_body(ingest_env["ingest"], K, version, len(BODY)))
    with pytest.raises(BatchProcessingError):  # the whole batch failed: Lambda retries it, nothing is rejected
        verify.handler(event, LambdaContext())
    assert record(ingest_env, K, version).status == "RECEIVED"
    monkeypatch.setattr(Ledger, "record_verdict", original)
    assert verify.handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert record(ingest_env, K, version).status == "ACCEPTED"
    assert len(ingest_env["s3"].list_object_versions(Bucket=ingest_env["lake"])["Versions"]) == 1


def test_throttled_kms_is_retried_never_a_bad_signature(ingest_env, monkeypatch):
    from mlvault import composition as service

    version = upload(ingest_env, K, BODY, signed(claim_for(K)))
    verifier = service.default_verifier()

    def throttled(key):
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "rate"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
            "GetPublicKey",
        )

    monkeypatch.setattr(verifier, "_public_key", throttled)
    other = upload(ingest_env, "producers/acme/iris/unsigned.csv", BODY)
    event = sqs_event(
        s3_body(ingest_env["ingest"], K, version, len(BODY)),
        s3_body(ingest_env["ingest"], "producers/acme/iris/unsigned.csv", other, len(BODY)),
    )
    result = verify.handler(event, LambdaContext())
    assert result["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert record(ingest_env, K, version).status == "RECEIVED"  # no verdict: retried later
    assert record(ingest_env, "producers/acme/iris/unsigned.csv", other).attributes["reason"] == "MISSING_SIGNATURE"


def test_reconciler_redrives_then_quarantines_unverified_versions(ingest_env):
    version = upload(ingest_env, K, BODY, signed(claim_for(K)))  # no notification reached the verifier
    first = reconcile.handler({}, LambdaContext())
    assert first["redriven"] == 1
    assert first["unaccounted"] == 1
    messages = ingest_env["sqs"].receive_message(QueueUrl=ingest_env["ingest_queue"])["Messages"]
    assert json.loads(messages[0]["Body"])["Records"][0]["s3"]["object"]["versionId"] == version
    second = reconcile.handler({}, LambdaContext())  # MLVAULT_RECONCILE_MAX_REDRIVES=1: now quarantined
    assert second["quarantined"] == 1
    rec = record(ingest_env, K, version)
    assert rec.attributes["reason"] == IngestReason.UNVERIFIED_TIMEOUT
    assert reconcile.handler({}, LambdaContext())["unaccounted"] == 0
    import boto3

    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="mlvault",
        MetricName="Unaccounted",
        Dimensions=[{"Name": "Stage", "Value": "test"}],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum", "Minimum", "SampleCount"],
    )["Datapoints"]
    assert sum(d["SampleCount"] for d in stats) == 3  # one data point per run: 1, 1, then 0 when healthy
    assert max(d["Maximum"] for d in stats) == 1
    assert min(d["Minimum"] for d in stats) == 0


def test_a_kms_signed_upload_is_verified_with_the_registered_kms_key(ingest_env, monkeypatch, tmp_path):
    import boto3

    from mlvault.signing.keys import KmsSigner

    kms = boto3.client("kms")
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    registry = json.loads((Path(__file__).resolve().parents[2] / "trust/dev.json").read_text())
    registry["producers"]["acme"]["keys"].append(
        {
            "id": "acme-kms",
            "algorithm": "ecdsa-p256-sha256",
            "kms_key_arn": arn,
            "not_before": "2026-01-01T00:00:00Z",
            "not_after": "2030-01-01T00:00:00Z",
        }
    )
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust/dev.json").write_text(json.dumps(registry))
    shutil.copytree(Path(__file__).resolve().parents[2] / "contracts", tmp_path / "contracts")
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    metadata = {METADATA_KEY: encode_metadata(sign(claim_for(K), KmsSigner(kms, arn, "acme-kms")))}
    version = upload(ingest_env, K, BODY, metadata)
    handle(ingest_env, K, version)
    rec = record(ingest_env, K, version)
    assert rec.status == "ACCEPTED"
    assert rec.attributes["key_id"] == "acme-kms"
