"""The models a stage trains (cdk.json `models`, as infra bundles them into the pipeline and sign functions' signed
code: mlvault.wiring.Bundle.MODELS, `trust/models.json`: gates decide trust, so they are never configuration), and
the SageMaker training job's names, hyperparameters and end (docs/bring-your-own-model.md).

The document is JSON, one entry per model name (snake_case: the runtime form of cdk.json's camelCase keys):

    {"<name>": {"dataset": "credit", "engine": "sagemaker" | "lambda",
                "gates": {...mlvault.training.gates.Gates...},
                "training": {...TrainingParams...},                        lambda engine (optional)
                "seed": 0, "heldout_fraction": 0.2, "validation_fraction": 0.1,   sagemaker: the split
                "code": {"bucket", "key", "sha256"},                      sagemaker: sourcedir.tar.gz, as deployed
                "entry_point": "train.py", "image": "<image URI>",
                "hyperparameters": {"n_estimators": "200", ...},
                "part_rows": 1000000}}                                    sagemaker: rows per channel part

Unknown keys are refused, naming the key (infra validates the same at synth: this module is pure). There is no
model without the document, and no gate from the environment: a pipeline or sign function whose bundle lacks it
refuses to start (`load_specs`: TrustAnchorError, MODELS_MISSING).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlvault.errors import AnchorReason, TrainingReason, TrustAnchorError
from mlvault.training.gates import Gates
from mlvault.training.params import TrainingParams
from mlvault.wiring import Bundle

ENGINES = ("lambda", "sagemaker")
JOB_ENTRY = "mlvault_job.py"  # sagemaker_program: mlvault's verifier runs first, then the entry point
SOURCE_FILE = "sourcedir.tar.gz"
CODE_DIR = "/opt/ml/input/data/code"
DEFAULT_PART_ROWS = 1_000_000
MAX_PART_ROWS = 50_000_000
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's TrainingJobName
_HYPERPARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$")
_RESERVED = ("sagemaker_", "mlvault_")


@dataclass(frozen=True)
class CodeAsset:
    """The content-hashed source asset of a sagemaker model: the team's models/<name>/ and mlvault_job.py as one
    deterministic sourcedir.tar.gz (mlvault.training.job_entry.source_asset), where infra deployed it."""

    bucket: str
    key: str
    sha256: str  # of the tar.gz bytes: the code digest in the run, the record, the provenance and the lineage


@dataclass(frozen=True)
class ModelSpec:
    name: str
    dataset: str
    engine: str = "lambda"
    gates: Gates = field(default_factory=Gates)
    training: TrainingParams = field(default_factory=TrainingParams)
    seed: int = 0
    heldout_fraction: float = 0.2
    validation_fraction: float = 0.0
    code: CodeAsset | None = None
    entry_point: str = "train.py"
    image: str = ""
    hyperparameters: dict[str, str] = field(default_factory=dict)
    part_rows: int = DEFAULT_PART_ROWS

    @property
    def split(self) -> dict[str, Any]:
        """The split of the run's rows: the lambda engine's from its training parameters."""
        if self.engine == "lambda":
            return {
                "seed": self.training.seed,
                "heldout_fraction": self.training.heldout_fraction,
                "validation_fraction": 0.0,
            }
        return {
            "seed": self.seed,
            "heldout_fraction": self.heldout_fraction,
            "validation_fraction": self.validation_fraction,
        }


_KEYS = {
    "dataset",
    "engine",
    "gates",
    "training",
    "seed",
    "heldout_fraction",
    "validation_fraction",
    "code",
    "entry_point",
    "image",
    "hyperparameters",
    "part_rows",
}


def parse_spec(name: str, raw: Any) -> ModelSpec:
    """One model's entry (module docstring); ValueError naming the key otherwise."""
    where = f"models.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{where}: a model name is lowercase letters, digits, - and _ (at most 63), got {name!r}")
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected an object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    dataset = raw.get("dataset")
    if not isinstance(dataset, str) or not _NAME.match(dataset):
        raise ValueError(f"{where}.dataset: expected a dataset name, got {dataset!r}")
    engine = raw.get("engine", "lambda")
    if engine not in ENGINES:
        raise ValueError(f"{where}.engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    try:
        gates = Gates.from_config(raw.get("gates", {}))
        training = TrainingParams(**raw.get("training", {}))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{where}.seed: expected an integer, got {seed!r}")
    heldout, validation = raw.get("heldout_fraction", 0.2), raw.get("validation_fraction", 0.0)
    for key, value in (("heldout_fraction", heldout), ("validation_fraction", validation)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
    if not 0 < heldout < 1 or not 0 <= validation < 1 - heldout:
        raise ValueError(
            f"{where}: heldout_fraction must be in (0, 1) and validation_fraction in [0, 1 - heldout_fraction), "
            f"got {heldout!r} and {validation!r}"
        )
    code = _code(where, raw.get("code"), required=engine == "sagemaker")
    hyperparameters = raw.get("hyperparameters", {})
    if not isinstance(hyperparameters, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in hyperparameters.items()
    ):
        raise ValueError(f"{where}.hyperparameters: expected an object of strings to strings")
    for key in hyperparameters:
        if not _HYPERPARAMETER.match(key) or key.startswith(_RESERVED):
            raise ValueError(f"{where}.hyperparameters: {key!r} is not a name a team may use ({_RESERVED} are ours)")
    entry_point = raw.get("entry_point", "train.py")
    if (
        not isinstance(entry_point, str)
        or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.py", entry_point)
        or (".." in entry_point.split("/"))
    ):
        raise ValueError(f"{where}.entry_point: expected a relative .py path inside the source, got {entry_point!r}")
    part_rows = raw.get("part_rows", DEFAULT_PART_ROWS)
    if isinstance(part_rows, bool) or not isinstance(part_rows, int) or not 1 <= part_rows <= MAX_PART_ROWS:
        raise ValueError(f"{where}.part_rows: expected an integer in [1, {MAX_PART_ROWS}], got {part_rows!r}")
    image = raw.get("image", "")
    if not isinstance(image, str):
        raise ValueError(f"{where}.image: expected a string")
    return ModelSpec(
        name=name,
        dataset=dataset,
        engine=engine,
        gates=gates,
        training=training,
        seed=seed,
        heldout_fraction=float(heldout),
        validation_fraction=float(validation),
        code=code,
        entry_point=entry_point,
        image=image,
        hyperparameters=dict(hyperparameters),
        part_rows=part_rows,
    )


def _code(where: str, raw: Any, *, required: bool) -> CodeAsset | None:
    if raw is None:
        if required:
            raise ValueError(f"{where}.code: the sagemaker engine needs its source asset {{bucket, key, sha256}}")
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"bucket", "key", "sha256"}:
        raise ValueError(f"{where}.code: expected exactly {{bucket, key, sha256}}")
    if not all(isinstance(raw[k], str) and raw[k] for k in ("bucket", "key")) or not _HEX.match(str(raw["sha256"])):
        raise ValueError(f"{where}.code: bucket and key are names, sha256 64 lowercase hex digits")
    return CodeAsset(raw["bucket"], raw["key"], raw["sha256"])


def parse_specs(text: str) -> dict[str, ModelSpec]:
    """The models document (module docstring); ValueError naming the key otherwise."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"models: not JSON ({err})") from None
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError("models: expected an object of model name -> settings")
    return {name: parse_spec(name, entry) for name, entry in raw.items()}


def load_specs(path: Path) -> dict[str, ModelSpec]:
    """The models document bundled at `path` (Bundle.MODELS): TrustAnchorError, MODELS_MISSING, without one (fail
    closed: gates decide trust and come from nowhere else); ValueError, as parse_specs, for a malformed one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrustAnchorError(
            AnchorReason.MODELS_MISSING, f"no models document {Bundle.MODELS!r} in the function's bundle"
        ) from None
    return parse_specs(text)


# --- the training job -----------------------------------------------------------------------------------------


def job_name(run_id: str, stage: str = "") -> str:
    """The training job's name: `mlvault-<stage>-<run id>` (the job role and the state machine's permissions are
    scoped to the stage's job names) when SageMaker accepts it (letters, digits and hyphens, at most 63), else a
    readable prefix of it and 12 hex digits of its SHA-256 (the run record keeps both)."""
    name = f"mlvault-{stage}-{run_id}" if stage else run_id
    if _JOB_NAME.match(name):
        return name
    readable = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:50].strip("-") or "run"
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


