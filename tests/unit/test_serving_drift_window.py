"""The serving function's drift window (mlvault.serving.drift_window) counts a request at a time with numpy; it must
be the drift window of mlvault.drift exactly: the same bins (values on a cut, nulls, unseen categories), the same
tumbling windows across requests, the same snapshots."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mlvault.drift import DriftWindow, build_reference
from mlvault.serving.drift_window import ColumnDriftWindow

CLASSES = ("a", "b", "c")


def reference(rng: random.Random, rows: int = 400):
    return build_reference(
        numeric={
            "x": [rng.choice([None, rng.gauss(0, 1)]) for _ in range(rows)],
            "n": [float(rng.randint(0, 5)) for _ in range(rows)],  # ties: merged cuts, values on the cuts
        },
        categorical={"s": [rng.choice(["p", "q", "r", None]) for _ in range(rows)]},
        classes=CLASSES,
        predictions=[rng.choice(CLASSES) for _ in range(rows)],
    )


def request(rng: random.Random, size: int) -> tuple[list[dict], dict[str, np.ndarray], list[str]]:
    rows = [
        {
            "x": rng.choice([None, rng.gauss(0.5, 1.5)]),
            "n": rng.randint(-1, 7),
            "s": rng.choice(["p", "q", "unseen", None]),
        }
        for _ in range(size)
    ]
    arrays = {  # as onnx_model converts validated columns: float inputs as float64, NaN for null
        "x": np.array([r["x"] for r in rows], dtype=np.float64),
        "n": np.array([r["n"] for r in rows], dtype=np.int64),  # an int64 input
        "s": np.array(["" if r["s"] is None else r["s"] for r in rows], dtype=object),
    }
    return rows, arrays, [rng.choice(CLASSES) for _ in range(size)]


@pytest.mark.parametrize("seed", range(8))
def test_the_same_snapshots_as_mlvault_drift(seed):
    rng = random.Random(seed)
    ref = reference(rng)
    window_rows = rng.choice([20, 37, 200])
    plain, columns = DriftWindow(ref, window_rows), ColumnDriftWindow(ref, window_rows)
    for _ in range(12):
        rows, arrays, predictions = request(rng, rng.choice([0, 1, 19, 100, 250]))
        assert columns.extend(rows, arrays, predictions) == plain.extend(rows, predictions)
        assert columns.rows == plain.rows


def test_a_feature_that_is_not_an_input_is_read_from_the_rows():
    rng = random.Random(3)
    ref = reference(rng)
    rows, arrays, predictions = request(rng, 50)
    del arrays["x"]
    assert ColumnDriftWindow(ref, 50).extend(rows, arrays, predictions) == DriftWindow(ref, 50).extend(
        rows, predictions
    )


def test_a_prediction_outside_the_classes_is_refused():
    ref = reference(random.Random(1))
    with pytest.raises(ValueError, match="not a class"):
        ColumnDriftWindow(ref, 20).extend([{}], {}, ["z"])
    with pytest.raises(ValueError, match="window_rows"):
        ColumnDriftWindow(ref, 0)
