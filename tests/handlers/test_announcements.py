"""Announcements are never lost (issue 11, item 1): every verdict and review decision reaches EventBridge and (unless
accepted) SNS at least once, and exactly once when publishing fails then recovers or the worker dies between the
record and its announcement. Consumers de-duplicate on the `event_id` both carry.

The verify, reconcile and review handlers run on moto; publishing fails through the boto3 session their clients
are made from (tests/handlers/faults.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from mlvault.canonical import ObjectVersion
from mlvault.ledger import Ledger
from mlvault.outbox import event_id
from mlvault_tools import testkeys
from mlvault_tools.samples import iris_csv
from tests.handlers.conftest import LambdaContext, load_handler, s3_body, sqs_event
from tests.handlers.faults import Faults, Killed

verify = load_handler("verify")
reconcile = load_handler("reconcile")
review = load_handler("review")
K = "producers/acme/iris/batch.csv"
BODY = iris_csv(20, seed=1)


@pytest.fixture
def faults(ingest_env, monkeypatch) -> Faults:
    return Faults(monkeypatch)


def upload(env, key: str = K, body: bytes = BODY, signed: bool = True) -> str:
    metadata = testkeys.signed_metadata(testkeys.claim_for(key, body), "acme-p256") if signed else {}
    return env["s3"].put_object(Bucket=env["ingest"], Key=key, Body=body, Metadata=metadata)["VersionId"]


def notification(env, version: str, key: str = K, body: bytes = BODY) -> dict:
    return sqs_event(s3_body(env["ingest"], key, version, len(body)))


def processed(event: dict) -> bool:
    """Run the verify handler on one message; False when the message is left for SQS to deliver again (a batch
    whose every record failed raises, as Powertools does, so that Lambda reports the whole batch failed)."""
    try:
        return verify.handler(event, LambdaContext()) == {"batchItemFailures": []}
    except BatchProcessingError:
        return False


def drain(env, queue: str) -> list[dict]:
    """Every message the queue received so far (events: the EventBridge event; alerts: the SNS message with its
    attributes)."""
    found = []
    while True:
        batch = (
            env["sqs"]
            .receive_message(
                QueueUrl=env[queue], MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=600
            )
            .get("Messages", [])
        )
        if not batch:
            return found
        for message in batch:
            body = json.loads(message["Body"])
            if queue == "alerts":
                attributes = message.get("MessageAttributes", {})
                body["_attributes"] = {name: value["StringValue"] for name, value in attributes.items()}
            found.append(body)


def record(env, version: str, key: str = K):
    return Ledger(env["ddb"], "ledger").get(env["ingest"], key, version)


def verdict_id(env, version: str, key: str = K, kind: str = "ingest-verdict") -> str:
    return event_id(kind, ObjectVersion(env["ingest"], key, version).uri)


def assert_announced_once(env, version: str, *, alert: bool = True, key: str = K) -> tuple[dict, dict | None]:
    events = [e for e in drain(env, "events") if e["detail"]["version_id"] == version]
    alerts = [a for a in drain(env, "alerts") if a["version_id"] == version]
    assert len(events) == 1, events
    assert len(alerts) == (1 if alert else 0), alerts
    expected = verdict_id(env, version, key)
    assert events[0]["detail"]["event_id"] == expected
    if alert:
        assert alerts[0]["event_id"] == expected
        assert alerts[0]["_attributes"]["event_id"] == expected
    return events[0], alerts[0] if alert else None


def test_an_alert_that_fails_then_recovers_is_sent_exactly_once_with_one_event(ingest_env, faults):
    version = upload(ingest_env, signed=False)
    faults.unavailable("sns", "Publish")
    event = notification(ingest_env, version)
    assert not processed(event)  # left for SQS to deliver again
    assert record(ingest_env, version).attributes["reason"] == "MISSING_SIGNATURE"  # the verdict stands
    assert processed(event)  # the retry
    rejected, alert = assert_announced_once(ingest_env, version)
    assert rejected["detail-type"] == "Upload Rejected"
    assert alert["reason"] == alert["_attributes"]["reason"] == "MISSING_SIGNATURE"
    assert len(Ledger(ingest_env["ddb"], "ledger").versions(ingest_env["ingest"], K)) == 1
    quarantined = ingest_env["s3"].list_object_versions(Bucket=ingest_env["quarantine"])["Versions"]
    assert len(quarantined) == 1  # one verdict, one quarantined copy: the retry judged nothing again


def test_an_event_eventbridge_refuses_then_takes_is_sent_exactly_once_with_one_alert(ingest_env, faults):
    version = upload(ingest_env, signed=False)
    faults.refuse_event()  # PutEvents answers 200 with FailedEntryCount 1: nothing raises, nothing is sent
    event = notification(ingest_env, version)
    assert not processed(event)
    assert drain(ingest_env, "events") == []
    assert processed(event)
    assert_announced_once(ingest_env, version)


def test_an_accepted_upload_whose_event_fails_is_announced_by_the_retry(ingest_env, faults):
    version = upload(ingest_env)
    faults.unavailable("eventbridge", "PutEvents", times=2)
    event = notification(ingest_env, version)
    assert not processed(event)
    assert not processed(event)  # still down
    assert record(ingest_env, version).status == "ACCEPTED"
    assert len(ingest_env["s3"].list_object_versions(Bucket=ingest_env["lake"])["Versions"]) == 1
    assert processed(event)
    accepted, _ = assert_announced_once(ingest_env, version, alert=False)
    assert accepted["detail-type"] == "Upload Accepted"
    assert accepted["detail"]["lake_key"] == record(ingest_env, version).attributes["lake_key"]


def test_a_failed_publish_loses_nothing_the_verdict_does_after_its_record(ingest_env, faults):
    """An accepted batch that the content gate learns its baseline from: learned once, whether or not its event
    could be published at once."""
    faults.unavailable("eventbridge", "PutEvents")
    body = iris_csv(600, 1)
    version = upload(ingest_env, body=body)
    event = notification(ingest_env, version, body=body)
    assert not processed(event)
    assert processed(event)
    assert "learning" in record(ingest_env, version).attributes["screen"]
    baseline = Ledger(ingest_env["ddb"], "ledger").baseline("iris", "1")
    assert (baseline.rows, baseline.batches) == (600, 1)
    assert_announced_once(ingest_env, version, alert=False)


def test_a_worker_killed_after_the_record_is_announced_by_the_redelivered_message(ingest_env, faults):
    version = upload(ingest_env, signed=False)
    faults.kill_at("eventbridge", "PutEvents")  # the record is written; the worker dies before publishing
    event = notification(ingest_env, version)
    with pytest.raises(Killed):
        verify.handler(event, LambdaContext())
    assert record(ingest_env, version).status == "REJECTED"
    assert drain(ingest_env, "events") == []
    assert processed(event)  # SQS delivers the message again
    assert_announced_once(ingest_env, version)
    tags = ingest_env["s3"].get_object_tagging(Bucket=ingest_env["ingest"], Key=K, VersionId=version)["TagSet"]
    assert {"Key": "mlvault:verdict", "Value": "recorded"} in tags  # what the crash skipped is done too


def test_a_worker_killed_after_the_record_is_announced_by_the_reconciler_if_nobody_retries(ingest_env, faults):
    version = upload(ingest_env, signed=False)
    faults.kill_at("eventbridge", "PutEvents")
    with pytest.raises(Killed):
        verify.handler(notification(ingest_env, version), LambdaContext())
    report = reconcile.handler({}, LambdaContext())  # the message went to the DLQ: only the sweep is left
    assert (report["announced"], report["unannounced"], report["unaccounted"]) == (1, 0, 0)
    assert reconcile.handler({}, LambdaContext())["announced"] == 0  # announced once: nothing pending any more
    assert_announced_once(ingest_env, version)


def test_a_duplicate_message_after_the_announcement_publishes_nothing_more(ingest_env):
    version = upload(ingest_env, signed=False)
    event = notification(ingest_env, version)
    for _ in range(3):
        assert processed(event)
    assert_announced_once(ingest_env, version)


def test_the_reconcilers_timeout_verdict_is_announced_even_when_publishing_fails(ingest_env, faults):
    faults.unavailable("sns", "Publish", times=2)  # the timeout's own alert, then the next run's sweep
    version = upload(ingest_env)  # no notification ever reaches the verifier
    assert reconcile.handler({}, LambdaContext())["redriven"] == 1
    second = reconcile.handler({}, LambdaContext())
    assert second["quarantined"] == 1
    assert record(ingest_env, version).attributes["reason"] == "UNVERIFIED_TIMEOUT"
    third = reconcile.handler({}, LambdaContext())
    assert (third["announced"], third["unannounced"]) == (0, 1)  # still down: pending, counted
    fourth = reconcile.handler({}, LambdaContext())
    assert (fourth["announced"], fourth["unannounced"]) == (1, 0)
    assert_announced_once(ingest_env, version)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="mlvault",
        MetricName="Unannounced",
        Dimensions=[{"Name": "Stage", "Value": "test"}],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum", "Minimum"],
    )["Datapoints"]
    assert max(p["Maximum"] for p in points) == 1
    assert min(p["Minimum"] for p in points) == 0


def test_a_sweep_that_may_not_scan_the_ledger_never_stops_the_reconciler(ingest_env, faults):
    faults.fail("dynamodb", "Scan", code="AccessDeniedException", status=400)  # the permission is not granted
    version = upload(ingest_env)
    report = reconcile.handler({}, LambdaContext())
    assert (report["redriven"], report["swept"]) == (1, False)  # re-drives go on; the sweep waits for the next run
    assert record(ingest_env, version).attributes["redrives"] == "1"
    assert reconcile.handler({}, LambdaContext())["swept"] is True


def test_the_verdict_is_counted_once_by_the_call_that_announced_it(ingest_env, faults, capsys):
    version = upload(ingest_env, signed=False)
    faults.unavailable("sns", "Publish")
    event = notification(ingest_env, version)
    assert [processed(event) for _ in range(3)] == [False, True, True]
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    verdicts = [m for m in emitted if "Verdicts" in m]
    assert len(verdicts) == 1, emitted
    assert verdicts[0]["Reason"] == "MISSING_SIGNATURE"


# --- review decisions --------------------------------------------------------------------------------------------


def held_upload(env) -> str:
    """A validly signed batch the poisoning screen holds (a learned baseline, then flipped labels)."""
    for seed in (1, 2):
        version = upload(env, body=iris_csv(600, seed))
        verify.handler(notification(env, version, body=iris_csv(600, seed)), LambdaContext())
    body = iris_csv(600, 4, flip=0.3)
    version = upload(env, body=body)
    assert processed(notification(env, version, body=body))
    assert record(env, version).status == "HELD"
    drain(env, "events")
    drain(env, "alerts")
    return version


def decide(env, version: str, decision: str, reason: str = "labels disagree with QA") -> dict:
    event = {"key": K, "version_id": version, "decision": decision, "reason": reason, "reviewed_by": "arn:test:bob"}
    return review.handler(event, LambdaContext())


def test_a_review_decision_whose_alert_fails_is_recorded_and_announced_once_by_the_reconciler(ingest_env, faults):
    version = held_upload(ingest_env)
    faults.unavailable("sns", "Publish")
    decided = decide(ingest_env, version, "reject")
    assert (decided["status"], decided["announcement_pending"]) == ("REJECTED", True)
    assert record(ingest_env, version).attributes["reviewed_by"] == "arn:test:bob"
    assert reconcile.handler({}, LambdaContext())["announced"] == 1
    again = decide(ingest_env, version, "reject")  # the operator, unsure, asks again: the same decision stands
    assert (again["status"], again["announcement_pending"]) == ("REJECTED", False)
    events = [e for e in drain(ingest_env, "events") if e["detail"]["version_id"] == version]
    alerts = [a for a in drain(ingest_env, "alerts") if a["version_id"] == version]
    assert [e["detail-type"] for e in events] == ["Upload Rejected"]
    assert [a["status"] for a in alerts] == ["REJECTED"]
    expected = verdict_id(ingest_env, version, kind="ingest-review")
    assert events[0]["detail"]["event_id"] == alerts[0]["_attributes"]["event_id"] == expected
    assert events[0]["detail"]["reviewed_by"] == "arn:test:bob"
    assert expected != verdict_id(ingest_env, version)  # the hold and its review are two announcements


def test_a_review_decision_whose_event_fails_is_announced_by_the_reviewers_retry(ingest_env, faults):
    version = held_upload(ingest_env)
    faults.unavailable("eventbridge", "PutEvents")
    assert decide(ingest_env, version, "approve")["announcement_pending"] is True
    assert decide(ingest_env, version, "approve")["announcement_pending"] is False
    events = [e for e in drain(ingest_env, "events") if e["detail"]["version_id"] == version]
    assert [e["detail-type"] for e in events] == ["Upload Accepted"]
    assert events[0]["detail"]["lake_key"] == record(ingest_env, version).attributes["lake_key"]
    assert [a for a in drain(ingest_env, "alerts") if a["version_id"] == version] == []  # accepted: no alert
