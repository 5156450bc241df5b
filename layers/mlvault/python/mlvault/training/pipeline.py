"""The model pipeline's steps (each a Step Functions task over a thin handler). Engine `lambda`: train -> evaluate
-> register -> sign. Engine `sagemaker`: prepare -> (the training job: SageMakerCreateTrainingJob, infra's) ->
collect -> evaluate -> register -> sign. Deployment is mlvault.rollout.canary.

Every run is recorded in the registry (RUN#<execution name>), failed ones included, before the step fails, and
ends in its outcome: the deployment's (mlvault.rollout.canary), or the step it failed at with the reason
(`record_failure`, the state machine's catch of every step, the training job's included). Steps pass each other
only pins: object keys with version ids and SHA-256 digests, re-checked when read. Both engines produce the same
artifact, a model package (mlvault.model_package), and from evaluate on the steps are the same.

The sign step signs only with the model-signing key of the bundled trust anchors (mlvault.trust.anchors), once
KMS shows that key's public key to be the anchored one, over the extracted package directory (OpenSSF
model-signing, one resource per file); a disabled, pending-deletion or untrusted key stops the run (FAILED at
sign, with its code) and is announced (mlvault.attestation.key_alerts).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlvault.canonical import versioned_uri
from mlvault.contracts.schema import resolve_contract
from mlvault.errors import (
    GatesFailed,
    ManifestError,
    PipelineFailed,
    PipelineReason,
    TrainingError,
    TrainingReason,
    VerificationError,
)
from mlvault.ledger import Ledger
from mlvault.model_package import MODEL_FILE, PACKAGE_FORMAT, package_key
from mlvault.registry.records import (
    RUN_FAILED,
    RUN_GATES_FAILED,
    RUN_PREPARED,
    RUN_REFUSED,
    RUN_REGISTERED,
    RUN_REJECTED,
    RUN_TRAINED,
    ModelRegistry,
)
from mlvault.training.manifest import (
    Manifest,
    build_bounded_manifest,
    build_manifest,
    load_manifest,
    manifest_key,
    store_manifest,
)
from mlvault.training.objects import put_bytes
from mlvault.training.sign_step import PROVENANCE_TYPE, SignStep
from mlvault.training.specs import ModelSpec, job_failure
from mlvault.trust.anchors import SigningKey

__all__ = ["PROVENANCE_TYPE", "GatesFailed", "Pipeline", "PipelineConfig", "PipelineFailed"]

# How a failed step's error ends its run (the error names Step Functions reports; anything else: FAILED).
_FAILURE_STATUS = {"GatesFailed": RUN_GATES_FAILED, "RolloutRefused": RUN_REFUSED, "NotApproved": RUN_REJECTED}
TRAINING_JOB_STEPS = ("train", "training_job")  # the failed_step names of the training task's catch
_REFUSALS = (ManifestError, TrainingError, VerificationError)


@dataclass(frozen=True)
class PipelineConfig:
    model_bucket: str
    ledger_table: str
    registry_table: str
    contracts_dir: Path
    models: Mapping[str, ModelSpec]  # name -> its spec: the bundled models document (its gates decide trust)
    signing_key: SigningKey | None = None  # the bundled anchor: only the sign step needs it
    stage: str = ""
    alert_topic_arn: str = ""  # where a refused signing key is announced


def artifact_key(model: str, digest: str) -> str:
    return package_key(model, digest)


class Pipeline(SignStep):
    def __init__(
        self, *, s3: Any, dynamodb: Any, kms: Any, config: PipelineConfig, events: Any = None, sns: Any = None
    ) -> None:
        self._s3 = s3
        self._db = dynamodb
        self._kms = kms
        self._c = config
        self.registry = ModelRegistry(dynamodb, config.registry_table)
        self._outbox = self.registry.outbox(events=events, sns=sns)

    def spec(self, dataset: str, model: str | None = None) -> ModelSpec:
        """The model a run trains: the bundled models document's entry (a run naming none: the model named like its
        dataset). Never the environment: its gates and training decide trust."""
        name = model or dataset
        spec = self._c.models.get(name)
        if spec is None or spec.dataset != dataset:
            raise PipelineFailed(
                PipelineReason.UNKNOWN_MODEL,
                f"model {name!r} of dataset {dataset!r} is not one of the stage's models {sorted(self._c.models)}",
            )
        return spec

    def _started(self, run_id: str, dataset: str, model: str) -> str:
        started = datetime.now(UTC).isoformat()
        body = {"dataset": dataset, "model": model, "started_at": started}
        self.registry.record_run(run_id, dataset=dataset, status="STARTED", body=body)
        return started

    def _refused(self, run_id: str, dataset: str, step: str, err: Any, **body: Any) -> PipelineFailed:
        """A step's refusal (a reason code): the run ends FAILED at the step, recorded first."""
        run = self.registry.run(run_id) or {"dataset": dataset}
        run.pop("run_id", None)
        run.pop("status", None)
        outcome = {"status": RUN_FAILED, "step": step, "reason": str(err.reason), "detail": err.detail}
        failure = {"reason": err.reason, "detail": str(err)}
        self.registry.record_run(
            run_id, dataset=dataset, status=RUN_FAILED, body={**run, **body, "failure": failure, "outcome": outcome}
        )
        return PipelineFailed(err.reason, err.detail)

    def _manifest_state(
        self, manifest: Manifest, version: str, left_out: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The manifest's pins, and what the row cap left out of it (`left_out`, only when something was)."""
        state = {
            "bucket": self._c.model_bucket,
            "key": manifest_key(manifest.dataset, manifest.digest),
            "version_id": version,
            "sha256": manifest.digest,
            "entries": len(manifest.entries),
            "rows": manifest.rows,
        }
        return {**state, "left_out": left_out} if left_out else state

    # --- train (engine lambda) --------------------------------------------------------------------------

    def train(self, run_id: str, dataset: str, model: str | None = None) -> dict[str, Any]:
        from mlvault.training.trainer import LambdaTrainer

        spec = self.spec(dataset, model)
        started = self._started(run_id, dataset, spec.name)
        said: dict[str, Any] = {}  # what the row cap left out, recorded by a failed run too
        try:
            if spec.engine != "lambda":
                raise PipelineFailed(PipelineReason.WRONG_ENGINE, f"model {spec.name} trains on SageMaker: prepare it")
            bounded = build_bounded_manifest(
                Ledger(self._db, self._c.ledger_table), dataset, max_rows=spec.training.max_rows
            )
            left_out = bounded.left_out_json()
            if left_out:
                said["manifest"] = {"left_out": left_out}
            manifest = bounded.trainable()
            manifest_version = store_manifest(self._s3, self._c.model_bucket, manifest)
            contract = resolve_contract(self._c.contracts_dir, dataset, manifest.contract_version)
            result = LambdaTrainer(self._s3).train(manifest, contract, spec.training, name=spec.name)
        except (*_REFUSALS, PipelineFailed) as err:
            raise self._refused(run_id, dataset, "train", err, started_at=started, model=spec.name, **said) from None
        key = package_key(spec.name, result.run.artifact_digest)
        version = put_bytes(self._s3, self._c.model_bucket, key, result.package, content_type="application/x-tar")
        state = {
            "run_id": run_id,
            "dataset": dataset,
            "model": spec.name,
            "engine": "lambda",
            "contract_version": manifest.contract_version,
            "manifest": self._manifest_state(manifest, manifest_version, left_out),
            "artifact": {
                "bucket": self._c.model_bucket,
                "key": key,
                "version_id": version,
                "sha256": result.run.artifact_digest,
                "bytes": len(result.package),
                "format": PACKAGE_FORMAT,
                "files": result.files,
            },
        }
        self.registry.record_run(run_id, dataset=dataset, status=RUN_TRAINED, body={**result.run.to_json(), **state})
        return state

    # --- prepare and collect (engine sagemaker) ---------------------------------------------------------

    def prepare(
        self, run_id: str, dataset: str, model: str | None = None, *, code_sha256: str | None = None
    ) -> dict[str, Any]:
        """The manifest, the job's channels and inputs.json, the held-out split (mlvault.training.channels); the
        state the training task reads (docs/bring-your-own-model.md, "The state"). `code_sha256`, when the state
        machine passes it, must be the bundled models document's (both come from the same synth). The manifest is
        every accepted file: this engine has no row cap of mlvault's (the lambda engine's is `max_rows`)."""
        from mlvault.training.channels import prepare_inputs

        spec = self.spec(dataset, model)
        started = self._started(run_id, dataset, spec.name)
        try:
            if spec.engine != "sagemaker":
                raise PipelineFailed(PipelineReason.WRONG_ENGINE, f"model {spec.name} is built in: train it")
            if code_sha256 is not None and spec.code is not None and code_sha256 != spec.code.sha256:
                raise TrainingError(
                    TrainingReason.CODE_DIGEST_MISMATCH,
                    f"the state machine runs code {code_sha256}, the bundled models document {spec.code.sha256}",
                )
            manifest = build_manifest(Ledger(self._db, self._c.ledger_table), dataset)
            manifest_version = store_manifest(self._s3, self._c.model_bucket, manifest)
            contract = resolve_contract(self._c.contracts_dir, dataset, manifest.contract_version)
            prepared = prepare_inputs(
                self._s3,
                bucket=self._c.model_bucket,
                manifest=manifest,
                contract=contract,
                spec=spec,
                run_id=run_id,
                stage=self._c.stage,
            )
        except (*_REFUSALS, PipelineFailed) as err:
            raise self._refused(run_id, dataset, "prepare", err, started_at=started, model=spec.name) from None
        job = prepared["job"]
        state = {
            "run_id": run_id,
            "dataset": dataset,
            "model": spec.name,
            "engine": "sagemaker",
            "contract_version": manifest.contract_version,
            "manifest": self._manifest_state(manifest, manifest_version),
            **prepared,
        }
        body = {
            **state,
            "started_at": started,
            "trainer": "sagemaker",
            "manifest_digest": manifest.digest,
            "code_digest": job["code"]["sha256"],
            "code_files": {"sourcedir.tar.gz": job["code"]["sha256"]},
            "params": {"hyperparameters": spec.hyperparameters, "split": prepared["split"], "image": spec.image},
            "rows": {
                "train": job["channels"]["train"]["rows"],
                "validation": job["channels"].get("validation", {}).get("rows", 0),
                "heldout": prepared["heldout"]["rows"],
            },
        }
        self.registry.record_run(run_id, dataset=dataset, status=RUN_PREPARED, body=body)
        return state

    def collect(self, state: dict[str, Any], reported: dict[str, Any] | None = None) -> dict[str, Any]:
        """The job's model.tar.gz to a stored package (mlvault.training.collect); the run TRAINED, or FAILED with
        the reason (NO_ONNX_MODEL, NO_DESCRIPTOR, DESCRIPTOR_INVALID, DESCRIPTOR_MISMATCH, ONNX_INVALID,
        TRAINING_OUTPUT_INVALID)."""
        from mlvault.training.collect import collect_output

        run_id, dataset = state["run_id"], state["dataset"]
        spec = self.spec(dataset, state.get("model"))
        run = self.registry.run(run_id) or {}
        job = run.get("job") or state["job"]  # the pins the prepare step recorded, not what the state says
        try:
            contract = resolve_contract(self._c.contracts_dir, dataset, state["contract_version"])
            collected = collect_output(
                self._s3,
                bucket=self._c.model_bucket,
                model=spec.name,
                contract=contract,
                job=job,
                reported=reported or state.get("training_job"),
            )
        except (*_REFUSALS, PipelineFailed) as err:
            raise self._refused(run_id, dataset, "collect", err) from None
        artifact, descriptor = collected.artifact, collected.descriptor
        training_job = {
            "name": job["name"],
            "image": job.get("image", ""),
            "inputs": {k: job["inputs"][k] for k in ("bucket", "key", "version_id", "sha256")},
            "output": {k: collected.output[k] for k in ("bucket", "key", "version_id", "sha256", "bytes")},
        }
        out = {k: v for k, v in state.items() if k != "training_job"}
        out["artifact"] = artifact
        body = {k: v for k, v in run.items() if k not in ("run_id", "status")}
        body.update(
            artifact=artifact,
            artifact_digest=artifact["sha256"],
            artifact_bytes=artifact["bytes"],
            model_type=descriptor.framework.get("name", "onnx"),
            framework=descriptor.framework,
            claims=descriptor.claims,
            metrics={},
            training_job=training_job,
            other_files=collected.output["other_files"],
        )
        self.registry.record_run(run_id, dataset=dataset, status=RUN_TRAINED, body=body)
        return out

    # --- evaluate ---------------------------------------------------------------------------------------

    def evaluate(self, state: dict[str, Any]) -> dict[str, Any]:
        from mlvault.training.channels import iter_parts
        from mlvault.training.evaluation import evaluate_package, heldout_from_manifest
        from mlvault.training.gates import inputs_accepted
        from mlvault.training.onnx_scoring import OnnxScorer
        from mlvault.training.package_io import fetch_package

        run_id, dataset = state["run_id"], state["dataset"]
        spec = self.spec(dataset, state.get("model"))
        run = self.registry.run(run_id) or {}
        artifact = run.get("artifact") or {}
        if artifact.get("sha256") != state["artifact"]["sha256"]:
            raise PipelineFailed(
                PipelineReason.ARTIFACT_DIGEST_MISMATCH,
                f"the state pins {state['artifact'].get('sha256')}, the run recorded {artifact.get('sha256')}",
            )
        manifest = self._manifest(state)
        contract = resolve_contract(self._c.contracts_dir, dataset, manifest.contract_version)
        try:
            with tempfile.TemporaryDirectory(prefix="mlvault-evaluate-") as scratch:
                package = fetch_package(self._s3, artifact, Path(scratch) / "model")
                scorer = OnnxScorer.load(package.folder / MODEL_FILE, package.descriptor)
                if "heldout" in state:
                    heldout = run.get("heldout") or state["heldout"]
                    batches = iter_parts(self._s3, self._c.model_bucket, heldout["parts"])
                else:
                    split = spec.split
                    batches = heldout_from_manifest(
                        self._s3,
                        manifest,
                        contract,
                        seed=split["seed"],
                        heldout_fraction=split["heldout_fraction"],
                    )
                inputs = inputs_accepted(
                    trained_on=run.get("manifest_digest"),
                    trained_for=(package.descriptor.dataset, package.descriptor.contract_version),
                    contract=contract,
                    manifest=manifest,
                    ledger=Ledger(self._db, self._c.ledger_table),
                )
                report = evaluate_package(
                    scorer,
                    batches,
                    contract,
                    spec.gates,
                    artifact=artifact,
                    inputs=inputs,
                    manifest_digest=manifest.digest,
                )
        except (*_REFUSALS,) as err:
            raise self._refused(run_id, dataset, "evaluate", err) from None
        run.pop("run_id", None)
        run.pop("status", None)
        status = "GATES_PASSED" if report.passed else RUN_GATES_FAILED
        body = {**run, "gates": report.to_json()}
        failed = "; ".join(f"{r.name} {r.value} (limit {r.threshold})" for r in report.results if not r.passed)
        if not report.passed:
            body["outcome"] = {"status": status, "step": "evaluate", "reason": "GATES_FAILED", "detail": failed}
        self.registry.record_run(run_id, dataset=dataset, status=status, body=body)
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
        engine = run.get("trainer", "lambda")
        code: dict[str, Any] = {"sha256": run["code_digest"], "files": run["code_files"]}
        if engine == "sagemaker":
            asset = run["job"]["code"]
            code["asset"] = {k: asset[k] for k in ("bucket", "key", "version_id", "sha256", "bytes")}
        record = {
            "model": run.get("model") or state["dataset"],
            "dataset": state["dataset"],
            "contract_version": state["contract_version"],
            "run_id": state["run_id"],
            "engine": engine,
            "artifact": run["artifact"],
            "manifest": state["manifest"],
            "code": code,
            "trainer": run["trainer"],
            "params": run["params"],
            "metrics": run.get("metrics", {}),
            "claims": run.get("claims", {}),
            "gates": {"passed": True, "results": run["gates"]["results"]},
            "lineage": lineage,
            "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if "training_job" in run:
            record["training_job"] = run["training_job"]
        model = self.registry.register(record)
        self.registry.update_run(state["run_id"], RUN_REGISTERED, model_id=model["model_id"])
        return {**state, "model_id": model["model_id"]}

    # --- the end of a failed run ------------------------------------------------------------------------

    def record_failure(self, run_id: str, dataset: str, step: str, error: dict[str, Any]) -> dict[str, Any]:
        """A step failed (the state machine's catch): the run ends in FAILED at that step with the error's reason
        code and detail, or GATES_FAILED / REFUSED / REJECTED for those errors. The training job's catch (step
        `train`, or `training_job`) reads SageMaker's description of the job from the Cause: TRAINING_JOB_FAILED,
        TRAINING_JOB_TIMEOUT or mlvault_job.py's INPUT_DIGEST_MISMATCH, with SageMaker's FailureReason. A step
        that recorded its own outcome keeps its status and detail; the step is added. Returns the run's outcome."""
        name = str(error.get("Error", "")) or "Failed"
        message = _error_message(error.get("Cause", ""))
        code, _, detail = message.partition(": ")
        reason = code if code.isupper() and "_" in code.strip("_") else name
        run = self.registry.run(run_id)
        status = _FAILURE_STATUS.get(name, RUN_FAILED)
        recorded = (run or {}).get("outcome") or {}
        job = job_failure(error) if step in TRAINING_JOB_STEPS else None
        if job is not None:
            outcome = {"step": "train", "reason": job[0], "detail": job[1]}
        elif recorded.get("status") == status and recorded.get("reason"):  # its own account of it stands
            outcome = {"step": step, "reason": recorded["reason"], "detail": recorded.get("detail", "")}
        else:
            outcome = {"step": step, "reason": reason, "detail": (detail if reason == code else message)[:1000]}
        outcome["error"] = name
        self.registry.update_run(run_id, status, dataset=dataset, outcome=outcome)
        return {"run_id": run_id, "status": status, **outcome}

    # --- helpers ----------------------------------------------------------------------------------------

    def _manifest(self, state: dict[str, Any]) -> Manifest:
        m = state["manifest"]
        return load_manifest(self._s3, m["bucket"], state["dataset"], m["sha256"], version_id=m["version_id"])


def _error_message(cause: Any) -> str:
    """A failed Lambda task's error message (the Catch's Cause is the Lambda error as JSON)."""
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return str(cause)
    return str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else str(cause)
