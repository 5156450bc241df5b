"""Issue 11, items 1 and 2 on the local cloud (the real functions): a correctly signed file with a non-ASCII name
lands in the lake, a traversal key is refused, and an alert that could not be published (the topic gone for a
while) is sent exactly once when the topic is back and the message comes again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote_plus, unquote

import pytest

from mlvault_tools.samples import iris_csv
from tests.e2e.conftest import eventually


def test_a_signed_upload_with_a_non_ascii_name_is_accepted_into_the_lake(ingest):
    key = "producers/acme/iris/données été 2026 — lot ✓.csv"
    body = iris_csv(20, 31)
    version = ingest.signed_upload(key, body)
    record = ingest.verdict(key, version)
    assert record["status"] == "ACCEPTED", (record.get("reason"), record.get("detail"))
    assert record["lake_key"].endswith("/données été 2026 — lot ✓.csv")
    lake = ingest.s3.get_object(Bucket=ingest.lake, Key=record["lake_key"], VersionId=record["lake_version"])
    assert lake["Body"].read() == body
    assert unquote(lake["Metadata"]["mlvault-ingest-key"]) == key


def test_a_traversal_key_is_refused_and_never_reaches_another_producers_area(ingest):
    key = "producers/acme/iris/../../globex/sales/x.csv"
    version = ingest.signed_upload(key, iris_csv(20, 32))
    record = ingest.verdict(key, version)
    assert (record["status"], record["reason"]) == ("REJECTED", "INVALID_OBJECT_KEY")
    assert record["quarantine_key"].startswith("rejected/invalid-key/sha256=")
    assert not ingest.s3.list_objects_v2(Bucket=ingest.lake, Prefix="datasets/globex/").get("Contents")


@pytest.fixture
def listeners(cloud):
    """Queues that receive the stage's alerts (SNS) and ingest events (EventBridge), as an operator would add."""
    sqs, sns, events = cloud.client("sqs"), cloud.client("sns"), cloud.client("events")
    alerts = sqs.create_queue(QueueName="announce-alerts")["QueueUrl"]
    ingest_events = sqs.create_queue(QueueName="announce-events")["QueueUrl"]

    def arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    topic = cloud.physical_id("-ingest", "AWS::SNS::Topic", "Alerts")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn(alerts), Attributes={"RawMessageDelivery": "true"})
    events.put_rule(Name="announce-test", EventPattern=json.dumps({"source": ["mlvault.ingest"]}))
    events.put_targets(Rule="announce-test", Targets=[{"Id": "q", "Arn": arn(ingest_events)}])
    try:
        yield {"sqs": sqs, "sns": sns, "topic": topic, "alerts": alerts, "events": ingest_events}
    finally:
        events.remove_targets(Rule="announce-test", Ids=["q"])
        events.delete_rule(Name="announce-test")


def received(sqs, url: str) -> list[dict]:
    found = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=900).get("Messages"):
        found += [json.loads(m["Body"]) for m in batch]
    return found


@contextmanager
def topic_outage(sns, topic: str) -> Iterator[None]:
    """The alert topic is gone for a while (publishing fails with NotFound), then back under the same ARN with its
    attributes, tags and subscriptions."""
    attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    keep = {name: attributes[name] for name in ("Policy", "KmsMasterKeyId", "DisplayName") if attributes.get(name)}
    tags = sns.list_tags_for_resource(ResourceArn=topic).get("Tags", [])
    subscriptions = []
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        settable = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        extra = {n: settable[n] for n in ("RawMessageDelivery", "FilterPolicy", "RedrivePolicy") if settable.get(n)}
        subscriptions.append((sub["Protocol"], sub["Endpoint"], extra))
    sns.delete_topic(TopicArn=topic)
    try:
        yield
    finally:
        recreated = sns.create_topic(Name=topic.rsplit(":", 1)[1], Attributes=keep, **({"Tags": tags} if tags else {}))
        assert recreated["TopicArn"] == topic
        for protocol, endpoint, extra in subscriptions:
            sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint, Attributes=extra)


def test_an_alert_that_could_not_be_published_is_sent_once_when_publishing_recovers(cloud, ingest, listeners):
    sns, sqs, topic = listeners["sns"], listeners["sqs"], listeners["topic"]
    key = "producers/acme/iris/unsigned-during-outage.csv"
    before = len(cloud.events("sqs-batch"))
    with topic_outage(sns, topic):
        version = ingest.upload(key, b"not signed\n")
        assert ingest.verdict(key, version)["reason"] == "MISSING_SIGNATURE"  # the verdict is recorded at once
        eventually(lambda: [e for e in cloud.events("sqs-batch")[before:] if e["failed"]], timeout=60)  # retried
    assert [a for a in received(sqs, listeners["alerts"]) if a.get("version_id") == version] == []
    # The message comes again (sent here by hand: SQS would, after the queue's visibility timeout).
    s3_object = {"key": quote_plus(key, safe="/"), "versionId": version}
    again = {"Records": [{"s3": {"bucket": {"name": ingest.bucket}, "object": s3_object}}]}
    redelivered = len(cloud.events("sqs-batch"))
    ingest.sqs.send_message(QueueUrl=ingest.queue_url, MessageBody=json.dumps(again))
    alerts = eventually(
        lambda: [a for a in received(sqs, listeners["alerts"]) if a.get("version_id") == version], timeout=30
    )
    # the redelivered message's batch has ended (and with it every publish it made): what came is all that comes
    eventually(lambda: [e for e in cloud.events("sqs-batch")[redelivered:] if not e["failed"]], timeout=30)
    alerts += [a for a in received(sqs, listeners["alerts"]) if a.get("version_id") == version]
    events = [e for e in received(sqs, listeners["events"]) if e["detail"].get("version_id") == version]
    assert len(alerts) == 1, alerts
    assert len(events) == 1, events  # published before the outage hit the alert: not again
    assert alerts[0]["event_id"] == events[0]["detail"]["event_id"]
    assert events[0]["detail-type"] == "Upload Rejected"
