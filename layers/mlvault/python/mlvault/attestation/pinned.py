"""Attesting one pinned model: the one check that deployment, rollback, `mlvault verify-model` and serving share.

`attest_registered` is that check for a model of the registry (deployment, rollback, `mlvault verify-model`): the
record must be intact, signed with the pinned key and covered by the signature, and in an allowed status.

A `ModelPin` names a model exactly: the artifact's S3 object version and SHA-256, its signature's object version,
the KMS key that must have signed it (the bundled anchor, mlvault.trust.anchors: its ARN and the SHA-256 of its
public key) and its registry id. `attest` fails closed, in this order (bound, then
verify, then parse; GUIDE.md section 3):
  the signature's pinned version (absent: MODEL_UNSIGNED), at most openssf.MAX_SIGNATURE_BYTES
  -> the artifact's pinned version, streamed into the caller's folder through SHA-256, at most `max_model_bytes`,
     compared with the pinned digest (S3 returning another version: MODEL_VERSION_MISMATCH)
  -> the anchored KMS key's public key (`trusted_public_key`: deleted, disabled, pending deletion or not
     ECC_NIST_P256: SIGNING_KEY_UNUSABLE; a public key whose SHA-256 is not the anchored one:
     SIGNING_KEY_NOT_TRUSTED) -> openssf.verify_model (its reason codes pass through unchanged)
  -> the signature covers exactly the pinned digest, and its signed statement names the pinned model id (the sign
     step signs {"mlvault": {"model_id": ...}}: a signed artifact cannot pass for another model, whose registry
     record and revocation would then not apply).
It returns an `Attested` (the verified file in the caller's folder) or raises AttestationError with a stable
code. Transient AWS errors (throttling, 5xx, timeouts) and access errors are not verdicts: they propagate.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

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

MAX_MODEL_BYTES = 50 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
LOCAL_NAME = "model.json"  # the downloaded artifact's file name (never derived from the object key)
_ABSENT = frozenset({"NoSuchKey", "NoSuchVersion", "MethodNotAllowed"})  # 405: the pinned version is a delete marker
_KEY_UNUSABLE = frozenset({"NotFoundException", "DisabledException", "KMSInvalidStateException"})


@dataclass(frozen=True)
class ModelPin:
    model_id: str
    bucket: str
    artifact_key: str
    artifact_version: str
    artifact_digest: str
    signature_key: str
    signature_version: str
    signing_key: SigningKey

    @property
    def signing_key_arn(self) -> str:
        return self.signing_key.arn


@dataclass(frozen=True)
class Attested:
    pin: ModelPin
    path: Path  # the verified artifact, in the caller's folder
    signature: bytes
    public_key_pem: bytes
    verified: openssf.VerifiedModel

    @property
    def signed_extra(self) -> dict[str, Any]:
        return dict(self.verified.extra)

    @property
    def digests(self) -> Mapping[str, str]:
        """Resource name -> signed SHA-256 ("." for a one-file model)."""
        return self.verified.digests


def attest(
    s3: Any, kms: Any, pin: ModelPin, folder: Path, *, max_model_bytes: int = MAX_MODEL_BYTES, stage: str = ""
) -> Attested:
    """Download and verify the pinned model into `folder` (which nobody else writes: the file is read after it
    was verified). `stage` labels a refusal."""
    check = _Check(s3, kms, pin, stage)
    signature = check.signature()
    path = folder / LOCAL_NAME
    check.download(path, max_model_bytes)
    public_key_pem = check.public_key()
    try:
        verified = openssf.verify_model(path, signature, public_key_pem)
    except ModelVerificationError as err:
        raise check.refuse(err.reason, err.detail) from err
    if dict(verified.digests) != {openssf.SINGLE_FILE: pin.artifact_digest}:
        raise check.refuse(
            ModelReason.MODEL_DIGEST_MISMATCH,
            f"the signature covers {dict(verified.digests)}, expected the pinned sha256 {pin.artifact_digest}",
        )
    signed_id = signed_mlvault(verified.extra).get("model_id")
    if signed_id != pin.model_id:
        raise check.refuse(
            ServeReason.MODEL_ID_MISMATCH,
            f"the signature names model id {signed_id!r}, expected the pinned {pin.model_id!r}",
        )
    return Attested(pin, path, signature, public_key_pem, verified)


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
    cover this very record. With `folder`, the verified artifact, its signature and the public key are left there
    (model.json, model.sig, signing-key.pem) for an independent verifier. Raises RolloutRefused."""
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
    with tempfile.TemporaryDirectory() as scratch:
        try:
            attested = attest(s3, kms, pin, Path(scratch))
        except AttestationError as err:
            raise RolloutRefused(err.reason, err.detail) from None
        if folder is not None:
            shutil.copyfile(attested.path, folder / LOCAL_NAME)
            (folder / "model.sig").write_bytes(attested.signature)
            (folder / "signing-key.pem").write_bytes(attested.public_key_pem)
            attested = Attested(
                pin, folder / LOCAL_NAME, attested.signature, attested.public_key_pem, attested.verified
            )
    if signed_mlvault(attested.verified.extra).get("record_sha256") != model["record_sha256"]:
        raise RolloutRefused(RolloutReason.RECORD_TAMPERED, "the signed statement does not cover this registry record")
    return attested


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
        response = self._get(pin.artifact_key, pin.artifact_version, ServeReason.MODEL_NOT_FOUND, "model")
        body = response["Body"]
        too_large = f"expected a model of at most {limit} bytes, got"
        try:
            if response.get("ContentLength", 0) > limit:
                raise self.refuse(ServeReason.MODEL_TOO_LARGE, f"{too_large} {response['ContentLength']}")
            sha = hashlib.sha256()
            size = 0
            with path.open("xb") as out:
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
