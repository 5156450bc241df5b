"""Zero-trust verification of one ingest object version, to exactly one terminal ledger record.

Fail closed (GUIDE.md 3): size cap first; then envelope, producer key from the registry, signature, subject,
producer, dataset, freshness; size; nonce (conditional write); then a streaming SHA-256 of that exact version;
then the content gate (mlvault.contracts.gate): the dataset's data contract and the poisoning screen.
Accepted: the same bytes are copied, version-pinned, into the lake under a content-addressed key (never over
different bytes). Rejected: copied into the quarantine with a stable reason code. Held (the screen found a
shift and the contract says hold): copied into the quarantine's held/ prefix until a human reviews it
(mlvault.ingest.review). Either way: one terminal ledger record (with the batch's profile when the content was
read), the verdict tag on the ingest version, an EventBridge event, and (rejected, held) an SNS alert.

The record carries its announcement (mlvault.outbox): the event and the alert are written with the verdict and
published after it, each marked sent; a retry, a re-delivered message or the reconciler's sweep publishes what is
still pending. Consumers de-duplicate on the detail's `event_id` (delivery is at least once).

Transient failures (throttling, 5xx, connection errors) raise TransientError and the message is retried; they
never become a verdict. A crash at any point is safe to retry: every step is idempotent or checks what is
already there.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mlvault.canonical import ObjectVersion
from mlvault.errors import ContractReason, IngestReason, TransientError, VerificationError
from mlvault.ingest.digest import sha256_stream
from mlvault.ingest.events import ObjectVersionRef
from mlvault.ingest.naming import lake_key_of, metadata_value, producer_of, quarantine_key_of
from mlvault.ingest.protocol import VerifiedClaim, check_content, verify_envelope
from mlvault.ingest.transient import is_transient, transient_errors
from mlvault.ledger import (
    STATUS_ACCEPTED,
    STATUS_HELD,
    STATUS_REJECTED,
    Ledger,
    LedgerRecord,
    is_terminal,
    version_key,
)
from mlvault.outbox import Alert, Announcement, Event, Outbox
from mlvault.trust.producers import ProducerKey, ProducerRegistry
from mlvault.wiring import DetailType, Source, Tag

if TYPE_CHECKING:  # pyarrow: only the functions that verify load it (the review function does not)
    from mlvault.contracts.gate import ContentGate, Inspection

VERDICT_TAG = {"Key": Tag.VERDICT, "Value": Tag.VERDICT_RECORDED}
COPY_LIMIT = 5 * 1024**3  # CopyObject's limit; larger rejected versions stay (retained) in the ingest bucket
_MISSING_CODES = {"NoSuchVersion", "NoSuchKey", "404", "InvalidArgument", "MethodNotAllowed"}
DETAIL_TYPES = {
    STATUS_ACCEPTED: DetailType.UPLOAD_ACCEPTED,
    STATUS_REJECTED: DetailType.UPLOAD_REJECTED,
    STATUS_HELD: DetailType.UPLOAD_HELD,
}


@dataclass(frozen=True)
class Destinations:
    ingest_bucket: str
    lake_bucket: str
    quarantine_bucket: str
    max_upload_bytes: int
    alert_topic_arn: str
    event_bus: str = "default"


@dataclass
class Verdict:
    status: str
    ref: ObjectVersionRef
    reason: str = ""
    detail: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    duplicate: bool = False
    announced: bool = False  # this call finished the verdict's announcement (count the verdict once, here)
    pending: bool = False  # its announcement could not be published yet: the reconciler's sweep will

    @classmethod
    def recorded(cls, ref: ObjectVersionRef, record: LedgerRecord) -> Verdict:
        """The verdict a version already has (a duplicate event, or a concurrent verification that won)."""
        return cls(
            record.status, ref, record.attributes.get("reason", ""), duplicate=True, attributes=record.attributes
        )


class Verifier:
    def __init__(
        self,
        *,
        s3: Any,
        kms: Any,
        events: Any,
        sns: Any,
        ledger: Ledger,
        registry: ProducerRegistry,
        destinations: Destinations,
        gate: ContentGate,
    ) -> None:
        self._gate = gate
        self._s3 = s3
        self._kms = kms
        self._events = events
        self._sns = sns
        self._ledger = ledger
        self._registry = registry
        self._to = destinations
        self._public_keys: dict[str, Any] = {}
        self._outbox = ledger.outbox(events=events, sns=sns)

    @property
    def outbox(self) -> Outbox:
        """The ledger's pending announcements, published through this verifier's clients."""
        return self._outbox

    def verify(self, ref: ObjectVersionRef) -> Verdict:
        with transient_errors(ref):
            return self._finish(self._verify(ref))

    # --- steps ----------------------------------------------------------------------------------------

    def _verify(self, ref: ObjectVersionRef) -> Verdict:
        """The version's recorded verdict: reached now, or already there (then it is a duplicate)."""
        existing = self._ledger.get(ref.bucket, ref.key, ref.version_id)
        if is_terminal(existing):  # a crash or a failed publish may have left its announcement pending
            return Verdict.recorded(ref, existing)
        head = self._head(ref)
        if head is None:
            return self._reject(
                ref,
                0,
                VerificationError(
                    IngestReason.SOURCE_MISSING, "the version no longer exists (deleted before it was read)"
                ),
            )
        size = int(head["ContentLength"])
        upload_time: datetime = head["LastModified"]
        if existing is None:
            self._ledger.record_received(
                bucket=ref.bucket,
                key=ref.key,
                version_id=ref.version_id,
                size=size,
                attributes={
                    "sequencer": ref.sequencer,
                    "event_time": ref.event_time,
                    "uploaded_at": upload_time.isoformat(),
                },
            )
        inspection: Inspection | None = None
        try:
            if size > self._to.max_upload_bytes:
                raise VerificationError(
                    IngestReason.TOO_LARGE, f"{size} bytes; the limit is {self._to.max_upload_bytes}"
                )
            verified = verify_envelope(
                head.get("Metadata", {}),
                object_key=ref.key,
                upload_time=upload_time,
                registry=self._registry,
                public_key=self._public_key,
                revoked_at=self._ledger.revoked_at,
            )
            claim = verified.claim
            if claim.size != size:  # cheap, before reading the bytes
                raise VerificationError(IngestReason.SIZE_MISMATCH, f"signed size {claim.size}, uploaded {size} bytes")
            owner = f"{ref.bucket}/{ref.key}#{ref.version_id}"
            if self._ledger.claim_nonce(claim.producer, claim.nonce, owner) != owner:
                raise VerificationError(
                    IngestReason.REPLAYED_SIGNATURE, f"nonce {claim.nonce} was already used by another upload"
                )
            digest, read = self._digest(ref)
            check_content(claim, sha256=digest, size=read)
            inspection = self._gate.inspect(
                dataset=claim.dataset,
                contract_version=claim.contract_version,
                size=size,
                open_body=lambda: self._open(ref),
                producer=claim.producer,
                source=f"{ref.key}#{ref.version_id}",
            )
            if inspection.action == "hold":
                return self._hold(ref, size, verified, digest, upload_time, inspection)
            if inspection.action != "accept":
                raise VerificationError(ContractReason.POISONING_SUSPECTED, inspection.summary())
            verdict = self._accept(ref, size, verified, digest, upload_time, inspection)
        except VerificationError as err:
            return self._reject(ref, size, err, upload_time, inspection)
        if inspection.learning and not verdict.duplicate:
            self._gate.learn(inspection)
        return verdict

    def _head(self, ref: ObjectVersionRef) -> dict[str, Any] | None:
        try:
            head = self._s3.head_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)
        except ClientError as err:
            if not is_transient(err) and err.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return None
            raise
        return None if head.get("DeleteMarker") else head

    def _public_key(self, key: ProducerKey) -> Any:
        if key.id not in self._public_keys:
            self._public_keys[key.id] = key.public_key(self._kms)
        return self._public_keys[key.id]

    def _open(self, ref: ObjectVersionRef) -> Any:
        """A stream of that exact version's bytes."""
        response = self._s3.get_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)
        if response.get("VersionId") != ref.version_id:
            raise TransientError(f"asked for version {ref.version_id}, S3 returned {response.get('VersionId')}")
        return response["Body"]

    def _digest(self, ref: ObjectVersionRef) -> tuple[str, int]:
        body = self._open(ref)
        try:
            return sha256_stream(body)
        finally:
            body.close()

    # --- verdicts -------------------------------------------------------------------------------------

    def _accept(
        self,
        ref: ObjectVersionRef,
        size: int,
        verified: VerifiedClaim,
        digest: str,
        upload_time: datetime,
        inspection: Inspection,
    ) -> Verdict:
        claim = verified.claim
        lake_key = lake_key_of(ref.key, claim.dataset, claim.producer, digest)
        source = {"Bucket": ref.bucket, "Key": ref.key, "VersionId": ref.version_id}
        lake_version = lake_write(
            self._s3,
            self._to.lake_bucket,
            lake_key,
            source,
            digest,
            {
                "mlvault-ingest-key": metadata_value(ref.key),
                "mlvault-ingest-version": metadata_value(ref.version_id, 256),
                "mlvault-producer": verified.claim.producer,
                "mlvault-key-id": verified.key.id,
            },
        )
        attributes = {
            "lake_bucket": self._to.lake_bucket,
            "lake_key": lake_key,
            "lake_version": lake_version,
            **_verified_attributes(verified, digest, upload_time, inspection),
        }
        return self._record(Verdict(STATUS_ACCEPTED, ref, attributes=attributes), size, inspection)

    def _hold(
        self,
        ref: ObjectVersionRef,
        size: int,
        verified: VerifiedClaim,
        digest: str,
        upload_time: datetime,
        inspection: Inspection,
    ) -> Verdict:
        """Kept out of the lake (and so out of training) until a human reviews it; the bytes are kept locked."""
        detail = inspection.summary()
        attributes = {
            "reason": ContractReason.POISONING_SUSPECTED,
            "detail": detail[:1000],
            **self._quarantine(
                ref, quarantine_key_of("held", ref.key, ref.version_id), ContractReason.POISONING_SUSPECTED
            ),
            **_verified_attributes(verified, digest, upload_time, inspection),
        }
        verdict = Verdict(STATUS_HELD, ref, ContractReason.POISONING_SUSPECTED, detail, attributes)
        return self._record(verdict, size, inspection)

    def _quarantine(self, ref: ObjectVersionRef, quarantine_key: str, reason: str) -> dict[str, str]:
        copied = self._s3.copy_object(
            Bucket=self._to.quarantine_bucket,
            Key=quarantine_key,
            CopySource={"Bucket": ref.bucket, "Key": ref.key, "VersionId": ref.version_id},
            MetadataDirective="COPY",
            TaggingDirective="REPLACE",
            Tagging=f"{Tag.QUARANTINE_REASON}={reason}",
        )
        return {
            "quarantine_bucket": self._to.quarantine_bucket,
            "quarantine_key": quarantine_key,
            "quarantine_version": copied["VersionId"],
        }

    def reject(self, ref: ObjectVersionRef, size: int, err: VerificationError) -> Verdict:
        """A verdict reached outside verification (the reconciler's UNVERIFIED_TIMEOUT)."""
        with transient_errors(ref):
            return self._finish(self._reject(ref, size, err))

    def _reject(
        self,
        ref: ObjectVersionRef,
        size: int,
        err: VerificationError,
        upload_time: datetime | None = None,
        inspection: Inspection | None = None,
    ) -> Verdict:
        attributes = {"reason": err.reason, "detail": err.detail[:1000]}
        if upload_time is not None:
            attributes["uploaded_at"] = upload_time.isoformat()
        producer = producer_of(ref.key)
        if producer:
            attributes["producer"] = producer
        if inspection is not None:
            attributes.update(_inspection_attributes(inspection))
        if err.reason != IngestReason.SOURCE_MISSING and size <= COPY_LIMIT:
            attributes.update(self._quarantine(ref, quarantine_key_of("rejected", ref.key, ref.version_id), err.reason))
        return self._record(Verdict(STATUS_REJECTED, ref, err.reason, err.detail, attributes), size, inspection)

    def _record(self, verdict: Verdict, size: int, inspection: Inspection | None = None) -> Verdict:
        ref = verdict.ref
        written = self._ledger.record_verdict(
            bucket=ref.bucket,
            key=ref.key,
            version_id=ref.version_id,
            status=verdict.status,
            size=size,
            attributes=verdict.attributes,
            profile=None if inspection is None else inspection.profile.to_bytes(),
            announcement=verdict_announcement(self._to, verdict, kind=VERDICT),
        )
        if not written:  # a concurrent verification of the same version won: its record stands
            return Verdict.recorded(ref, self._ledger.get(ref.bucket, ref.key, ref.version_id))
        return verdict

    def _finish(self, verdict: Verdict) -> Verdict:
        """After the record (new or found): publish what is pending of its announcement (AnnouncementPending when
        it cannot be now: the message is retried), then tag the ingest version with its verdict."""
        ref = verdict.ref
        verdict.announced = bool(self._outbox.deliver(version_key(ref.bucket, ref.key, ref.version_id)))
        self._tag(ref)
        return verdict

    def _tag(self, ref: ObjectVersionRef) -> None:
        try:
            self._s3.put_object_tagging(
                Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id, Tagging={"TagSet": [VERDICT_TAG]}
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in _MISSING_CODES:
                raise


VERDICT, REVIEW = "ingest-verdict", "ingest-review"  # announcement kinds: one of each per ingest version at most


def verdict_announcement(to: Destinations, verdict: Verdict, *, kind: str) -> Announcement:
    """The EventBridge event of a verdict (or a review decision) and, unless accepted, an SNS alert. Its id is
    derived from the kind and the exact ingest version (mlvault.outbox)."""
    ref = verdict.ref
    detail = {"bucket": ref.bucket, "key": ref.key, "version_id": ref.version_id, "status": verdict.status}
    detail.update(verdict.attributes)
    alert = None
    if verdict.status != STATUS_ACCEPTED:
        alert = Alert(
            topic_arn=to.alert_topic_arn,
            subject=f"mlvault: upload {verdict.status.lower()} ({verdict.reason})",
            message=detail,
            attributes={"reason": verdict.reason},
        )
    return Announcement.of(
        kind=kind,
        subject=ObjectVersion(ref.bucket, ref.key, ref.version_id).uri,
        event=Event(source=Source.INGEST, detail_type=DETAIL_TYPES[verdict.status], detail=detail, bus=to.event_bus),
        alert=alert,
    )


def lake_write(s3: Any, lake_bucket: str, lake_key: str, source: dict[str, str], digest: str, metadata: dict) -> str:
    """Copy an exact source version to its content-addressed lake key; reuse it if already there (a retry).
    Returns the lake version id."""
    try:
        existing = s3.head_object(Bucket=lake_bucket, Key=lake_key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise
        existing = None
    if existing is not None:
        if existing.get("Metadata", {}).get("mlvault-sha256") != digest:
            raise VerificationError(IngestReason.LAKE_CONFLICT, f"{lake_key} holds other bytes")
        return existing["VersionId"]
    copied = s3.copy_object(
        Bucket=lake_bucket,
        Key=lake_key,
        ChecksumAlgorithm="SHA256",
        CopySource=source,
        MetadataDirective="REPLACE",
        Metadata={"mlvault-sha256": digest, **metadata},
        TaggingDirective="REPLACE",  # lake objects never inherit tags (nor need the source's tag permissions)
    )
    checksum = copied.get("CopyObjectResult", {}).get("ChecksumSHA256")
    if checksum and base64.b64decode(checksum).hex() != digest:
        raise VerificationError(
            IngestReason.LAKE_CONFLICT, f"the lake copy hashes to {base64.b64decode(checksum).hex()}"
        )
    return copied["VersionId"]


def _inspection_attributes(inspection: Inspection) -> dict[str, str]:
    return {
        "rows": str(inspection.report.rows),
        "contract": f"{inspection.contract.dataset} v{inspection.contract.version} ({inspection.contract.format})",
        "screen": inspection.summary()[:1000],
    }


def _verified_attributes(
    verified: VerifiedClaim, digest: str, upload_time: datetime, inspection: Inspection
) -> dict[str, str]:
    claim = verified.claim
    return {
        "sha256": digest,
        "producer": claim.producer,
        "key_id": verified.key.id,
        "dataset": claim.dataset,
        "contract_version": claim.contract_version,
        "nonce": claim.nonce,
        "uploaded_at": upload_time.isoformat(),
        **_inspection_attributes(inspection),
    }
