"""The built-in trainer without AWS: an in-memory S3 that serves object versions, iris samples from
mlvault_tools.samples, and the contract of contracts/iris.json. Its output is a model package: the ONNX graph of
the regression (onnx.helper), its descriptor and mlvault's drift reference, deterministic."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from mlvault.contracts.schema import load_contract
from mlvault.drift import DriftReference
from mlvault.errors import TrainingError, TrainingReason
from mlvault.model_package import check_against_contract, file_digests, parse_descriptor, unpack
from mlvault.training.artifact import Model, accuracy, predict
from mlvault.training.data import DigestMismatch, TrainingDataError, feature_plan, read_split
from mlvault.training.manifest import IngestRef, Manifest, ManifestEntry
from mlvault.training.onnx_graph import check_model, to_onnx
from mlvault.training.onnx_scoring import OnnxScorer
from mlvault.training.params import TrainingParams
from mlvault.training.trainer import CODE_MODULES, LambdaTrainer, code_identity
from mlvault_tools import samples

ROOT = Path(__file__).resolve().parents[2]
IRIS = load_contract(ROOT / "contracts", "iris")
LAKE = "lake"


class VersionedS3:
    """get_object by version id only (as the trainer must ask), recording what was asked."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], bytes] = {}
        self.calls: list[dict[str, str]] = []

    def put(self, key: str, data: bytes) -> str:
        version = f"v{len(self.objects) + 1}"
        self.objects[LAKE, key, version] = data
        return version

    def get_object(self, **kwargs: str) -> dict:
        self.calls.append(kwargs)
        data = self.objects[kwargs["Bucket"], kwargs["Key"], kwargs["VersionId"]]
        return {"Body": io.BytesIO(data), "VersionId": kwargs["VersionId"], "ContentLength": len(data)}


def entry(s3: VersionedS3, name: str, data: bytes, rows: int, *, sha256: str | None = None) -> ManifestEntry:
    digest = hashlib.sha256(data).hexdigest()
    key = f"datasets/iris/lab-01/sha256={digest}/{name}"
    version = s3.put(key, data)
    return ManifestEntry(
        lake_bucket=LAKE,
        lake_key=key,
        lake_version=version,
        sha256=sha256 or digest,
        size=len(data),
        rows=rows,
        producer="lab-01",
        key_id="lab-01-k1",
        contract_version="1",
        ingest=(IngestRef("ingest", f"lab-01/iris/{name}", f"i-{version}"),),
    )


def iris_manifest(s3: VersionedS3, rows: int = 600, seed: int = 1, **poison) -> Manifest:
    return Manifest("iris", "1", (entry(s3, "batch.csv", samples.iris_csv(rows, seed, **poison), rows),))


@pytest.fixture(scope="module")
def clean():
    s3 = VersionedS3()
    manifest = iris_manifest(s3, rows=1000)
    return s3, manifest, LambdaTrainer(s3).train(manifest, IRIS, TrainingParams(seed=7))


def test_same_seed_and_data_give_the_same_package(clean):
    s3, manifest, first = clean
    again = LambdaTrainer(s3).train(manifest, IRIS, TrainingParams(seed=7))
    assert again.package == first.package
    assert again.run.artifact_digest == first.run.artifact_digest == hashlib.sha256(first.package).hexdigest()
    assert again.files == first.files
    other_seed = LambdaTrainer(s3).train(manifest, IRIS, TrainingParams(seed=8))
    assert other_seed.run.artifact_digest != first.run.artifact_digest


def unpacked(result, folder: Path) -> dict[str, Path]:
    folder.mkdir()
    return unpack(io.BytesIO(result.package), folder)


def test_clean_iris_is_learned_and_the_onnx_graph_predicts_as_the_regression(clean, tmp_path):
    _, _, result = clean
    assert result.run.metrics["train_accuracy"] > 0.9
    assert result.run.claims == {
        "train_accuracy": result.run.metrics["train_accuracy"],
        "train_loss": result.run.metrics["train_loss"],
    }
    files = unpacked(result, tmp_path / "package")
    scorer = OnnxScorer.load(files["model.onnx"], parse_descriptor(files["descriptor.json"].read_bytes()))
    fresh = samples.iris_batch(300, seed=99)  # data the model never saw
    onnx = scorer.predict(fresh).tolist()
    python = predict(result.model, fresh.to_pylist())
    assert sum(map(str.__eq__, onnx, python)) >= 299  # float32 in the graph: at most a rounding tie apart
    assert accuracy(result.model, fresh.to_pylist()) > 0.9
    assert sum(map(str.__eq__, onnx, fresh.column("species").to_pylist())) / 300 > 0.9
    assert result.run.rows["train"] + result.run.rows["heldout"] == 1000
    assert 0.1 < result.run.rows["heldout"] / 1000 < 0.3


