"""Every version gets a verdict (issue 11, item 2): a correctly signed upload under any file name the grammar allows
(non-ASCII included) is accepted into the lake; any other key is INVALID_OBJECT_KEY, quarantined under a key that
no path normaliser resolves elsewhere; nothing derived from a key makes the verifier cycle a message to the DLQ.

Each upload is correctly signed for its own key (the subject is that key): only the key decides. On moto."""

from __future__ import annotations

import json
from urllib.parse import quote_plus, unquote

import pytest

from mlvault.ingest.protocol import METADATA_KEY
from mlvault.ledger import Ledger
from mlvault_tools import testkeys
from mlvault_tools.samples import iris_csv
from tests.handlers.conftest import LambdaContext, load_handler, sqs_event

verify = load_handler("verify")
reconcile = load_handler("reconcile")
review = load_handler("review")
BODY = iris_csv(20, seed=3)
S3_MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8 bytes)


def notified(env, key: str, version: str, body: bytes = BODY) -> dict:
    """The notification S3 sends: the key URL-encoded (spaces as '+'), as in tests/events/."""
    message = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-25T12:00:00.000Z",
                "s3": {
                    "bucket": {"name": env["ingest"]},
                    "object": {"key": quote_plus(key, safe="/"), "versionId": version, "size": len(body)},
                },
            }
        ]
    }
    return verify.handler(sqs_event(message), LambdaContext())


def push(env, key: str, body: bytes = BODY, *, signed: bool = True, metadata: dict | None = None):
    if metadata is None:
        metadata = testkeys.signed_metadata(testkeys.claim_for(key, body), "acme-p256") if signed else {}
    version = env["s3"].put_object(Bucket=env["ingest"], Key=key, Body=body, Metadata=metadata)["VersionId"]
    assert notified(env, key, version, body) == {"batchItemFailures": []}  # a verdict, not a retry
    return version, Ledger(env["ddb"], "ledger").get(env["ingest"], key, version)


NON_ASCII = [
    "producers/acme/iris/données été 2026.csv",
    "producers/acme/iris/分析/批次-一.csv",
    "producers/acme/iris/Ünïcødé — “quotes” + 100% ✓.csv",
    "producers/acme/iris/ملف.csv",
    "producers/acme/iris/emoji-😀.csv",
]


@pytest.mark.parametrize("key", NON_ASCII, ids=["latin", "cjk-subdir", "symbols", "arabic", "emoji"])
def test_a_signed_upload_with_a_non_ascii_name_is_accepted_into_the_lake(ingest_env, key):
    version, rec = push(ingest_env, key)
    assert rec.status == "ACCEPTED", rec.attributes.get("detail")
    name = key.split("/", 3)[3]
    assert rec.attributes["lake_key"] == f"datasets/iris/acme/sha256={rec.attributes['sha256']}/{name}"
    lake = ingest_env["s3"].get_object(
        Bucket=ingest_env["lake"], Key=rec.attributes["lake_key"], VersionId=rec.attributes["lake_version"]
    )
    assert lake["Body"].read() == BODY
    encoded = lake["Metadata"]["mlvault-ingest-key"]
    assert encoded.isascii()
    assert unquote(encoded) == key  # percent-encoded UTF-8 (docs/signing.md)
    assert lake["Metadata"]["mlvault-ingest-version"] == version


LONG = "producers/acme/iris/" + "a" * 890  # 910 bytes: over the 900-byte limit, within S3's 1024
INVALID = {
    "dot-dot-into-another-producer": "producers/acme/iris/../../globex/sales/x.csv",
    "dot-dot-at-the-end": "producers/acme/iris/sub/..",
    "dot": "producers/acme/iris/./x.csv",
    "dot-alone": "producers/acme/iris/.",
    "empty-segment": "producers/acme/iris/sub//x.csv",
    "trailing-slash": "producers/acme/iris/sub/",
    "c0-control": "producers/acme/iris/x\x01y.csv",
    "escape": "producers/acme/iris/x\x1b[31m.csv",
    "line-break": "producers/acme/iris/x\ny.csv",
    "del": "producers/acme/iris/x\x7fy.csv",
    "c1-control": "producers/acme/iris/x\x85y.csv",
    "backslash-traversal": "producers/acme/iris/..\\..\\globex\\x.csv",
    "bidi-override": "producers/acme/iris/invoice\u202ecsv.exe",
    "too-long": LONG,
    "multibyte-too-long": "producers/acme/iris/" + "é" * 450,
}


