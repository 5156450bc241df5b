"""S3 event notifications, as they arrive in SQS message bodies, parsed into exact object versions.

Nothing here is trusted beyond naming which version to look at: the verifier re-reads everything it can check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus


class MalformedEventError(ValueError):
    """The message is not an S3 event notification this function can act on."""


@dataclass(frozen=True)
class ObjectVersionRef:
    bucket: str
    key: str
    version_id: str
    size: int
    sequencer: str
    event_time: str
    event_name: str


def parse_message_body(body: str) -> list[ObjectVersionRef]:
    """The object versions an SQS message body announces; [] for S3's test event."""
    try:
        message = json.loads(body)
    except json.JSONDecodeError as err:
        raise MalformedEventError(f"message body is not JSON: {err}") from None
    if not isinstance(message, dict):
        raise MalformedEventError("message body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list) or not records:
        raise MalformedEventError("message has no S3 Records")
    return [_parse_record(r) for r in records]


def _parse_record(record: object) -> ObjectVersionRef:
    try:
        s3 = record["s3"]  # type: ignore[index]
        obj = s3["object"]
        version_id = obj.get("versionId")
        if not version_id or version_id == "null":
            # A versioned bucket always names the version; without it we could verify one version and
            # copy another.
            raise MalformedEventError(f"event for {obj.get('key')!r} has no versionId")
        return ObjectVersionRef(
            bucket=s3["bucket"]["name"],
            # S3 URL-encodes keys in notifications (spaces as '+').
            key=unquote_plus(obj["key"]),
            version_id=version_id,
            size=int(obj.get("size", 0)),
            sequencer=str(obj.get("sequencer", "")),
            event_time=str(record.get("eventTime", "")),  # type: ignore[union-attr]
            event_name=str(record.get("eventName", "")),  # type: ignore[union-attr]
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        if isinstance(err, MalformedEventError):
            raise
        raise MalformedEventError(f"malformed S3 event record: {err!r}") from None
