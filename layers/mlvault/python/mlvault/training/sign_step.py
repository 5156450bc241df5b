"""The sign step of the model pipeline (the sign function; mlvault.training.pipeline.Pipeline inherits it).

It signs a registered model package with the model-signing key of the bundled trust anchors only, once KMS shows
that key's public key to be the anchored one:

- the package is fetched by its pinned version and digest and extracted into a private directory named after
  the model (mlvault.training.package_io), its files checked against the record's per-file digests;
- the directory is signed in the OpenSSF model-signing format (one resource per file: model.onnx,
  descriptor.json, drift.json; the signed statement of three files is about 1.2 KB, far below KMS's 4096-byte
  RAW cap), with mlvault's own predicate fields: the model id, the registry record's digest, the package's
  digest and format, the manifest's and the training code's digests and the run id;
- a DSSE provenance statement (https://mlvault.dev/provenance/model/v1: the package, the manifest, producers and
  keys, the training code's digest, the engine, the training job) is signed with the same key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mlvault.canonical import versioned_uri
from mlvault.errors import AttestationError, MlvaultError, PipelineFailed, PipelineReason, ServeReason
from mlvault.registry.records import REGISTERED, RUN_FAILED, RUN_SIGNED, SIGNED

PROVENANCE_TYPE = "https://mlvault.dev/provenance/model/v1"
_KEY_STATES = frozenset({"DisabledException", "KMSInvalidStateException", "NotFoundException"})


class SignStep:
    """sign(state); needs the pipeline's `_s3`, `_kms`, `_c` (PipelineConfig), `registry` and `_outbox`."""

    _s3: Any
    _kms: Any
    _c: Any
    registry: Any
    _outbox: Any

    def sign(self, state: dict[str, Any]) -> dict[str, Any]:
        from mlvault.attestation.openssf import sign_model
        from mlvault.attestation.pinned import trusted_public_key
        from mlvault.signing.keys import KmsSigner
        from mlvault.training.package_io import fetch_package

        model = self.registry.model(state["model_id"])
        if model is None or not model["record_intact"] or model["status"] not in (REGISTERED, SIGNED):
            raise PipelineFailed(
                PipelineReason.NOT_SIGNABLE,
                f"{state['model_id']}: {model and model['status']}, intact: {model and model['record_intact']}",
            )
        record = model["record"]
        artifact = record["artifact"]
        extra = signed_claims(model)
        key = self._c.signing_key
        if key is None:
            raise ValueError("the sign step needs the bundled model-signing key (PipelineConfig.signing_key)")
        signer = KmsSigner(self._kms, key.arn, key.arn)
        try:
            pem = trusted_public_key(self._kms, key)  # the anchored key, enabled, with the anchored public key
            with tempfile.TemporaryDirectory(prefix="mlvault-sign-") as scratch:
                folder = Path(scratch) / record.get("model", record["dataset"])
                fetch_package(self._s3, artifact, folder)
                bundle = sign_model(folder, signer, statement_extra=extra, public_key_pem=pem)
            provenance = self._provenance(state["model_id"], record, signer)
        except AttestationError as err:
            raise self._blocked(state, err) from None
        except ClientError as err:  # KMS refused Sign itself (the key was disabled in between)
            if err.response.get("Error", {}).get("Code") not in _KEY_STATES:
                raise
            refusal = PipelineFailed(ServeReason.SIGNING_KEY_UNUSABLE, f"{key.arn}: {err.response['Error']['Code']}")
            raise self._blocked(state, refusal) from None
        prefix = f"signatures/{state['model_id']}"
        signature = self._put(f"{prefix}/model.sig", bundle, "application/vnd.dev.sigstore.bundle.v0.3+json")
        statement = self._put(f"{prefix}/provenance.dsse.json", provenance, "application/json")
        self.registry.set_status(
            state["model_id"],
            SIGNED,
            allowed_from=(REGISTERED, SIGNED),
            note=f"by {key.arn}",
            signature_key=f"{prefix}/model.sig",
            signature_version=signature,
            provenance_key=f"{prefix}/provenance.dsse.json",
            provenance_version=statement,
            signing_key_arn=key.arn,
        )
        self.registry.update_run(state["run_id"], RUN_SIGNED)
        return {**state, "signature": {"key": f"{prefix}/model.sig", "version_id": signature}}

    def _blocked(self, state: dict[str, Any], err: MlvaultError) -> PipelineFailed:
        """Signing refused by the key: the run ends FAILED at sign, the refusal is announced once."""
        from mlvault.attestation.key_alerts import blocked

        outcome = {"step": "sign", "reason": str(err.reason), "detail": err.detail}
        self.registry.update_run(state["run_id"], RUN_FAILED, outcome=outcome)
        if self._c.alert_topic_arn:
            announcement = blocked(
                stage=self._c.stage,
                step="sign",
                run_id=state["run_id"],
                model_id=state["model_id"],
                err=err,
                topic_arn=self._c.alert_topic_arn,
            )
            key = f"BLOCKED#{state['run_id']}#sign"
            self.registry.report_once(key, {"reason": str(err.reason)}, announcement, self._outbox)
        return PipelineFailed(err.reason, err.detail)

    def _provenance(self, model_id: str, record: dict[str, Any], signer: Any) -> bytes:
        """An in-toto statement of what the model was trained from, DSSE-signed with the model signing key."""
        from mlvault.signing.dsse import Envelope, pae

        artifact = record["artifact"]
        predicate: dict[str, Any] = {
            "model_id": model_id,
            "model": record.get("model", record["dataset"]),
            "run_id": record["run_id"],
            "manifest": {
                "uri": versioned_uri(
                    record["manifest"]["bucket"], record["manifest"]["key"], record["manifest"]["version_id"]
                ),
                "sha256": record["manifest"]["sha256"],
            },
            "producers": sorted({(e["producer"], e["key_id"]) for e in record["lineage"]}),
            "code_sha256": record["code"]["sha256"],
            "engine": record.get("engine", "lambda"),
            "trainer": record["trainer"],
            "params": record["params"],
            "files": artifact.get("files", {}),
        }
        if "training_job" in record:
            job = record["training_job"]
            predicate["training_job"] = {
                "name": job["name"],
                "image": job.get("image", ""),
                "inputs_sha256": job["inputs"]["sha256"],
                "output_sha256": job["output"]["sha256"],
            }
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": artifact["key"], "digest": {"sha256": artifact["sha256"]}}],
            "predicateType": PROVENANCE_TYPE,
            "predicate": predicate,
        }
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        payload_type = "application/vnd.in-toto+json"
        envelope = Envelope(payload_type, payload, signer.keyid, signer.sign(pae(payload_type, payload)))
        return envelope.to_json().encode()

    def _put(self, key: str, data: bytes, content_type: str) -> str:
        return self._s3.put_object(
            Bucket=self._c.model_bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",  # Object Lock buckets require a checksum header
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        )["VersionId"]


def signed_claims(model: dict[str, Any]) -> dict[str, Any]:
    """What the model's signature states besides its files (`statement_extra` of the OpenSSF statement): the
    registry id, the record's and the package's digests, the manifest, the code and the run."""
    record = model["record"]
    artifact = record["artifact"]
    return {
        "mlvault": {
            "model_id": model["model_id"],
            "record_sha256": model["record_sha256"],
            "package_sha256": artifact["sha256"],
            "format": artifact.get("format", ""),
            "manifest_sha256": record["manifest"]["sha256"],
            "code_sha256": record["code"]["sha256"],
            "run_id": record["run_id"],
        }
    }
