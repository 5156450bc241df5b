"""The built-in trainer (engine `lambda`): a small, deterministic model trained inside a Lambda function from a
manifest, emitted as the model package every model is (mlvault.model_package): an ONNX graph of it
(mlvault.training.onnx_graph), its descriptor, and the drift reference mlvault computes from the training rows and
the ONNX model's own predictions on them (onnxruntime, in batches).

Reading: every manifest entry by its version id, verified on the way, and the held-out split
(mlvault.training.data): held-out rows are counted here, never kept (the evaluate step reads them again).

Model: multinomial logistic regression (softmax), full-batch gradient descent for a fixed number of epochs with
L2 regularization, weights initialized from `random.Random(seed)`. Features, from the contract: every numeric
(and bool) column except the label and the row key, standardized with the training split's mean and population
standard deviation (a null becomes the mean); every non-nullable string column except the label and the key,
one-hot over the categories seen in training (an unseen category is all zeros). Protected attributes are
features unless `protected_as_features=False`: leaving them out does not make a model fair (proxies remain), the
gates measure outcomes either way (mlvault.training.gates).

Deterministic: the same manifest, contract, parameters and code give the same package bytes (the code identity,
`code_identity`, hashes the modules that decide them). The training set is held in memory (8 bytes per feature
value, in arrays): `max_rows` bounds it before anything is read; beyond it, train with the `sagemaker` engine
(docs/bring-your-own-model.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import random
import tempfile
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from operator import add, mul, sub, truediv
from pathlib import Path
from typing import Any

from mlvault.canonical import canonical_json
from mlvault.contracts.schema import Contract
from mlvault.drift import build_reference
from mlvault.errors import TrainingError, TrainingReason
from mlvault.model_package import DESCRIPTOR_FILE, DRIFT_FILE, MODEL_FILE, ModelDescriptor, file_digests, pack
from mlvault.training.artifact import MODEL_TYPE, Feature, Model
from mlvault.training.data import FeaturePlan, check_contract, feature_plan, read_manifest, row_splitter
from mlvault.training.manifest import Manifest, ManifestEntry
from mlvault.training.params import TrainingParams

PREDICT_BATCH_ROWS = 65536
ENGINE = "lambda"
# the code that decides what a model is: hashed into every run's code digest
CODE_MODULES = (
    "mlvault.canonical",
    "mlvault.contracts.column_checks",
    "mlvault.contracts.schema",
    "mlvault.contracts.text_guard",
    "mlvault.contracts.validate",
    "mlvault.ingest.digest",
    "mlvault.drift",
    "mlvault.model_package",
    "mlvault.training.artifact",
    "mlvault.training.data",
    "mlvault.training.manifest",
    "mlvault.training.onnx_graph",
    "mlvault.training.onnx_scoring",
    "mlvault.training.params",
    "mlvault.training.trainer",
)


@dataclass(frozen=True)
class TrainingRun:
    """What every run records, whether its model is later promoted or not."""

    trainer: str  # the engine: "lambda"
    model_type: str
    model: str  # the model's name (model ids are <model>/<n>)
    dataset: str
    contract_version: str
    params: dict[str, Any]
    manifest_digest: str
    code_digest: str
    code_files: dict[str, str]
    metrics: dict[str, float | None]
    rows: dict[str, int]
    artifact_digest: str  # SHA-256 of the package tar
    artifact_bytes: int
    claims: dict[str, Any]  # what the training code says of itself (the descriptor's claims): never gates
    started_at: str
    finished_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True)
class TrainingResult:
    model: Model  # the trained regression, in memory
    descriptor: ModelDescriptor
    package: bytes  # the model package (mlvault.model_package.pack): model.onnx, descriptor.json, drift.json
    files: dict[str, str]  # each file's SHA-256 (the resources its signature will list)
    run: TrainingRun


@dataclass
class _TrainingSet:
    numeric: list[array]
    categorical: list[list[Any]]
    labels: list[str] = field(default_factory=list)
    heldout: int = 0


class LambdaTrainer:
    """Trains in the calling process (a Lambda function): pure Python, deterministic, bounded by `max_rows`."""

    name = ENGINE

    def __init__(self, s3: Any, *, clock: Callable[[], datetime] | None = None) -> None:
        self._s3 = s3
        self._clock = clock or (lambda: datetime.now(UTC))

    def train(
        self, manifest: Manifest, contract: Contract, params: TrainingParams | None = None, *, name: str = ""
    ) -> TrainingResult:
        """Train model `name` (default: the dataset's name) and emit its package."""
        params = params or TrainingParams()
        name = name or manifest.dataset
        started = self._clock()
        check_contract(manifest, contract)
        if manifest.rows > params.max_rows:
            raise TrainingError(
                TrainingReason.TOO_MANY_ROWS,
                f"the manifest has {manifest.rows} rows, the Lambda trainer takes at most {params.max_rows}: "
                "train with the sagemaker engine",
            )
        plan = feature_plan(contract, params)
        data = _TrainingSet(numeric=[array("d") for _ in plan.numeric], categorical=[[] for _ in plan.categorical])
        split = row_splitter(plan, params)

        def collect(entry: ManifestEntry, batch: Any) -> None:
            flags = split(entry, batch)
            data.heldout += sum(flags)
            keep = [not f for f in flags]
            for values, column in zip(data.numeric, plan.numeric, strict=True):
                values.extend(
                    math.nan if v is None else float(v)
                    for v, k in zip(batch.column(column).to_pylist(), keep, strict=True)
                    if k
                )
            for values, column in zip(data.categorical, plan.categorical, strict=True):
                values.extend(v for v, k in zip(batch.column(column).to_pylist(), keep, strict=True) if k)
            data.labels.extend(v for v, k in zip(batch.column(plan.label).to_pylist(), keep, strict=True) if k)

        read_manifest(self._s3, manifest, contract, collect)
        model, loss = _fit(plan, data, params, contract)
        descriptor, package, files, train_accuracy = _package(model, plan, data, name=name, loss=loss)
        code_digest, code_files = code_identity()
        run = TrainingRun(
            trainer=self.name,
            model_type=MODEL_TYPE,
            model=name,
            dataset=manifest.dataset,
            contract_version=manifest.contract_version,
            params=params.to_json(),
            manifest_digest=manifest.digest,
            code_digest=code_digest,
            code_files=code_files,
            metrics={"train_loss": loss, "train_accuracy": train_accuracy},
            rows={"train": len(data.labels), "heldout": data.heldout},
            artifact_digest=hashlib.sha256(package).hexdigest(),
            artifact_bytes=len(package),
            claims=dict(descriptor.claims),
            started_at=started.isoformat(timespec="milliseconds"),
            finished_at=self._clock().isoformat(timespec="milliseconds"),
        )
        return TrainingResult(model=model, descriptor=descriptor, package=package, files=files, run=run)


def _package(
    model: Model, plan: FeaturePlan, data: _TrainingSet, *, name: str, loss: float
) -> tuple[ModelDescriptor, bytes, dict[str, str], float]:
    """The model's package: its ONNX graph, its descriptor (the training loss and accuracy as claims), and the
    drift reference of the training rows with the ONNX model's predictions on them."""
    import numpy as np

    from mlvault.training.onnx_graph import descriptor as describe
    from mlvault.training.onnx_graph import to_onnx
    from mlvault.training.onnx_scoring import OnnxScorer

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "package"
        folder.mkdir()
        (folder / MODEL_FILE).write_bytes(to_onnx(model))
        onnx_model = OnnxScorer.load(folder / MODEL_FILE, describe(model, name=name))
        names = {i.column: i.name for i in onnx_model.descriptor.inputs}
        numeric = {c: np.frombuffer(v, dtype=np.float64) for c, v in zip(plan.numeric, data.numeric, strict=True)}
        categorical = dict(zip(plan.categorical, data.categorical, strict=True))
        predictions: list[str] = []
        rows = len(data.labels)
        for start in range(0, rows, PREDICT_BATCH_ROWS):
            end = min(rows, start + PREDICT_BATCH_ROWS)
            feed = {names[c]: v[start:end].astype(np.float32).reshape(-1, 1) for c, v in numeric.items()}
            feed |= {
                names[c]: np.array(["" if x is None else x for x in v[start:end]], dtype=object).reshape(-1, 1)
                for c, v in categorical.items()
            }
            predictions.extend(onnx_model.labels(feed).tolist())
        accuracy = sum(map(str.__eq__, predictions, data.labels)) / rows
        descriptor = describe(model, name=name, claims={"train_accuracy": accuracy, "train_loss": loss})
        drift = build_reference(
            numeric=dict(zip(plan.numeric, data.numeric, strict=True)),
            categorical=categorical,
            classes=model.classes,
            predictions=predictions,
        )
        (folder / DESCRIPTOR_FILE).write_bytes(descriptor.to_bytes())
        (folder / DRIFT_FILE).write_bytes(canonical_json(drift.to_json()))
        files = file_digests({p.name: p for p in folder.iterdir()})
        return descriptor, pack(folder), dict(sorted(files.items())), accuracy


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
