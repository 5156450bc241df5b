"""mlvault.outbox as another module uses it (a rollback, a key revocation): a record written with its announcement
by put_item or update_item, delivered right after, or by the sweep when its writer died. On moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from mlvault.errors import AnnouncementPending
from mlvault.outbox import Alert, Announcement, Event, Outbox, as_item, event_id, pending_in, stage
from tests.handlers.faults import Faults

KEY = {"pk": {"S": "KEY#acme-2027"}, "sk": {"S": "REVOCATION"}}


@pytest.fixture
def box(ingest_env, monkeypatch):
    faults = Faults(monkeypatch)
    topic = boto3.client("sns").list_topics()["Topics"][0]["TopicArn"]
    outbox = Outbox(boto3.client("dynamodb"), "ledger", events=boto3.client("events"), sns=boto3.client("sns"))
    return ingest_env, faults, outbox, topic


def revocation(topic: str, key_id: str = "acme-2027") -> Announcement:
    return Announcement.of(
        kind="key-revoked",
        subject=key_id,
        event=Event(source="mlvault.ingest", detail_type="Key Revoked", detail={"key_id": key_id}),
        alert=Alert(topic_arn=topic, subject=f"mlvault: key {key_id} revoked", message={"key_id": key_id}),
    )


def messages(env, queue: str) -> list[dict]:
    found = []
    while batch := env["sqs"].receive_message(QueueUrl=env[queue], MaxNumberOfMessages=10).get("Messages", []):
        found += [json.loads(m["Body"]) for m in batch]
    return found


def put_record(env, announcement: Announcement) -> None:
    env["ddb"].put_item(TableName="ledger", Item={**KEY, "reason": {"S": "stolen"}, **as_item(announcement)})


def test_the_id_is_stable_and_names_the_record():
    assert event_id("key-revoked", "acme-2027") == event_id("key-revoked", "acme-2027")
    assert event_id("key-revoked", "acme-2027") != event_id("key-revoked", "acme-2028")
    assert event_id("key-revoked", "acme-2027") != event_id("model-rolled-back", "acme-2027")
    a, b = revocation("arn:t"), revocation("arn:t")
    assert a == b  # the same record, announced twice, is the same announcement: consumers drop the second


def test_a_record_put_with_its_announcement_is_delivered_once_per_channel(box):
    env, _, outbox, topic = box
    announcement = revocation(topic)
    put_record(env, announcement)
    assert outbox.deliver(KEY) == ("event", "alert")
    assert outbox.deliver(KEY) == ()  # nothing pending any more
    (event,) = messages(env, "events")
    (alert,) = messages(env, "alerts")
    assert event["detail"] == {"event_id": announcement.id, "key_id": "acme-2027"}
    assert alert == {"event_id": announcement.id, "key_id": "acme-2027"}
    item = env["ddb"].get_item(TableName="ledger", Key=KEY)["Item"]
    assert pending_in(item) == ()
    assert {"event_sent", "alert_sent"} <= set(item["outbox"]["M"])


def test_a_failed_channel_stays_pending_and_the_sent_one_is_not_sent_again(box):
    env, faults, _, topic = box
    faults.unavailable("sns", "Publish")
    outbox = Outbox(boto3.client("dynamodb"), "ledger", events=boto3.client("events"), sns=boto3.client("sns"))
    put_record(env, revocation(topic))
    with pytest.raises(AnnouncementPending, match="the alert could not be published"):
        outbox.deliver(KEY)
    assert pending_in(env["ddb"].get_item(TableName="ledger", Key=KEY)["Item"]) == ("alert",)
    assert outbox.deliver(KEY) == ("alert",)
    assert len(messages(env, "events")) == 1
    assert len(messages(env, "alerts")) == 1


def test_the_sweep_delivers_only_what_is_pending_longer_than_the_grace(box):
    env, _, outbox, topic = box
    put_record(env, revocation(topic))  # its writer died before delivering
    assert outbox.sweep(grace=timedelta(minutes=1)).delivered == []  # its writer may still be at it
    later = datetime.now(UTC) + timedelta(minutes=2)
    swept = outbox.sweep(grace=timedelta(minutes=1), now=later)
    assert swept.delivered == [revocation(topic).id]
    assert outbox.sweep(grace=timedelta(0), now=later).delivered == []
    assert len(messages(env, "events")) == len(messages(env, "alerts")) == 1


def test_an_update_stages_the_announcement_with_the_record_and_refuses_a_second_one_while_pending(box):
    env, _, outbox, topic = box
    env["ddb"].put_item(TableName="ledger", Item={**KEY, "status": {"S": "ACTIVE"}})

    def revoke(announcement: Announcement) -> None:
        staged = stage(announcement)
        env["ddb"].update_item(
            TableName="ledger",
            Key=KEY,
            UpdateExpression=f"SET #status = :revoked, {staged.update}",
            ConditionExpression=staged.condition,
            ExpressionAttributeNames={"#status": "status", **staged.names},
            ExpressionAttributeValues={":revoked": {"S": "REVOKED"}, **staged.values},
        )

    revoke(revocation(topic))
    with pytest.raises(env["ddb"].exceptions.ConditionalCheckFailedException):
        revoke(revocation(topic, "acme-2028"))  # the first is still pending: it would be lost
    assert outbox.deliver(KEY) == ("event", "alert")
    revoke(revocation(topic, "acme-2028"))  # delivered: the item may carry the next one
    assert outbox.deliver(KEY) == ("event", "alert")
    assert [e["detail"]["key_id"] for e in messages(env, "events")] == ["acme-2027", "acme-2028"]


def test_an_event_only_announcement_and_the_alert_attributes(box):
    topic = box[3]
    only_event = Announcement.of(kind="k", subject="s", event=Event("mlvault.ingest", "Upload Accepted", {"a": 1}))
    assert set(only_event.requests) == {"event"}
    with pytest.raises(ValueError, match="needs an event, an alert or both"):
        Announcement.of(kind="k", subject="s")
    alert = Announcement.of(kind="k", subject="t", alert=Alert(topic, "x" * 150, {"b": 2}, {"reason": "", "r": "R"}))
    publish = json.loads(alert.requests["alert"])
    assert len(publish["Subject"]) < 100  # SNS refuses 100 or more
    assert set(publish["MessageAttributes"]) == {"r", "event_id"}  # SNS refuses empty String attributes
