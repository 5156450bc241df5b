"""Attesting one pinned model package: the one check that deployment, rollback, `mlvault verify-model` and serving
share.

A model is a package (mlvault.model_package: `model.onnx`, `descriptor.json`, `drift.json`), stored as one
deterministic tar and signed as a directory in the OpenSSF model-signing format (one resource per file). A
`ModelPin` names it exactly: the tar's S3 object version and SHA-256, its signature's object version, the KMS key
that must have signed it (the bundled anchor, mlvault.trust.anchors: its ARN and the SHA-256 of its public key) and
its registry id. `attest` fails closed, in this order (bound, then verify, then parse; GUIDE.md section 3):

  the signature's pinned version (absent: MODEL_UNSIGNED), at most openssf.MAX_SIGNATURE_BYTES
  -> the tar's pinned version, streamed into the caller's private folder through SHA-256, at most
     `max_model_bytes` (MODEL_TOO_LARGE), its digest the pinned one (MODEL_DIGEST_MISMATCH; S3 returning another
     version: MODEL_VERSION_MISMATCH)
  -> the anchored KMS key's public key (`trusted_public_key`: deleted, disabled, pending deletion or not
     ECC_NIST_P256: SIGNING_KEY_UNUSABLE; a public key whose SHA-256 is not the anchored one:
     SIGNING_KEY_NOT_TRUSTED)
  -> the tar extracted into `<folder>/model` (model_package.unpack: regular files only, exactly the package's
     files, each once, bounded; a link or special member: MODEL_FILE_UNSUPPORTED, an unexpected or repeated
     member: MODEL_FILE_EXTRA, a file missing: MODEL_FILE_MISSING, not a tar: MODEL_MALFORMED, or
     MODEL_FORMAT_UNSUPPORTED for a signed single-file model of the format before packages, below)
  -> openssf.verify_model of that directory (one resource per file: exactly these files, each digest; its reason
     codes pass through unchanged)
  -> the signed statement names the pinned model id (the sign step signs {"mlvault": {"model_id": ...}}: a signed
     package cannot pass for another model, whose registry record and revocation would then not apply), and the
     pinned tar's digest (`package_sha256`: MODEL_DIGEST_MISMATCH otherwise).

It returns an `Attested` (the verified directory in the caller's folder; `read(name)` gives a file's bytes only
once they hash to the signed digest, so what is parsed is what was verified) or raises AttestationError with a
stable code. Transient AWS errors (throttling, 5xx, timeouts) and access errors are not verdicts: they propagate.

Models of the single-file format (`mlvault.model/v1` JSON, signed as one resource ".") are refused everywhere
this check runs, with MODEL_FORMAT_UNSUPPORTED: serving has one path (ONNX), so they are neither served, deployed
nor rolled back to; retrain to replace them (docs/models.md, "Models of the single-file format").

`attest_registered` is that check for a model of the registry (deployment, rollback, `mlvault verify-model`): the
record must be intact, signed with the pinned key and covered by the signature, and in an allowed status; the
files the record lists (`artifact.files`, name -> sha256, when present) must be the signed files.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mlvault import model_package
from mlvault.attestation import openssf
from mlvault.errors import (
    AnchorReason,
    AttestationError,
    ModelReason,
    ModelVerificationError,
    RolloutReason,
    RolloutRefused,
    ServeReason,
)
from mlvault.trust.anchors import SigningKey

MAX_MODEL_BYTES = 50 * 1024 * 1024  # the package tar (the extracted files are at most as large)
CHUNK_BYTES = 1024 * 1024
PACKAGE_FILE = "package.tar"  # the downloaded tar, beside the directory (never inside it; never the object key)
MODEL_DIR = "model"  # the extracted, verified model directory
SIGNATURE_FILE = "model.sig"
PUBLIC_KEY_FILE = "signing-key.pem"
_ABSENT = frozenset({"NoSuchKey", "NoSuchVersion", "MethodNotAllowed"})  # 405: the pinned version is a delete marker
_KEY_UNUSABLE = frozenset({"NotFoundException", "DisabledException", "KMSInvalidStateException"})
_PACKAGE_REFUSALS = {
    model_package.PackageError.NOT_A_FILE: ModelReason.MODEL_FILE_UNSUPPORTED,
    model_package.PackageError.UNEXPECTED: ModelReason.MODEL_FILE_EXTRA,
    model_package.PackageError.MISSING: ModelReason.MODEL_FILE_MISSING,
    model_package.PackageError.TOO_LARGE: ServeReason.MODEL_TOO_LARGE,
}


@dataclass(frozen=True)
class ModelPin:
    model_id: str
    bucket: str
    artifact_key: str  # the package tar
    artifact_version: str
    artifact_digest: str  # SHA-256 of the tar
    signature_key: str
    signature_version: str
    signing_key: SigningKey

    @property
    def signing_key_arn(self) -> str:
        return self.signing_key.arn


@dataclass(frozen=True)
class Attested:
    pin: ModelPin
    path: Path  # the verified model directory, in the caller's folder
    signature: bytes
    public_key_pem: bytes
    verified: openssf.VerifiedModel

    @property
    def signed_extra(self) -> dict[str, Any]:
        return dict(self.verified.extra)

    @property
    def digests(self) -> Mapping[str, str]:
        """File name -> signed SHA-256 (exactly model_package.FILES)."""
        return self.verified.digests

    def read(self, name: str) -> bytes:
        """A file of the package, read once and checked against its signed digest (ModelVerificationError
        MODEL_DIGEST_MISMATCH if it changed since it was verified): parse these bytes, never the file again."""
        data = (self.path / name).read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != self.digests[name]:
            raise ModelVerificationError(
                ModelReason.MODEL_DIGEST_MISMATCH, f"{name!r} changed after it was verified: sha256 {got}"
            )
        return data


def attest(
    s3: Any, kms: Any, pin: ModelPin, folder: Path, *, max_model_bytes: int = MAX_MODEL_BYTES, stage: str = ""
) -> Attested:
    """Download, extract and verify the pinned package into `folder` (private: nobody else writes it; the tar is
    removed once extracted). `stage` labels a refusal."""
    check = _Check(s3, kms, pin, stage)
    signature = check.signature()
    tar = folder / PACKAGE_FILE
    directory = folder / MODEL_DIR
    try:
        check.download(tar, max_model_bytes)
        public_key_pem = check.public_key()
        directory.mkdir(mode=0o700)
        check.unpack(tar, directory, max_model_bytes, signature, public_key_pem)
    finally:
        tar.unlink(missing_ok=True)
    try:
        verified = openssf.verify_model(directory, signature, public_key_pem)
    except ModelVerificationError as err:
        raise check.refuse(err.reason, err.detail) from err
    names = set(verified.digests)
    if names != set(model_package.FILES):  # unpack and verify_model already hold the files to both lists
        raise check.refuse(
            ModelReason.MODEL_FILE_EXTRA if names - set(model_package.FILES) else ModelReason.MODEL_FILE_MISSING,
            f"the signature lists {sorted(names)}, a package is {list(model_package.FILES)}",
        )
    signed = signed_mlvault(verified.extra)
    if signed.get("model_id") != pin.model_id:
        raise check.refuse(
            ServeReason.MODEL_ID_MISMATCH,
            f"the signature names model id {signed.get('model_id')!r}, expected the pinned {pin.model_id!r}",
        )
    if signed.get("package_sha256") != pin.artifact_digest:
        raise check.refuse(
            ModelReason.MODEL_DIGEST_MISMATCH,
            f"the signature is of the package with sha256 {signed.get('package_sha256')!r}, the pinned package's "
            f"is {pin.artifact_digest}",
        )
    return Attested(pin, directory, signature, public_key_pem, verified)


def attest_registered(
    s3: Any,
    kms: Any,
    model: dict[str, Any] | None,
    signing_key: SigningKey,
    *,
    statuses: tuple[str, ...] | None = None,
    folder: Path | None = None,
) -> Attested:
    """Verify a registered, signed model (`ModelRegistry.model`): the registry record intact, signed with the
    anchored key, in one of `statuses` if given, then `attest` of the exact versions it names, whose signature must
    cover this very record (and the files it lists). With `folder`, the verified directory, its signature and the
    public key are left there (`model/`, `model.sig`, `signing-key.pem`) for an independent verifier:
    `model_signing verify key <folder>/model --signature <folder>/model.sig --public_key <folder>/signing-key.pem`.
    Raises RolloutRefused."""
    if model is None:
        raise RolloutRefused(RolloutReason.MODEL_NOT_REGISTERED, "no such model")
    model_id = model["model_id"]
    if "signature_key" not in model:
        raise RolloutRefused(RolloutReason.MODEL_NOT_SIGNED, f"{model_id} is {model['status']}, with no signature")
    if statuses is not None and model["status"] not in statuses:
        raise RolloutRefused(RolloutReason.MODEL_NOT_DEPLOYABLE, f"{model_id} is {model['status']}")
    if not model["record_intact"]:
        raise RolloutRefused(
            RolloutReason.RECORD_TAMPERED, f"{model_id}'s registry record changed after it was written"
        )
    if model.get("signing_key_arn") != signing_key.arn:
        raise RolloutRefused(
            RolloutReason.WRONG_SIGNING_KEY,
            f"signed by {model.get('signing_key_arn')}, the bundled anchors trust {signing_key.arn}",
        )
    artifact = model["record"]["artifact"]
    pin = ModelPin(
        model_id=model_id,
        bucket=artifact["bucket"],
        artifact_key=artifact["key"],
        artifact_version=artifact["version_id"],
        artifact_digest=artifact["sha256"],
        signature_key=model["signature_key"],
        signature_version=model["signature_version"],
        signing_key=signing_key,
    )
    with tempfile.TemporaryDirectory(prefix="mlvault-attest-") as scratch:  # mode 0700
        try:
            attested = attest(s3, kms, pin, Path(scratch))
        except AttestationError as err:
            raise RolloutRefused(err.reason, err.detail) from None
        listed = artifact.get("files")
        if listed is not None and dict(listed) != dict(attested.digests):
            raise RolloutRefused(
                ModelReason.MODEL_DIGEST_MISMATCH,
                f"the record lists the files {dict(listed)}, the signature covers {dict(attested.digests)}",
            )
        if folder is not None:
            attested = _leave(attested, folder)
    if signed_mlvault(attested.verified.extra).get("record_sha256") != model["record_sha256"]:
        raise RolloutRefused(RolloutReason.RECORD_TAMPERED, "the signed statement does not cover this registry record")
    return attested


def _leave(attested: Attested, folder: Path) -> Attested:
    """Copy the verified directory, its signature and the public key into `folder` (an earlier check's
    `model/` there is replaced, anything else in it is refused: a stray file would fail the verification)."""
    target = folder / MODEL_DIR
    if target.exists():
        for name in model_package.FILES:
            (target / name).unlink(missing_ok=True)
        try:
            target.rmdir()
        except OSError:
            raise FileExistsError(f"{target} holds other files than a model package: choose another --out") from None
    target.mkdir()
    for name in model_package.FILES:
        (target / name).write_bytes(attested.read(name))  # the verified bytes, checked once more
    (folder / SIGNATURE_FILE).write_bytes(attested.signature)
    (folder / PUBLIC_KEY_FILE).write_bytes(attested.public_key_pem)
    return Attested(attested.pin, target, attested.signature, attested.public_key_pem, attested.verified)


def trusted_public_key(kms: Any, key: SigningKey, *, refuse: Any = None) -> bytes:
    """The PEM public key of the anchored model-signing key, as KMS GetPublicKey returns it, once its SHA-256 is
    the anchored one. Refused (AttestationError, or what `refuse(reason, detail)` builds): SIGNING_KEY_UNUSABLE
    when KMS refuses the key (not found, Disabled: DisabledException, PendingDeletion: KMSInvalidStateException)
    or it is not an ECC_NIST_P256 SIGN_VERIFY key; SIGNING_KEY_NOT_TRUSTED when its public key is another than
    the anchored one. Transient and access errors propagate unchanged (not verdicts)."""
    refuse = refuse or AttestationError
    try:
        pem = openssf.kms_public_key_pem(kms, key.arn)
    except ClientError as err:
        if _error_code(err) in _KEY_UNUSABLE:
            raise refuse(ServeReason.SIGNING_KEY_UNUSABLE, f"{key.arn}: {_error_code(err)}") from err
        raise
    except ValueError as err:  # kms_public_key_pem: not an ECC_NIST_P256 SIGN_VERIFY key
        raise refuse(ServeReason.SIGNING_KEY_UNUSABLE, f"{key.arn}: {err}") from err
    if not key.trusts(pem):
        raise refuse(
            AnchorReason.SIGNING_KEY_NOT_TRUSTED,
            f"{key.arn}: its public key has SHA-256 {key.fingerprint_of(pem)}, the bundled anchors trust "
            f"{key.public_key_sha256}",
        )
    return pem


def signed_mlvault(extra: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the sign step signed about the model (model id, registry record digest, ...); {} if nothing."""
    signed = extra.get("mlvault")
    return signed if isinstance(signed, Mapping) else {}