@pytest.mark.parametrize("key", INVALID.values(), ids=INVALID.keys())
def test_a_key_outside_the_grammar_is_invalid_and_quarantined_under_a_safe_key(ingest_env, key):
    version, rec = push(ingest_env, key, signed=key not in (LONG, INVALID["multibyte-too-long"]))  # too big to sign
    assert (rec.status, rec.attributes["reason"]) == ("REJECTED", "INVALID_OBJECT_KEY"), rec.attributes
    quarantine_key = rec.attributes["quarantine_key"]
    assert quarantine_key.startswith("rejected/invalid-key/sha256=")
    assert quarantine_key.endswith(f"/{version}")
    assert len(quarantine_key.encode()) <= S3_MAX_KEY_BYTES
    assert all(segment not in ("", ".", "..") for segment in quarantine_key.split("/"))
    assert quarantine_key.isascii()
    assert quarantine_key.isprintable()
    copy = ingest_env["s3"].get_object(
        Bucket=ingest_env["quarantine"], Key=quarantine_key, VersionId=rec.attributes["quarantine_version"]
    )
    assert copy["Body"].read() == BODY
    assert ingest_env["s3"].list_objects_v2(Bucket=ingest_env["lake"]).get("KeyCount", 0) == 0
    alert = json.loads(ingest_env["sqs"].receive_message(QueueUrl=ingest_env["alerts"])["Messages"][0]["Body"])
    assert (alert["reason"], alert["key"]) == ("INVALID_OBJECT_KEY", key)


def longest_signable(prefix: str, character: str) -> str:
    """The longest key of `prefix` + characters whose signed envelope stays within the protocol's 1800 bytes."""
    key = prefix
    while True:
        try:
            testkeys.signed_metadata(testkeys.claim_for(key + character, BODY), "acme-p256")
        except ValueError:
            return key
        key += character


@pytest.mark.parametrize("character", ["b", "é", "分"])
def test_the_longest_signable_key_is_accepted_and_a_rejected_one_keeps_a_readable_quarantine_key(ingest_env, character):
    key = longest_signable("producers/acme/iris/", character)
    assert len(key) > 150  # non-ASCII names are signed in UTF-8, not as 6-byte \u escapes
    _, accepted = push(ingest_env, key)
    assert accepted.status == "ACCEPTED", accepted.attributes.get("detail")
    tampered = BODY.replace(b"setosa", b"setosb", 1)
    metadata = testkeys.signed_metadata(testkeys.claim_for(key, BODY), "acme-p256")
    version = ingest_env["s3"].put_object(Bucket=ingest_env["ingest"], Key=key, Body=tampered, Metadata=metadata)
    assert notified(ingest_env, key, version["VersionId"], tampered) == {"batchItemFailures": []}
    rejected = Ledger(ingest_env["ddb"], "ledger").get(ingest_env["ingest"], key, version["VersionId"])
    assert rejected.attributes["reason"] == "DIGEST_MISMATCH"
    assert rejected.attributes["quarantine_key"] == f"rejected/{key}/{version['VersionId']}"


def test_a_valid_key_of_the_longest_length_is_judged_with_readable_derived_keys(ingest_env):
    key = "producers/acme/iris/" + "c" * (900 - len("producers/acme/iris/"))  # too long to sign: judged anyway
    version, rec = push(ingest_env, key, metadata={METADATA_KEY: "A" * 1801})
    assert rec.attributes["reason"] == "ENVELOPE_TOO_LARGE"
    assert rec.attributes["quarantine_key"] == f"rejected/{key}/{version}"
    assert len(rec.attributes["quarantine_key"].encode()) <= S3_MAX_KEY_BYTES


def test_the_reconciler_quarantines_a_version_under_any_key_without_failing_its_run(ingest_env):
    keys = [LONG + "z" * 100, "producers/acme/iris/../../globex/x.csv", "producers/acme/iris/ok.csv"]
    versions = [ingest_env["s3"].put_object(Bucket=ingest_env["ingest"], Key=k, Body=BODY)["VersionId"] for k in keys]
    assert reconcile.handler({}, LambdaContext())["redriven"] == 3  # no notification reached the verifier
    second = reconcile.handler({}, LambdaContext())  # max 1 re-drive: now they time out
    assert (second["quarantined"], second["failed"]) == (3, 0)
    ledger = Ledger(ingest_env["ddb"], "ledger")
    for key, version in zip(keys, versions, strict=True):
        rec = ledger.get(ingest_env["ingest"], key, version)
        assert rec.attributes["reason"] == "UNVERIFIED_TIMEOUT"
        assert len(rec.attributes["quarantine_key"].encode()) <= S3_MAX_KEY_BYTES
    assert reconcile.handler({}, LambdaContext())["unaccounted"] == 0


def test_a_held_upload_with_a_non_ascii_name_is_released_into_the_lake(ingest_env):
    key = "producers/acme/iris/lot d'été.csv"
    for seed in (1, 2):  # a learned baseline
        assert push(ingest_env, key, iris_csv(600, seed))[1].status == "ACCEPTED"
    body = iris_csv(600, 4, flip=0.3)
    version, held = push(ingest_env, key, body)
    assert held.status == "HELD"
    decision = {
        "key": key,
        "version_id": version,
        "decision": "approve",
        "reason": "vérifié avec le producteur",
        "reviewed_by": "arn:aws:iam::123456789012:user/zoë",
    }
    released = review.handler(decision, LambdaContext())
    assert released["status"] == "ACCEPTED"
    lake = ingest_env["s3"].get_object(
        Bucket=ingest_env["lake"], Key=released["lake_key"], VersionId=released["lake_version"]
    )
    assert lake["Body"].read() == body
    assert unquote(lake["Metadata"]["mlvault-released-by"]) == decision["reviewed_by"]
    assert unquote(lake["Metadata"]["mlvault-ingest-key"]) == key
