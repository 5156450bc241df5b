"""The producer side of the protocol: keys, signing and pushing files, offline verification, upload status.

Used by the `mlvault` CLI; works against AWS and the local cloud alike (clients are passed in).
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlvault.ingest.digest import sha256_file
from mlvault.ingest.protocol import (
    METADATA_KEY,
    Claim,
    VerifiedClaim,
    check_content,
    encode_metadata,
    iso,
    new_claim,
    sign,
    verify_envelope,
)
from mlvault.ledger import Ledger, LedgerRecord
from mlvault.signing.keys import Signer, generate, private_pem, public_pem
from mlvault.trust.producers import ProducerRegistry

MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024


def keygen(algorithm: str, key_id: str, out: Path, *, valid_days: int = 365) -> dict[str, Any]:
    """Write a new private key (mode 0600) and return the registry entry to add by reviewed change."""
    if valid_days < 1:
        raise ValueError(f"a key must be valid for at least one day, not {valid_days}")
    key = generate(algorithm)
    if out.exists():
        raise FileExistsError(f"{out} exists; refusing to overwrite a private key")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem(key))
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "id": key_id,
        "algorithm": algorithm,
        "public_key": public_pem(key.public_key()),
        "not_before": iso(now),
        "not_after": iso(now + timedelta(days=valid_days)),
    }


def object_key(producer: str, dataset: str, name: str) -> str:
    return f"producers/{producer}/{dataset}/{name}"


def sign_file(
    path: Path,
    *,
    key: str,
    producer: str,
    dataset: str,
    contract_version: str,
    signer: Signer,
    validity: timedelta = timedelta(hours=1),
) -> tuple[Claim, str]:
    """The claim and the metadata value (base64url DSSE envelope) for uploading `path` under `key`."""
    digest, size = sha256_file(path)
    claim = new_claim(
        object_key=key,
        sha256=digest,
        size=size,
        producer=producer,
        dataset=dataset,
        contract_version=contract_version,
        validity=validity,
    )
    return claim, encode_metadata(sign(claim, signer))


@dataclass(frozen=True)
class Pushed:
    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str


def push(
    s3: Any, path: Path, *, bucket: str, claim: Claim, envelope: str, progress: Callable[[int, int], None] | None = None
) -> Pushed:
    """Upload the file with its envelope in one atomic write (a PUT, or a multipart upload whose metadata is
    given at creation), with S3 SHA-256 checksums so that S3 itself refuses corrupted bytes in transit."""
    metadata = {METADATA_KEY: envelope}
    if claim.size <= MULTIPART_THRESHOLD:
        with path.open("rb") as body:
            response = s3.put_object(
                Bucket=bucket,
                Key=claim.object_key,
                Body=body,
                Metadata=metadata,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(claim.sha256)).decode(),
            )
        if progress:
            progress(claim.size, claim.size)
        return Pushed(bucket, claim.object_key, response["VersionId"], claim.size, claim.sha256)
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key=claim.object_key, Metadata=metadata, ChecksumAlgorithm="SHA256"
    )
    parts = []
    try:
        with path.open("rb") as source:
            number, sent = 1, 0
            while chunk := source.read(PART_SIZE):
                checksum = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
                part = s3.upload_part(
                    Bucket=bucket,
                    Key=claim.object_key,
                    UploadId=upload["UploadId"],
                    PartNumber=number,
                    Body=chunk,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": checksum})
                sent += len(chunk)
                number += 1
                if progress:
                    progress(sent, claim.size)
        response = s3.complete_multipart_upload(
            Bucket=bucket, Key=claim.object_key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=claim.object_key, UploadId=upload["UploadId"])
        raise
    return Pushed(bucket, claim.object_key, response["VersionId"], claim.size, claim.sha256)


def progress_bar(stream=sys.stderr, clock: Callable[[], float] | None = None) -> Callable[[int, int], None]:
    """A progress bar for a terminal: bytes sent, the rate and the time left."""
    import time

    clock = clock or time.monotonic
    started = clock()

    def show(sent: int, total: int) -> None:
        width = 30
        done = int(width * sent / total) if total else width
        elapsed = max(clock() - started, 1e-6)
        rate = sent / elapsed
        left = (total - sent) / rate if rate else 0.0
        stream.write(
            f"\r  [{'#' * done}{'.' * (width - done)}] {sent / 2**20:8.1f} / {total / 2**20:.1f} MiB"
            f"  {rate / 2**20:6.1f} MiB/s  {left:4.0f} s left"
        )
        if sent >= total:
            stream.write("\n")
        stream.flush()

    return show


def verify_claim(
    *,
    key: str,
    envelope: str,
    registry: ProducerRegistry,
    at: datetime,
    revoked_at: Callable[[str], datetime | None] = lambda _key_id: None,
    public_key: Callable[[Any], Any] | None = None,
) -> VerifiedClaim:
    """What the verifier decides from the envelope and the registry (not the bytes), for an upload at `at`.
    `public_key` fetches a registered key's public key (default: the PEM in the registry; a KMS key needs it)."""
    return verify_envelope(
        {METADATA_KEY: envelope},
        object_key=key,
        upload_time=at,
        registry=registry,
        public_key=public_key or (lambda k: k.public_key()),
        revoked_at=revoked_at,
    )


def verify_offline(
    path: Path,
    *,
    key: str,
    envelope: str,
    registry: ProducerRegistry,
    at: datetime,
    revoked: dict[str, datetime] | None = None,
) -> VerifiedClaim:
    """The verifier's checks on a local file: envelope, registry key, signature, claims, then the bytes."""
    verified = verify_claim(key=key, envelope=envelope, registry=registry, at=at, revoked_at=(revoked or {}).get)
    digest, size = sha256_file(path)
    check_content(verified.claim, sha256=digest, size=size)
    return verified


def preflight(
    claim: Claim,
    envelope: str,
    *,
    registry: ProducerRegistry,
    contracts: Path | None,
    revoked_at: Callable[[str], datetime | None],
    public_key: Callable[[Any], Any],
) -> VerifiedClaim:
    """What the verifier would refuse of this signed upload without reading its bytes, checked before uploading:
    the producer, its key (registered, valid now, not revoked, the pair of the private key that signed),
    the dataset (the producer's, with a contract in `contracts` when given), the signature's validity window.
    Raises the verifier's own VerificationError (its reason code); the content is `contract check`'s job."""
    from mlvault.errors import ContractReason, VerificationError

    verified = verify_claim(
        key=claim.object_key,
        envelope=envelope,
        registry=registry,
        at=datetime.now(UTC),
        revoked_at=revoked_at,
        public_key=public_key,
    )
    if contracts is not None and not (contracts / f"{claim.dataset}.json").is_file():
        raise VerificationError(
            ContractReason.NO_CONTRACT, f"dataset {claim.dataset!r} has no contract ({contracts}/{claim.dataset}.json)"
        )
    return verified


def location(record: LedgerRecord) -> str:
    a = record.attributes
    if "lake_key" in a:
        return f"s3://{a['lake_bucket']}/{a['lake_key']}?versionId={a['lake_version']}"
    if "quarantine_key" in a:
        return f"s3://{a['quarantine_bucket']}/{a['quarantine_key']}?versionId={a['quarantine_version']}"
    return f"s3://{record.bucket}/{record.key}?versionId={record.version_id} (ingest, awaiting a verdict)"


def status(ledger: Ledger, bucket: str, key: str) -> list[LedgerRecord]:
    return sorted(ledger.versions(bucket, key), key=lambda r: r.received_at)
