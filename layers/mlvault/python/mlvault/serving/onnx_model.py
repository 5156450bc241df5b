"""The served model: a verified model package (mlvault.model_package) run by onnxruntime.

One `InferenceSession` per execution environment (the loader keeps the `OnnxModel`), CPU provider, one intra-op
and one inter-op thread (a Lambda function has one or two vCPUs; threads would only contend), built from the bytes
the attestation verified (never from a path: the file cannot change between verification and parsing).

Inputs: one ONNX input per descriptor input, shape [N, 1], fed from the request's rows by column, each value
validated first by request_schema's rules (`OnnxModel.predict_rows`: a column is checked and converted at once with
numpy, and only a column that may hold an invalid value is walked value by value, by
`mlvault.serving.request_schema.first_error`, which names the first offending value as `check_rows` does):

    float   float32; null -> NaN (the model decides what a missing value means: the built-in graph imputes the
            training mean, scikit-learn's imputers and histogram GBMs take NaN as missing); true/false -> 1/0
    int64   int64 (null is refused before: NULL_NOT_ALLOWED); true/false -> 1/0
    string  string; null -> "" (a value no category matches)
    bool    bool (null is refused before)

Output: the descriptor's label output only (string or int64 values, [N] or [N, 1]), each read as a string that
must be one of the descriptor's classes; anything else is the model failing (ServingFailed, MODEL_OUTPUT_INVALID: a
function error, counted in Errors, never a client error). The probabilities output is not computed for serving.

`load` checks that the graph fits the descriptor (as the pipeline's collect and evaluate steps check it:
mlvault.training.onnx_scoring) and that the drift reference (drift.json) describes the descriptor's columns and
classes; ValueError otherwise (the loader refuses the pin with MODEL_MALFORMED). Importing this module imports numpy
and onnxruntime: the loader imports it when it loads a model, once per execution environment, never per request.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from mlvault.drift import CategoricalReference, DriftReference
from mlvault.errors import ServeReason, ServingFailed, TrainingError
from mlvault.model_package import ModelDescriptor, parse_descriptor
from mlvault.serving.request_schema import first_error

# what onnxruntime raises for a graph it cannot load (its exceptions derive from Exception only)
_LOAD_ERRORS = (
    _ort_state.Fail,
    _ort_state.InvalidArgument,
    _ort_state.InvalidGraph,
    _ort_state.InvalidProtobuf,
    _ort_state.NoModel,
    _ort_state.NotImplemented,
    _ort_state.RuntimeException,
    _ort_state.EPFail,
    _ort_state.EngineError,
    RuntimeError,
)


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: warnings about the graph are not serving's log
    return options


def _converted(kind: str, values: Sequence[Any]) -> np.ndarray:
    """One input's validated values as a [N] array of its element type (module docstring)."""
    if kind == "float":
        return np.array(values, dtype=np.float64)  # None -> NaN, bool -> 1.0/0.0
    if kind == "string":
        return np.array(["" if v is None else v for v in values], dtype=object)
    if kind == "int64":
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.bool_)


_NULL = type(None)
_FLOAT_MAX = sys.float_info.max
# the exact types of the values each input type certainly accepts (JSON's: no subclass); any other value is walked
_CERTAIN = {
    "float": frozenset({float, int, bool, _NULL}),
    "int64": frozenset({int, bool}),  # integral floats, being rarer, are walked
    "string": frozenset({str, _NULL}),
    "bool": frozenset({bool}),
}
_DTYPES = {"float": np.float64, "int64": np.int64, "bool": np.bool_}


def _checked(kind: str, values: Sequence[Any]) -> np.ndarray | None:
    """`_converted(kind, values)` when every value is certainly valid for `kind` (request_schema's rules); None when
    one may not be (request_schema.first_error then decides). One pass for the types (a set), one conversion, and
    for floats one vectorised finiteness check: each value but the nulls (NaN once converted) is finite and short
    of the largest float, which an integer too large to be a finite float reaches or overflows converting."""
    kinds = set(map(type, values))
    if not kinds <= _CERTAIN[kind]:
        return None
    if kind == "string":
        return np.array(["" if v is None else v for v in values] if _NULL in kinds else values, dtype=object)
    try:
        array = np.array(values, dtype=_DTYPES[kind])
    except (OverflowError, TypeError, ValueError):  # an integer beyond float or int64
        return None
    if kind == "float":
        nulls = values.count(None) if _NULL in kinds else 0
        if np.count_nonzero(np.abs(array) < _FLOAT_MAX) + nulls != len(values):
            return None
    return array


@dataclass(frozen=True)
class Prediction:
    """The classes predicted for one request, and the input arrays they were predicted from (drift reads them)."""

    classes: list[str]
    arrays: dict[str, np.ndarray]  # column -> [N] values (float inputs as float64, NaN for null)
    values: Mapping[str, Sequence[Any]] = field(default_factory=dict)  # column -> [N] validated request values


