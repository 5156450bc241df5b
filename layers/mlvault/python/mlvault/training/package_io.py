"""Model packages in the model bucket: stored content-addressed (mlvault.model_package.package_key) from a model
directory, and fetched back by exact version into a private folder, their digest checked before anything in them
is parsed (the evaluate and sign steps)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlvault.errors import PipelineFailed, PipelineReason, TrainingError, TrainingReason
from mlvault.model_package import (
    DESCRIPTOR_FILE,
    MAX_PACKAGE_BYTES,
    PACKAGE_FORMAT,
    ModelDescriptor,
    PackageError,
    file_digests,
    pack_into,
    package_key,
    parse_descriptor,
    unpack,
)
from mlvault.training.objects import download, put_file


def store_package(s3: Any, bucket: str, model: str, folder: Path) -> dict[str, Any]:
    """Pack `folder` (exactly the package's files) through a spool file and store it; the artifact's pins as the
    run and the registry record name them: bucket, key, version_id, sha256 (of the tar), bytes, format, files."""
    files = file_digests({p.name: p for p in folder.iterdir()})
    with tempfile.TemporaryDirectory(prefix="mlvault-pack-") as scratch:
        tar = Path(scratch) / "model.tar"
        with tar.open("xb") as out:
            pack_into(folder, out)
        sha = hashlib.sha256()
        with tar.open("rb") as source:
            while chunk := source.read(1024 * 1024):
                sha.update(chunk)
        digest = sha.hexdigest()
        if tar.stat().st_size > MAX_PACKAGE_BYTES:
            raise TrainingError(
                TrainingReason.TRAINING_OUTPUT_INVALID,
                f"the model package is {tar.stat().st_size} bytes, at most {MAX_PACKAGE_BYTES}",
            )
        key = package_key(model, digest)
        version, _, size = put_file(s3, bucket, key, tar, sha256=digest, content_type="application/x-tar")
    return {
        "bucket": bucket,
        "key": key,
        "version_id": version,
        "sha256": digest,
        "bytes": size,
        "format": PACKAGE_FORMAT,
        "files": dict(sorted(files.items())),
    }


@dataclass(frozen=True)
class FetchedPackage:
    folder: Path  # the extracted files (the caller's private folder)
    descriptor: ModelDescriptor
    digests: dict[str, str]


def fetch_package(s3: Any, artifact: dict[str, Any], folder: Path, *, limit: int = MAX_PACKAGE_BYTES) -> FetchedPackage:
    """Download the pinned package (by version, bounded, its SHA-256 the pinned one: ARTIFACT_DIGEST_MISMATCH),
    extract it into `folder` (model_package.unpack) and check its files against the pinned per-file digests."""
    if artifact.get("format") != PACKAGE_FORMAT:
        raise PipelineFailed(
            PipelineReason.ARTIFACT_DIGEST_MISMATCH,
            f"{artifact.get('key')}: format {artifact.get('format')!r}, expected a model package ({PACKAGE_FORMAT})",
        )
    if artifact["bytes"] > limit:
        raise PipelineFailed(PipelineReason.ARTIFACT_TOO_LARGE, f"{artifact['bytes']} bytes, at most {limit}")

    def refuse(detail: str) -> PipelineFailed:
        return PipelineFailed(PipelineReason.ARTIFACT_DIGEST_MISMATCH, detail)

    tar = folder.parent / f".{folder.name}.tar"
    download(
        s3,
        artifact["bucket"],
        artifact["key"],
        tar,
        version_id=artifact["version_id"],
        limit=min(limit, artifact["bytes"]),
        refuse=refuse,
        sha256=artifact["sha256"],
    )
    folder.mkdir(mode=0o700)
    try:
        with tar.open("rb") as stream:
            files = unpack(stream, folder, limit=limit)
    except PackageError as err:
        raise refuse(f"{artifact['key']}: {err}") from None
    finally:
        tar.unlink(missing_ok=True)
    digests = file_digests(files)
    if digests != artifact.get("files", digests):
        raise refuse(f"{artifact['key']}: files {digests}, pinned {artifact['files']}")
    try:
        descriptor = parse_descriptor((folder / DESCRIPTOR_FILE).read_bytes())
    except TrainingError as err:
        raise refuse(f"{artifact['key']}: {err}") from None
    return FetchedPackage(folder=folder, descriptor=descriptor, digests=digests)
