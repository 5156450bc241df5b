"""The default trainer: a small, deterministic model trained inside a Lambda function from a manifest.

Reading (GUIDE.md section 3): each manifest entry is read from S3 *by its version id*, streamed once through a
SHA-256 that is compared with the manifest's digest when the object ends (a mismatch raises DigestMismatch naming
the object, and nothing trained so far is kept); the bytes are parsed with pyarrow by the dataset's contract
through `mlvault.contracts.validate.validate_stream`, so the contract's checks run again on the way (no parsing of
our own, no type inference). Reading stops at the size the ledger recorded: an object that grew is refused.

Model: multinomial logistic regression (softmax), full-batch gradient descent for a fixed number of epochs with
L2 regularization, weights initialized from `random.Random(seed)`. Features, from the contract: every numeric
(and bool) column except the label and the row key, standardized with the training split's mean and population
standard deviation (a null becomes the mean); every non-nullable string column except the label and the key,
one-hot over the categories seen in training (an unseen category is all zeros). Protected attributes are
features unless `protected_as_features=False`: leaving them out does not make a model fair (proxies remain), the
gates measure outcomes either way (mlvault.training.gates).

Split: a row is held out when the SHA-256 of (seed, its key) falls below `heldout_fraction`; the key is the
contract's first unique column, or (without one) the object's digest and the row's position. The split does not
depend on the order of files or rows, and `read_split` re-derives the held-out rows from the manifest alone.

Drift reference: the artifact carries the training baseline serving compares traffic with (`drift`,
mlvault.drift): decile cut points and counts per numeric feature, counts per value of each categorical
feature, and the count per class of the model's predictions on the training rows; inside the artifact, so the
model's digest and signature cover it. Artifacts without one still load (serving then emits no drift metrics).

Pure Python and deterministic: the same manifest, contract, parameters and code give the same artifact bytes
(floats are written with `repr`, which round-trips exactly). The training set is held in memory (8 bytes per
feature value, in arrays): `max_rows` bounds it before anything is read; beyond it, use a SageMaker trainer
(see `Trainer`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import random
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from operator import add, mul, sub, truediv
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from mlvault.contracts.schema import NUMERIC, Contract
from mlvault.drift import DriftReference, build_reference
from mlvault.errors import TrainingError, TrainingReason, VerificationError
from mlvault.ingest.digest import CHUNK
from mlvault.training.manifest import Manifest, ManifestEntry, canonical_json

MODEL_FORMAT = "mlvault.model/v1"
MODEL_TYPE = "softmax-regression"
# the code that decides what a model is: hashed into every run's code digest
CODE_MODULES = (
    "mlvault.contracts.schema",
    "mlvault.contracts.validate",
    "mlvault.ingest.digest",
    "mlvault.drift",
    "mlvault.training.manifest",
    "mlvault.training.trainer",
)

Row = Mapping[str, Any]


class TrainingDataError(TrainingError):
    """A manifest entry cannot be trusted or read; `uri` names the object version."""

    def __init__(self, reason: str, entry: ManifestEntry, detail: str) -> None:
        super().__init__(reason, f"{entry.uri}: {detail}")
        self.uri = entry.uri
        self.entry = entry


class DigestMismatch(TrainingDataError):
    def __init__(self, entry: ManifestEntry, got: str) -> None:
        super().__init__(TrainingReason.DIGEST_MISMATCH, entry, f"expected sha256 {entry.sha256}, got {got}")
        self.expected = entry.sha256
        self.got = got


@dataclass(frozen=True)
class TrainingParams:
    seed: int = 0
    epochs: int = 200
    learning_rate: float = 0.5
    l2: float = 1e-4
    heldout_fraction: float = 0.2
    protected_as_features: bool = True
    max_rows: int = 500_000  # the training set is held in memory: bounded before reading

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if not (self.l2 >= 0 and math.isfinite(self.l2)):
            raise ValueError(f"l2 must be a non-negative number, got {self.l2!r}")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}")
        if not (isinstance(self.max_rows, int) and self.max_rows >= 1):
            raise ValueError(f"max_rows must be a positive integer, got {self.max_rows!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- the model artifact -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    """One input of the model: a standardized numeric column, or one category of a string column (one-hot)."""

    name: str
    kind: str  # "numeric" | "category"
    mean: float = 0.0
    scale: float = 1.0
    value: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == "numeric":
            return {"name": self.name, "kind": self.kind, "mean": self.mean, "scale": self.scale}
        return {"name": self.name, "kind": self.kind, "value": self.value}


@dataclass(frozen=True)
class Model:
    """A trained softmax regression. `to_bytes()` is the artifact (canonical JSON); `digest` its SHA-256."""

    dataset: str
    contract_version: str
    label: str
    classes: tuple[str, ...]
    features: tuple[Feature, ...]
    weights: tuple[tuple[float, ...], ...]  # one row per class, one weight per feature
    bias: tuple[float, ...]
    training: dict[str, Any] = field(default_factory=dict)  # params, manifest and code digests
    drift: DriftReference | None = None  # the training baseline of drift metrics (absent in older artifacts)

    def to_json(self) -> dict[str, Any]:
        data = {
            "format": MODEL_FORMAT,
            "type": MODEL_TYPE,
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "label": self.label,
            "classes": list(self.classes),
            "features": [f.to_json() for f in self.features],
            "weights": [list(w) for w in self.weights],
            "bias": list(self.bias),
            "training": self.training,
        }
        if self.drift is not None:  # absent, not null: artifacts without one keep their bytes
            data["drift"] = self.drift.to_json()
        return data

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def manifest_digest(self) -> str | None:
        return self.training.get("manifest_digest")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Model:
        if data.get("format") != MODEL_FORMAT or data.get("type") != MODEL_TYPE:
            raise ValueError(f"expected a {MODEL_FORMAT} {MODEL_TYPE}, got {data.get('format')!r} {data.get('type')!r}")
        features = tuple(
            Feature(f["name"], "numeric", mean=f["mean"], scale=f["scale"])
            if f["kind"] == "numeric"
            else Feature(f["name"], "category", value=f["value"])
            for f in data["features"]
        )
        weights = tuple(tuple(w) for w in data["weights"])
        classes = tuple(data["classes"])
        if len(weights) != len(classes) or any(len(w) != len(features) for w in weights):
            raise ValueError("weights do not match the classes and features")
        drift = None
        if "drift" in data:
            drift = DriftReference.from_json(data["drift"])
            unknown = {f.name for f in drift.features} - {f.name for f in features}
            if unknown:
                raise ValueError(f"the drift reference names features the model lacks: {sorted(unknown)}")
            if drift.classes != classes:
                raise ValueError("the drift reference's classes are not the model's")
        return cls(
            dataset=data["dataset"],
            contract_version=data["contract_version"],
            label=data["label"],
            classes=classes,
            features=features,
            weights=weights,
            bias=tuple(data["bias"]),
            training=dict(data["training"]),
            drift=drift,
        )


def load_model(data: bytes, *, digest: str) -> Model:
    """A model artifact from its bytes, verified against the digest it was registered with."""
    import json

    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        raise ValueError(f"model artifact: expected sha256 {digest}, got {got}")
    return Model.from_json(json.loads(data))


def _vector(model: Model, row: Row) -> list[float]:
    x = []
    for feature in model.features:
        try:
            value = row[feature.name]
        except KeyError:
            raise ValueError(f"row lacks feature column {feature.name!r}") from None
        if feature.kind == "numeric":
            x.append(0.0 if value is None else (float(value) - feature.mean) / feature.scale)
        else:
            x.append(1.0 if value == feature.value else 0.0)
    return x


def scores(model: Model, row: Row) -> list[float]:
    """The class logits of one row (same order as `model.classes`)."""
    x = _vector(model, row)
    return [b + sum(map(mul, w, x)) for w, b in zip(model.weights, model.bias, strict=True)]


def predict(model: Model, rows: Iterable[Row]) -> list[str]:
    """The predicted class of each row (a tie goes to the class that sorts first)."""
    classes = model.classes
    predictions = []
    for row in rows:
        logits = scores(model, row)
        predictions.append(classes[logits.index(max(logits))])
    return predictions


def accuracy(model: Model, rows: list[Row]) -> float:
    if not rows:
        return float("nan")
    hits = sum(p == row[model.label] for p, row in zip(predict(model, rows), rows, strict=True))
    return hits / len(rows)


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


# --- reading ------------------------------------------------------------------------------------------------


class _HashingReader:
    """A read-only stream that hashes what it yields and never yields more than `limit` + 1 bytes."""

    def __init__(self, body: BinaryIO, limit: int) -> None:
        self._body = body
        self._limit = limit
        self._sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def read(self, size: int | None = -1) -> bytes:
        room = self._limit + 1 - self.size
        if room <= 0:
            return b""
        wanted = CHUNK if size is None or size < 0 else size
        block = self._body.read(min(wanted, room))
        self._sha.update(block)
        self.size += len(block)
        return block

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def check(self, entry: ManifestEntry) -> None:
        if self.size > entry.size:
            raise TrainingDataError(
                TrainingReason.SIZE_MISMATCH, entry, f"more than the {entry.size} bytes the ledger recorded"
            )
        got = self._sha.hexdigest()
        if got != entry.sha256:
            raise DigestMismatch(entry, got)


def read_manifest(
    s3: Any, manifest: Manifest, contract: Contract, on_batch: Callable[[ManifestEntry, Any], None]
) -> None:
    """Stream every entry of the manifest by version id, verified: `on_batch(entry, record_batch)` sees each batch;
    an entry's SHA-256, size and row count are checked when it ends (an error names the object version)."""
    _check_contract(manifest, contract)
    if contract.format not in ("csv", "jsonl"):
        raise TrainingError(
            TrainingReason.UNSUPPORTED, f"the Lambda trainer streams csv and jsonl, not {contract.format}"
        )
    from mlvault.contracts.validate import validate_stream  # pyarrow: only where data is read

    for entry in manifest.entries:
        response = s3.get_object(Bucket=entry.lake_bucket, Key=entry.lake_key, VersionId=entry.lake_version)
        body = response["Body"]
        try:
            if response.get("VersionId") != entry.lake_version:
                raise TrainingDataError(
                    TrainingReason.VERSION_MISMATCH, entry, f"S3 returned version {response.get('VersionId')!r}"
                )
            reader = _HashingReader(body, entry.size)
            try:
                report = validate_stream(reader, contract, size=entry.size, observe=lambda b, e=entry: on_batch(e, b))
            except VerificationError as err:
                reader.drain()
                reader.check(entry)  # other bytes than the accepted ones: say that first
                raise TrainingDataError(TrainingReason.CONTRACT_VIOLATION, entry, str(err)) from err
            reader.drain()
            reader.check(entry)
        finally:
            body.close()
        if report.rows != entry.rows:
            raise TrainingDataError(
                TrainingReason.ROW_COUNT_MISMATCH, entry, f"the ledger recorded {entry.rows} rows, read {report.rows}"
            )


