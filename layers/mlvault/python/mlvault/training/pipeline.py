"""The model pipeline's steps (each a Step Functions task over a thin handler): train -> evaluate ->
register -> sign. Deployment is mlvault.rollout.canary.

Every run is recorded in the registry (RUN#<execution name>), failed ones included, before the step fails, and
ends in its outcome: the deployment's (mlvault.rollout.canary), or the step it failed at with the reason
(`record_failure`, the state machine's catch of every step). Steps pass each other only pins: object keys with
version ids and SHA-256 digests, re-checked when read.

The sign step signs only with the model-signing key of the bundled trust anchors (mlvault.trust.anchors), once
KMS shows that key's public key to be the anchored one; a disabled, pending-deletion or untrusted key stops the
run (FAILED at sign, with its code) and is announced (mlvault.attestation.key_alerts).
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

from botocore.exceptions import ClientError

from mlvault.canonical import versioned_uri
from mlvault.contracts.validate import resolve_contract
from mlvault.errors import (
    AttestationError,
    GatesFailed,
    ManifestError,
    MlvaultError,
    PipelineFailed,
    PipelineReason,
    ServeReason,
    TrainingError,
    VerificationError,
)
from mlvault.ledger import Ledger
from mlvault.registry.records import (
    REGISTERED,
    RUN_FAILED,
    RUN_GATES_FAILED,
    RUN_REFUSED,
    RUN_REGISTERED,
    RUN_REJECTED,
    RUN_SIGNED,
    SIGNED,
    ModelRegistry,
)
from mlvault.training.artifact import load_model
from mlvault.training.data import read_split
from mlvault.training.gates import Gates, evaluate
from mlvault.training.manifest import build_manifest, load_manifest, store_manifest
from mlvault.training.params import TrainingParams
from mlvault.training.trainer import LambdaTrainer
from mlvault.trust.anchors import SigningKey

MAX_ARTIFACT_BYTES = 50 * 1024 * 1024
PROVENANCE_TYPE = "https://mlvault.dev/provenance/model/v1"
_KEY_STATES = frozenset({"DisabledException", "KMSInvalidStateException", "NotFoundException"})
# How a failed step's error ends its run (the error names Step Functions reports; anything else: FAILED).
_FAILURE_STATUS = {"GatesFailed": RUN_GATES_FAILED, "RolloutRefused": RUN_REFUSED, "NotApproved": RUN_REJECTED}


@dataclass(frozen=True)
class PipelineConfig:
    model_bucket: str
    ledger_table: str
    registry_table: str
    contracts_dir: Path
    gates: Gates
    params: TrainingParams
    signing_key: SigningKey | None = None  # the bundled anchor: only the sign step needs it
    stage: str = ""
    alert_topic_arn: str = ""  # where a refused signing key is announced


def artifact_key(dataset: str, digest: str) -> str:
    return f"models/{dataset}/sha256={digest}/model.json"


class Pipeline:
    def __init__(
        self, *, s3: Any, dynamodb: Any, kms: Any, config: PipelineConfig, events: Any = None, sns: Any = None
    ) -> None:
        self._s3 = s3
        self._db = dynamodb
        self._kms = kms
        self._c = config
        self.registry = ModelRegistry(dynamodb, config.registry_table)
        self._outbox = self.registry.outbox(events=events, sns=sns)

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
            outcome = {"status": RUN_FAILED, "step": "train", "reason": str(err.reason), "detail": err.detail}
            body = {"dataset": dataset, "started_at": started, "failure": failure, "outcome": outcome}
            self.registry.record_run(run_id, dataset=dataset, status=RUN_FAILED, body=body)
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
        status = "GATES_PASSED" if report.passed else RUN_GATES_FAILED
        body = {**run, "gates": report.to_json()}
        failed = "; ".join(f"{r.name} {r.value} (limit {r.threshold})" for r in report.results if not r.passed)
        if not report.passed:
            body["outcome"] = {"status": status, "step": "evaluate", "reason": "GATES_FAILED", "detail": failed}
        self.registry.record_run(state["run_id"], dataset=state["dataset"], status=status, body=body)
        if not report.passed:
            raise GatesFailed(failed, report.failures)
        return {**state, "gates": {"passed": True, "failures": []}}

    # --- register ---------------------------------------------------------------------------------------

    def register(self, state: dict[str, Any]) -> dict[str, Any]:
        run = self.registry.run(state["run_id"])
        if run is None or not run.get("gates", {}).get("passed"):
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
        self.registry.update_run(state["run_id"], RUN_REGISTERED, model_id=model["model_id"])
        return {**state, "model_id": model["model_id"]}

    # --- sign -------------------------------------------------------------------------------------------

    def sign(self, state: dict[str, Any]) -> dict[str, Any]:
        from mlvault.attestation.openssf import sign_model
        from mlvault.attestation.pinned import trusted_public_key
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
        key = self._c.signing_key
        if key is None:
            raise ValueError("the sign step needs the bundled model-signing key (PipelineConfig.signing_key)")
        signer = KmsSigner(self._kms, key.arn, key.arn)
        try:
            pem = trusted_public_key(self._kms, key)  # the anchored key, enabled, with the anchored public key
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.json"
                path.write_bytes(self._artifact_bytes(artifact))
                bundle = sign_model(path, signer, statement_extra=extra, public_key_pem=pem)
            provenance = self._provenance(state["model_id"], model["record"], signer)
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

    # --- the end of a failed run ------------------------------------------------------------------------

    def record_failure(self, run_id: str, dataset: str, step: str, error: dict[str, Any]) -> dict[str, Any]:
        """A step failed (the state machine's catch): the run ends in FAILED at that step with the error's reason
        code and detail, or GATES_FAILED / REFUSED / REJECTED for those errors. A step that recorded its own
        outcome keeps its status and detail; the step is added. Returns the run's outcome."""
        name = str(error.get("Error", "")) or "Failed"
        message = _error_message(error.get("Cause", ""))
        code, _, detail = message.partition(": ")
        reason = code if code.isupper() and "_" in code.strip("_") else name
        run = self.registry.run(run_id)
        status = _FAILURE_STATUS.get(name, RUN_FAILED)
        recorded = (run or {}).get("outcome") or {}
        if recorded.get("status") == status and recorded.get("reason"):  # its own account of it stands
            outcome = {"step": step, "reason": recorded["reason"], "detail": recorded.get("detail", "")}
        else:
            outcome = {"step": step, "reason": reason, "detail": (detail if reason == code else message)[:1000]}
        outcome["error"] = name
        self.registry.update_run(run_id, status, dataset=dataset, outcome=outcome)
        return {"run_id": run_id, "status": status, **outcome}

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


def _error_message(cause: Any) -> str:
    """A failed Lambda task's error message (the Catch's Cause is the Lambda error as JSON)."""
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return str(cause)
    return str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else str(cause)
