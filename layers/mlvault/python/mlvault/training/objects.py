"""Objects the pipeline writes and reads back in the model bucket: files spooled on local storage, uploaded with
their SHA-256 (S3 checks it; an Object Lock bucket requires a checksum), reused when already stored with the same
digest, and downloaded by exact version, bounded and hashed on the way (never `.read()` of a whole object).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

CHUNK = 1024 * 1024
DIGEST_METADATA = "mlvault-sha256"


def file_sha256(path: Path) -> tuple[str, int]:
    """Hex SHA-256 and size of a local file, streamed."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _stored(s3: Any, bucket: str, key: str, sha256: str, size: int) -> str | None:
    """The version of `key` already holding these bytes (by our digest metadata and length), else None."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    if head.get("Metadata", {}).get(DIGEST_METADATA) == sha256 and head.get("ContentLength") == size:
        return head.get("VersionId")
    return None


def put_file(
    s3: Any,
    bucket: str,
    key: str,
    path: Path,
    *,
    sha256: str | None = None,
    content_type: str = "application/octet-stream",
    metadata: dict[str, str] | None = None,
) -> tuple[str, str, int]:
    """Store a local file under `key` with its SHA-256 checksum; (version id, sha256, bytes). A key already holding
    the same bytes is reused (a retried step writes nothing new)."""
    if sha256 is None:
        sha256, size = file_sha256(path)
    else:
        size = path.stat().st_size
    existing = _stored(s3, bucket, key, sha256, size)
    if existing is not None:
        return existing, sha256, size
    with path.open("rb") as body:
        response = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentLength=size,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
            Metadata={DIGEST_METADATA: sha256, **(metadata or {})},
        )
    return response["VersionId"], sha256, size


def put_bytes(s3: Any, bucket: str, key: str, data: bytes, *, content_type: str = "application/json") -> str:
    """Store small bytes with their checksum (and our digest metadata); the version id (reused if unchanged)."""
    sha256 = hashlib.sha256(data).hexdigest()
    existing = _stored(s3, bucket, key, sha256, len(data))
    if existing is not None:
        return existing
    return s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
        Metadata={DIGEST_METADATA: sha256},
    )["VersionId"]


def download(
    s3: Any,
    bucket: str,
    key: str,
    path: Path,
    *,
    version_id: str | None,
    limit: int,
    refuse: Callable[[str], Exception],
    sha256: str | None = None,
) -> tuple[str, str, int]:
    """Stream an object (its exact version when given) into `path`, at most `limit` bytes, hashing on the way; the
    digest must be `sha256` when given. `refuse(detail)` builds the error of a refusal. (version id, sha256, size)."""
    arguments = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    response = s3.get_object(**arguments)
    body = response["Body"]
    where = f"s3://{bucket}/{key}" + (f"?versionId={version_id}" if version_id else "")
    try:
        if version_id and response.get("VersionId") != version_id:
            raise refuse(f"{where}: S3 returned version {response.get('VersionId')!r}")
        if response.get("ContentLength", 0) > limit:
            raise refuse(f"{where}: {response['ContentLength']} bytes, at most {limit}")
        digest, size = hashlib.sha256(), 0
        with path.open("xb") as out:
            while chunk := body.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise refuse(f"{where}: more than {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
    finally:
        body.close()
    got = digest.hexdigest()
    if sha256 is not None and got != sha256:
        raise refuse(f"{where}: expected sha256 {sha256}, got {got}")
    return str(response.get("VersionId") or ""), got, size