class OnnxModel:
    """A descriptor, its drift reference and the InferenceSession of its graph."""

    def __init__(self, session: ort.InferenceSession, descriptor: ModelDescriptor, drift: DriftReference) -> None:
        self.session = session
        self.descriptor = descriptor
        self.drift = drift
        self._inputs = tuple((i.name, i.column, i.type) for i in descriptor.inputs)
        self._row = itemgetter(*descriptor.columns)  # a row's input values, in the descriptor's order
        self._fetch = [descriptor.label_output]
        self._classes = frozenset(descriptor.classes)

    @classmethod
    def load(cls, model: bytes, descriptor: bytes, drift: bytes) -> OnnxModel:
        """The model of a verified package's three files (ValueError when they are not a servable model)."""
        try:
            parsed = parse_descriptor(descriptor)
        except TrainingError as err:
            raise ValueError(err.detail) from None
        reference = _drift_reference(drift, parsed)
        try:
            session = ort.InferenceSession(model, session_options(), providers=["CPUExecutionProvider"])
        except _LOAD_ERRORS as err:
            raise ValueError(f"model.onnx does not load in onnxruntime {ort.__version__}: {err}") from None
        _check_graph(session, parsed)
        return cls(session, parsed, reference)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.descriptor.columns

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> Prediction:
        """The class of each row of a request (request_schema.parse_rows): every row validated against the
        descriptor first, with request_schema's errors (InvalidRequest, the first offending value's, as
        request_schema.check_rows raises it), then predicted as `predict` does."""
        inputs = self.descriptor.inputs
        if not rows:
            return self.predict({column: [] for _, column, _ in self._inputs})
        try:
            table = list(zip(*map(self._row, rows), strict=True)) if len(inputs) > 1 else [tuple(map(self._row, rows))]
        except KeyError:
            first_error(inputs, rows)  # raises: a row misses a column
            raise
        arrays, walked = {}, False
        for (_, column, kind), values in zip(self._inputs, table, strict=True):
            array = _checked(kind, values)
            if array is None:
                if not walked:
                    first_error(inputs, rows)  # raises, or every value was valid after all (a value at the edge)
                    walked = True
                array = _converted(kind, values)
            arrays[column] = array
        return self._predicted(arrays, dict(zip(self.descriptor.columns, table, strict=True)))

    def predict(self, columns: Mapping[str, Sequence[Any]]) -> Prediction:
        """The class of each row, from validated column values (request_schema.check_rows)."""
        arrays = {column: _converted(kind, columns[column]) for _, column, kind in self._inputs}
        return self._predicted(arrays, {column: columns[column] for _, column, _ in self._inputs})

    def _predicted(self, arrays: dict[str, np.ndarray], columns: Mapping[str, Sequence[Any]]) -> Prediction:
        rows = len(next(iter(arrays.values()))) if arrays else 0
        if rows == 0:
            return Prediction([], arrays, columns)
        feeds = {}
        with np.errstate(over="ignore"):  # a finite float64 beyond float32's range is fed as +-inf, as ONNX would
            for name, column, kind in self._inputs:
                array = arrays[column]
                feeds[name] = (array.astype(np.float32) if kind == "float" else array).reshape(rows, 1)
        [labels] = self.session.run(self._fetch, feeds)
        values = labels.reshape(-1).tolist()
        if labels.dtype != object:
            values = [str(v) for v in values]
        if len(values) != rows or not self._classes.issuperset(values):
            unknown = sorted(set(map(str, values)) - self._classes)[:5]
            raise ServingFailed(
                ServeReason.MODEL_OUTPUT_INVALID,
                f"the model's {self.descriptor.label_output!r} output gave {len(values)} labels for {rows} rows, "
                f"outside the classes {list(self.descriptor.classes)}: {unknown}",
            )
        return Prediction(values, arrays, columns)


def _check_graph(session: ort.InferenceSession, descriptor: ModelDescriptor) -> None:
    """The graph fits the descriptor as the pipeline checks it before anything is registered (the one definition:
    mlvault.training.onnx_scoring.OnnxScorer.check): its inputs exactly the descriptor's, of their types, [N, 1];
    its label output strings or int64; its probabilities output, if named, floats [N, C]."""
    from mlvault.training.onnx_scoring import OnnxScorer

    try:
        OnnxScorer(descriptor, session).check()
    except TrainingError as err:
        raise ValueError(f"model.onnx does not fit its descriptor: {err.detail}") from None


def _drift_reference(data: bytes, descriptor: ModelDescriptor) -> DriftReference:
    try:
        reference = DriftReference.from_json(json.loads(data))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"drift.json is not a drift reference: {err!r}") from None
    kinds = {i.column: i.type for i in descriptor.inputs}
    for feature in reference.features:
        kind = kinds.get(feature.name)
        if kind is None:
            raise ValueError(f"drift.json describes {feature.name!r}, which is not an input column of the model")
        categorical = isinstance(feature, CategoricalReference)
        if categorical != (kind == "string"):  # numeric features describe float, int64 or bool inputs
            raise ValueError(f"drift.json describes {feature.name!r} as {type(feature).__name__}, its input is {kind}")
    if reference.classes != descriptor.classes:
        raise ValueError(f"drift.json's classes {list(reference.classes)} are not the descriptor's")
    return reference
