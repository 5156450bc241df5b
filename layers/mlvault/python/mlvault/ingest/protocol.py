"""The upload signing protocol (docs/signing.md): what a producer signs and how mlvault verifies it.

A DSSE envelope over an in-toto Statement v1 with one subject (the object key and the SHA-256 of its bytes)
and a predicate naming producer, dataset, contract version, size, nonce, issued_at and expires_at. The
envelope travels in the object's user metadata under `mlvault-envelope`, base64url-encoded, in the same PUT.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlvault.errors import IngestReason, VerificationError
from mlvault.ingest.naming import parse_ingest_key
from mlvault.signing.dsse import PAYLOAD_TYPE, URL_SAFE, Envelope, b64decode_strict, json_object, pae, parse_envelope
from mlvault.signing.keys import Signer, verify_signature
from mlvault.trust.producers import Producer, ProducerKey, ProducerRegistry

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlvault.dev/attestations/upload/v1"
METADATA_KEY = "mlvault-envelope"
S3_USER_METADATA_LIMIT = 2048  # bytes of all user metadata keys and values, S3's limit for a PUT
MAX_ENVELOPE_BYTES = 1800  # the encoded envelope, leaving room for other metadata below S3's limit
MAX_VALIDITY = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=5)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Claim:
    """What a producer asserts about one upload."""

    object_key: str
    sha256: str
    producer: str
    dataset: str
    contract_version: str
    size: int
    nonce: str
    issued_at: str
    expires_at: str

    def statement(self) -> bytes:
        body = {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.object_key, "digest": {"sha256": self.sha256}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {k: v for k, v in asdict(self).items() if k not in ("object_key", "sha256")},
        }
        # UTF-8, not \u escapes: a non-ASCII file name costs its UTF-8 bytes in the envelope's size limit, not 6 per
        # character (any valid serialization verifies: the signature is over these exact bytes)
        return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def new_claim(
    *,
    object_key: str,
    sha256: str,
    size: int,
    producer: str,
    dataset: str,
    contract_version: str,
    validity: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> Claim:
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    return Claim(
        object_key=object_key,
        sha256=sha256,
        producer=producer,
        dataset=dataset,
        contract_version=contract_version,
        size=size,
        nonce=secrets.token_hex(16),
        issued_at=iso(now),
        expires_at=iso(now + validity),
    )


def sign(claim: Claim, signer: Signer) -> Envelope:
    payload = claim.statement()
    return Envelope(
        payload_type=PAYLOAD_TYPE,
        payload=payload,
        keyid=signer.keyid,
        signature=signer.sign(pae(PAYLOAD_TYPE, payload)),
    )


def encode_metadata(envelope: Envelope) -> str:
    value = base64.urlsafe_b64encode(envelope.to_json().encode()).decode()
    if len(value) > MAX_ENVELOPE_BYTES:
        raise ValueError(f"encoded envelope is {len(value)} bytes; the protocol allows {MAX_ENVELOPE_BYTES}")
    return value


def metadata_size(metadata: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())


@dataclass(frozen=True)
class VerifiedClaim:
    claim: Claim
    key: ProducerKey


def verify_envelope(
    metadata: Mapping[str, str],
    *,
    object_key: str,
    upload_time: datetime,
    registry: ProducerRegistry,
    public_key: Callable[[ProducerKey], Any],
    revoked_at: Callable[[str], datetime | None],
) -> VerifiedClaim:
    """Everything about an upload that the envelope and the registry decide (not the bytes: see digest).

    Order matters (GUIDE.md 3): bound sizes, then identity from the key and registry, then the signature,
    and only then parse what was signed.
    """
    layout = parse_ingest_key(object_key)
    encoded = metadata.get(METADATA_KEY)
    if encoded is None:
        raise VerificationError(IngestReason.MISSING_SIGNATURE, f"no {METADATA_KEY} in the object's user metadata")
    if len(encoded) > MAX_ENVELOPE_BYTES or metadata_size(metadata) > S3_USER_METADATA_LIMIT:
        raise VerificationError(
            IngestReason.ENVELOPE_TOO_LARGE,
            f"envelope {len(encoded)} bytes, all metadata {metadata_size(metadata)} bytes; "
            f"limits {MAX_ENVELOPE_BYTES} and {S3_USER_METADATA_LIMIT}",
        )
    try:
        text = b64decode_strict(encoded, URL_SAFE).decode("utf-8")
    except ValueError as err:  # UnicodeDecodeError is a ValueError
        raise VerificationError(
            IngestReason.MALFORMED_ENVELOPE, f"{METADATA_KEY} is not RFC 4648 base64url of UTF-8 ({err})"
        ) from None
    envelope = parse_envelope(text)

    producer = registry.producers.get(layout.producer)
    if producer is None:
        raise VerificationError(IngestReason.UNKNOWN_PRODUCER, f"producer {layout.producer!r} is not in the registry")
    if envelope.keyid:
        key = producer.keys.get(envelope.keyid)
        if key is None:
            raise VerificationError(
                IngestReason.UNKNOWN_KEY, f"key {envelope.keyid!r} is not a registered key of producer {producer.id!r}"
            )
        _check_key(key, upload_time, revoked_at)
        verify_signature(
            key.algorithm, public_key(key), envelope.signature, pae(envelope.payload_type, envelope.payload)
        )
    else:  # DSSE: keyid is optional; without it, every registered key of the producer is tried
        key = _signing_key(envelope, producer, public_key)
        _check_key(key, upload_time, revoked_at)

    claim = _parse_statement(envelope.payload)
    if claim.object_key != object_key:
        raise VerificationError(
            IngestReason.SUBJECT_MISMATCH, f"signed subject {claim.object_key!r}, uploaded as {object_key!r}"
        )
    if claim.producer != producer.id:
        raise VerificationError(
            IngestReason.PRODUCER_MISMATCH, f"signed producer {claim.producer!r}, uploaded under {producer.id!r}"
        )
    if claim.dataset != layout.dataset:
        raise VerificationError(
            IngestReason.DATASET_MISMATCH, f"signed dataset {claim.dataset!r}, uploaded under {layout.dataset!r}"
        )
    if claim.dataset not in producer.datasets:
        raise VerificationError(
            IngestReason.DATASET_NOT_ALLOWED,
            f"producer {producer.id!r} may publish {list(producer.datasets)}, not {claim.dataset!r}",
        )
    issued, expires = _time(claim.issued_at), _time(claim.expires_at)
    if issued > upload_time + CLOCK_SKEW:
        raise VerificationError(
            IngestReason.FUTURE_SIGNATURE, f"signed at {claim.issued_at}, after the upload at {iso(upload_time)}"
        )
    if expires - issued > MAX_VALIDITY or expires <= issued:
        raise VerificationError(
            IngestReason.STALE_SIGNATURE,
            f"validity {claim.issued_at} to {claim.expires_at} exceeds the {MAX_VALIDITY} the protocol allows",
        )
    if upload_time > expires:
        raise VerificationError(
            IngestReason.STALE_SIGNATURE,
            f"signature expired at {claim.expires_at}; the upload was at {iso(upload_time)}",
        )
    return VerifiedClaim(claim=claim, key=key)


def _check_key(key: ProducerKey, upload_time: datetime, revoked_at: Callable[[str], datetime | None]) -> None:
    """The key was valid and not revoked at upload time."""
    if not key.not_before <= upload_time <= key.not_after:
        raise VerificationError(
            IngestReason.KEY_EXPIRED,
            f"key {key.id!r} is valid {iso(key.not_before)} to "
            f"{iso(key.not_after)}; the upload was at {iso(upload_time)}",
        )
    revoked = revoked_at(key.id)
    # S3 records upload times to the second: an upload in the same second as the revocation is refused.
    if revoked is not None and revoked.replace(microsecond=0) <= upload_time:
        raise VerificationError(
            IngestReason.KEY_REVOKED,
            f"key {key.id!r} was revoked at {iso(revoked)}; the upload was at {iso(upload_time)}",
        )


def _signing_key(envelope: Envelope, producer: Producer, public_key: Callable[[ProducerKey], Any]) -> ProducerKey:
    """The registered key of the producer whose signature this is (an envelope without keyid)."""
    message = pae(envelope.payload_type, envelope.payload)
    for key_id in sorted(producer.keys):
        key = producer.keys[key_id]
        try:
            verify_signature(key.algorithm, public_key(key), envelope.signature, message)
        except VerificationError:
            continue
        return key
    raise VerificationError(
        IngestReason.INVALID_SIGNATURE,
        f"the envelope names no keyid and the signature verifies with none of producer {producer.id!r}'s keys",
    )


def check_content(claim: Claim, *, sha256: str, size: int) -> None:
    """The bytes are exactly what was signed: same size, same SHA-256."""
    if size != claim.size:
        raise VerificationError(IngestReason.SIZE_MISMATCH, f"signed size {claim.size}, got {size} bytes")
    if sha256 != claim.sha256:
        raise VerificationError(
            IngestReason.DIGEST_MISMATCH, f"signed sha256 {claim.sha256}, the bytes hash to {sha256}"
        )


def _parse_statement(payload: bytes) -> Claim:
    def bad(detail: str) -> VerificationError:
        return VerificationError(IngestReason.MALFORMED_STATEMENT, detail)

    try:
        body = json_object(payload)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad(f"payload is not JSON ({err})") from None
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        raise bad(f"payload is not an in-toto {STATEMENT_TYPE}")
    if body.get("predicateType") != PREDICATE_TYPE:
        raise bad(f"predicateType must be {PREDICATE_TYPE!r}, got {body.get('predicateType')!r}")
    subjects = body.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise bad("statement must have exactly one subject")
    subject = subjects[0]
    digest = (subject.get("digest") or {}).get("sha256") if isinstance(subject.get("digest"), dict) else None
    if not isinstance(subject.get("name"), str) or not isinstance(digest, str) or not _HEX64.match(digest):
        raise bad("subject needs a name and digest.sha256 of 64 lowercase hex digits")
    predicate = body.get("predicate")
    fields = {
        "producer": str,
        "dataset": str,
        "contract_version": str,
        "size": int,
        "nonce": str,
        "issued_at": str,
        "expires_at": str,
    }
    if not isinstance(predicate, dict) or set(predicate) != set(fields):
        raise bad(f"predicate must have exactly {sorted(fields)}")
    for name, type_ in fields.items():
        if not isinstance(predicate[name], type_) or isinstance(predicate[name], bool):
            raise bad(f"predicate.{name} must be {type_.__name__}")
    if predicate["size"] < 0 or not 16 <= len(predicate["nonce"]) <= 128:
        raise bad("predicate.size must be >= 0 and predicate.nonce 16 to 128 characters")
    for name in ("issued_at", "expires_at"):
        try:
            _time(predicate[name])
        except ValueError:
            raise bad(f"predicate.{name} must be an ISO 8601 UTC timestamp") from None
    return Claim(object_key=subject["name"], sha256=digest, **predicate)


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed


def iso(value: datetime) -> str:
    """A time in UTC with a Z suffix, as the protocol writes times."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
