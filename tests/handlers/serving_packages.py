"""Model packages for the serving tests (mlvault.model_package): the built-in model's format (its softmax regression
as the built-in trainer's ONNX graph, mlvault.training.onnx_graph) and a team's scikit-learn model (skl2onnx), their
descriptors and drift references, the package tar, its OpenSSF directory signature, and hand-made tars (links,
extra or missing members)."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from mlvault import model_package
from mlvault.attestation.openssf import kms_public_key_pem, sign_model
from mlvault.canonical import canonical_json
from mlvault.drift import build_reference
from mlvault.model_package import ModelDescriptor, ModelInput
from mlvault.signing.keys import KmsSigner
from mlvault.training.artifact import Model

IRIS_NUMERIC = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def descriptor(
    name: str, inputs: list[tuple[str, str]], classes: tuple[str, ...], *, label_output: str = "label", **extra: Any
) -> ModelDescriptor:
    return ModelDescriptor(
        model=name,
        dataset="iris",
        contract_version="1",
        label="species",
        classes=tuple(classes),
        inputs=tuple(ModelInput(column, column, kind) for column, kind in inputs),
        label_output=label_output,
        **extra,
    )


def built_in_files(model: Model, name: str = "iris") -> dict[str, bytes]:
    """The package of a built-in softmax regression, as the built-in trainer writes it (its ONNX graph and
    descriptor: mlvault.training.onnx_graph), with a drift reference of two training rows per class."""
    from mlvault.training.onnx_graph import descriptor as describe
    from mlvault.training.onnx_graph import to_onnx

    described = describe(model, name=name)
    rows = len(model.classes) * 2
    drift = build_reference(
        numeric={i.column: [float(n) for n in range(rows)] for i in described.inputs if i.type == "float"},
        categorical={i.column: ["north", "south"] * (rows // 2) for i in described.inputs if i.type == "string"},
        classes=model.classes,
        predictions=[c for c in model.classes for _ in range(2)],
    )
    return {
        model_package.MODEL_FILE: to_onnx(model),
        model_package.DESCRIPTOR_FILE: described.to_bytes(),
        model_package.DRIFT_FILE: canonical_json(drift.to_json()),
    }


def unpacked(package: bytes) -> dict[str, bytes]:
    """The files of a package tar (the built-in trainer's TrainingResult.package)."""
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def sklearn_files(rows: list[Mapping[str, Any]], label: str = "species", name: str = "iris") -> dict[str, bytes]:
    """A team's package: a scikit-learn gradient-boosted model on the numeric iris columns, exported with skl2onnx
    (its one [N, 4] input fed by a Concat of one [N, 1] input per column), the descriptor its script would write,
    and the drift reference mlvault computes from the training rows and the model's own predictions."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingClassifier

    x = np.array([[row[c] for c in IRIS_NUMERIC] for row in rows], dtype=np.float32)
    y = np.array([row[label] for row in rows])
    gbm = GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0).fit(x, y)
    exported = convert_sklearn(
        gbm,
        initial_types=[("X", FloatTensorType([None, len(IRIS_NUMERIC)]))],
        options={id(gbm): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    graph = exported.graph
    del graph.input[:]
    graph.input.extend(helper.make_tensor_value_info(c, TensorProto.FLOAT, [None, 1]) for c in IRIS_NUMERIC)
    graph.node.insert(0, helper.make_node("Concat", list(IRIS_NUMERIC), ["X"], axis=1))
    onnx.checker.check_model(exported)
    classes = tuple(str(c) for c in gbm.classes_)
    predicted = [str(p) for p in gbm.predict(x)]
    drift = build_reference(
        numeric={c: [float(row[c]) for row in rows] for c in IRIS_NUMERIC},
        categorical={},
        classes=classes,
        predictions=predicted,
    )
    framework = {"name": "scikit-learn", "exporter": "skl2onnx"}
    described = descriptor(
        name, [(c, "float") for c in IRIS_NUMERIC], classes, probabilities_output="probabilities", framework=framework
    )
    return {
        model_package.MODEL_FILE: exported.SerializeToString(),
        model_package.DESCRIPTOR_FILE: described.to_bytes(),
        model_package.DRIFT_FILE: canonical_json(drift.to_json()),
    }


def write_dir(folder: Path, files: Mapping[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def pack(files: Mapping[str, bytes]) -> bytes:
    """The package tar of these files (model_package.pack of a directory holding them)."""
    with tempfile.TemporaryDirectory() as folder:
        return model_package.pack(write_dir(Path(folder) / "model", files))


def sign_files(kms: Any, key_arn: str, files: Mapping[str, bytes], *, model_id: str | None, **signed: Any) -> bytes:
    """The OpenSSF signature of the directory of these files (one resource per file), by a KMS key, signing
    {"mlvault": {"model_id", ...}} as the sign step does."""
    extra = {"mlvault": {"model_id": model_id, **signed}} if model_id else None
    with tempfile.TemporaryDirectory() as folder:
        return sign_model(
            write_dir(Path(folder) / "model", files),
            KmsSigner(kms, key_arn, key_arn),
            statement_extra=extra,
            public_key_pem=kms_public_key_pem(kms, key_arn),
        )


def tar_of(members: list[tuple[str, bytes | None, bytes]]) -> bytes:
    """A hand-made tar: (name, tar type or None for a regular file, data or link target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind is None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = kind
                info.linkname = data.decode()
                tar.addfile(info)
    return out.getvalue()


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def typed_files(*, int64_label: bool = False, classes: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """A package whose inputs are int64 (`count`) and bool (`flag`): it predicts "yes" ("1") when count > 5 or flag,
    else "no" ("0"); its label output is a string tensor, or an int64 one with `int64_label`. `classes` overrides
    the descriptor's classes (a model that answers outside them)."""
    yes, no = ("1", "0") if int64_label else ("yes", "no")
    nodes = [
        helper.make_node("Greater", ["count", "five"], ["many"]),
        helper.make_node("Or", ["many", "flag"], ["chosen"]),
        helper.make_node("Reshape", ["chosen", "flat"], ["chosen_n"]),
    ]
    inits = [
        helper.make_tensor("five", TensorProto.INT64, [], [5]),
        helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
    ]
    if int64_label:
        nodes.append(helper.make_node("Cast", ["chosen_n"], ["label"], to=TensorProto.INT64))
        label_type = TensorProto.INT64
    else:
        inits += [
            helper.make_tensor("yes", TensorProto.STRING, [], [b"yes"]),
            helper.make_tensor("no", TensorProto.STRING, [], [b"no"]),
        ]
        nodes.append(helper.make_node("Where", ["chosen_n", "yes", "no"], ["label"]))
        label_type = TensorProto.STRING
    graph = helper.make_graph(
        nodes,
        "typed",
        [
            helper.make_tensor_value_info("count", TensorProto.INT64, ["N", 1]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, ["N", 1]),
        ],
        [helper.make_tensor_value_info("label", label_type, ["N"])],
        inits,
    )
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(built)
    classes = classes or tuple(sorted((yes, no)))
    drift = build_reference(
        numeric={"count": [1.0, 9.0, 2.0, 8.0], "flag": [0.0, 1.0, 0.0, 0.0]},
        categorical={},
        classes=classes,
        predictions=[classes[0], classes[-1], classes[0], classes[-1]],
    )
    described = descriptor("iris", [("count", "int64"), ("flag", "bool")], classes)
    return {
        model_package.MODEL_FILE: built.SerializeToString(),
        model_package.DESCRIPTOR_FILE: described.to_bytes(),
        model_package.DRIFT_FILE: canonical_json(drift.to_json()),
    }
