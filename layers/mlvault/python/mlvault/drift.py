"""Drift: what serving sees, compared with what the model was trained on.

The trainer records a drift reference inside the model artifact (so the model's digest and signature cover it):
for each numeric feature, cut points at the training rows' deciles and the training count per bin; for each
categorical feature, the training count per value; and the count per class of the model's own predictions on the
training rows. Counts, not shares: shares are counts / rows, exactly, and the smoothing below is in counts.

Bins of a numeric feature: `bisect_right(cuts, value)` (a value equal to a cut goes above it), then one bin for
null, missing or not-a-number values. Bins of a categorical feature: one per training value (sorted), one for a
value training never saw, one for null or missing.

`DriftWindow` accumulates the bin counts of served rows and of their predictions (memory constant in rows: counts
only) and, each time it holds `window_rows` rows, takes a snapshot: the PSI of every feature and of the prediction
distribution against the reference, then starts over (a tumbling window, in the execution environment's memory).

PSI uses Laplace smoothing (half a count in every bin), the same `psi` as the poisoning screen
(mlvault.contracts.screen imports it from here). Two samples of one distribution show a PSI of about
(bins - 1) * (1/window_rows + 1/training_rows) by chance: with 12 bins, 200 served rows and 800 training rows,
about 0.07 per feature.

Pure Python (no pyarrow, no numpy): it runs in the serving function.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DRIFT_FORMAT = "mlvault.drift/v1"
DECILES = 10
SMOOTHING = 0.5  # counts added to every bin (Laplace): an empty bin stays finite


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two distributions over the same bins, from counts. Half a count is added
    to every bin (Laplace smoothing), so that a bin one small sample happens to leave empty stays finite."""
    e_total, a_total = sum(expected) + SMOOTHING * len(expected), sum(actual) + SMOOTHING * len(actual)
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        p, q = (e + SMOOTHING) / e_total, (a + SMOOTHING) / a_total
        total += (q - p) * math.log(q / p)
    return total


def expected_noise(bins: int, rows: float, reference_rows: float) -> float:
    """The PSI two samples of one distribution show by chance (its expectation, about (k - 1)(1/n + 1/m))."""
    return (bins - 1) * (1 / max(rows, 1) + 1 / max(reference_rows, 1))


