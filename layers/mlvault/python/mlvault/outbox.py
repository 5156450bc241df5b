"""Announcements that are never lost: an outbox on the record's own DynamoDB item.

A record that must be announced (an ingest verdict, a review decision, a rollback, a key revocation) carries its
announcement in the same item, written by the same conditional write as the record itself: the record and its
pending announcement exist together or not at all. Announcing publishes what is pending and marks each channel
sent with a conditional write, so a retry never re-sends a channel that already succeeded.

The contract (how a module uses it):

1. Build the announcement with the record::

       announcement = Announcement.of(
           kind="ingest-verdict",                    # what kind of record (part of the id)
           subject=version.uri,                      # which record: one announcement per (kind, subject)
           event=Event(source=..., detail_type=..., detail={...}, bus="default"),  # or None
           alert=Alert(topic_arn=..., subject=..., message={...}, attributes={...}),  # or None
       )

   `announcement.id` is deterministic (a UUID derived from kind and subject): the same record always yields the
   same id, whoever announces it and however often. It is put in the event's detail and the alert's message as
   `event_id` and in the alert's message attributes (`event_id`). **Consumers de-duplicate on `event_id`**:
   delivery is at least once (a crash between a publish and its mark re-sends that channel).

2. Write it with the record, in the same request:
   - `update_item`: `staged = stage(announcement)`; append `staged.update` to the SET clause, merge
     `staged.names` and `staged.values` into the expression maps, and AND `staged.condition` into the condition
     when the item may already carry an announcement (it holds while nothing is pending: one announcement at a
     time per item; deliver the previous one first).
   - `put_item`: `item.update(as_item(announcement))`.

3. Deliver it right after the write: `Outbox(...).deliver(key)` publishes each pending channel (the EventBridge
   event, then the SNS alert), marking each sent, and returns the channels it sent (`()`: nothing was pending).
   It raises `AnnouncementPending` (a TransientError) when a channel could not be published: retry the operation
   (the record's own write is idempotent; its retry calls deliver again) or leave it to the sweep; the
   announcement stays pending, never lost and never a second record.

4. Sweep on a schedule: `Outbox(...).sweep(grace=...)` delivers every announcement of the table pending for
   longer than `grace` (its writer died between steps 2 and 3, or nobody retried) and returns a `Sweep`
   (`delivered`, `pending`: announcement ids). Choose `grace` longer than a writer takes from its write to its
   delivery (seconds), or the sweep and the writer may both send (harmless: consumers de-duplicate).

The request is stored as written (topic ARN, event bus): whichever function delivers it publishes exactly that,
so the sweeping function needs sns:Publish and events:PutEvents on the same topic and bus.

Item layout: one map attribute `outbox` = {id, kind, since, event?, alert?, event_sent?, alert_sent?}; `event`
and `alert` hold the exact request (JSON) until that channel is sent. Functions need dynamodb:GetItem and
UpdateItem on the table, events:PutEvents, sns:Publish, and dynamodb:Scan for the sweep.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlvault.errors import AnnouncementPending

ATTRIBUTE = "outbox"  # the item's map attribute
EVENT_ID = "event_id"  # the field of the event detail, the alert message and its attributes consumers dedupe on
CHANNELS = ("event", "alert")  # delivered in this order
_NAMESPACE = uuid.UUID("5f0b6a2e-3c1d-4e8f-9a7b-6d2c1e0f4a3b")  # fixed forever: ids stay stable across releases
_NAMES = {"#ob": ATTRIBUTE, "#ob_event": "event", "#ob_alert": "alert"}


def event_id(kind: str, subject: str) -> str:
    """The stable id of the announcement of one record: a UUID (version 5) of its kind and subject."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}\n{subject}"))


@dataclass(frozen=True)
class Event:
    """An EventBridge event: PutEvents' Source, DetailType, Detail (a JSON object) and EventBusName."""

    source: str
    detail_type: str
    detail: Mapping[str, Any]
    bus: str = "default"


@dataclass(frozen=True)
class Alert:
    """An SNS alert: the topic, a subject (ASCII, < 100 characters), a message rendered as indented JSON and
    String message attributes (empty values are left out: SNS refuses them)."""

    topic_arn: str
    subject: str
    message: Mapping[str, Any]
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Announcement:
    id: str
    kind: str
    requests: dict[str, str]  # channel -> the exact request, as JSON

    @classmethod
    def of(cls, *, kind: str, subject: str, event: Event | None = None, alert: Alert | None = None) -> Announcement:
        if event is None and alert is None:
            raise ValueError("an announcement needs an event, an alert or both")
        id_ = event_id(kind, subject)
        requests: dict[str, str] = {}
        if event is not None:
            entry = {
                "Source": event.source,
                "DetailType": event.detail_type,
                "Detail": json.dumps({EVENT_ID: id_, **event.detail}),
                "EventBusName": event.bus,
            }
            requests["event"] = json.dumps(entry)
        if alert is not None:
            attributes = {name: value for name, value in {**alert.attributes, EVENT_ID: id_}.items() if value}
            publish = {
                "TopicArn": alert.topic_arn,
                "Subject": alert.subject[:99],
                "Message": json.dumps({EVENT_ID: id_, **alert.message}, indent=2),
                "MessageAttributes": {n: {"DataType": "String", "StringValue": v} for n, v in attributes.items()},
            }
            requests["alert"] = json.dumps(publish)
        return cls(id=id_, kind=kind, requests=requests)