def _check_contract(manifest: Manifest, contract: Contract) -> None:
    if (manifest.dataset, manifest.contract_version) != (contract.dataset, contract.version):
        raise TrainingError(
            TrainingReason.CONTRACT_MISMATCH,
            f"the manifest is for {manifest.dataset} v{manifest.contract_version}, "
            f"the contract is {contract.dataset} v{contract.version}",
        )
    if not contract.label:
        raise TrainingError(TrainingReason.UNSUPPORTED, f"contract {contract.dataset} declares no label column")


@dataclass(frozen=True)
class FeaturePlan:
    label: str
    key: str | None
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]


def feature_plan(contract: Contract, params: TrainingParams) -> FeaturePlan:
    """Which contract columns feed the model (see the module docstring)."""
    label = contract.label
    key = next((c.name for c in contract.columns if c.unique), None)
    skipped = {label, key} | (set() if params.protected_as_features else set(contract.protected_attributes))
    numeric = tuple(c.name for c in contract.columns if c.name not in skipped and c.type in (*NUMERIC, "bool"))
    categorical = tuple(
        c.name for c in contract.columns if c.name not in skipped and c.type == "string" and not c.nullable
    )
    if not numeric and not categorical:
        raise TrainingError(TrainingReason.UNSUPPORTED, f"contract {contract.dataset} leaves no feature column")
    return FeaturePlan(label=label, key=key, numeric=numeric, categorical=categorical)


