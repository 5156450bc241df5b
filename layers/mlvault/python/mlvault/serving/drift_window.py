"""The serving function's drift window, counted a request at a time with numpy.

The same window as `mlvault.drift.DriftWindow` (the same bins, the same tumbling windows of `window_rows` rows, the
same PSI and snapshots: a test holds them equal), for the columns a request was already converted into
(mlvault.serving.onnx_model): numeric features are binned with `searchsorted` over the input's float64 array (NaN,
i.e. null, in the null bin: the cuts end with a NaN, which numpy sorts after every number), categorical ones by a
dictionary of the training values over the request's validated values of the column, or else the raw row values
(null or missing in the null bin, a value training never saw in its own bin). A request that fills a window mid-way
counts its first rows in that window and the rest in the next.

Every feature's bins and the classes are laid end to end in one vector of counts (each feature's bin numbers
offset by where its bins start), so that a request's rows are counted by one `bincount` per window they fall in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from mlvault.drift import CategoricalReference, DriftReference, DriftSnapshot, psi


class ColumnDriftWindow:
    def __init__(self, reference: DriftReference, window_rows: int) -> None:
        if not (isinstance(window_rows, int) and window_rows >= 1):
            raise ValueError(f"window_rows must be a positive integer, got {window_rows!r}")
        self.reference = reference
        self.window_rows = window_rows
        # each feature: name, value -> its bin (categorical; None: the null bin) or its cuts and a NaN (numeric), and
        # its bin "unseen in training" (categorical)
        self._features: list[tuple[str, Any, int]] = []
        self._spans: list[tuple[int, int]] = []  # each feature's bins in the counts: start, end
        start = 0
        for feature in reference.features:
            if isinstance(feature, CategoricalReference):
                bins = len(feature.values) + 2
                index: dict[str | None, int] = {value: i for i, value in enumerate(feature.values)}
                index[None] = bins - 1
                self._features.append((feature.name, index, bins - 2))
            else:
                bins = len(feature.cuts) + 2
                self._features.append((feature.name, np.append(np.asarray(feature.cuts, dtype=np.float64), np.nan), 0))
            self._spans.append((start, start + bins))
            start += bins
        self._classes = {c: i for i, c in enumerate(reference.classes)}
        self._predicted = start  # the classes' counts start here
        self._size = start + len(reference.classes)
        self._offsets = np.array([[s] for s, _ in self._spans] + [[start]], dtype=np.int64)  # each row's first bin
        self._names = [f.name for f in reference.features]
        self._expected = [list(f.counts) for f in reference.features]  # the reference's counts, as psi takes them
        self._expected_predictions = list(reference.predictions)
        self._reset()

    def _reset(self) -> None:
        self.rows = 0
        self._counts = np.zeros(self._size, dtype=np.int64)

    def extend(
        self,
        rows: Sequence[Mapping[str, Any]],
        arrays: Mapping[str, np.ndarray],
        predictions: Sequence[str],
        values: Mapping[str, Sequence[Any]] | None = None,
    ) -> list[DriftSnapshot]:
        """Count a request's rows (their input arrays, by column, and optionally their validated values by column,
        which categorical features read instead of the rows) and predictions; the snapshots of every window they
        filled (often none)."""
        n = len(rows)
        if n == 0:
            return []
        binned = np.empty((len(self._features) + 1, n), dtype=np.int64)  # bin numbers: a row per feature, classes
        try:
            binned[-1] = np.fromiter(map(self._classes.__getitem__, predictions), dtype=np.int64, count=n)
        except KeyError as err:
            raise ValueError(f"prediction {err.args[0]!r} is not a class of the reference") from None
        values = values or {}
        for (name, how, unseen), out in zip(self._features, binned, strict=False):
            if isinstance(how, dict):
                column = values.get(name)
                if column is None:  # not given by column: as the rows hold it (missing: null)
                    column = [row.get(name) for row in rows]
                out[:] = np.fromiter(map(how.get, column, repeat(unseen)), dtype=np.int64, count=n)
                continue
            numbers = arrays.get(name)
            if numbers is None or numbers.dtype.kind not in "fiub":  # not an input column: as the rows hold it
                numbers = np.array([row.get(name) for row in rows], dtype=np.float64)
            out[:] = how.searchsorted(numbers.astype(np.float64, copy=False), "right")
        binned += self._offsets
        snapshots = []
        start = 0
        while start < n:
            end = min(n, start + self.window_rows - self.rows)
            part = binned if start == 0 and end == n else binned[:, start:end]
            self._counts += np.bincount(part.ravel(), minlength=self._size)
            self.rows += end - start
            start = end
            if self.rows >= self.window_rows:
                snapshots.append(self.snapshot())
        return snapshots

    def snapshot(self) -> DriftSnapshot:
        """PSI of what the window holds against the reference (mlvault.drift.psi); the window starts over."""
        if self.rows == 0:
            raise ValueError("the drift window holds no rows")
        counts = self._counts.tolist()
        snapshot = DriftSnapshot(
            rows=self.rows,
            features={
                name: psi(expected, counts[start:end])
                for name, expected, (start, end) in zip(self._names, self._expected, self._spans, strict=True)
            },
            prediction=psi(self._expected_predictions, counts[self._predicted :]),
        )
        self._reset()
        return snapshot