def job_hyperparameters(spec: ModelSpec, inputs_sha256: str) -> dict[str, str]:
    """The job's HyperParameters: the model's own, then what runs mlvault's verifier before the entry point (script
    mode runs `sagemaker_program` from `sagemaker_submit_directory`; network isolation: the code is a channel)."""
    return {
        **spec.hyperparameters,
        "sagemaker_program": JOB_ENTRY,
        "sagemaker_submit_directory": f"{CODE_DIR}/{SOURCE_FILE}",
        "mlvault_entry_point": spec.entry_point,
        "mlvault_inputs_sha256": inputs_sha256,
    }


# How a training job ended, from the Cause of the training task's catch: Step Functions' `.sync` integration fails
# the task with the job's DescribeTrainingJob output as its Cause (JSON). A job stopped at MaxRuntimeInSeconds has
# SecondaryStatus MaxRuntimeExceeded (MaxWaitTimeExceeded for spot); a task that timed out in Step Functions has
# the error States.Timeout. mlvault_job.py's own refusal is its last line, "INPUT_DIGEST_MISMATCH: <detail>", in
# /opt/ml/output/failure and on stderr (the script-mode toolkit may replace the file with its own message, which
# quotes the end of stderr): found anywhere in FailureReason.
_TIMEOUT_STATUSES = ("MaxRuntimeExceeded", "MaxWaitTimeExceeded")
_OWN_CODE = re.compile(r"\b(INPUT_DIGEST_MISMATCH): ([^\n\"]*)")


