"""Runtime attestation: the serving function loads the one model package its published version is pinned to, and
only after the package's bytes, signature and registry status check out.

The pin (`mlvault.config.ServeSettings`, set by the deploy step before it publishes the function's version) names
the package tar's exact S3 version and SHA-256, the exact version of its signature (a Sigstore bundle in the
OpenSSF model-signing format over the package's directory, `mlvault.attestation.openssf`) and its registry id. The
key that must have signed it is not in the environment: it is the model-signing key of the trust anchors bundled
with the code (`mlvault.trust.anchors`: its ARN and the SHA-256 of its public key), whatever the environment says.

`ModelLoader.load(pin)` fails closed: the registry status first (REVOKED, ROLLED_BACK, missing, or anything but
SIGNED/DEPLOYED/SUPERSEDED is refused), then the one attestation every deployment path shares
(`mlvault.attestation.pinned.attest`: signature and package by their pinned versions, bounded, hashed, extracted
safely into a private folder, the directory verified with the anchored key, the signed model id the pinned one),
then the verified bytes of `model.onnx`, `descriptor.json` and `drift.json` are loaded (`OnnxModel`: onnxruntime,
one InferenceSession per execution environment). It returns a `ServedModel` or raises `AttestationError(reason,
detail)` with a stable reason code (ServeReason, ModelReason, AnchorReason). Transient AWS errors (throttling, 5xx,
timeouts) and access errors are not verdicts: they propagate unchanged.

`Server` keeps the loaded model for the life of the execution environment and, every `recheck_seconds`, re-reads
its registry status and the anchored key's public key: a model revoked or rolled back after it was loaded, or a
signing key disabled or scheduled for deletion (KMS GetPublicKey then fails: DisabledException,
KMSInvalidStateException), stops being served within that time, in every execution environment alike. A
transient error of that re-check is not a verdict: the verified model keeps serving and the next call re-checks.
Only successes are kept: after a refusal every call tries again (and refuses again) until the model checks out.

Requests are validated against the descriptor (request_schema's rules and errors, checked a column at a time by
`OnnxModel.predict_rows`), predicted by the session, and every served row and its prediction feed the execution
environment's drift window (`ColumnDriftWindow`, the windows of mlvault.drift) over the drift reference the package
carries (`drift.json`, covered by its signature), `window_rows` rows at a time (`mlvault.config.DriftSettings`);
`serve_observed` returns the response with the snapshots of the windows a request completed, for the handler to
emit as metrics.

Importing this module imports neither numpy nor onnxruntime (nor boto3): they are imported when the first model is
loaded, once per execution environment.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from mlvault import model_package
from mlvault.attestation.pinned import MAX_MODEL_BYTES, ModelPin, attest, trusted_public_key
from mlvault.config import DriftSettings, ServeSettings, SettingsError, bundled
from mlvault.drift import DriftSnapshot
from mlvault.errors import (
    AttestationError,
    InvalidRequest,
    ModelVerificationError,
    ServeReason,
    ServingFailed,
    TrustAnchorError,
)
from mlvault.registry.records import ModelRegistry
from mlvault.serving.request_schema import (  # the request and response format
    MAX_ROWS,
    error_response,
    parse_rows,
    refusal_response,
)
from mlvault.serving.served_model import ServedModelFacts, load_served_model
from mlvault.trust.anchors import SigningKey, TrustAnchors, load_anchors
from mlvault.wiring import Bundle, Env

if TYPE_CHECKING:  # numpy and onnxruntime: imported with the first model, never by importing this module
    from mlvault.serving.drift_window import ColumnDriftWindow
    from mlvault.serving.onnx_model import OnnxModel, Prediction

__all__ = [
    "MAX_ROWS",
    "AttestationError",
    "InvalidRequest",
    "ModelLoader",
    "ServedModel",
    "Server",
    "ServingFailed",
    "error_response",
    "parse_rows",
    "refusal_response",
    "serve",
    "serve_observed",
]

RECHECK_SECONDS = 60.0  # how long a loaded model is served before its status and key are checked again
# SIGNED: being deployed (canary); DEPLOYED: live; SUPERSEDED: replaced by a newer model, still good (a rollback
# may shift the alias back to it). REGISTERED (not signed yet), ROLLED_BACK, REVOKED and anything else: refused.
SERVABLE = frozenset({"SIGNED", "DEPLOYED", "SUPERSEDED"})
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A model that was verified before it was loaded, and where it came from."""

    model: OnnxModel
    model_id: str
    digest: str  # SHA-256 of the package tar (the pinned digest)
    version: str  # the S3 version id of the package tar
    signature_version: str
    signing_key_arn: str
    signed_extra: dict[str, Any] = field(default_factory=dict)  # signed predicate fields (e.g. manifest digest)
    files: dict[str, str] = field(default_factory=dict)  # the package's files and their signed SHA-256

    def provenance(self) -> dict[str, str]:
        return {"id": self.model_id, "digest": self.digest, "version": self.version}


