"""A human's decision on a HELD upload (the poisoning screen's verdict): release it into the lake or reject it.

Only the exact bytes the verifier held can be released: they are copied from the held copy in the quarantine
(version pinned) to the same content-addressed lake key an acceptance would use, and the copy's SHA-256 is
checked against the ledger's. The decision is recorded once (a conditional write on HELD) with who and why, and
with its announcement (mlvault.outbox): published right after, or by the reconciler's sweep when publishing
fails. Asking again for the same decision by the same reviewer with the same reason is a retry: it returns the
recorded decision (and finishes its announcement) instead of a refusal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlvault.errors import AnnouncementPending, ReviewError, ReviewReason
from mlvault.ingest.events import ObjectVersionRef
from mlvault.ingest.naming import lake_key_of, metadata_value
from mlvault.ingest.transient import transient_errors
from mlvault.ingest.verify import REVIEW, Destinations, Verdict, lake_write, verdict_announcement
from mlvault.ledger import STATUS_ACCEPTED, STATUS_HELD, STATUS_REJECTED, Ledger, LedgerRecord, version_key

APPROVE, REJECT = "approve", "reject"
DECIDES = {APPROVE: STATUS_ACCEPTED, REJECT: STATUS_REJECTED}


class Reviewer:
    def __init__(self, *, s3: Any, events: Any, sns: Any, ledger: Ledger, destinations: Destinations) -> None:
        self._s3 = s3
        self._ledger = ledger
        self._to = destinations
        self._outbox = ledger.outbox(events=events, sns=sns)

    def decide(self, *, key: str, version_id: str, decision: str, reviewed_by: str, reason: str) -> Verdict:
        """The recorded decision. `pending` when its announcement could not be published now: the decision stands
        and the reconciler's sweep publishes it."""
        if decision not in DECIDES:
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
        item_key = version_key(ref.bucket, ref.key, ref.version_id)
        record = self._ledger.get(ref.bucket, ref.key, ref.version_id)
        if record is None:
            raise ReviewError(ReviewReason.NO_SUCH_UPLOAD, f"no ledger record for {ref.key} version {ref.version_id}")
        if record.status != STATUS_HELD:
            if _same_review(record, DECIDES[decision], reviewed_by, reason):  # a retry of this very review
                verdict = Verdict.recorded(ref, record)
                self._deliver(item_key, verdict)
                return verdict
            raise ReviewError(
                ReviewReason.NOT_HELD, f"{ref.key} version {ref.version_id} is {record.status}, not {STATUS_HELD}"
            )
        self._outbox.deliver(item_key)  # the hold's own announcement first: one pending announcement per record
        held = record.attributes
        status = DECIDES[decision]
        extra: dict[str, str] = {}
        if status == STATUS_ACCEPTED:
            lake_key = lake_key_of(ref.key, held["dataset"], held["producer"], held["sha256"])
            source = {"Bucket": held["quarantine_bucket"], "Key": held["quarantine_key"]}
            source["VersionId"] = held["quarantine_version"]
            metadata = {
                "mlvault-ingest-key": metadata_value(ref.key),
                "mlvault-ingest-version": metadata_value(ref.version_id, 256),
                "mlvault-producer": held["producer"],
                "mlvault-key-id": held["key_id"],
                "mlvault-released-by": metadata_value(reviewed_by, 512),
            }
            lake_version = lake_write(self._s3, self._to.lake_bucket, lake_key, source, held["sha256"], metadata)
            extra = {"lake_bucket": self._to.lake_bucket, "lake_key": lake_key, "lake_version": lake_version}
        reviewed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        decided = {**held, "reviewed_by": reviewed_by, "review_reason": reason, "reviewed_at": reviewed_at, **extra}
        verdict = Verdict(status, ref, held.get("reason", ""), reason, decided)
        if not self._ledger.review(
            bucket=ref.bucket,
            key=ref.key,
            version_id=ref.version_id,
            status=status,
            reviewed_by=reviewed_by,
            reason=reason,
            reviewed_at=reviewed_at,
            announcement=verdict_announcement(self._to, verdict, kind=REVIEW),
            **extra,
        ):
            now = self._ledger.get(ref.bucket, ref.key, ref.version_id)
            if now is not None and now.status == STATUS_HELD:  # the hold's announcement is pending again
                raise AnnouncementPending(f"{ref.key} version {ref.version_id}: the hold's announcement is pending")
            raise ReviewError(
                ReviewReason.NOT_HELD, f"{ref.key} version {ref.version_id} was decided meanwhile by another review"
            )
        decided_record = self._ledger.get(ref.bucket, ref.key, ref.version_id)
        verdict.attributes = decided_record.attributes
        self._deliver(item_key, verdict)
        return verdict

    def _deliver(self, item_key: dict[str, Any], verdict: Verdict) -> None:
        """Publish the decision's pending announcement. When publishing fails it stays pending for the sweep: the
        decision is recorded either way, and the reviewer is not asked to decide again."""
        try:
            verdict.announced = bool(self._outbox.deliver(item_key))
        except AnnouncementPending:
            verdict.pending = True


def _same_review(record: LedgerRecord, status: str, reviewed_by: str, reason: str) -> bool:
    attributes = record.attributes
    return (
        record.status == status
        and attributes.get("reviewed_by") == reviewed_by
        and attributes.get("review_reason") == reason
    )
