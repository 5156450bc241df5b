"""Drift without AWS: the training baseline mlvault writes into the model package (drift.json, covered by the
package's digest and signature), and the serving-side window that compares traffic with it (PSI per feature and
of the predictions)."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile

import pytest

from mlvault import drift
from mlvault.config import DriftSettings, SettingsError
from mlvault.contracts import screen
from mlvault.drift import DriftReference, DriftWindow, build_reference, cut_points, psi
from mlvault.model_package import unpack
from mlvault.training.artifact import Model, predict
from mlvault.training.params import TrainingParams
from mlvault.training.trainer import LambdaTrainer
from mlvault_tools import samples
from tests.unit.test_models_trainer import IRIS, VersionedS3, iris_manifest

NUMERIC = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@pytest.fixture(scope="module")
def trained():
    s3 = VersionedS3()
    return LambdaTrainer(s3).train(iris_manifest(s3, rows=1000), IRIS, TrainingParams(seed=7))


@pytest.fixture(scope="module")
def package(trained, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("package")
    return unpack(io.BytesIO(trained.package), folder)


@pytest.fixture(scope="module")
def reference(package) -> DriftReference:
    return DriftReference.from_json(json.loads(package["drift.json"].read_bytes()))


class Served:
    """The built-in model as the drift tests use it: its regression predicts, its package's drift.json is the
    baseline (the ONNX graph predicts as the regression does: tests/unit/test_models_trainer.py)."""

    def __init__(self, model: Model, reference: DriftReference) -> None:
        self.model = model
        self.drift = reference


@pytest.fixture(scope="module")
def model(trained, reference) -> Served:
    return Served(trained.model, reference)


def window_of(model: Served, rows: list[dict], window_rows: int | None = None) -> drift.DriftSnapshot:
    """The one snapshot of `rows` in a window of exactly that size."""
    window = DriftWindow(model.drift, window_rows or len(rows))
    [snapshot] = window.extend(rows, predict(model.model, rows))
    return snapshot


def traffic(rows: int, seed: int, **poison) -> list[dict]:
    return samples.iris_batch(rows, seed, **poison).to_pylist()


# --- the baseline in the artifact ------------------------------------------------------------------------------


def test_the_package_carries_the_training_baseline(trained, package):
    reference = json.loads(package["drift.json"].read_bytes())
    assert reference["format"] == "mlvault.drift/v1"
    rows = reference["rows"]
    assert rows == trained.run.rows["train"]  # the training split, not the held-out rows
    assert [(f["name"], f["kind"]) for f in reference["features"]] == [
        *((name, "numeric") for name in NUMERIC),
        ("site", "categorical"),
    ]
    for feature in reference["features"][:4]:
        assert 1 <= len(feature["cuts"]) <= 9
        assert feature["cuts"] == sorted(set(feature["cuts"]))
        assert len(feature["counts"]) == len(feature["cuts"]) + 2  # value bins, then the null bin
        assert sum(feature["counts"]) == rows
        assert feature["counts"][-1] == 0  # iris has no null measures
        assert all(0.07 * rows < c < 0.13 * rows for c in feature["counts"][:-1])  # deciles: ~10% each
    site = reference["features"][4]
    assert site["values"] == ["de-02", "es-03", "fr-01"]
    assert site["counts"][-2:] == [0, 0]  # unseen value, null
    assert reference["predictions"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert sum(reference["predictions"]["counts"]) == rows
    assert len(json.dumps(reference)) < 2000  # small: about ten bins per feature


def test_the_baseline_is_covered_by_the_packages_digests_and_round_trips(trained, package, reference):
    data = package["drift.json"].read_bytes()
    assert trained.files["drift.json"] == hashlib.sha256(data).hexdigest()  # a signed resource of the package
    assert json.dumps(reference.to_json(), sort_keys=True, separators=(",", ":")).encode() == data
    with tarfile.open(fileobj=io.BytesIO(trained.package)) as tar:
        assert tar.extractfile("drift.json").read() == data  # the tar's digest covers it too


def test_an_artifact_without_a_baseline_keeps_its_bytes():
    document = {
        "format": "mlvault.model/v1",
        "type": "softmax-regression",
        "dataset": "iris",
        "contract_version": "1",
        "label": "species",
        "classes": ["a", "b"],
        "features": [{"name": "x", "kind": "numeric", "mean": 0.0, "scale": 1.0}],
        "weights": [[1.0], [-1.0]],
        "bias": [0.0, 0.0],
        "training": {},
    }
    old = Model.from_json(document)
    assert old.drift is None
    assert json.loads(old.to_bytes()) == document  # no "drift": null added


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="mlvault.drift/v0"), "expected format"),
        (lambda d: d["features"][0]["counts"].append(1), "summing to"),
        (lambda d: d["features"][0].update(cuts=[2.0, 1.0, *d["features"][0]["cuts"][2:]]), "cuts must increase"),
        (lambda d: d["features"][0].update(counts=[*d["features"][0]["counts"][1:], 0]), "expected 11 counts|summing"),
        (lambda d: d["features"][4].update(values=["x", "x", "y"]), "distinct strings"),
        (lambda d: d["predictions"]["counts"].pop(), "summing to|one count per class"),
        (lambda d: d["features"][0].update(kind="histogram"), "unknown kind"),
    ],
)
def test_a_malformed_baseline_does_not_load(reference, change, message):
    document = reference.to_json()
    document = json.loads(json.dumps(document))
    change(document)
    with pytest.raises(ValueError, match=message):
        DriftReference.from_json(document)


def test_cut_points_are_deciles_of_the_finite_values():
    values = [float(v) for v in range(1, 101)]
    assert cut_points(values) == (11.0, 21.0, 31.0, 41.0, 51.0, 61.0, 71.0, 81.0, 91.0)
    shuffled = values[:]
    random.Random(3).shuffle(shuffled)
    assert cut_points([*shuffled, float("nan"), None]) == cut_points(values)  # order and nulls do not matter
    assert cut_points([0.0] * 90 + [1.0] * 10) == (1.0,)  # ties merge bins; no cut at the minimum
    assert cut_points([5.0] * 10) == ()
    assert cut_points([]) == ()


def test_build_reference_counts_every_row_once():
    reference = build_reference(
        numeric={"x": [1.0, 2.0, float("nan"), None, 3.0]},
        categorical={"c": ["a", "b", "a", None, "a"]},
        classes=("no", "yes"),
        predictions=["no", "yes", "yes", "no", "no"],
        bins=2,
    )
    x, c = reference.features
    assert (x.cuts, x.counts) == ((2.0,), (1, 2, 2))  # below 2, from 2 up, null
    assert (c.values, c.counts) == (("a", "b"), (3, 1, 0, 1))  # a, b, unseen, null
    assert reference.predictions == (3, 2)
    assert DriftReference.from_json(json.loads(json.dumps(reference.to_json()))) == reference


# --- windows -----------------------------------------------------------------------------------------------------


def test_psi_is_the_screens():
    assert screen.psi is psi
    assert psi([50, 50], [50, 50]) == 0
    assert psi([90, 10], [10, 90]) > 1
    assert psi([100, 0], [100, 0]) == 0  # smoothed: an empty bin stays finite


def test_clean_traffic_shows_low_drift(model):
    snapshot = window_of(model, traffic(1000, seed=99))
    assert snapshot.rows == 1000
    assert set(snapshot.features) == {*NUMERIC, "site"}
    assert max(snapshot.features.values()) < 0.1, snapshot
    assert snapshot.prediction < 0.1


def test_a_shifted_feature_is_the_one_that_drifts(model):
    snapshot = window_of(model, traffic(1000, seed=99, shift=2.0))  # every sepal length + 2.0
    assert snapshot.features["sepal_length"] > 0.2
    assert snapshot.max_feature == ("sepal_length", snapshot.features["sepal_length"])
    assert all(snapshot.features[name] < 0.1 for name in ("sepal_width", "petal_length", "petal_width", "site"))


def test_the_default_window_separates_clean_from_shifted_traffic(model):
    for seed in range(100, 110):
        assert window_of(model, traffic(200, seed)).max_feature[1] < 0.2
        feature, value = window_of(model, traffic(200, seed, shift=2.0)).max_feature
        assert feature == "sepal_length"
        assert value > 0.2


def test_snapshots_are_deterministic_and_ignore_row_order(model):
    rows = traffic(300, seed=5, shift=0.5)
    first = window_of(model, rows)
    assert window_of(model, rows) == first
    reordered = rows[::-1]
    assert window_of(model, reordered) == first


def test_nulls_and_missing_values_count_in_their_own_bin(model):
    rows = traffic(400, seed=11)
    clean = window_of(model, rows)
    for i, row in enumerate(rows):
        if i % 2:
            row["sepal_width"] = None  # half the rows: null
        elif i % 4 == 0:
            del row["petal_width"]  # a quarter: missing
    predictions = predict(model.model, [{**r, "petal_width": r.get("petal_width")} for r in rows])
    window = DriftWindow(model.drift, len(rows))
    [snapshot] = window.extend(rows, predictions)
    assert snapshot.features["sepal_width"] > 0.5  # the null bin was empty in training
    assert snapshot.features["petal_width"] > 0.2
    assert snapshot.features["petal_length"] == clean.features["petal_length"]  # the others are untouched


def test_an_unseen_category_counts_in_its_own_bin(model):
    rows = traffic(200, seed=12)
    for row in rows[:100]:
        row["site"] = "us-09"
    assert window_of(model, rows).features["site"] > 0.2


def test_a_window_is_tumbling(model):
    rows = traffic(250, seed=13)
    window = DriftWindow(model.drift, 100)
    snapshots = window.extend(rows, predict(model.model, rows))
    assert [s.rows for s in snapshots] == [100, 100]
    assert window.rows == 50
    assert not window.due
    assert snapshots[0] == window_of(model, rows[:100])
    assert snapshots[1] == window_of(model, rows[100:200])
    partial = window.snapshot()  # what is held, on demand; then it starts over
    assert partial.rows == 50
    assert window.rows == 0
    with pytest.raises(ValueError, match="no rows"):
        window.snapshot()
    with pytest.raises(ValueError, match="not a class"):
        window.add(rows[0], "daisy")
    with pytest.raises(ValueError, match="window_rows"):
        DriftWindow(model.drift, 0)


# --- settings ----------------------------------------------------------------------------------------------------


def test_drift_settings_default_and_validate():
    assert DriftSettings.from_env({}).window_rows == 200
    assert DriftSettings.from_env({"MLVAULT_DRIFT_WINDOW_ROWS": ""}).window_rows == 200
    assert DriftSettings.from_env({"MLVAULT_DRIFT_WINDOW_ROWS": "500"}).window_rows == 500
    assert DriftSettings.from_env({"MLVAULT_DRIFT_WINDOW_ROWS": "20"}).window_rows == 20
    with pytest.raises(SettingsError, match="MLVAULT_DRIFT_WINDOW_ROWS: expected at least 20 rows, got 19"):
        DriftSettings.from_env({"MLVAULT_DRIFT_WINDOW_ROWS": "19"})
    with pytest.raises(SettingsError, match="must be an integer"):
        DriftSettings.from_env({"MLVAULT_DRIFT_WINDOW_ROWS": "many"})
