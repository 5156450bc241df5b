"""The models document the pipeline runs (mlvault.training.specs), the training job's names and how its end is
read, the streamed drift reference, and the checks of an ONNX graph against its descriptor."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mlvault.drift import build_reference
from mlvault.errors import TrainingError
from mlvault.model_package import ModelDescriptor, ModelInput
from mlvault.training.drift_stream import stream_reference
from mlvault.training.specs import job_failure, job_name, parse_specs

CODE = {"bucket": "assets", "key": "k/sourcedir.tar.gz", "sha256": "a" * 64}


def test_models_are_parsed_strictly_with_the_key_named():
    specs = parse_specs(
        json.dumps(
            {
                "credit": {"dataset": "credit", "engine": "sagemaker", "code": CODE, "validation_fraction": 0.1},
                "iris": {"dataset": "iris", "engine": "lambda", "training": {"seed": 3}},
            }
        )
    )
    assert specs["credit"].split == {"seed": 0, "heldout_fraction": 0.2, "validation_fraction": 0.1}
    assert specs["iris"].split == {"seed": 3, "heldout_fraction": 0.2, "validation_fraction": 0.0}
    for bad, says in [
        ({"credit": {"dataset": "credit", "engine": "sagemaker"}}, "models.credit.code"),
        ({"credit": {"dataset": "credit", "engine": "spark"}}, "models.credit.engine"),
        ({"credit": {"dataset": "credit", "engien": "lambda"}}, "unknown key(s) ['engien']"),
        ({"credit": {"dataset": "credit", "heldout_fraction": 0.6, "validation_fraction": 0.5}}, "validation_fraction"),
        ({"credit": {"dataset": "credit", "hyperparameters": {"mlvault_x": "1"}}}, "'mlvault_x'"),
        ({"credit": {"dataset": "credit", "entry_point": "../evil.py"}}, "entry_point"),
        ({"credit": {"dataset": "credit", "gates": {"min_accuracy": 2}}}, "min_accuracy"),
    ]:
        with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            parse_specs(json.dumps(bad))


def test_job_names_are_the_stages_run_ids_when_sagemaker_takes_them():
    assert job_name("credit-manual-20261125T120000123456", "dev") == "mlvault-dev-credit-manual-20261125T120000123456"
    odd = job_name("credit:ingest/2026-11-25T12:00:00." + "x" * 40, "dev")
    assert len(odd) <= 63
    assert odd.startswith("mlvault-dev-credit-ingest-2026")
    assert odd == job_name("credit:ingest/2026-11-25T12:00:00." + "x" * 40, "dev")


@pytest.mark.parametrize(
    ("job", "error", "reason"),
    [
        ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxRuntimeExceeded"}, "States.TaskFailed", "TIMEOUT"),
        ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxWaitTimeExceeded"}, "States.TaskFailed", "TIMEOUT"),
        ({"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: boom"}, "States.TaskFailed", "FAILED"),
        ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped"}, "States.TaskFailed", "FAILED"),
        (None, "States.Timeout", "TIMEOUT"),
    ],
)
def test_how_a_training_job_ended(job, error, reason):
    cause = json.dumps({"TrainingJobName": "j", **job}) if job else ""
    code, detail = job_failure({"Error": error, "Cause": cause})
    assert code == f"TRAINING_JOB_{reason}"
    assert detail


def test_a_cause_that_is_not_a_job_is_no_job_failure():
    assert job_failure({"Error": "PipelineFailed", "Cause": json.dumps({"errorMessage": "X"})}) is None
    assert job_failure({"Error": "States.TaskFailed", "Cause": "not json"}) is None


DESCRIPTOR = ModelDescriptor(
    model="m",
    dataset="d",
    contract_version="1",
    label="y",
    classes=("a", "b"),
    inputs=(ModelInput("x", "x", "float"), ModelInput("n", "n", "int64"), ModelInput("c", "c", "string")),
    label_output="label",
)


def test_the_streamed_drift_reference_is_build_references_when_every_row_is_sampled():
    rng = np.random.default_rng(0)
    rows = 5000
    x = rng.normal(size=rows)
    x[::17] = np.nan
    n = rng.integers(0, 9, rows)
    c = rng.choice(["p", "q", "r"], rows)
    table = pa.table({"x": x, "n": n, "c": pa.array(c).dictionary_encode()})
    predictions = np.where(np.nan_to_num(x) > 0, "a", "b").astype(object)
    table = table.append_column("prediction", pa.array(predictions.tolist()))

    def batches(columns):
        return [b.select([*columns, "prediction"]) for b in table.to_batches(max_chunksize=333)]

    def predict(batch):  # a model that answers what the table says it predicts
        return np.array(batch.column("prediction").to_pylist(), dtype=object)

    streamed = stream_reference(batches, DESCRIPTOR, predict, rows=rows)
    exact = build_reference(
        numeric={"x": [None if np.isnan(v) else v for v in x], "n": list(map(float, n))},
        categorical={"c": list(c)},
        classes=("a", "b"),
        predictions=list(predictions),
    )
    assert streamed.to_json() == exact.to_json()


def test_a_large_split_is_sampled_for_cut_points_and_counted_whole():
    table = pa.table(
        {"x": np.arange(100_000, dtype=np.float64), "n": np.zeros(100_000, np.int64), "c": ["p"] * 100_000}
    )
    reference = stream_reference(
        lambda cols: table.select(cols).to_batches(max_chunksize=10_000),
        DESCRIPTOR,
        lambda batch: np.array(["a"] * batch.num_rows, dtype=object),
        rows=100_000,
        sample_rows=1000,
    )
    assert reference.rows == 100_000
    numeric = reference.features[0]
    assert sum(numeric.counts) == 100_000
    assert numeric.cuts == tuple(float(v) for v in range(10_000, 100_000, 10_000))
    assert reference.predictions == (100_000, 0)


def test_a_graph_whose_inputs_are_not_the_descriptors_is_onnx_invalid(tmp_path):
    from onnx import TensorProto, helper

    from mlvault.training.onnx_scoring import OnnxScorer

    graph = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["label"])],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.STRING, ["N", 1])],
        [helper.make_tensor_value_info("label", TensorProto.STRING, ["N", 1])],
    )
    path = tmp_path / "model.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(TrainingError, match="ONNX_INVALID: the graph's inputs are \\['c'\\]"):
        OnnxScorer.load(path, DESCRIPTOR)
    only_c = ModelDescriptor(**{**DESCRIPTOR.__dict__, "inputs": (ModelInput("c", "c", "string"),)})
    scorer = OnnxScorer.load(path, only_c)
    with pytest.raises(TrainingError, match="not among the descriptor's classes"):
        scorer.predict(pa.record_batch({"c": ["zzz"]}))  # it answers its inputs, not a class
    assert scorer.predict(pa.record_batch({"c": ["a", "b"]})).tolist() == ["a", "b"]
    path.write_bytes(b"garbage")
    with pytest.raises(TrainingError, match=r"ONNX_INVALID: model\.onnx does not load"):
        OnnxScorer.load(path, only_c)


def test_a_packages_signed_statement_fits_kms_raw_signing_many_times_over():
    from mlvault.attestation.openssf import MAX_SIGNED_MESSAGE, signed_message_size
    from mlvault.model_package import FILES

    extra = {
        "mlvault": {
            "model_id": "abcdefghijklmnopqrst/123456789",
            "record_sha256": "a" * 64,
            "package_sha256": "b" * 64,
            "format": "mlvault.model-package/v1",
            "manifest_sha256": "c" * 64,
            "code_sha256": "d" * 64,
            "run_id": "abcdefghijklmnopqrst-schedule-20261125T120000123456",
        }
    }
    size = signed_message_size("abcdefghijklmnopqrst", sorted(FILES), extra)
    assert size < 1400 < MAX_SIGNED_MESSAGE == 4096
