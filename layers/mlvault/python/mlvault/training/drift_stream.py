"""The drift reference of a model of any size, streamed: what mlvault.drift.build_reference computes from columns
in memory, computed here in two passes over record batches of the training split (numpy, memory flat in rows).

Features are the descriptor's input columns (named by column, as drift.json and serving's drift windows name
them): numeric for `float`, `int64` and `bool` inputs, categorical for `string` inputs.

- Pass 1 (numeric columns only): a systematic sample of at most SAMPLE_ROWS rows (every k-th row, k from the
  split's known row count) gives each numeric feature's cut points (mlvault.drift.cut_points, deciles); below
  SAMPLE_ROWS training rows the sample is every row and the cuts are exactly build_reference's.
- Pass 2: every row is counted into its bin (`bisect_right` of the cuts, as NumericReference.bin does; null, NaN
  and infinities in the null bin), every categorical value counted, and the ONNX model's prediction of every row
  counted per class (onnxruntime, one batch at a time).

A categorical feature keeps its MAX_CATEGORIES most frequent values (ties by value); rarer values are counted in
the reference's "unseen in training" bin, so drift.json stays bounded whatever the column holds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from mlvault.drift import CategoricalReference, DriftReference, NumericReference, cut_points
from mlvault.model_package import ModelDescriptor
from mlvault.training.data import as_strings

SAMPLE_ROWS = 200_000
MAX_CATEGORIES = 1000


def _numeric(column: Any) -> np.ndarray:
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def stream_reference(
    batches: Callable[[list[str]], Iterable[Any]],
    descriptor: ModelDescriptor,
    predict: Callable[[Any], np.ndarray],
    *,
    rows: int,
    sample_rows: int = SAMPLE_ROWS,
) -> DriftReference:
    """The reference (module docstring). `batches(columns)` iterates the training split's record batches with
    those columns (it is called twice); `predict(batch)` gives one class per row; `rows` is the split's row count
    (for the sampling stride)."""
    numeric = [i.column for i in descriptor.inputs if i.type != "string"]
    categorical = [i.column for i in descriptor.inputs if i.type == "string"]
    columns = list(dict.fromkeys(i.column for i in descriptor.inputs))
    stride = max(1, math.ceil(rows / sample_rows))
    samples: dict[str, list[np.ndarray]] = {c: [] for c in numeric}
    seen = 0
    if numeric:
        for batch in batches(numeric):
            index = np.arange(seen, seen + batch.num_rows)
            keep = index % stride == 0
            for name in numeric:
                samples[name].append(_numeric(batch.column(name))[keep])
            seen += batch.num_rows
    cuts = {
        name: cut_points(
            (None if not math.isfinite(v) else float(v)) for v in np.concatenate(samples[name] or [np.empty(0)])
        )
        for name in numeric
    }
    del samples
    numeric_counts = {name: np.zeros(len(cuts[name]) + 2, dtype=np.int64) for name in numeric}
    values: dict[str, Counter] = {name: Counter() for name in categorical}
    nulls = dict.fromkeys(categorical, 0)
    classes = {c: i for i, c in enumerate(descriptor.classes)}
    predictions = np.zeros(len(classes), dtype=np.int64)
    counted = 0
    for batch in batches(columns):
        counted += batch.num_rows
        for name in numeric:
            data = _numeric(batch.column(name))
            edges = np.asarray(cuts[name], dtype=np.float64)
            bins = np.searchsorted(edges, data, side="right")
            bins[~np.isfinite(data)] = len(edges) + 1
            numeric_counts[name] += np.bincount(bins, minlength=len(edges) + 2)
        for name in categorical:
            column = as_strings(batch.column(name))
            nulls[name] += column.null_count
            for item in column.value_counts().to_pylist():
                if item["values"] is not None:
                    values[name][item["values"]] += item["counts"]
        labels, counts = np.unique(np.asarray(predict(batch), dtype=object), return_counts=True)
        for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
            predictions[classes[label]] += count
    features: list[Any] = []
    for item in descriptor.inputs:
        name = item.column
        if name in numeric_counts:
            features.append(NumericReference(name, cuts[name], tuple(int(c) for c in numeric_counts[name])))
        else:
            kept = sorted(values[name].items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CATEGORIES]
            kept_values = tuple(sorted(v for v, _ in kept))
            unseen = sum(values[name].values()) - sum(n for _, n in kept)
            counts = (*(values[name][v] for v in kept_values), unseen, nulls[name])
            features.append(CategoricalReference(name, kept_values, counts))
    return DriftReference(
        rows=counted,
        features=tuple(features),
        classes=tuple(descriptor.classes),
        predictions=tuple(int(c) for c in predictions),
    )
