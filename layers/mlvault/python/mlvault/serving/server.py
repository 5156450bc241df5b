"""Runtime attestation: the serving function loads the one model its published version is pinned to, and only after
the model's bytes, signature and registry status check out.

The pin (`mlvault.config.ServeSettings`, set by the deploy step before it publishes the function's version) names
the model object's exact S3 version and SHA-256, the exact version of its signature (a Sigstore bundle in the
OpenSSF model-signing format, `mlvault.attestation.openssf`), the KMS key ARN that signed it and its registry id.

`ModelLoader.load(pin)` fails closed, in this order (bound, then verify, then parse; GUIDE.md section 3):
  registry status (REVOKED, ROLLED_BACK, missing, or anything but SIGNED/DEPLOYED/SUPERSEDED is refused)
  -> the signature's pinned version (absent: MODEL_UNSIGNED), at most attest.MAX_SIGNATURE_BYTES
  -> the model's pinned version, streamed into a private temporary directory through SHA-256, at most
     MAX_MODEL_BYTES, compared with the pinned digest
  -> the pinned KMS key's public key -> attest.verify_model (its reason codes pass through unchanged)
  -> the verified digest is the pinned digest, and the signed statement names the pinned model id (the sign step
     signs {"mlvault": {"model_id": ...}}: a signed artifact cannot be served under another model's registry
     record, which would escape its revocation) -> load_model(bytes, digest=pin).
It returns a `ServedModel` or raises `AttestationError(reason, detail)` with a stable reason code (`ServeReason`).
Transient AWS errors (throttling, 5xx, timeouts) and access errors are not verdicts: they propagate unchanged.

`Server` keeps the loaded model for the life of the execution environment and re-reads its registry status every
`recheck_seconds`: a model revoked or rolled back after it was loaded stops being served within that time. Only
successes are kept: after a refusal every call tries again (and refuses again) until the model checks out.

Drift: `Server.observe` feeds every served row and its prediction to the execution environment's
`DriftWindow` (mlvault.drift) built from the training baseline the model carries (`Model.drift`, covered by
its signature), `window_rows` rows at a time (`mlvault.config.DriftSettings`); `serve_observed` returns the
response with the snapshots of the windows a request completed, for the handler to emit as metrics. A model
without a baseline (an artifact from before drift references) is served without drift snapshots.

Standard library, cryptography and boto3 only: no pyarrow on this path (the serving function stays small).
"""

from __future__ import annotations

import hashlib
import math
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from mlvault.attestation import openssf as attest
from mlvault.config import DriftSettings, ServeSettings, SigningKeyNotPinnedError
from mlvault.drift import DriftSnapshot, DriftWindow
from mlvault.errors import AttestationError, ModelReason, ModelVerificationError, ServeReason
from mlvault.training.trainer import Model, load_model, predict

MAX_MODEL_BYTES = 50 * 1024 * 1024  # the model JSON is read into memory to parse it: bounded before reading
MAX_ROWS = 1000  # rows per request
CHUNK_BYTES = 1024 * 1024
RECHECK_SECONDS = 60.0  # how long a loaded model is served before its registry status is read again
LOCAL_NAME = "model.json"  # the downloaded model's file name (never derived from the object key)
# SIGNED: being deployed (canary); DEPLOYED: live; SUPERSEDED: replaced by a newer model, still good (a rollback
# may shift the alias back to it). REGISTERED (not signed yet), ROLLED_BACK, REVOKED and anything else: refused.
SERVABLE = frozenset({"SIGNED", "DEPLOYED", "SUPERSEDED"})
_ABSENT = frozenset({"NoSuchKey", "NoSuchVersion", "MethodNotAllowed"})  # 405: the pinned version is a delete marker
_MAX_FLOAT_INT = int(sys.float_info.max)
_KEY_UNUSABLE = frozenset({"NotFoundException", "DisabledException", "KMSInvalidStateException"})


class InvalidRequest(ValueError):
    """The request is not {"rows": [{feature: value, ...}, ...]} for this model: the caller's error."""


@dataclass(frozen=True)
class ServedModel:
    """A model that was verified before it was loaded, and where it came from."""

    model: Model
    model_id: str
    digest: str  # SHA-256 of the artifact bytes (the pinned digest)
    version: str  # the S3 version id of the artifact
    signature_version: str
    signing_key_arn: str
    signed_extra: dict[str, Any] = field(default_factory=dict)  # signed predicate fields (e.g. manifest digest)

    def provenance(self) -> dict[str, str]:
        return {"id": self.model_id, "digest": self.digest, "version": self.version}