# ------------------------------------------------------------------------------------------------------- registry


class RegistryReader(Protocol):
    def status(self, model_id: str) -> str | None:
        """The model's registry status (REGISTERED, SIGNED, DEPLOYED, ROLLED_BACK, REVOKED...), None if unknown."""
        ...


# --------------------------------------------------------------------------------------------------------- loader


class ModelLoader:
    """Downloads, verifies and loads the pinned model (see the module docstring). Clients are passed in."""

    def __init__(
        self,
        s3: Any,
        kms: Any,
        registry: RegistryReader,
        *,
        signing_key: SigningKey,
        served: ServedModelFacts | None = None,
        max_model_bytes: int = MAX_MODEL_BYTES,
        tmp_dir: str | None = None,
    ) -> None:
        self._s3 = s3
        self._kms = kms
        self._registry = registry
        self.signing_key = signing_key
        self.served = served  # the function's own model (its bundle); None: the pin's name decides (tests)
        self._max_model_bytes = max_model_bytes
        self._tmp_dir = tmp_dir

    def load(self, pin: ServeSettings) -> ServedModel:
        self.check_name(pin)
        self.check_status(pin)
        with tempfile.TemporaryDirectory(prefix="mlvault-serve-", dir=self._tmp_dir) as tmp:  # mode 0700
            attested = attest(
                self._s3,
                self._kms,
                model_pin(pin, self.signing_key),
                Path(tmp),
                max_model_bytes=self._max_model_bytes,
                stage=pin.stage,
            )
            try:  # each file's bytes, once they hash to the signed digest: parse what was verified
                files = {name: attested.read(name) for name in model_package.FILES}
            except ModelVerificationError as err:
                raise _refuse(pin, err.reason, err.detail) from err
        from mlvault.serving.onnx_model import OnnxModel  # numpy and onnxruntime: once per execution environment

        try:
            model = OnnxModel.load(
                files[model_package.MODEL_FILE], files[model_package.DESCRIPTOR_FILE], files[model_package.DRIFT_FILE]
            )
        except ValueError as err:
            raise _refuse(pin, ServeReason.MODEL_MALFORMED, f"the signed package does not load: {err}") from err
        described = (model.descriptor.model, model.descriptor.dataset)
        wanted = (self.served.model, self.served.dataset) if self.served else (model_name(pin), described[1])
        if described != wanted:
            raise _refuse(
                pin,
                ServeReason.MODEL_NAME_MISMATCH,
                f"the signed descriptor describes model {described[0]!r} of dataset {described[1]!r}, this function "
                f"serves {wanted[0]!r} of {wanted[1]!r}",
            )
        return ServedModel(
            model=model,
            model_id=pin.model_id,
            digest=pin.model_digest,
            version=pin.model_version,
            signature_version=pin.signature_version,
            signing_key_arn=self.signing_key.arn,
            signed_extra=attested.signed_extra,
            files=dict(attested.digests),
        )

    def check_name(self, pin: ServeSettings) -> None:
        """Refuse a pin of another model than the function's own (its bundled served-model facts)."""
        if self.served is not None and model_name(pin) != self.served.model:
            raise _refuse(
                pin,
                ServeReason.MODEL_NAME_MISMATCH,
                f"the version pins {pin.model_id!r}, this function serves model {self.served.model!r} only",
            )

    def check_key(self, pin: ServeSettings) -> None:
        """Refuse when the anchored key can no longer be used (disabled, pending deletion, not the anchored one)."""
        trusted_public_key(self._kms, self.signing_key, refuse=lambda reason, detail: _refuse(pin, reason, detail))

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


def model_name(pin: ServeSettings) -> str:
    """The model's name in its id (`<name>/<n>`)."""
    return pin.model_id.rsplit("/", 1)[0]