def _value(announcement: Announcement) -> dict[str, Any]:
    box = {
        "id": {"S": announcement.id},
        "kind": {"S": announcement.kind},
        "since": {"S": _now().isoformat(timespec="milliseconds")},
    }
    box.update({channel: {"S": request} for channel, request in announcement.requests.items()})
    return {"M": box}


@dataclass(frozen=True)
class Staged:
    """The fragments of an UpdateItem that stores an announcement with its record."""

    update: str  # for the SET clause
    condition: str  # nothing else is pending on the item
    names: dict[str, str]
    values: dict[str, Any]


def stage(announcement: Announcement) -> Staged:
    return Staged(
        update="#ob = :ob",
        condition="(attribute_not_exists(#ob.#ob_event) AND attribute_not_exists(#ob.#ob_alert))",
        names=dict(_NAMES),
        values={":ob": _value(announcement)},
    )


def as_item(announcement: Announcement) -> dict[str, Any]:
    """The attribute to add to a PutItem's item."""
    return {ATTRIBUTE: _value(announcement)}


def pending_in(item: Mapping[str, Any]) -> tuple[str, ...]:
    """The channels of an item's announcement not yet sent."""
    box = item.get(ATTRIBUTE, {}).get("M", {})
    return tuple(channel for channel in CHANNELS if channel in box)


@dataclass
class Sweep:
    delivered: list[str] = field(default_factory=list)  # announcement ids delivered by this sweep
    pending: list[str] = field(default_factory=list)  # still pending after it (publishing failed again)


class Outbox:
    def __init__(
        self, dynamodb: Any, table: str, *, events: Any, sns: Any, key_names: tuple[str, ...] = ("pk", "sk")
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._events = events
        self._sns = sns
        self._key_names = key_names

    def deliver(self, key: Mapping[str, Any]) -> tuple[str, ...]:
        """Publish what is pending on the item with this primary key and mark each channel sent. Returns the
        channels this call sent (empty when nothing was pending). AnnouncementPending when a channel could not be
        published (what was sent before it stays sent)."""
        try:
            item = self._db.get_item(
                TableName=self._table,
                Key=dict(key),
                ConsistentRead=True,
                ProjectionExpression="#ob",
                ExpressionAttributeNames={"#ob": ATTRIBUTE},
            ).get("Item", {})
        except (ClientError, BotoCoreError) as err:
            raise AnnouncementPending(f"the announcement of {dict(key)} could not be read: {err}") from err
        box = item.get(ATTRIBUTE, {}).get("M", {})
        sent = []
        for channel in pending_in(item):
            self._publish(channel, box["id"]["S"], json.loads(box[channel]["S"]))
            self._mark(key, box["id"]["S"], channel)
            sent.append(channel)
        return tuple(sent)

    def sweep(self, *, grace: timedelta, now: datetime | None = None) -> Sweep:
        """Deliver every announcement of the table pending since longer than `grace` (a paginated Scan)."""
        cutoff = ((now or _now()) - grace).isoformat(timespec="milliseconds")
        report = Sweep()
        for key, id_ in self._pending(cutoff):
            try:
                self.deliver(key)
            except AnnouncementPending:
                report.pending.append(id_)
                continue
            report.delivered.append(id_)
        return report

    def _pending(self, cutoff: str) -> Iterator[tuple[dict[str, Any], str]]:
        names = {**_NAMES, "#ob_since": "since", **{f"#k{i}": name for i, name in enumerate(self._key_names)}}
        pages = self._db.get_paginator("scan").paginate(
            TableName=self._table,
            FilterExpression="(attribute_exists(#ob.#ob_event) OR attribute_exists(#ob.#ob_alert)) "
            "AND #ob.#ob_since <= :cutoff",
            ProjectionExpression=", ".join([*(f"#k{i}" for i in range(len(self._key_names))), "#ob"]),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":cutoff": {"S": cutoff}},
        )
        for page in pages:
            for item in page.get("Items", []):
                yield {name: item[name] for name in self._key_names}, item[ATTRIBUTE]["M"]["id"]["S"]

    def _publish(self, channel: str, id_: str, request: dict[str, Any]) -> None:
        try:
            if channel == "event":
                response = self._events.put_events(Entries=[request])
                if response.get("FailedEntryCount"):  # PutEvents reports a refused entry without raising
                    failed = response.get("Entries", [{}])[0]
                    raise AnnouncementPending(
                        f"announcement {id_}: EventBridge did not take the event "
                        f"({failed.get('ErrorCode')}: {failed.get('ErrorMessage')})"
                    )
            else:
                self._sns.publish(**request)
        except (ClientError, BotoCoreError) as err:
            raise AnnouncementPending(f"announcement {id_}: the {channel} could not be published: {err}") from err

    def _mark(self, key: Mapping[str, Any], id_: str, channel: str) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=dict(key),
                UpdateExpression="REMOVE #ob.#channel SET #ob.#sent = :now",
                ConditionExpression="#ob.#id = :id AND attribute_exists(#ob.#channel)",
                ExpressionAttributeNames={
                    "#ob": ATTRIBUTE,
                    "#channel": channel,
                    "#sent": f"{channel}_sent",
                    "#id": "id",
                },
                ExpressionAttributeValues={
                    ":now": {"S": _now().isoformat(timespec="milliseconds")},
                    ":id": {"S": id_},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return  # a concurrent delivery marked it first: sent either way
        except (ClientError, BotoCoreError) as err:  # published but not marked: a retry re-sends (at least once)
            raise AnnouncementPending(f"announcement {id_}: the {channel} was sent but not marked: {err}") from err


def _now() -> datetime:
    return datetime.now(UTC)