def test_reads_every_entry_by_version_id_only(clean):
    s3, manifest, _ = clean
    (e,) = manifest.entries
    assert s3.calls
    assert all(c == {"Bucket": LAKE, "Key": e.lake_key, "VersionId": e.lake_version} for c in s3.calls)


def test_the_package_is_the_onnx_graph_its_descriptor_and_mlvaults_drift_reference(clean, tmp_path):
    _, _, result = clean
    with tarfile.open(fileobj=io.BytesIO(result.package)) as tar:
        assert [(m.name, m.mode, m.mtime, m.uid) for m in tar.getmembers()] == [
            ("model.onnx", 0o644, 0, 0),
            ("descriptor.json", 0o644, 0, 0),
            ("drift.json", 0o644, 0, 0),
        ]
    files = unpacked(result, tmp_path / "package")
    assert file_digests(files) == result.files
    descriptor = parse_descriptor(files["descriptor.json"].read_bytes())
    assert descriptor == result.descriptor
    check_against_contract(descriptor, IRIS, model="iris")
    assert descriptor.classes == ("setosa", "versicolor", "virginica")
    assert [(i.name, i.column, i.type) for i in descriptor.inputs] == [
        ("sepal_length", "sepal_length", "float"),
        ("sepal_width", "sepal_width", "float"),
        ("petal_length", "petal_length", "float"),
        ("petal_width", "petal_width", "float"),
        ("site", "site", "string"),
    ]  # neither the key (sample_id) nor the label nor the nullable free text (notes)
    assert (descriptor.label_output, descriptor.probabilities_output) == ("label", "probabilities")
    drift = DriftReference.from_json(json.loads(files["drift.json"].read_bytes()))
    assert drift.rows == result.run.rows["train"]
    assert drift.classes == descriptor.classes
    assert [f.name for f in drift.features] == [i.column for i in descriptor.inputs]
    check_model(files["model.onnx"].read_bytes())
    assert files["model.onnx"].read_bytes() == to_onnx(result.model)


def test_the_graph_imputes_a_null_with_the_mean_and_ignores_an_unseen_category(clean, tmp_path):
    _, _, result = clean
    files = unpacked(result, tmp_path / "package")
    scorer = OnnxScorer.load(files["model.onnx"], result.descriptor)
    row = {"sepal_length": None, "sepal_width": 3.4, "petal_length": 1.4, "petal_width": 0.2, "site": "zz-99"}
    assert scorer.labels(scorer.feed_rows([row])).tolist() == predict(result.model, [row])


def test_every_run_records_parameters_inputs_code_and_outcome(clean):
    _, manifest, result = clean
    run = result.run.to_json()
    assert run["manifest_digest"] == manifest.digest
    assert run["artifact_digest"] == hashlib.sha256(result.package).hexdigest()
    assert run["artifact_bytes"] == len(result.package)
    assert (run["trainer"], run["model"], run["dataset"]) == ("lambda", "iris", "iris")
    assert run["params"] == TrainingParams(seed=7).to_json()
    assert set(run["metrics"]) == {"train_loss", "train_accuracy"}
    assert run["started_at"] <= run["finished_at"]
    digest, files = code_identity()
    assert run["code_digest"] == digest
    assert sorted(files) == sorted(m.replace(".", "/") + ".py" for m in CODE_MODULES)
    trainer_source = ROOT / "layers/mlvault/python/mlvault/training/trainer.py"
    assert files["mlvault/training/trainer.py"] == hashlib.sha256(trainer_source.read_bytes()).hexdigest()
    assert "mlvault/training/onnx_graph.py" in files
    assert json.loads(result.run.to_bytes()) == run


def test_read_split_rederives_the_heldout_rows(clean):
    s3, manifest, result = clean
    params = TrainingParams(seed=7)
    heldout = read_split(s3, manifest, IRIS, params)
    assert len(heldout) == result.run.rows["heldout"]
    train = read_split(s3, manifest, IRIS, params, part="train")
    assert len(train) == result.run.rows["train"]
    assert not {r["sample_id"] for r in train} & {r["sample_id"] for r in heldout}