# ------------------------------------------------------------------------------------------------------- registry


class RegistryReader(Protocol):
    def status(self, model_id: str) -> str | None:
        """The model's registry status (REGISTERED, SIGNED, DEPLOYED, ROLLED_BACK, REVOKED...), None if unknown."""
        ...


class DynamoDbRegistryReader:
    """The model registry's record of a model: item pk="MODEL#<model_id>", sk="RECORD", attribute "status"."""

    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    def status(self, model_id: str) -> str | None:
        item = self._ddb.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"MODEL#{model_id}"}, "sk": {"S": "RECORD"}},
            ConsistentRead=True,
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
        ).get("Item")
        if item is None:
            return None
        value = item.get("status")
        return value.get("S", "") if isinstance(value, dict) else ""  # no string status: not SIGNED, not servable


# --------------------------------------------------------------------------------------------------------- loader


def _error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


class ModelLoader:
    """Downloads, verifies and loads the pinned model (see the module docstring). Clients are passed in."""

    def __init__(
        self,
        s3: Any,
        kms: Any,
        registry: RegistryReader,
        *,
        max_model_bytes: int = MAX_MODEL_BYTES,
        tmp_dir: str | None = None,
    ) -> None:
        self._s3 = s3
        self._kms = kms
        self._registry = registry
        self._max_model_bytes = max_model_bytes
        self._tmp_dir = tmp_dir

    def load(self, pin: ServeSettings) -> ServedModel:
        self.check_status(pin)
        signature = self._signature(pin)
        with tempfile.TemporaryDirectory(prefix="mlvault-serve-", dir=self._tmp_dir) as tmp:  # mode 0700
            path = Path(tmp) / LOCAL_NAME
            self._download_model(pin, path)
            public_key_pem = self._public_key(pin)
            try:
                verified = attest.verify_model(path, signature, public_key_pem)
            except ModelVerificationError as err:
                raise _refuse(pin, err.reason, err.detail) from err
            signed = verified.digests.get(attest.SINGLE_FILE)
            if signed != pin.model_digest:
                raise _refuse(
                    pin,
                    ModelReason.MODEL_DIGEST_MISMATCH,
                    f"the signature covers sha256 {signed}, expected the pinned {pin.model_digest}",
                )
            signed_id = _signed_model_id(verified.extra)
            if signed_id != pin.model_id:
                raise _refuse(
                    pin,
                    ServeReason.MODEL_ID_MISMATCH,
                    f"the signature names model id {signed_id!r}, expected the pinned {pin.model_id!r}",
                )
            data = path.read_bytes()  # at most max_model_bytes, from our own directory
        got = hashlib.sha256(data).hexdigest()
        if got != pin.model_digest:  # the file changed after it was verified
            raise _refuse(pin, ModelReason.MODEL_DIGEST_MISMATCH, f"expected sha256 {pin.model_digest}, got {got}")
        try:
            model = load_model(data, digest=pin.model_digest)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
            raise _refuse(pin, ServeReason.MODEL_MALFORMED, f"the signed artifact does not load: {err!r}") from err
        return ServedModel(
            model=model,
            model_id=pin.model_id,
            digest=pin.model_digest,
            version=pin.model_version,
            signature_version=pin.signature_version,
            signing_key_arn=pin.signing_key_arn,
            signed_extra=dict(verified.extra),
        )

    def check_status(self, pin: ServeSettings) -> None:
        """Refuse a model the registry does not list as SIGNED or DEPLOYED."""
        status = self._registry.status(pin.model_id)
        if status == "REVOKED":
            raise _refuse(pin, ServeReason.MODEL_REVOKED, f"the registry lists {pin.model_id} as REVOKED")
        if status == "ROLLED_BACK":
            raise _refuse(pin, ServeReason.MODEL_ROLLED_BACK, f"the registry lists {pin.model_id} as ROLLED_BACK")
        if status is None:
            raise _refuse(pin, ServeReason.MODEL_NOT_REGISTERED, f"the registry has no record of {pin.model_id}")
        if status not in SERVABLE:
            raise _refuse(
                pin,
                ServeReason.MODEL_NOT_SERVABLE,
                f"expected registry status {', '.join(sorted(SERVABLE))} for {pin.model_id}, got {status!r}",
            )

    def _get(self, pin: ServeSettings, key: str, version: str, absent: str, what: str) -> dict[str, Any]:
        try:
            response = self._s3.get_object(Bucket=pin.model_bucket, Key=key, VersionId=version)
        except ClientError as err:
            if _error_code(err) in _ABSENT:
                raise _refuse(
                    pin, absent, f"no {what} s3://{pin.model_bucket}/{key} version {version} ({_error_code(err)})"
                ) from err
            raise
        if response.get("VersionId") != version:
            response["Body"].close()
            raise _refuse(
                pin,
                ServeReason.MODEL_VERSION_MISMATCH,
                f"{what}: expected version {version}, S3 returned {response.get('VersionId')!r}",
            )
        return response

    def _signature(self, pin: ServeSettings) -> bytes:
        response = self._get(pin, pin.signature_key, pin.signature_version, ServeReason.MODEL_UNSIGNED, "signature")
        limit = attest.MAX_SIGNATURE_BYTES
        body = response["Body"]
        try:
            if response.get("ContentLength", 0) > limit:
                raise _refuse(
                    pin,
                    ModelReason.MODEL_SIGNATURE_TOO_LARGE,
                    f"expected a signature of at most {limit} bytes, got {response['ContentLength']}",
                )
            signature = body.read(limit + 1)  # verify_model refuses more than the limit
        finally:
            body.close()
        return signature

    def _download_model(self, pin: ServeSettings, path: Path) -> None:
        response = self._get(pin, pin.model_key, pin.model_version, ServeReason.MODEL_NOT_FOUND, "model")
        limit = self._max_model_bytes
        body = response["Body"]
        too_large = f"expected a model of at most {limit} bytes, got"
        try:
            if response.get("ContentLength", 0) > limit:
                raise _refuse(pin, ServeReason.MODEL_TOO_LARGE, f"{too_large} {response['ContentLength']}")
            sha = hashlib.sha256()
            size = 0
            with path.open("xb") as out:
                while chunk := body.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        raise _refuse(pin, ServeReason.MODEL_TOO_LARGE, f"{too_large} more")
                    sha.update(chunk)
                    out.write(chunk)
        finally:
            body.close()
        got = sha.hexdigest()
        if got != pin.model_digest:
            raise _refuse(
                pin,
                ModelReason.MODEL_DIGEST_MISMATCH,
                f"version {pin.model_version}: expected the pinned sha256 {pin.model_digest}, got {got}",
            )

    def _public_key(self, pin: ServeSettings) -> bytes:
        try:
            return attest.kms_public_key_pem(self._kms, pin.signing_key_arn)
        except ClientError as err:
            if _error_code(err) in _KEY_UNUSABLE:
                raise _refuse(
                    pin, ServeReason.SIGNING_KEY_UNUSABLE, f"{pin.signing_key_arn}: {_error_code(err)}"
                ) from err
            raise
        except ValueError as err:  # kms_public_key_pem: not an ECC_NIST_P256 SIGN_VERIFY key
            raise _refuse(pin, ServeReason.SIGNING_KEY_UNUSABLE, f"{pin.signing_key_arn}: {err}") from err


