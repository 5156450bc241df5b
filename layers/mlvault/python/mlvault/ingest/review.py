"""A human's decision on a HELD upload (the poisoning screen's verdict): release it into the lake or reject it.

Only the exact bytes the verifier held can be released: they are copied from the held copy in the quarantine
(version pinned) to the same content-addressed lake key an acceptance would use, and the copy's SHA-256 is
checked against the ledger's. The decision is recorded once (a conditional write on HELD) with who and why.
"""

from __future__ import annotations

from typing import Any

from mlvault.errors import ReviewError, ReviewReason
from mlvault.ingest.events import ObjectVersionRef
from mlvault.ingest.verify import Destinations, Verdict, announce, lake_key_of, lake_write, transient_errors
from mlvault.ledger import STATUS_ACCEPTED, STATUS_HELD, STATUS_REJECTED, Ledger

APPROVE, REJECT = "approve", "reject"


class Reviewer:
    def __init__(self, *, s3: Any, events: Any, sns: Any, ledger: Ledger, destinations: Destinations) -> None:
        self._s3 = s3
        self._events = events
        self._sns = sns
        self._ledger = ledger
        self._to = destinations

    def decide(self, *, key: str, version_id: str, decision: str, reviewed_by: str, reason: str) -> Verdict:
        if decision not in (APPROVE, REJECT):
            raise ReviewError(
                ReviewReason.INVALID_DECISION, f"decision must be {APPROVE} or {REJECT}, got {decision!r}"
            )
        if not reason.strip():
            raise ReviewError(ReviewReason.NO_REASON, "a review needs a reason")
        if not reviewed_by.strip():
            raise ReviewError(ReviewReason.NO_REVIEWER, "a review needs the reviewer's identity")
        ref = ObjectVersionRef(self._to.ingest_bucket, key, version_id, 0, "", "", "mlvault:Review")
        with transient_errors(ref):
            return self._decide(ref, decision, reviewed_by, reason.strip()[:1000])

    def _decide(self, ref: ObjectVersionRef, decision: str, reviewed_by: str, reason: str) -> Verdict:
        record = self._ledger.get(ref.bucket, ref.key, ref.version_id)
        if record is None:
            raise ReviewError(ReviewReason.NO_SUCH_UPLOAD, f"no ledger record for {ref.key} version {ref.version_id}")
        if record.status != STATUS_HELD:
            raise ReviewError(
                ReviewReason.NOT_HELD, f"{ref.key} version {ref.version_id} is {record.status}, not {STATUS_HELD}"
            )
        held = record.attributes
        extra: dict[str, str] = {}
        status = STATUS_REJECTED
        if decision == APPROVE:
            status = STATUS_ACCEPTED
            lake_key = lake_key_of(ref.key, held["dataset"], held["producer"], held["sha256"])
            source = {"Bucket": held["quarantine_bucket"], "Key": held["quarantine_key"]}
            source["VersionId"] = held["quarantine_version"]
            metadata = {
                "mlvault-ingest-key": ref.key[:512],
                "mlvault-ingest-version": ref.version_id,
                "mlvault-producer": held["producer"],
                "mlvault-key-id": held["key_id"],
                "mlvault-released-by": reviewed_by[:512],
            }
            lake_version = lake_write(self._s3, self._to.lake_bucket, lake_key, source, held["sha256"], metadata)
            extra = {"lake_bucket": self._to.lake_bucket, "lake_key": lake_key, "lake_version": lake_version}
        if not self._ledger.review(
            bucket=ref.bucket,
            key=ref.key,
            version_id=ref.version_id,
            status=status,
            reviewed_by=reviewed_by,
            reason=reason,
            **extra,
        ):
            raise ReviewError(
                ReviewReason.NOT_HELD, f"{ref.key} version {ref.version_id} was decided meanwhile by another review"
            )
        decided = self._ledger.get(ref.bucket, ref.key, ref.version_id)
        verdict = Verdict(decided.status, ref, held.get("reason", ""), reason, decided.attributes)
        announce(self._events, self._sns, self._to, verdict)
        return verdict
