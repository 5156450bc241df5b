"""The built-in trainer: a small, deterministic model trained inside a Lambda function from a manifest.

Reading: every manifest entry by its version id, verified on the way, and the held-out split
(mlvault.training.data). The artifact and its prediction: mlvault.training.artifact.

Model: multinomial logistic regression (softmax), full-batch gradient descent for a fixed number of epochs with
L2 regularization, weights initialized from `random.Random(seed)`. Features, from the contract: every numeric
(and bool) column except the label and the row key, standardized with the training split's mean and population
standard deviation (a null becomes the mean); every non-nullable string column except the label and the key,
one-hot over the categories seen in training (an unseen category is all zeros). Protected attributes are
features unless `protected_as_features=False`: leaving them out does not make a model fair (proxies remain), the
gates measure outcomes either way (mlvault.training.gates).

Pure Python and deterministic: the same manifest, contract, parameters and code give the same artifact bytes.
The training set is held in memory (8 bytes per feature value, in arrays): `max_rows` bounds it before anything
is read; beyond it, use a SageMaker trainer (see `Trainer`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import random
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from operator import add, mul, sub, truediv
from pathlib import Path
from typing import Any, Protocol

from mlvault.canonical import canonical_json
from mlvault.contracts.schema import Contract
from mlvault.drift import build_reference
from mlvault.errors import TrainingError, TrainingReason
from mlvault.training.artifact import MODEL_TYPE, Feature, Model, accuracy, predict
from mlvault.training.data import FeaturePlan, check_contract, feature_plan, read_manifest, row_splitter
from mlvault.training.manifest import Manifest, ManifestEntry
from mlvault.training.params import TrainingParams

# the code that decides what a model is: hashed into every run's code digest
CODE_MODULES = (
    "mlvault.canonical",
    "mlvault.contracts.schema",
    "mlvault.contracts.validate",
    "mlvault.ingest.digest",
    "mlvault.drift",
    "mlvault.training.artifact",
    "mlvault.training.data",
    "mlvault.training.manifest",
    "mlvault.training.params",
    "mlvault.training.trainer",
)


# --- the run record -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRun:
    """What every run records, whether its model is later promoted or not."""

    trainer: str
    model_type: str
    dataset: str
    contract_version: str
    params: dict[str, Any]
    manifest_digest: str
    code_digest: str
    code_files: dict[str, str]
    metrics: dict[str, float | None]
    rows: dict[str, int]
    artifact_digest: str
    artifact_bytes: int
    started_at: str
    finished_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True)
class TrainingResult:
    model: Model
    run: TrainingRun
    heldout: list[dict[str, Any]]  # the held-out rows, as read (for the gates)


class Trainer(Protocol):
    """The seam between the pipeline and where training runs.

    `LambdaTrainer` trains in the calling function (data up to `max_rows`, minutes of CPU). A SageMaker
    implementation, for data beyond Lambda's 15 minutes / 10 GB, would keep this interface and these guarantees:
    `train` stores nothing new about the data (the manifest is already stored content-addressed), starts a
    training job (`CreateTrainingJob`, or the Step Functions `.sync` integration) whose image is pinned by digest
    and whose input is the stored manifest's S3 URI and version, not a prefix; the entry point reads every entry by
    version id and re-checks its SHA-256 exactly as `read_manifest` does (S3 `ManifestFile` channels carry no
    version ids, so it must read the objects itself), trains, and writes the same canonical artifact JSON. `train`
    then downloads the artifact, verifies its digest against the job's output, and returns the same
    `TrainingResult`, with a code digest over the image digest and the entry point's source; held-out rows come
    from `read_split` (the split is a pure function of the manifest and the seed).
    """

    name: str

    def train(self, manifest: Manifest, contract: Contract, params: TrainingParams) -> TrainingResult: ...


@dataclass
class _TrainingSet:
    numeric: list[array]
    categorical: list[list[Any]]
    labels: list[str] = field(default_factory=list)
    heldout: list[dict[str, Any]] = field(default_factory=list)


# --- training -----------------------------------------------------------------------------------------------


class LambdaTrainer:
    """Trains in the calling process (a Lambda function): pure Python, deterministic, bounded by `max_rows`."""

    name = "lambda"

    def __init__(self, s3: Any, *, clock: Callable[[], datetime] | None = None) -> None:
        self._s3 = s3
        self._clock = clock or (lambda: datetime.now(UTC))

    def train(self, manifest: Manifest, contract: Contract, params: TrainingParams | None = None) -> TrainingResult:
        params = params or TrainingParams()
        started = self._clock()
        check_contract(manifest, contract)
        if manifest.rows > params.max_rows:
            raise TrainingError(
                TrainingReason.TOO_MANY_ROWS,
                f"the manifest has {manifest.rows} rows, the Lambda trainer takes at most {params.max_rows}: "
                "train with a SageMaker trainer",
            )
        plan = feature_plan(contract, params)
        data = _TrainingSet(numeric=[array("d") for _ in plan.numeric], categorical=[[] for _ in plan.categorical])
        split = row_splitter(plan, params)

        def collect(entry: ManifestEntry, batch: Any) -> None:
            flags = split(entry, batch)
            if any(flags):
                data.heldout.extend(r for r, f in zip(batch.to_pylist(), flags, strict=True) if f)
            keep = [not f for f in flags]
            for values, name in zip(data.numeric, plan.numeric, strict=True):
                values.extend(
                    math.nan if v is None else float(v)
                    for v, k in zip(batch.column(name).to_pylist(), keep, strict=True)
                    if k
                )
            for values, name in zip(data.categorical, plan.categorical, strict=True):
                values.extend(v for v, k in zip(batch.column(name).to_pylist(), keep, strict=True) if k)
            data.labels.extend(v for v, k in zip(batch.column(plan.label).to_pylist(), keep, strict=True) if k)

        read_manifest(self._s3, manifest, contract, collect)
        model, loss = _fit(plan, data, params, contract)
        train_predictions = _train_predictions(model, plan, data)
        code_digest, code_files = code_identity()
        model = replace(
            model,
            training={
                "trainer": self.name,
                "params": params.to_json(),
                "manifest_digest": manifest.digest,
                "code_digest": code_digest,
            },
            drift=build_reference(
                numeric=dict(zip(plan.numeric, data.numeric, strict=True)),
                categorical=dict(zip(plan.categorical, data.categorical, strict=True)),
                classes=model.classes,
                predictions=train_predictions,
            ),
        )
        artifact = model.to_bytes()
        metrics = {
            "train_loss": loss,
            "train_accuracy": sum(map(str.__eq__, train_predictions, data.labels)) / len(data.labels),
            "heldout_accuracy": accuracy(model, data.heldout) if data.heldout else None,  # None: nothing held out
        }
        run = TrainingRun(
            trainer=self.name,
            model_type=MODEL_TYPE,
            dataset=manifest.dataset,
            contract_version=manifest.contract_version,
            params=params.to_json(),
            manifest_digest=manifest.digest,
            code_digest=code_digest,
            code_files=code_files,
            metrics=metrics,
            rows={"train": len(data.labels), "heldout": len(data.heldout)},
            artifact_digest=hashlib.sha256(artifact).hexdigest(),
            artifact_bytes=len(artifact),
            started_at=started.isoformat(timespec="milliseconds"),
            finished_at=self._clock().isoformat(timespec="milliseconds"),
        )
        return TrainingResult(model=model, run=run, heldout=data.heldout)


def _fit(plan: FeaturePlan, data: _TrainingSet, params: TrainingParams, contract: Contract) -> tuple[Model, float]:
    n = len(data.labels)
    classes = tuple(sorted(set(data.labels)))
    if n == 0 or len(classes) < 2:
        raise TrainingError(
            TrainingReason.NOT_ENOUGH_DATA, f"{n} training rows with {len(classes)} class(es); need two classes or more"
        )
    features: list[Feature] = []
    columns: list[list[float]] = []
    for name, values in zip(plan.numeric, data.numeric, strict=True):
        present = [v for v in values if not math.isnan(v)]
        mean = math.fsum(present) / len(present) if present else 0.0
        variance = math.fsum((v - mean) ** 2 for v in present) / len(present) if present else 0.0
        scale = math.sqrt(variance) or 1.0
        features.append(Feature(name, "numeric", mean=mean, scale=scale))
        columns.append([0.0 if math.isnan(v) else (v - mean) / scale for v in values])
    for name, values in zip(plan.categorical, data.categorical, strict=True):
        for category in sorted({v for v in values if v is not None}):
            features.append(Feature(name, "category", value=category))
            columns.append([1.0 if v == category else 0.0 for v in values])
    index = {c: i for i, c in enumerate(classes)}
    targets = [[0.0] * n for _ in classes]
    for i, label in enumerate(data.labels):
        targets[index[label]][i] = 1.0
    rng = random.Random(params.seed)  # noqa: S311 - reproducible initialization, not security
    weights = [[rng.gauss(0.0, 0.01) for _ in features] for _ in classes]
    bias = [0.0 for _ in classes]
    rate, l2 = params.learning_rate, params.l2
    loss = math.nan
    for _ in range(params.epochs):
        logits = []
        for w, b in zip(weights, bias, strict=True):
            z = [b] * n
            for wj, column in zip(w, columns, strict=True):
                z = [zi + wj * xj for zi, xj in zip(z, column, strict=True)]
            logits.append(z)
        top = list(map(max, *logits))  # two classes or more
        exps = [[math.exp(v) for v in map(sub, z, top)] for z in logits]
        total = exps[0]
        for e in exps[1:]:
            total = list(map(add, total, e))
        # mean cross-entropy: log-sum-exp minus the true class's logit
        true_logit = math.fsum(math.fsum(map(mul, t, z)) for t, z in zip(targets, logits, strict=True))
        loss = (math.fsum(map(math.log, total)) + math.fsum(top) - true_logit) / n
        for c, (e, t) in enumerate(zip(exps, targets, strict=True)):
            residual = list(map(sub, map(truediv, e, total), t))
            w = weights[c]
            for j, column in enumerate(columns):
                w[j] -= rate * (sum(map(mul, residual, column)) / n + l2 * w[j])
            bias[c] -= rate * sum(residual) / n
    model = Model(
        dataset=contract.dataset,
        contract_version=contract.version,
        label=plan.label,
        classes=classes,
        features=tuple(features),
        weights=tuple(tuple(w) for w in weights),
        bias=tuple(bias),
    )
    return model, loss


def _train_predictions(model: Model, plan: FeaturePlan, data: _TrainingSet) -> list[str]:
    """The model's prediction for every training row (a NaN of the training set is a null again)."""
    names = (*plan.numeric, *plan.categorical)
    columns = (*data.numeric, *data.categorical)
    rows = (
        {name: (None if isinstance(v, float) and math.isnan(v) else v) for name, v in zip(names, values, strict=True)}
        for values in zip(*columns, strict=True)
    )
    return predict(model, rows)


@cache
def code_identity() -> tuple[str, dict[str, str]]:
    """The SHA-256 of the code that decides a model (CODE_MODULES' source files), and each file's SHA-256."""
    files = {}
    for name in CODE_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"cannot locate module {name} to hash it")
        files[name.replace(".", "/") + Path(spec.origin).suffix] = hashlib.sha256(
            Path(spec.origin).read_bytes()
        ).hexdigest()
    return hashlib.sha256(canonical_json(files)).hexdigest(), files