def _number(value: Any) -> float | None:
    """A finite float, or None for a null, a missing value, NaN or anything that is not a number."""
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def cut_points(values: Iterable[float | None], bins: int = DECILES) -> tuple[float, ...]:
    """Cut points at the values' quantiles (deciles by default), deterministic: the value at rank floor(k*n/bins)
    of the sorted finite values, for k = 1..bins-1; ties merge bins, and a cut at the minimum is dropped (it
    would leave the first bin empty)."""
    present = sorted(v for v in map(_number, values) if v is not None)
    if not present:
        return ()
    n = len(present)
    return tuple(sorted({present[k * n // bins] for k in range(1, bins)} - {present[0]}))


@dataclass(frozen=True)
class NumericReference:
    name: str
    cuts: tuple[float, ...]
    counts: tuple[int, ...]  # len(cuts) + 1 value bins, then the null bin

    def bin(self, value: Any) -> int:
        number = _number(value)
        return len(self.cuts) + 1 if number is None else bisect_right(self.cuts, number)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "numeric", "cuts": list(self.cuts), "counts": list(self.counts)}


@dataclass(frozen=True)
class CategoricalReference:
    name: str
    values: tuple[str, ...]
    counts: tuple[int, ...]  # one bin per value, then "unseen in training", then the null bin

    def bin(self, value: Any) -> int:
        if value is None:
            return len(self.values) + 1
        try:
            return self.values.index(value)
        except ValueError:
            return len(self.values)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "categorical", "values": list(self.values), "counts": list(self.counts)}


FeatureReference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class DriftReference:
    """The training baseline a model carries (see the module docstring)."""

    rows: int
    features: tuple[FeatureReference, ...]
    classes: tuple[str, ...]
    predictions: tuple[int, ...]  # training rows predicted as each class

    def to_json(self) -> dict[str, Any]:
        return {
            "format": DRIFT_FORMAT,
            "rows": self.rows,
            "features": [f.to_json() for f in self.features],
            "predictions": {"classes": list(self.classes), "counts": list(self.predictions)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReference:
        """Parse and check a reference; ValueError when it is not one."""
        if not isinstance(data, Mapping) or data.get("format") != DRIFT_FORMAT:
            raise ValueError(f"drift reference: expected format {DRIFT_FORMAT}")
        rows = data["rows"]
        if not _count(rows):
            raise ValueError(f"drift reference: rows must be a non-negative integer, got {rows!r}")
        features: list[FeatureReference] = []
        for item in data["features"]:
            name, kind = item["name"], item["kind"]
            if not isinstance(name, str):
                raise ValueError(f"drift reference: feature name {name!r} is not a string")
            counts = _counts(item["counts"], rows, f"feature {name}")
            if kind == "numeric":
                cuts = tuple(item["cuts"])
                if not all(isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) for c in cuts):
                    raise ValueError(f"drift reference: feature {name}: cuts must be finite numbers")
                if any(a >= b for a, b in itertools.pairwise(cuts)):
                    raise ValueError(f"drift reference: feature {name}: cuts must increase")
                reference: FeatureReference = NumericReference(name, tuple(map(float, cuts)), counts)
                bins = len(cuts) + 2
            elif kind == "categorical":
                values = tuple(item["values"])
                if not all(isinstance(v, str) for v in values) or len(set(values)) != len(values):
                    raise ValueError(f"drift reference: feature {name}: values must be distinct strings")
                reference = CategoricalReference(name, values, counts)
                bins = len(values) + 2
            else:
                raise ValueError(f"drift reference: feature {name}: unknown kind {kind!r}")
            if len(counts) != bins:
                raise ValueError(f"drift reference: feature {name}: expected {bins} counts, got {len(counts)}")
            features.append(reference)
        if len({f.name for f in features}) != len(features):
            raise ValueError("drift reference: a feature is listed twice")
        classes = tuple(data["predictions"]["classes"])
        predictions = _counts(data["predictions"]["counts"], rows, "predictions")
        if not all(isinstance(c, str) for c in classes) or len(classes) != len(predictions):
            raise ValueError("drift reference: predictions need one count per class")
        return cls(rows=rows, features=tuple(features), classes=classes, predictions=predictions)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _counts(values: Any, rows: int, what: str) -> tuple[int, ...]:
    counts = tuple(values)
    if not all(map(_count, counts)) or sum(counts) != rows:
        raise ValueError(f"drift reference: {what}: counts must be non-negative integers summing to {rows}")
    return counts


def build_reference(
    *,
    numeric: Mapping[str, Sequence[float | None]],
    categorical: Mapping[str, Sequence[str | None]],
    classes: Sequence[str],
    predictions: Sequence[str],
    bins: int = DECILES,
) -> DriftReference:
    """The reference of training rows: columns of feature values (None or NaN: null), in the order the model
    lists its features, and the model's prediction for each training row."""
    rows = len(predictions)
    features: list[FeatureReference] = []
    for name, values in numeric.items():
        _same_length(name, values, rows)
        empty = NumericReference(name, cut_points(values, bins), ())
        features.append(NumericReference(name, empty.cuts, _histogram(map(empty.bin, values), len(empty.cuts) + 2)))
    for name, values in categorical.items():
        _same_length(name, values, rows)
        empty = CategoricalReference(name, tuple(sorted({v for v in values if v is not None})), ())
        features.append(
            CategoricalReference(name, empty.values, _histogram(map(empty.bin, values), len(empty.values) + 2))
        )
    index = {c: i for i, c in enumerate(classes)}
    return DriftReference(
        rows=rows,
        features=tuple(features),
        classes=tuple(classes),
        predictions=_histogram((index[p] for p in predictions), len(classes)),
    )


def _same_length(name: str, values: Sequence[Any], rows: int) -> None:
    if len(values) != rows:
        raise ValueError(f"feature {name}: {len(values)} values for {rows} predictions")


def _histogram(indices: Iterable[int], bins: int) -> tuple[int, ...]:
    counts = [0] * bins
    for i in indices:
        counts[i] += 1
    return tuple(counts)


@dataclass(frozen=True)
class DriftSnapshot:
    """The drift of one full window: PSI per feature (in the reference's order) and of the predictions."""

    rows: int
    features: dict[str, float]
    prediction: float

    @property
    def max_feature(self) -> tuple[str, float]:
        """The feature that drifted most, and its PSI (the first listed wins a tie); ("", 0.0) without features."""
        return max(self.features.items(), key=lambda item: item[1], default=("", 0.0))


class DriftWindow:
    """Served rows and their predictions, counted per reference bin, `window_rows` at a time (module docstring)."""

    def __init__(self, reference: DriftReference, window_rows: int) -> None:
        if not (isinstance(window_rows, int) and window_rows >= 1):
            raise ValueError(f"window_rows must be a positive integer, got {window_rows!r}")
        self.reference = reference
        self.window_rows = window_rows
        self._classes = {c: i for i, c in enumerate(reference.classes)}
        self._reset()

    def _reset(self) -> None:
        self.rows = 0
        self._features = [[0] * len(f.counts) for f in self.reference.features]
        self._predictions = [0] * len(self.reference.classes)

    @property
    def due(self) -> bool:
        return self.rows >= self.window_rows

    def add(self, row: Mapping[str, Any], prediction: str) -> DriftSnapshot | None:
        """Count one served row (a missing feature counts as null) and its prediction; the snapshot when this row
        fills the window, else None."""
        try:
            predicted = self._classes[prediction]
        except KeyError:
            raise ValueError(f"prediction {prediction!r} is not a class of the reference") from None
        for counts, feature in zip(self._features, self.reference.features, strict=True):
            counts[feature.bin(row.get(feature.name))] += 1
        self._predictions[predicted] += 1
        self.rows += 1
        return self.snapshot() if self.due else None

    def extend(self, rows: Iterable[Mapping[str, Any]], predictions: Iterable[str]) -> list[DriftSnapshot]:
        """Count served rows with their predictions; the snapshots of every window they filled (often none)."""
        snapshots = []
        for row, prediction in zip(rows, predictions, strict=True):
            snapshot = self.add(row, prediction)
            if snapshot is not None:
                snapshots.append(snapshot)
        return snapshots

    def snapshot(self) -> DriftSnapshot:
        """PSI of what the window holds against the reference; the window starts over."""
        if self.rows == 0:
            raise ValueError("the drift window holds no rows")
        reference = self.reference
        snapshot = DriftSnapshot(
            rows=self.rows,
            features={
                f.name: psi(list(f.counts), counts)
                for f, counts in zip(reference.features, self._features, strict=True)
            },
            prediction=psi(list(reference.predictions), self._predictions),
        )
        self._reset()
        return snapshot
