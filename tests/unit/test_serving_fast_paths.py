"""The serving function's per-request fast paths are their reference definitions, only quicker: the served model's
columnar validation (OnnxModel.predict_rows) answers exactly as request_schema's value-by-value walk (the same
first offending value, code, field and message; the same arrays once valid), and the EMF documents the serve
handler prints from a template (observability.EmfDocument) are byte for byte what Powertools' flush_metrics
prints."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import sys
import time

import numpy as np
import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_METRICS

from mlvault.config import DriftSettings
from mlvault.errors import InvalidRequest
from mlvault.model_package import ModelDescriptor, ModelInput
from mlvault.observability import EmfDocument, metrics, print_emf
from mlvault.serving.onnx_model import OnnxModel, _converted
from mlvault.serving.request_schema import MAX_ROWS, check_rows, first_error

COLUMNS = (("f", "float"), ("i", "int64"), ("s", "string"), ("b", "bool"), ("g", "float"))
GOOD = {
    "float": [None, 0.5, 2, True, -3.25, 1e10, 0],
    "int64": [0, 5, -9, True, False, 2**40],
    "string": ["p", "q", None, ""],
    "bool": [True, False],
}
FLOAT_MAX = sys.float_info.max


class _Int(int):
    pass


ODD = [
    *(None, True, False, 0, -7, 2**62, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**400),
    *(int(FLOAT_MAX), int(FLOAT_MAX) + 1, -int(FLOAT_MAX) - 1, 0.0, -0.0, 1.5, 3.0, 1e308, FLOAT_MAX, -FLOAT_MAX),
    *(float("inf"), float("-inf"), float("nan"), "x", "", "1", [], {}, [1], _Int(3), b"x", 1j),
]


class _Session:
    """Answers class "a" for every row (what the model predicts is not the point here)."""

    def run(self, fetch, feeds):
        return [np.array(["a"] * len(next(iter(feeds.values()))), dtype=object)]


DESCRIPTOR = ModelDescriptor(
    model="m",
    dataset="d",
    contract_version="1",
    label="y",
    classes=("a", "b"),
    inputs=tuple(ModelInput(column, column, kind) for column, kind in COLUMNS),
    label_output="label",
)
MODEL = OnnxModel(_Session(), DESCRIPTOR, None)


def _rows(rng: random.Random) -> list[dict]:
    rows = [{c: rng.choice(GOOD[k]) for c, k in COLUMNS} for _ in range(rng.choice([1, 2, 3, 10, 40]))]
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        row, (column, _) = rng.choice(rows), rng.choice(COLUMNS)
        if rng.random() < 0.1:
            row.pop(column, None)
        else:
            row[column] = rng.choice(ODD)
    return rows


def _answer(call):
    try:
        return call()
    except InvalidRequest as err:
        return (str(err.reason), err.field, err.detail)


@pytest.mark.parametrize("seed", range(4))
def test_the_columnar_check_answers_as_the_walk(seed):
    rng = random.Random(seed)
    refused = 0
    for _ in range(1500):
        rows = _rows(rng)
        walked = _answer(lambda rows=rows: first_error(DESCRIPTOR.inputs, rows))
        checked = _answer(lambda rows=rows: check_rows(DESCRIPTOR.inputs, rows))
        served = _answer(lambda rows=rows: MODEL.predict_rows(rows))
        if walked is not None:
            refused += 1
            assert checked == served == walked
            continue
        for column, kind in COLUMNS:  # the arrays of the valid values, as the column check converts them
            want = _converted(kind, checked[column])
            got = served.arrays[column]
            assert (got.dtype, got.shape) == (want.dtype, want.shape)
            if kind == "string":
                assert list(got) == list(want)
            else:
                assert np.array_equal(got, want, equal_nan=kind == "float")
            assert list(served.values[column]) == checked[column]
    assert 0 < refused < 1500


@pytest.mark.parametrize("value", [int(FLOAT_MAX) + 1, -int(FLOAT_MAX) - 1])
def test_an_integer_just_beyond_the_largest_float_is_not_finite_however_the_column_is_checked(value):
    rows = [{"f": 1.0, "i": 1, "s": "p", "b": True, "g": value}]
    want = ("NOT_FINITE", "rows[0].g")
    assert _answer(lambda: MODEL.predict_rows(rows))[:2] == want
    assert _answer(lambda: check_rows(DESCRIPTOR.inputs, rows))[:2] == want


def test_the_largest_float_itself_is_served():
    rows = [{"f": FLOAT_MAX, "i": 1, "s": None, "b": False, "g": -FLOAT_MAX}]
    assert MODEL.predict_rows(rows).arrays["f"].tolist() == [FLOAT_MAX]


def _powertools(units, dimensions, sets, metadata, values, millis) -> str:
    batch = metrics()
    for (name, unit), listed in zip(units, values, strict=True):
        for value in listed:
            batch.add_metric(name=name, unit=unit, value=value)
    for name, value in dimensions.items():
        batch.add_dimension(name=name, value=value)
    for extra in sets:
        batch.add_dimensions(**extra)
    for key, value in metadata.items():
        batch.add_metadata(key=key, value=value)
    batch.set_timestamp(millis)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        batch.flush_metrics()
    return printed.getvalue()


@pytest.mark.parametrize(
    ("units", "values"),
    [
        ([("Predictions", "Count")], [[100]]),
        (
            [("Predictions", "Count"), ("MaxFeatureDrift", "None"), ("PredictionDrift", "None")],
            [[3], [0.25, 1e-9], [0.1, 7.0]],
        ),
        ([("FeatureDrift", "None")], [[0.1602544348376394, 1 / 3, 2.0, 1e300, float("inf")]]),
        ([("FeatureDrift", "None")], [[float(n) for n in range(MAX_METRICS - 1)]]),
    ],
)
def test_a_template_document_is_what_powertools_prints(units, values):
    dimensions = {"Stage": "dev", "ModelVersion": "7"}
    sets = [{"Stage": "dev", "Model": "credit", "ModelVersion": "7"}, {"Stage": "dev", "Model": "crédit"}]
    metadata = {"model_id": "credit/1", "model_digest": "ab" * 32}
    millis = int(time.time() * 1000) - 1000  # a second ago (CloudWatch takes the last 14 days)
    document = EmfDocument(units, dimensions, sets, metadata)
    want = _powertools(units, dimensions, sets, metadata, values, millis)
    assert document.line(values, millis) + "\n" == want
    assert json.loads(document.line(values))["_aws"]["Timestamp"] >= millis + 1000  # now, by default


def test_a_template_refuses_what_powertools_would_print_otherwise():
    document = EmfDocument([("FeatureDrift", "None")], {"Stage": "dev"})
    with pytest.raises(ValueError, match="1 to 99 values"):
        document.line([[0.0] * MAX_METRICS])  # Powertools flushes a batch early at 100 values
    with pytest.raises(ValueError, match="1 to 99 values"):
        document.line([[]])
    with pytest.raises(ValueError, match="lists of values"):
        document.line([[1.0], [2.0]])


def test_a_request_fills_fewer_windows_than_a_metric_holds_values():
    # the serve handler puts one value per window a request filled into one document
    assert math.ceil(MAX_ROWS / DriftSettings.MIN_WINDOW_ROWS) + 1 < MAX_METRICS


def test_template_documents_are_printed_only_when_metrics_are_enabled(monkeypatch, capsys):
    line = EmfDocument([("Predictions", "Count")], {"Stage": "dev"}).line([[1]])
    print_emf([line, line])
    assert capsys.readouterr().out == f"{line}\n{line}\n"
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    print_emf([line])
    assert capsys.readouterr().out == ""