def _signed_model_id(extra: Mapping[str, Any]) -> Any:
    signed = extra.get("mlvault")
    return signed.get("model_id") if isinstance(signed, Mapping) else None


def _refuse(pin: ServeSettings, reason: str, detail: str) -> AttestationError:
    return AttestationError(reason, detail, stage=pin.stage, model_id=pin.model_id, model_version=pin.model_version)


# --------------------------------------------------------------------------------------------------------- server


class Server:
    """The attested model of one execution environment: loaded on first use, its registry status re-read every
    `recheck_seconds`; a refusal is never kept (the next call tries again) and drops a loaded model."""

    def __init__(
        self,
        loader: ModelLoader,
        pin: ServeSettings,
        *,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        drift_window_rows: int = DriftSettings().window_rows,
    ) -> None:
        self.pin = pin
        self._loader = loader
        self._recheck = recheck_seconds
        self._clock = clock
        self._served: ServedModel | None = None
        self._checked = 0.0
        self._drift_window_rows = drift_window_rows
        self._window: DriftWindow | None = None
        self._window_digest = ""

    def model(self) -> ServedModel:
        now = self._clock()
        if self._served is None:
            self._served = self._loader.load(self.pin)
            self._checked = now
        elif now - self._checked >= self._recheck:
            try:
                self._loader.check_status(self.pin)
            except AttestationError:
                self._served = None
                raise
            self._checked = now
        return self._served

    def observe(
        self, served: ServedModel, rows: list[Mapping[str, Any]], predictions: list[str]
    ) -> list[DriftSnapshot]:
        """Count served rows and their predictions in this execution environment's drift window; the snapshots
        of the windows they completed (none for a model without a drift reference)."""
        reference = served.model.drift
        if reference is None:
            return []
        if self._window is None or self._window_digest != served.digest:
            self._window = DriftWindow(reference, self._drift_window_rows)
            self._window_digest = served.digest
        return self._window.extend(rows, predictions)


