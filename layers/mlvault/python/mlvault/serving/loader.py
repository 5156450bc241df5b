"""Runtime attestation: the serving function loads the one model its published version is pinned to, and only after
the model's bytes, signature and registry status check out.

The pin (`mlvault.config.ServeSettings`, set by the deploy step before it publishes the function's version) names
the model object's exact S3 version and SHA-256, the exact version of its signature (a Sigstore bundle in the
OpenSSF model-signing format, `mlvault.attestation.openssf`) and its registry id. The key that must have signed
it is not in the environment: it is the model-signing key of the trust anchors bundled with the code
(`mlvault.trust.anchors`: its ARN and the SHA-256 of its public key), whatever the environment says.

`ModelLoader.load(pin)` fails closed: the registry status first (REVOKED, ROLLED_BACK, missing, or anything but
SIGNED/DEPLOYED/SUPERSEDED is refused), then the one attestation every deployment path shares
(`mlvault.attestation.pinned.attest`: signature and artifact by their pinned versions, bounded, hashed, verified
with the pinned key, covering the pinned digest and model id), then `load_model(bytes, digest=pin)`. It returns
a `ServedModel` or raises `AttestationError(reason, detail)` with a stable reason code (ServeReason, ModelReason).
Transient AWS errors (throttling, 5xx, timeouts) and access errors are not verdicts: they propagate unchanged.

`Server` keeps the loaded model for the life of the execution environment and, every `recheck_seconds`, re-reads
its registry status and the anchored key's public key: a model revoked or rolled back after it was loaded, or a
signing key disabled or scheduled for deletion (KMS GetPublicKey then fails: DisabledException,
KMSInvalidStateException), stops being served within that time, in every execution environment alike. A
transient error of that re-check is not a verdict: the verified model keeps serving and the next call re-checks.
Only successes are kept: after a refusal every call tries again (and refuses again) until the model checks out.

Drift: `Server.observe` feeds every served row and its prediction to the execution environment's
`DriftWindow` (mlvault.drift) built from the training baseline the model carries (`Model.drift`, covered by
its signature), `window_rows` rows at a time (`mlvault.config.DriftSettings`); `serve_observed` returns the
response with the snapshots of the windows a request completed, for the handler to emit as metrics. A model
without a baseline (an artifact from before drift references) is served without drift snapshots.

Standard library, cryptography and boto3 only: no pyarrow on this path (the serving function stays small).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from mlvault.attestation.pinned import MAX_MODEL_BYTES, ModelPin, attest, trusted_public_key
from mlvault.config import DriftSettings, ServeSettings, bundled
from mlvault.drift import DriftSnapshot, DriftWindow
from mlvault.errors import AttestationError, InvalidRequest, ModelReason, ServeReason, TrustAnchorError
from mlvault.registry.records import ModelRegistry
from mlvault.serving.request_schema import (  # the request and response format
    MAX_ROWS,
    check_rows,
    error_response,
    parse_rows,
    refusal_response,
)
from mlvault.training.artifact import Model, load_model, predict
from mlvault.trust.anchors import SigningKey, TrustAnchors, load_anchors
from mlvault.wiring import Bundle

__all__ = [
    "MAX_ROWS",
    "AttestationError",
    "InvalidRequest",
    "ModelLoader",
    "ServedModel",
    "Server",
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
        max_model_bytes: int = MAX_MODEL_BYTES,
        tmp_dir: str | None = None,
    ) -> None:
        self._s3 = s3
        self._kms = kms
        self._registry = registry
        self.signing_key = signing_key
        self._max_model_bytes = max_model_bytes
        self._tmp_dir = tmp_dir

    def load(self, pin: ServeSettings) -> ServedModel:
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
            data = attested.path.read_bytes()  # at most max_model_bytes, from our own directory
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
            signing_key_arn=self.signing_key.arn,
            signed_extra=attested.signed_extra,
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
    """The function's pin, read once."""
    return ServeSettings.from_env()


def anchors(stage: str) -> TrustAnchors:
    """The trust anchors bundled with the function's code; refused ones are a refusal like any other."""
    try:
        return load_anchors(bundled(Bundle.ANCHORS), stage=stage)
    except TrustAnchorError as err:
        raise AttestationError(err.reason, err.detail, stage=stage) from err


@cache
def default_server() -> Server:
    """The execution environment's server, from its environment and its bundled anchors; not kept when refused."""
    import boto3

    pin = settings()
    key = anchors(pin.stage).model_signing_key
    loader = ModelLoader(
        s3=boto3.client("s3"),
        kms=boto3.client("kms", region_name=key.region),  # the key's own region
        registry=ModelRegistry(boto3.client("dynamodb"), pin.registry_table),
        signing_key=key,
    )
    return Server(loader, pin, drift_window_rows=DriftSettings.from_env().window_rows)


# -------------------------------------------------------------------------------------------------------- requests


def serve(served: ServedModel, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The response: one predicted class per row, and the provenance of the model that predicted them (rows that
    do not fit the model's feature schema: InvalidRequest)."""
    check_rows(served.model, rows)
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
