"""The built-in model in memory: a softmax regression (`Model`: features, weights, bias) and its prediction in pure
Python. The built-in trainer emits it as a model package (mlvault.training.onnx_graph builds its ONNX graph;
mlvault.model_package), which is what is registered, signed and served.

`Model.to_bytes` / `load_model` are the single-file JSON form models had before packages (`mlvault.model/v1`,
with the drift reference inside): no longer registered; registry records of that form are refused wherever a model
is attested (MODEL_FORMAT_UNSUPPORTED, docs/models.md). Floats are written with `repr`, which round-trips
exactly. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import mul
from typing import Any

from mlvault.canonical import canonical_json
from mlvault.drift import DriftReference

MODEL_FORMAT = "mlvault.model/v1"
MODEL_TYPE = "softmax-regression"

Row = Mapping[str, Any]


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