def _error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


class _Check:
    def __init__(self, s3: Any, kms: Any, pin: ModelPin, stage: str) -> None:
        self._s3 = s3
        self._kms = kms
        self.pin = pin
        self._stage = stage

    def refuse(self, reason: str, detail: str) -> AttestationError:
        pin = self.pin
        return AttestationError(
            reason, detail, stage=self._stage, model_id=pin.model_id, model_version=pin.artifact_version
        )

    def _get(self, key: str, version: str, absent: str, what: str) -> dict[str, Any]:
        bucket = self.pin.bucket
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, VersionId=version)
        except ClientError as err:
            if _error_code(err) in _ABSENT:
                raise self.refuse(
                    absent, f"no {what} s3://{bucket}/{key} version {version} ({_error_code(err)})"
                ) from err
            raise
        if response.get("VersionId") != version:
            response["Body"].close()
            raise self.refuse(
                ServeReason.MODEL_VERSION_MISMATCH,
                f"{what}: expected version {version}, S3 returned {response.get('VersionId')!r}",
            )
        return response

    def signature(self) -> bytes:
        pin = self.pin
        response = self._get(pin.signature_key, pin.signature_version, ServeReason.MODEL_UNSIGNED, "signature")
        limit = openssf.MAX_SIGNATURE_BYTES
        body = response["Body"]
        try:
            if response.get("ContentLength", 0) > limit:
                raise self.refuse(
                    ModelReason.MODEL_SIGNATURE_TOO_LARGE,
                    f"expected a signature of at most {limit} bytes, got {response['ContentLength']}",
                )
            return body.read(limit + 1)  # verify_model refuses more than the limit
        finally:
            body.close()

    def download(self, path: Path, limit: int) -> None:
        pin = self.pin
        response = self._get(pin.artifact_key, pin.artifact_version, ServeReason.MODEL_NOT_FOUND, "model package")
        body = response["Body"]
        too_large = f"expected a model package of at most {limit} bytes, got"
        try:
            if response.get("ContentLength", 0) > limit:
                raise self.refuse(ServeReason.MODEL_TOO_LARGE, f"{too_large} {response['ContentLength']}")
            sha = hashlib.sha256()
            size = 0
            with open(path, "xb", opener=_private) as out:
                while chunk := body.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        raise self.refuse(ServeReason.MODEL_TOO_LARGE, f"{too_large} more")
                    sha.update(chunk)
                    out.write(chunk)
        finally:
            body.close()
        got = sha.hexdigest()
        if got != pin.artifact_digest:
            raise self.refuse(
                ModelReason.MODEL_DIGEST_MISMATCH,
                f"version {pin.artifact_version}: expected the pinned sha256 {pin.artifact_digest}, got {got}",
            )

    def public_key(self) -> bytes:
        return trusted_public_key(self._kms, self.pin.signing_key, refuse=self.refuse)

    def unpack(self, tar: Path, directory: Path, limit: int, signature: bytes, public_key_pem: bytes) -> None:
        """Extract the pinned (digest-checked) tar; a refusal names what the package is not."""
        try:
            with tar.open("rb") as stream:
                model_package.unpack(stream, directory, limit=limit)
        except model_package.PackageError as err:
            reason = _PACKAGE_REFUSALS.get(err.problem)
            if reason is not None:
                raise self.refuse(reason, f"the model package: {err}") from err
            if self._single_file_model(tar, signature, public_key_pem):
                raise self.refuse(
                    ServeReason.MODEL_FORMAT_UNSUPPORTED,
                    "a single-file model (the format before model packages), signed as one file: only model "
                    "packages (model.onnx, descriptor.json, drift.json) are served, deployed or rolled back to; "
                    "retrain it",
                ) from err
            raise self.refuse(ServeReason.MODEL_MALFORMED, f"not a model package: {err}") from err

    def _single_file_model(self, path: Path, signature: bytes, public_key_pem: bytes) -> bool:
        """Whether the anchored key signed these very bytes as a one-file model (the format before packages)."""
        try:
            verified = openssf.verify_model(path, signature, public_key_pem)
        except ModelVerificationError:
            return False
        return dict(verified.digests) == {openssf.SINGLE_FILE: self.pin.artifact_digest}


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
