"""The model pipeline's steps (each a Step Functions task over a thin handler): train -> evaluate ->
register -> sign. Deployment is mlvault.rollout.canary.

Every run is recorded in the registry (RUN#<execution name>), failed ones included, before the step fails.
Steps pass each other only pins: object keys with version ids and SHA-256 digests, re-checked when read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlvault.canonical import versioned_uri
from mlvault.contracts.validate import resolve_contract
from mlvault.errors import (
    GatesFailed,
    ManifestError,
    PipelineFailed,
    PipelineReason,
    TrainingError,
    VerificationError,
)
from mlvault.ledger import Ledger
from mlvault.registry.records import REGISTERED, SIGNED, ModelRegistry
from mlvault.training.artifact import load_model
from mlvault.training.data import read_split
from mlvault.training.gates import Gates, evaluate
from mlvault.training.manifest import build_manifest, load_manifest, store_manifest
from mlvault.training.params import TrainingParams
from mlvault.training.trainer import LambdaTrainer

MAX_ARTIFACT_BYTES = 50 * 1024 * 1024
PROVENANCE_TYPE = "https://mlvault.dev/provenance/model/v1"


@dataclass(frozen=True)
class PipelineConfig:
    model_bucket: str
    ledger_table: str
    registry_table: str
    contracts_dir: Path
    signing_key_arn: str
    gates: Gates
    params: TrainingParams


def artifact_key(dataset: str, digest: str) -> str:
    return f"models/{dataset}/sha256={digest}/model.json"


class Pipeline:
    def __init__(self, *, s3: Any, dynamodb: Any, kms: Any, config: PipelineConfig) -> None:
        self._s3 = s3
        self._db = dynamodb
        self._kms = kms
        self._c = config
        self.registry = ModelRegistry(dynamodb, config.registry_table)

    # --- train ------------------------------------------------------------------------------------------

    def train(self, run_id: str, dataset: str) -> dict[str, Any]:
        started = datetime.now(UTC).isoformat()
        self.registry.record_run(
            run_id, dataset=dataset, status="STARTED", body={"dataset": dataset, "started_at": started}
        )
        try:
            manifest = build_manifest(Ledger(self._db, self._c.ledger_table), dataset)
            manifest_version = store_manifest(self._s3, self._c.model_bucket, manifest)
            contract = resolve_contract(self._c.contracts_dir, dataset, manifest.contract_version)
            result = LambdaTrainer(self._s3).train(manifest, contract, self._c.params)
        except (ManifestError, TrainingError, VerificationError) as err:
            failure = {"reason": err.reason, "detail": str(err)}
            body = {"dataset": dataset, "started_at": started, "failure": failure}
            self.registry.record_run(run_id, dataset=dataset, status="FAILED", body=body)
            raise PipelineFailed(err.reason, str(err)) from None
        data = result.model.to_bytes()
        key = artifact_key(dataset, result.model.digest)
        put = self._s3.put_object(
            Bucket=self._c.model_bucket,
            Key=key,
            Body=data,
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",  # Object Lock buckets require a checksum header
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        )
        state = {
            "run_id": run_id,
            "dataset": dataset,
            "contract_version": manifest.contract_version,
            "manifest": {
                "bucket": self._c.model_bucket,
                "key": f"manifests/{dataset}/sha256={manifest.digest}.json",
                "version_id": manifest_version,
                "sha256": manifest.digest,
                "entries": len(manifest.entries),
                "rows": manifest.rows,
            },
            "artifact": {
                "bucket": self._c.model_bucket,
                "key": key,
                "version_id": put["VersionId"],
                "sha256": result.model.digest,
                "bytes": len(data),
            },
        }
        self.registry.record_run(run_id, dataset=dataset, status="TRAINED", body={**result.run.to_json(), **state})
        return state

    # --- evaluate ---------------------------------------------------------------------------------------

    def evaluate(self, state: dict[str, Any]) -> dict[str, Any]:
        manifest = self._manifest(state)
        contract = resolve_contract(self._c.contracts_dir, state["dataset"], manifest.contract_version)
        model = load_model(self._artifact_bytes(state["artifact"]), digest=state["artifact"]["sha256"])
        heldout = read_split(self._s3, manifest, contract, self._c.params, part="heldout")
        report = evaluate(
            model, heldout, contract, self._c.gates, manifest=manifest, ledger=Ledger(self._db, self._c.ledger_table)
        )
        run = self.registry.run(state["run_id"]) or {}
        run.pop("run_id", None)
        run.pop("status", None)
        status = "GATES_PASSED" if report.passed else "GATES_FAILED"
        self.registry.record_run(
            state["run_id"], dataset=state["dataset"], status=status, body={**run, "gates": report.to_json()}
        )
        if not report.passed:
            failed = "; ".join(f"{r.name} {r.value} (limit {r.threshold})" for r in report.results if not r.passed)
            raise GatesFailed(failed, report.failures)
        return {**state, "gates": {"passed": True, "failures": []}}

    # --- register ---------------------------------------------------------------------------------------

    def register(self, state: dict[str, Any]) -> dict[str, Any]:
        run = self.registry.run(state["run_id"])
        if run is None or run["status"] != "GATES_PASSED":
            raise PipelineFailed(PipelineReason.NOT_EVALUATED, f"run {state['run_id']} has not passed its gates")
        manifest = self._manifest(state)
        lineage = [
            {
                "lake_uri": e.uri,
                "sha256": e.sha256,
                "producer": e.producer,
                "key_id": e.key_id,
                "ingest": [versioned_uri(i.bucket, i.key, i.version_id) for i in e.ingest],
            }
            for e in manifest.entries
        ]
        record = {
            "dataset": state["dataset"],
            "contract_version": state["contract_version"],
            "run_id": state["run_id"],
            "artifact": state["artifact"],
            "manifest": state["manifest"],
            "code": {"sha256": run["code_digest"], "files": run["code_files"]},
            "trainer": run["trainer"],
            "params": run["params"],
            "metrics": run["metrics"],
            "gates": {"passed": True, "results": run["gates"]["results"]},
            "lineage": lineage,
            "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        model = self.registry.register(record)
        return {**state, "model_id": model["model_id"]}

    # --- sign -------------------------------------------------------------------------------------------

    def sign(self, state: dict[str, Any]) -> dict[str, Any]:
        from mlvault.attestation.openssf import kms_public_key_pem, sign_model
        from mlvault.signing.keys import KmsSigner

        model = self.registry.model(state["model_id"])
        if model is None or not model["record_intact"] or model["status"] not in (REGISTERED, SIGNED):
            raise PipelineFailed(
                PipelineReason.NOT_SIGNABLE,
                f"{state['model_id']}: {model and model['status']}, intact: {model and model['record_intact']}",
            )
        artifact = model["record"]["artifact"]
        extra = {
            "mlvault": {
                "model_id": state["model_id"],
                "record_sha256": model["record_sha256"],
                "manifest_sha256": model["record"]["manifest"]["sha256"],
                "code_sha256": model["record"]["code"]["sha256"],
                "run_id": model["record"]["run_id"],
            }
        }
        signer = KmsSigner(self._kms, self._c.signing_key_arn, self._c.signing_key_arn)
        pem = kms_public_key_pem(self._kms, self._c.signing_key_arn)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.json"
            path.write_bytes(self._artifact_bytes(artifact))
            bundle = sign_model(path, signer, statement_extra=extra, public_key_pem=pem)
        prefix = f"signatures/{state['model_id']}"
        signature = self._put(f"{prefix}/model.sig", bundle, "application/vnd.dev.sigstore.bundle.v0.3+json")
        provenance = self._provenance(state["model_id"], model["record"], signer)
        statement = self._put(f"{prefix}/provenance.dsse.json", provenance, "application/json")
        self.registry.set_status(
            state["model_id"],
            SIGNED,
            allowed_from=(REGISTERED, SIGNED),
            note=f"by {self._c.signing_key_arn}",
            signature_key=f"{prefix}/model.sig",
            signature_version=signature,
            provenance_key=f"{prefix}/provenance.dsse.json",
            provenance_version=statement,
            signing_key_arn=self._c.signing_key_arn,
        )
        return {**state, "signature": {"key": f"{prefix}/model.sig", "version_id": signature}}

    def _provenance(self, model_id: str, record: dict[str, Any], signer: Any) -> bytes:
        """An in-toto statement of what the model was trained from, DSSE-signed with the model signing key."""
        from mlvault.signing.dsse import Envelope, pae

        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": record["artifact"]["key"], "digest": {"sha256": record["artifact"]["sha256"]}}],
            "predicateType": PROVENANCE_TYPE,
            "predicate": {
                "model_id": model_id,
                "run_id": record["run_id"],
                "manifest": {
                    "uri": versioned_uri(
                        record["manifest"]["bucket"], record["manifest"]["key"], record["manifest"]["version_id"]
                    ),
                    "sha256": record["manifest"]["sha256"],
                },
                "producers": sorted({(e["producer"], e["key_id"]) for e in record["lineage"]}),
                "code_sha256": record["code"]["sha256"],
                "trainer": record["trainer"],
                "params": record["params"],
            },
        }
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        payload_type = "application/vnd.in-toto+json"
        envelope = Envelope(payload_type, payload, signer.keyid, signer.sign(pae(payload_type, payload)))
        return envelope.to_json().encode()

    # --- helpers ----------------------------------------------------------------------------------------

    def _manifest(self, state: dict[str, Any]):
        m = state["manifest"]
        return load_manifest(self._s3, m["bucket"], state["dataset"], m["sha256"], version_id=m["version_id"])

    def _artifact_bytes(self, artifact: dict[str, Any]) -> bytes:
        if artifact["bytes"] > MAX_ARTIFACT_BYTES:
            raise PipelineFailed(PipelineReason.ARTIFACT_TOO_LARGE, f"{artifact['bytes']} bytes")
        body = self._s3.get_object(Bucket=artifact["bucket"], Key=artifact["key"], VersionId=artifact["version_id"])[
            "Body"
        ]
        data = body.read(MAX_ARTIFACT_BYTES + 1)
        if hashlib.sha256(data).hexdigest() != artifact["sha256"]:
            raise PipelineFailed(PipelineReason.ARTIFACT_DIGEST_MISMATCH, f"{artifact['key']}#{artifact['version_id']}")
        return data

    def _put(self, key: str, data: bytes, content_type: str) -> str:
        return self._s3.put_object(
            Bucket=self._c.model_bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",  # Object Lock buckets require a checksum header
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        )["VersionId"]
