"""The built-in trainer's softmax regression as an ONNX graph (onnx.helper), and its model descriptor: the same
package a team's model produces (mlvault.model_package), so serving has exactly one path.

The graph, per the descriptor's input rules (one input per contract column, shape [N, 1]):

    numeric columns (float inputs)  -> Concat -> Sub(means) -> Div(scales) -> Where(IsNaN, 0, .)   (null: the mean)
    string columns (string inputs)  -> ai.onnx.ml OneHotEncoder(categories seen in training, zeros=1) -> Reshape
                                       (an unseen category, or "" for a null, is all zeros)
    features [N, F] -> MatMul(weights^T) -> Add(bias) -> logits [N, C]
        -> Softmax          -> `probabilities` [N, C] float, in the order of the classes
        -> ArgMax(axis 1)   -> ai.onnx.ml LabelEncoder(index -> class) -> `label` [N] string

ArgMax keeps the first maximum, as the Python prediction does (a tie goes to the class that sorts first). The
graph computes in float32: predictions equal the float64 Python ones except for rows within rounding of a tie.

Deterministic: the IR version, opsets, producer and every name are fixed and the tensors are written from the
model's numbers in order, so the same model gives the same bytes (with the pinned onnx version).
"""

from __future__ import annotations

import re

from mlvault.model_package import ModelDescriptor, ModelInput
from mlvault.training.artifact import Model

IR_VERSION = 8
OPSET = 17  # ai.onnx
ML_OPSET = 2  # ai.onnx.ml: LabelEncoder v2 (int64 keys -> string values), OneHotEncoder v1
PRODUCER = "mlvault"
PRODUCER_VERSION = "1"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
FRAMEWORK = {"name": "mlvault-softmax-regression", "version": "1"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")


def input_names(model: Model) -> dict[str, str]:
    """Column -> the ONNX input fed from it: the column's own name when it is a valid input name."""
    columns = list(dict.fromkeys(f.name for f in model.features))
    names = {}
    for index, column in enumerate(columns):
        name = column if _NAME.match(column) and column not in (LABEL_OUTPUT, PROBABILITIES_OUTPUT) else None
        names[column] = name or f"input_{index}"
    return names


def descriptor(model: Model, *, name: str, claims: dict | None = None) -> ModelDescriptor:
    """The model descriptor of a built-in model: float inputs for numeric columns, string inputs for categorical."""
    names = input_names(model)
    kinds = {f.name: f.kind for f in model.features}
    return ModelDescriptor(
        model=name,
        dataset=model.dataset,
        contract_version=model.contract_version,
        label=model.label,
        classes=model.classes,
        inputs=tuple(ModelInput(names[c], c, "float" if kinds[c] == "numeric" else "string") for c in names),
        label_output=LABEL_OUTPUT,
        probabilities_output=PROBABILITIES_OUTPUT,
        framework=dict(FRAMEWORK),
        claims=dict(claims or {}),
    )


def to_onnx(model: Model) -> bytes:
    """The ONNX bytes of a trained softmax regression (see the module docstring)."""
    from onnx import TensorProto, helper  # onnx: only in the step that builds the graph

    names = input_names(model)
    numeric = [f for f in model.features if f.kind == "numeric"]
    columns = list(names)
    inputs, nodes, initializers, parts = [], [], [], []
    for column in columns:
        kind = "numeric" if any(f.name == column and f.kind == "numeric" for f in model.features) else "category"
        element = TensorProto.FLOAT if kind == "numeric" else TensorProto.STRING
        inputs.append(helper.make_tensor_value_info(names[column], element, ["N", 1]))
    if numeric:
        k = len(numeric)
        initializers += [
            helper.make_tensor("means", TensorProto.FLOAT, [k], [f.mean for f in numeric]),
            helper.make_tensor("scales", TensorProto.FLOAT, [k], [f.scale for f in numeric]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ]
        nodes += [
            helper.make_node("Concat", [names[f.name] for f in numeric], ["numeric_raw"], axis=1, name="numeric"),
            helper.make_node("Sub", ["numeric_raw", "means"], ["numeric_centered"], name="center"),
            helper.make_node("Div", ["numeric_centered", "scales"], ["numeric_scaled"], name="scale"),
            helper.make_node("IsNaN", ["numeric_scaled"], ["numeric_null"], name="nulls"),
            helper.make_node("Where", ["numeric_null", "zero", "numeric_scaled"], ["numeric_std"], name="impute"),
        ]
        parts.append("numeric_std")
    for index, column in enumerate(c for c in columns if c not in {f.name for f in numeric}):
        categories = [f.value for f in model.features if f.kind == "category" and f.name == column]
        encoded, flat = f"onehot_{index}_3d", f"onehot_{index}"
        initializers.append(helper.make_tensor(f"onehot_{index}_shape", TensorProto.INT64, [2], [-1, len(categories)]))
        nodes += [
            helper.make_node(
                "OneHotEncoder",
                [names[column]],
                [encoded],
                domain="ai.onnx.ml",
                cats_strings=categories,
                zeros=1,
                name=f"encode_{index}",
            ),
            helper.make_node("Reshape", [encoded, f"onehot_{index}_shape"], [flat], name=f"flatten_{index}"),
        ]
        parts.append(flat)
    classes = len(model.classes)
    features = len(model.features)
    weights_t = [model.weights[c][j] for j in range(features) for c in range(classes)]  # [F, C], row-major
    initializers += [
        helper.make_tensor("weights", TensorProto.FLOAT, [features, classes], weights_t),
        helper.make_tensor("bias", TensorProto.FLOAT, [classes], list(model.bias)),
    ]
    if len(parts) > 1:
        nodes.append(helper.make_node("Concat", parts, ["features"], axis=1, name="features"))
    else:
        nodes.append(helper.make_node("Identity", parts, ["features"], name="features"))
    nodes += [
        helper.make_node("MatMul", ["features", "weights"], ["scores"], name="matmul"),
        helper.make_node("Add", ["scores", "bias"], ["logits"], name="logits"),
        helper.make_node("Softmax", ["logits"], [PROBABILITIES_OUTPUT], axis=1, name="softmax"),
        helper.make_node("ArgMax", ["logits"], ["class_index"], axis=1, keepdims=0, name="argmax"),
        helper.make_node(
            "LabelEncoder",
            ["class_index"],
            [LABEL_OUTPUT],
            domain="ai.onnx.ml",
            keys_int64s=list(range(classes)),
            values_strings=list(model.classes),
            default_string="",
            name="classes",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "mlvault_softmax_regression",
        inputs,
        [
            helper.make_tensor_value_info(LABEL_OUTPUT, TensorProto.STRING, ["N"]),
            helper.make_tensor_value_info(PROBABILITIES_OUTPUT, TensorProto.FLOAT, ["N", classes]),
        ],
        initializer=initializers,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        ir_version=IR_VERSION,
    )
    return onnx_model.SerializeToString(deterministic=True)


def check_model(data: bytes) -> None:
    """onnx's own checker over the bytes, shapes inferred (tests)."""
    import onnx

    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
