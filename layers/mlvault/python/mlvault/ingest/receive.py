"""The first step of verification: an announced upload is looked up (that exact version) and recorded.

Signature, digest and contract checks build on this step (issue: zero-trust ingest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlvault.ingest.events import MalformedEventError, ObjectVersionRef, parse_message_body
from mlvault.ledger import Ledger
from mlvault.runtime import IngestSettings


@dataclass(frozen=True)
class Receipt:
    ref: ObjectVersionRef
    new: bool


class Receiver:
    def __init__(self, *, s3: Any, ledger: Ledger, settings: IngestSettings) -> None:
        self._s3 = s3
        self._ledger = ledger
        self._settings = settings

    def handle_message(self, body: str) -> list[Receipt]:
        receipts = []
        for ref in parse_message_body(body):
            if ref.bucket != self._settings.ingest_bucket:
                raise MalformedEventError(
                    f"event names bucket {ref.bucket!r}, expected the ingest bucket {self._settings.ingest_bucket!r}"
                )
            receipts.append(self._receive(ref))
        return receipts

    def _receive(self, ref: ObjectVersionRef) -> Receipt:
        # Read that exact version: never "latest". Errors (throttling, 5xx, a version not yet visible)
        # propagate, so the message is retried rather than turned into a verdict.
        head = self._s3.head_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)
        attributes = {
            "etag": head.get("ETag", "").strip('"'),
            "sequencer": ref.sequencer,
            "event_time": ref.event_time,
            "uploaded_at": head["LastModified"].isoformat(),
        }
        new = self._ledger.record_received(
            bucket=ref.bucket,
            key=ref.key,
            version_id=ref.version_id,
            size=int(head["ContentLength"]),
            attributes=attributes,
        )
        return Receipt(ref=ref, new=new)