def model_pin(pin: ServeSettings, signing_key: SigningKey) -> ModelPin:
    """The model a published serving version is pinned to, signed by the anchored key."""
    return ModelPin(
        model_id=pin.model_id,
        bucket=pin.model_bucket,
        artifact_key=pin.model_key,
        artifact_version=pin.model_version,
        artifact_digest=pin.model_digest,
        signature_key=pin.signature_key,
        signature_version=pin.signature_version,
        signing_key=signing_key,
    )


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
        self._window: ColumnDriftWindow | None = None
        self._window_digest = ""

    def model(self) -> ServedModel:
        now = self._clock()
        if self._served is None:
            self._served = self._loader.load(self.pin)
            self._checked = now
        elif now - self._checked >= self._recheck:
            try:
                self._loader.check_status(self.pin)
                self._loader.check_key(self.pin)
            except AttestationError:
                self._served = None
                raise
            except (ClientError, BotoCoreError) as err:  # not a verdict: keep the verified model, re-check next call
                _log.warning("re-check of the served model failed, serving it meanwhile: %s", err)
                return self._served
            self._checked = now
        return self._served

    def observe(
        self, served: ServedModel, rows: list[Mapping[str, Any]], prediction: Prediction
    ) -> list[DriftSnapshot]:
        """Count served rows and their predictions in this execution environment's drift window; the snapshots
        of the windows they completed."""
        if self._window is None or self._window_digest != served.digest:
            from mlvault.serving.drift_window import ColumnDriftWindow

            self._window = ColumnDriftWindow(served.model.drift, self._drift_window_rows)
            self._window_digest = served.digest
        return self._window.extend(rows, prediction.arrays, prediction.classes, prediction.values)


@cache
def settings() -> ServeSettings:
    """The function's pin, read once. A version that pins no model at all (a serving function's first version,
    published by CloudFormation before any deployment) is refused, MODEL_NOT_PINNED; a pin that is there but
    incomplete or malformed is a deployment bug (SettingsError)."""
    if not os.environ.get(Env.MODEL_ID):
        raise AttestationError(
            ServeReason.MODEL_NOT_PINNED,
            f"this version pins no model ({Env.MODEL_ID} is not set): the function's version before any "
            "deployment, or one published without pins",
            stage=os.environ.get(Env.STAGE, ""),
        )
    return ServeSettings.from_env()


def anchors(stage: str) -> TrustAnchors:
    """The trust anchors bundled with the function's code; refused ones are a refusal like any other."""
    try:
        return load_anchors(bundled(Bundle.ANCHORS), stage=stage)
    except TrustAnchorError as err:
        raise AttestationError(err.reason, err.detail, stage=stage) from err


def served_model(stage: str) -> ServedModelFacts:
    """The model this function serves, bundled with its code; refused facts are a refusal like any other."""
    try:
        return load_served_model(bundled(Bundle.SERVED_MODEL), stage=stage)
    except TrustAnchorError as err:
        raise AttestationError(err.reason, err.detail, stage=stage) from err


@cache
def metric_model() -> str:
    """The Model dimension of the function's metrics: its bundled model, else the pin's name (so that a refusal
    of the bundle itself still reaches the model's alarm), else "unknown"."""
    try:
        return load_served_model(bundled(Bundle.SERVED_MODEL), stage=os.environ.get(Env.STAGE, "")).model
    except TrustAnchorError:
        pass
    try:
        return model_name(settings())
    except (SettingsError, AttestationError):
        return "unknown"


@cache
def default_server() -> Server:
    """The execution environment's server, from its environment and its bundled anchors and served-model facts;
    not kept when refused."""
    import boto3

    pin = settings()
    key = anchors(pin.stage).model_signing_key
    loader = ModelLoader(
        s3=boto3.client("s3"),
        kms=boto3.client("kms", region_name=key.region),  # the key's own region
        registry=ModelRegistry(boto3.client("dynamodb"), pin.registry_table),
        signing_key=key,
        served=served_model(pin.stage),
    )
    return Server(loader, pin, drift_window_rows=DriftSettings.from_env().window_rows)


# -------------------------------------------------------------------------------------------------------- requests


def predict(served: ServedModel, rows: list[Mapping[str, Any]]) -> Prediction:
    """The class of each row (rows that do not fit the model's descriptor: InvalidRequest; a model that predicts
    outside its classes: ServingFailed)."""
    return served.model.predict_rows(rows)


def serve(served: ServedModel, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The response: one predicted class per row, and the provenance of the model that predicted them."""
    return {"predictions": predict(served, rows).classes, "model": served.provenance()}


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
    prediction = predict(served, rows)
    response = {"predictions": prediction.classes, "model": served.provenance()}
    return Outcome(response, len(rows), server.observe(served, rows, prediction))