def _splitter(plan: FeaturePlan, params: TrainingParams) -> Callable[[ManifestEntry, Any], list[bool]]:
    """Per batch, which rows are held out (a pure function of the seed and each row's key)."""
    threshold = int(params.heldout_fraction * 2**64)
    prefix = f"mlvault-split\x1f{params.seed}\x1f".encode()
    offsets: dict[str, int] = {}

    def heldout(entry: ManifestEntry, batch: Any) -> list[bool]:
        if plan.key is not None:
            keys = [repr(k).encode() for k in batch.column(plan.key).to_pylist()]
        else:
            start = offsets.get(entry.sha256, 0)
            keys = [f"{entry.sha256}:{start + i}".encode() for i in range(batch.num_rows)]
            offsets[entry.sha256] = start + batch.num_rows
        return [int.from_bytes(hashlib.sha256(prefix + k).digest()[:8], "big") < threshold for k in keys]

    return heldout


def read_split(
    s3: Any, manifest: Manifest, contract: Contract, params: TrainingParams, *, part: str = "heldout"
) -> list[dict[str, Any]]:
    """The rows of one part of the split ("heldout" or "train"), read and verified from the manifest."""
    if part not in ("heldout", "train"):
        raise ValueError(f"part must be heldout or train, got {part!r}")
    split = _splitter(feature_plan(contract, params), params)
    rows: list[dict[str, Any]] = []

    def keep(entry: ManifestEntry, batch: Any) -> None:
        flags = split(entry, batch)
        if any(f == (part == "heldout") for f in flags):
            rows.extend(r for r, f in zip(batch.to_pylist(), flags, strict=True) if f == (part == "heldout"))

    read_manifest(s3, manifest, contract, keep)
    return rows


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
        _check_contract(manifest, contract)
        if manifest.rows > params.max_rows:
            raise TrainingError(
                TrainingReason.TOO_MANY_ROWS,
                f"the manifest has {manifest.rows} rows, the Lambda trainer takes at most {params.max_rows}: "
                "train with a SageMaker trainer",
            )
        plan = feature_plan(contract, params)
        data = _TrainingSet(numeric=[array("d") for _ in plan.numeric], categorical=[[] for _ in plan.categorical])
        split = _splitter(plan, params)

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
