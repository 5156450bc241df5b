"""A package's ONNX model under onnxruntime: loaded, checked against its descriptor, fed by column, predicting.

`OnnxScorer.load(path, descriptor)` loads `model.onnx` with one thread (`intra_op_num_threads=1`: a Lambda has one
vCPU or less at the sizes mlvault uses) and checks that the graph's inputs and outputs are exactly the
descriptor's (ONNX_INVALID naming what differs): one input per descriptor input, of its element type, shape
[N, 1]; the label output a string or int64 tensor; the probabilities output, if named, a float tensor [N, C].

Feeding (the descriptor's rules, mlvault.model_package): each input from its column, shape [N, 1]; `float` ->
float32 (a null is NaN), `int64` -> int64, `bool` -> bool (both from non-nullable columns only), `string` ->
strings (a null is ""). Predictions are the label output's values as strings, one per row; a value that is not
one of the descriptor's classes is refused (ONNX_INVALID): the model does not answer in its own classes.

numpy and onnxruntime are imported here only: the steps that run models import this module inside the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlvault.errors import TrainingError, TrainingReason
from mlvault.model_package import ModelDescriptor

_ELEMENT = {"float": "tensor(float)", "int64": "tensor(int64)", "string": "tensor(string)", "bool": "tensor(bool)"}
_NUMPY = {"float": np.float32, "int64": np.int64, "bool": np.bool_}
_LABEL_TYPES = ("tensor(string)", "tensor(int64)")
MAX_ERROR = 500


def _invalid(detail: str) -> TrainingError:
    return TrainingError(TrainingReason.ONNX_INVALID, detail)


def session_options() -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: warnings about unused initializers are not ours to print
    return options


@dataclass
class OnnxScorer:
    descriptor: ModelDescriptor
    session: Any
    path: Path | None = None

    @classmethod
    def load(cls, path: Path, descriptor: ModelDescriptor) -> OnnxScorer:
        """Load and check (module docstring); ONNX_INVALID when it does not load or does not fit."""
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
            raise _invalid(f"model.onnx does not load: {type(err).__name__}: {str(err)[:MAX_ERROR]}") from None
        model = cls(descriptor, session, Path(path))
        model.check()
        return model

    def check(self) -> None:
        d = self.descriptor
        graph_inputs = {i.name: i for i in self.session.get_inputs()}
        wanted = {i.name for i in d.inputs}
        if set(graph_inputs) != wanted:
            raise _invalid(
                f"the graph's inputs are {sorted(graph_inputs)}, the descriptor's {sorted(wanted)} "
                f"(missing from the graph: {sorted(wanted - set(graph_inputs))}, "
                f"not in the descriptor: {sorted(set(graph_inputs) - wanted)})"
            )
        for item in d.inputs:
            node = graph_inputs[item.name]
            if node.type != _ELEMENT[item.type]:
                raise _invalid(
                    f"input {item.name!r} is {node.type}, the descriptor says {item.type} ({_ELEMENT[item.type]})"
                )
            shape = list(node.shape)
            if len(shape) != 2 or (shape[1] not in (1, None) and not isinstance(shape[1], str)):
                raise _invalid(f"input {item.name!r} has shape {shape}, expected [N, 1]")
        outputs = {o.name: o for o in self.session.get_outputs()}
        label = outputs.get(d.label_output)
        if label is None:
            raise _invalid(f"the graph has no output {d.label_output!r} (outputs: {sorted(outputs)})")
        if label.type not in _LABEL_TYPES:
            raise _invalid(f"the label output {d.label_output!r} is {label.type}, expected one of {_LABEL_TYPES}")
        if d.probabilities_output is not None:
            probabilities = outputs.get(d.probabilities_output)
            if probabilities is None:
                raise _invalid(f"the graph has no output {d.probabilities_output!r} (outputs: {sorted(outputs)})")
            if probabilities.type != "tensor(float)" or len(probabilities.shape) != 2:
                raise _invalid(
                    f"the probabilities output {d.probabilities_output!r} is {probabilities.type} "
                    f"{list(probabilities.shape)}, expected tensor(float) [N, {len(d.classes)}]"
                )

    # --- feeding ----------------------------------------------------------------------------------------

    def feed(self, batch: Any) -> dict[str, np.ndarray]:
        """The inputs of an Arrow record batch or table holding the descriptor's columns (module docstring)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        feed = {}
        for item in self.descriptor.inputs:
            column = batch.column(item.column)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            if item.type == "string":
                values = pc.fill_null(column.cast(pa.string()), "").to_numpy(zero_copy_only=False).astype(object)
            elif item.type == "float":
                values = column.cast(pa.float32()).to_numpy(zero_copy_only=False)
            else:
                if column.null_count:
                    raise _invalid(f"input {item.name!r} ({item.type}) cannot take the nulls of column {item.column!r}")
                values = column.cast(pa.int64() if item.type == "int64" else pa.bool_()).to_numpy(zero_copy_only=False)
            feed[item.name] = values.reshape(-1, 1)
        return feed

    def feed_rows(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """The inputs of rows keyed by column (None: a null), by the same rules."""
        feed = {}
        for item in self.descriptor.inputs:
            values = [row.get(item.column) for row in rows]
            if item.type == "string":
                array = np.array(["" if v is None else str(v) for v in values], dtype=object)
            elif item.type == "float":
                array = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float32)
            else:
                if any(v is None for v in values):
                    raise _invalid(f"input {item.name!r} ({item.type}) cannot take a null")
                array = np.array(values, dtype=_NUMPY[item.type])
            feed[item.name] = array.reshape(-1, 1)
        return feed

    # --- predicting -------------------------------------------------------------------------------------

    def run_labels(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """The label output for fed inputs, raw (onnxruntime's array)."""
        try:
            (labels,) = self.session.run([self.descriptor.label_output], dict(feed))
        except Exception as err:  # noqa: BLE001 - onnxruntime's own error classes
            raise _invalid(f"the model fails on valid input: {type(err).__name__}: {str(err)[:MAX_ERROR]}") from None
        return labels

    def labels(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """One predicted class per row, as strings (object array), each one of the descriptor's classes."""
        rows = len(next(iter(feed.values()))) if feed else 0
        labels = np.asarray(self.run_labels(feed))
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != (rows,):
            raise _invalid(f"the label output has shape {list(labels.shape)} for {rows} rows, expected [{rows}]")
        if labels.dtype != object:
            labels = labels.astype(str).astype(object)
        unknown = set(np.unique(labels).tolist()) - set(self.descriptor.classes)
        if unknown:
            raise _invalid(
                f"the model predicts {sorted(map(str, unknown))[:5]}, not among the descriptor's classes "
                f"{list(self.descriptor.classes)}"
            )
        return labels

    def predict(self, batch: Any) -> np.ndarray:
        """The predicted class of each row of an Arrow batch."""
        return self.labels(self.feed(batch))