@cache
def settings() -> ServeSettings:
    """The function's pin, read once; an unpinned signing key is a refusal like any other (with its stage)."""
    try:
        return ServeSettings.from_env()
    except SigningKeyNotPinnedError as err:
        raise AttestationError(err.reason, err.detail, stage=err.stage) from err


@cache
def default_server() -> Server:
    """The execution environment's server, from its environment; not kept when the settings are refused."""
    import boto3

    pin = settings()
    region = pin.signing_key_arn.split(":")[3]  # the key's own region (a key ARN: checked by ServeSettings)
    loader = ModelLoader(
        s3=boto3.client("s3"),
        kms=boto3.client("kms", region_name=region),
        registry=DynamoDbRegistryReader(boto3.client("dynamodb"), pin.registry_table),
    )
    return Server(loader, pin, drift_window_rows=DriftSettings.from_env().window_rows)


# -------------------------------------------------------------------------------------------------------- requests


def parse_rows(event: Any, *, max_rows: int = MAX_ROWS) -> list[Mapping[str, Any]]:
    """The rows of a request {"rows": [{feature: value, ...}, ...]}: at most `max_rows` JSON objects."""
    if not isinstance(event, Mapping):
        raise InvalidRequest(f'expected a request {{"rows": [...]}}, got {type(event).__name__}')
    if set(event) != {"rows"}:
        raise InvalidRequest(f"expected exactly the field 'rows', got {sorted(map(str, event))}")
    rows = event["rows"]
    if not isinstance(rows, list):
        raise InvalidRequest(f"rows: expected a list of objects, got {type(rows).__name__}")
    if len(rows) > max_rows:
        raise InvalidRequest(f"rows: expected at most {max_rows} rows, got {len(rows)}")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidRequest(f"rows[{index}]: expected an object of feature values, got {type(row).__name__}")
    return rows


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= _MAX_FLOAT_INT  # float(10**400) overflows
    return isinstance(value, float) and math.isfinite(value)


def _check_row(model: Model, row: Mapping[str, Any], index: int) -> None:
    for feature in model.features:
        if feature.name not in row:
            raise InvalidRequest(f"rows[{index}]: missing feature {feature.name!r}")
        value = row[feature.name]
        if value is None:
            continue
        if feature.kind == "numeric":
            if not _finite_number(value):
                raise InvalidRequest(f"rows[{index}].{feature.name}: expected a finite number or null, got {value!r}")
        elif not isinstance(value, str):
            raise InvalidRequest(f"rows[{index}].{feature.name}: expected a string or null, got {value!r}")


def serve(served: ServedModel, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The response: one predicted class per row, and the provenance of the model that predicted them."""
    for index, row in enumerate(rows):
        _check_row(served.model, row, index)
    return {"predictions": predict(served.model, rows), "model": served.provenance()}


@dataclass(frozen=True)
class Outcome:
    """One request served: the response, how many rows were predicted, and the drift snapshots of the windows
    these rows completed (usually none)."""

    response: dict[str, Any]
    predictions: int
    drift: list[DriftSnapshot]


def serve_observed(server: Server, served: ServedModel, rows: list[Mapping[str, Any]]) -> Outcome:
    """`serve`, then the rows and their predictions feed the server's drift window (a refused request feeds
    nothing)."""
    response = serve(served, rows)
    return Outcome(response, len(rows), server.observe(served, rows, response["predictions"]))