def test_a_digest_mismatch_names_the_object_version():
    s3 = VersionedS3()
    data = samples.iris_csv(50, 2)
    bad = entry(s3, "batch.csv", data, 50, sha256="0" * 64)
    with pytest.raises(DigestMismatch) as err:
        LambdaTrainer(s3).train(Manifest("iris", "1", (bad,)), IRIS)
    assert err.value.reason == TrainingReason.DIGEST_MISMATCH
    assert err.value.uri == f"s3://{LAKE}/{bad.lake_key}?versionId={bad.lake_version}"
    assert str(err.value) == (
        f"DIGEST_MISMATCH: {bad.uri}: expected sha256 {'0' * 64}, got {hashlib.sha256(data).hexdigest()}"
    )


def test_tampered_bytes_are_reported_as_such_before_any_contract_error():
    s3 = VersionedS3()
    good = entry(s3, "batch.csv", samples.iris_csv(50, 2), 50)
    s3.objects[LAKE, good.lake_key, good.lake_version] = b"sample_id,ssn\n1,123-45-6789\n"
    with pytest.raises(DigestMismatch, match=good.lake_version):
        LambdaTrainer(s3).train(Manifest("iris", "1", (good,)), IRIS)


def test_an_object_longer_than_the_ledger_says_is_refused():
    s3 = VersionedS3()
    good = entry(s3, "batch.csv", samples.iris_csv(50, 2), 50)
    short = replace(good, size=good.size - 10)
    with pytest.raises(TrainingDataError) as err:
        LambdaTrainer(s3).train(Manifest("iris", "1", (short,)), IRIS)
    assert err.value.reason == TrainingReason.SIZE_MISMATCH
    assert good.lake_key in str(err.value)


def test_a_row_count_other_than_the_ledgers_is_refused():
    s3 = VersionedS3()
    good = entry(s3, "batch.csv", samples.iris_csv(50, 2), 49)
    with pytest.raises(TrainingDataError) as err:
        LambdaTrainer(s3).train(Manifest("iris", "1", (good,)), IRIS)
    assert err.value.reason == TrainingReason.ROW_COUNT_MISMATCH
    assert "the ledger recorded 49 rows, read 50" in str(err.value)


def test_size_and_contract_are_checked_before_reading():
    s3 = VersionedS3()
    manifest = iris_manifest(s3, rows=100)
    with pytest.raises(TrainingError) as err:
        LambdaTrainer(s3).train(manifest, IRIS, TrainingParams(max_rows=99))
    assert err.value.reason == TrainingReason.TOO_MANY_ROWS
    assert "sagemaker engine" in str(err.value)
    with pytest.raises(TrainingError) as err:
        LambdaTrainer(s3).train(replace(manifest, contract_version="2"), IRIS)
    assert err.value.reason == TrainingReason.CONTRACT_MISMATCH
    assert s3.calls == []


def test_protected_attributes_can_be_left_out_of_the_features():
    plan = feature_plan(IRIS, TrainingParams(protected_as_features=False))
    assert plan.categorical == ()
    assert plan.key == "sample_id"
    assert plan.numeric == ("sepal_length", "sepal_width", "petal_length", "petal_width")
    s3 = VersionedS3()
    result = LambdaTrainer(s3).train(iris_manifest(s3, rows=300), IRIS, TrainingParams(protected_as_features=False))
    assert {f.name for f in result.model.features} == set(plan.numeric)


def test_training_needs_two_classes():
    s3 = VersionedS3()
    data = samples.iris_csv(60, 3, skew_site="fr-01").replace(b"versicolor", b"setosa").replace(b"virginica", b"setosa")
    with pytest.raises(TrainingError) as err:
        LambdaTrainer(s3).train(Manifest("iris", "1", (entry(s3, "one.csv", data, 60),)), IRIS)
    assert err.value.reason == TrainingReason.NOT_ENOUGH_DATA


def test_params_are_validated():
    with pytest.raises(ValueError, match="heldout_fraction"):
        TrainingParams(heldout_fraction=1.0)
    with pytest.raises(ValueError, match="epochs"):
        TrainingParams(epochs=0)


def test_predict_refuses_a_row_without_a_feature(clean):
    model: Model = clean[2].model
    with pytest.raises(ValueError, match="petal_width"):
        predict(model, [{"sepal_length": 5.0, "sepal_width": 3.0, "petal_length": 1.0, "site": "fr-01"}])