def job_failure(error: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason code, detail) of a failed training task's catch ({"Error", "Cause"}), or None when it is not one
    (the Cause is not a training job's description and the error is not a timeout)."""
    name = str(error.get("Error", ""))
    cause = error.get("Cause", "")
    try:
        job = json.loads(cause) if isinstance(cause, str) and cause.strip().startswith("{") else None
    except ValueError:
        job = None
    if not isinstance(job, Mapping) or "TrainingJobStatus" not in job:
        if name == "States.Timeout":
            return str(TrainingReason.TRAINING_JOB_TIMEOUT), "the training task ran past its Step Functions timeout"
        return None
    reason = str(job.get("FailureReason") or "")
    transitions = job.get("SecondaryStatusTransitions") or []
    last = transitions[-1].get("StatusMessage", "") if transitions and isinstance(transitions[-1], Mapping) else ""
    secondary = str(job.get("SecondaryStatus", ""))
    where = f"training job {job.get('TrainingJobName', '?')} {job['TrainingJobStatus']}/{secondary}"
    detail = f"{where}: {reason or last or 'no FailureReason'}"[:1000]
    own = _OWN_CODE.search(reason)  # mlvault_job.py's line, also when the toolkit wraps it in its own message
    if own:
        return own.group(1), f"{where}: {own.group(2)}"[:1000]
    if secondary in _TIMEOUT_STATUSES or name == "States.Timeout":
        return str(TrainingReason.TRAINING_JOB_TIMEOUT), detail
    return str(TrainingReason.TRAINING_JOB_FAILED), detail
