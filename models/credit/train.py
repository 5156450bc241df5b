"""The credit model: a scikit-learn gradient-boosted classifier, exported to ONNX, trained by SageMaker script mode.

The team's own code (mlvault runs it unchanged; docs/bring-your-own-model.md). Script mode's contract:

- the `train` channel (Parquet parts written by mlvault, every contract column) is in SM_CHANNEL_TRAIN, the
  optional `validation` channel in SM_CHANNEL_VALIDATION; hyperparameters arrive as `--name value` arguments;
- it writes `model.onnx` and `descriptor.json` (mlvault's model descriptor) to SM_MODEL_DIR, which SageMaker tars
  into model.tar.gz.

Model: a ColumnTransformer (numeric columns: a missing value, NaN, becomes 0, below any real value, so the trees
can tell it apart; categorical columns one-hot encoded, unknown categories ignored) and a
GradientBoostingClassifier (skl2onnx 1.20 cannot convert scikit-learn 1.9's HistGradientBoostingClassifier: its
TreeEnsemble attributes come out as booleans, which onnx refuses). skl2onnx converts the pipeline with one ONNX
input per column ([N, 1]: float for numeric columns, string for categorical ones), the outputs `label` (the class
names) and `probabilities` (a float tensor, no ZipMap). Gender, the protected attribute, is not a feature;
mlvault measures the model's fairness on it anyway. The validation accuracy it reports is a claim: mlvault
records it and computes its own gates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MODEL = "credit"
DATASET = "credit"
CONTRACT_VERSION = "1"
LABEL = "decision"
NUMERIC = ("age", "income", "loan_amount", "term_months", "credit_score")
CATEGORICAL = ("employment", "home_ownership", "purpose")


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_estimators", type=int, default=100, help="boosting stages")
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--max_depth", type=int, default=3)
    parser.add_argument("--subsample", type=float, default=0.5, help="rows per stage (stochastic boosting)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION", ""))
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    return parser.parse_args(argv)


def read_channel(folder: str) -> pa.Table:
    parts = sorted(Path(folder).glob("*.parquet"))
    if not parts:
        raise SystemExit(f"no Parquet parts in {folder}")
    return pa.concat_tables(pq.read_table(p, columns=[*NUMERIC, *CATEGORICAL, LABEL]) for p in parts)


def features(table: pa.Table) -> np.ndarray:
    """One object column per input, in the descriptor's order (numeric: float, NaN for a null; categorical: str)."""
    columns = [table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False) for c in NUMERIC]
    columns += [np.asarray(table.column(c).fill_null("").to_pylist(), dtype=object) for c in CATEGORICAL]
    matrix = np.empty((table.num_rows, len(columns)), dtype=object)
    for index, column in enumerate(columns):
        matrix[:, index] = column
    return matrix


def build(args: argparse.Namespace):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = list(range(len(NUMERIC)))
    categorical = list(range(len(NUMERIC), len(NUMERIC) + len(CATEGORICAL)))
    prepare = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="constant", fill_value=0.0), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ],
        sparse_threshold=0.0,
    )
    classifier = GradientBoostingClassifier(
        n_estimators=args.n_estimators,
        learning_rate=args.learning_rate,
        max_depth=args.max_depth,
        subsample=args.subsample,
        random_state=args.seed,
    )
    return Pipeline([("prepare", prepare), ("classifier", classifier)])


def to_onnx(pipeline) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    inputs = [(c, FloatTensorType([None, 1])) for c in NUMERIC] + [
        (c, StringTensorType([None, 1])) for c in CATEGORICAL
    ]
    options = {id(pipeline.steps[-1][1]): {"zipmap": False}}
    onnx_model = convert_sklearn(
        pipeline, initial_types=inputs, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    return onnx_model.SerializeToString()


def descriptor(classes: list[str], claims: dict) -> dict:
    import skl2onnx
    import sklearn

    return {
        "format": "mlvault.model-descriptor/v1",
        "model": MODEL,
        "dataset": DATASET,
        "contract_version": CONTRACT_VERSION,
        "label": LABEL,
        "classes": classes,
        "inputs": [{"name": c, "column": c, "type": "float"} for c in NUMERIC]
        + [{"name": c, "column": c, "type": "string"} for c in CATEGORICAL],
        "outputs": {"label": "label", "probabilities": "probabilities"},
        "framework": {
            "name": "scikit-learn",
            "version": sklearn.__version__,
            "converter": f"skl2onnx {skl2onnx.__version__}",
        },
        "claims": claims,
    }


def main(argv: list[str] | None = None) -> int:
    args = arguments(sys.argv[1:] if argv is None else argv)
    train = read_channel(args.train)
    x, y = features(train), np.asarray(train.column(LABEL).to_pylist(), dtype=object)
    if args.validation and Path(args.validation).is_dir() and any(Path(args.validation).glob("*.parquet")):
        validation = read_channel(args.validation)
        x_val, y_val = features(validation), np.asarray(validation.column(LABEL).to_pylist(), dtype=object)
        fit_x, fit_y = x, y
    else:  # no validation channel: the team keeps a tenth of its training rows for its own check
        cut = max(1, len(y) // 10)
        fit_x, fit_y, x_val, y_val = x[cut:], y[cut:], x[:cut], y[:cut]
    pipeline = build(args).fit(fit_x, fit_y)
    accuracy = float((pipeline.predict(x_val) == y_val).mean())
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.onnx").write_bytes(to_onnx(pipeline))
    claims = {
        "validation_accuracy": round(accuracy, 6),
        "train_rows": len(fit_y),
        "validation_rows": len(y_val),
    }
    classes = [str(c) for c in pipeline.classes_]
    (model_dir / "descriptor.json").write_text(json.dumps(descriptor(classes, claims), indent=1))
    print(f"trained on {len(fit_y)} rows; validation accuracy {accuracy:.4f} on {len(y_val)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
