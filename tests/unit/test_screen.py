"""The poisoning screen: a poisoned batch (labels flipped, a feature shifted, one group's labels skewed) is
flagged against the baseline, while a fresh clean batch from the same distribution is not (no false alarm)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mlvault.contracts.schema import load_all
from mlvault.contracts.screen import Profile, build_profile, compare, parity_gap, psi, quantile_bins
from mlvault_tools.samples import iris_batch as batch

IRIS = load_all(Path(__file__).resolve().parents[2] / "contracts")["iris"]


def profile(*batches: pa.RecordBatch) -> Profile:
    return build_profile(batches, IRIS)


@pytest.fixture(scope="module")
def baseline() -> Profile:
    return profile(*[batch(10_000, seed) for seed in range(3)])


def findings(candidate: Profile, baseline: Profile):
    s = IRIS.screening
    return compare(
        candidate, baseline, feature_psi=s.feature_psi, label_psi=s.label_psi, parity_increase=s.parity_increase
    )


def test_a_clean_batch_from_the_same_distribution_raises_no_alarm(baseline):
    for seed in (10, 11, 12):
        assert findings(profile(batch(5_000, seed)), baseline) == []


def test_thirty_percent_flipped_labels_are_flagged(baseline):
    # flipped uniformly, the label counts barely move: each class's feature distribution does
    found = findings(profile(batch(5_000, 20, flip=0.3)), baseline)
    assert {f.check for f in found} == {"label_feature_psi"}


def test_labels_flipped_towards_one_class_move_the_label_distribution(baseline):
    found = findings(profile(batch(5_000, 23, skew_site="fr-01"), batch(5_000, 24, skew_site="de-02")), baseline)
    assert "label_psi" in {f.check for f in found}


def test_a_shifted_feature_is_flagged_by_name(baseline):
    found = findings(profile(batch(5_000, 21, shift=1.0)), baseline)
    assert ("feature_psi", "sepal_length") in {(f.check, f.name) for f in found}
    assert {f.name.split("|")[0] for f in found} == {"sepal_length"}


def test_one_groups_skewed_labels_break_statistical_parity(baseline):
    found = findings(profile(batch(5_000, 22, skew_site="fr-01")), baseline)
    assert ("parity", "site") in {(f.check, f.name) for f in found}


def test_profiles_round_trip_through_json(baseline):
    assert Profile.from_json(baseline.to_json()) == baseline


def test_psi_and_quantile_bins():
    assert psi([50, 50], [50, 50]) == 0
    assert psi([90, 10], [10, 90]) > 1
    counts = [0] * 10 + [100] * 10 + [0] * 10
    assert quantile_bins(counts, bins=5) == [12, 14, 16, 18]
    assert parity_gap({"a\x1fyes": 50, "a\x1fno": 50, "b\x1fyes": 90, "b\x1fno": 10}) == pytest.approx(0.4)


def test_contract_check_screens_a_file_against_a_baseline_profile(tmp_path):
    import subprocess
    import sys

    import pyarrow.csv as csv

    contracts = Path(__file__).resolve().parents[2] / "contracts"

    def write(name, record_batch):
        path = tmp_path / name
        csv.write_csv(pa.Table.from_batches([record_batch]), path)
        return path

    def run(*args):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "mlvault_tools.cli",
                "contract",
                "check",
                *args,
                "--dataset",
                "iris",
                "--contracts",
                str(contracts),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = run(str(write("baseline.csv", batch(20_000, 1))), "--profile-out", str(tmp_path / "baseline.json"))
    assert made.returncode == 0, made.stdout + made.stderr
    clean = run(str(write("clean.csv", batch(5_000, 2))), "--baseline", str(tmp_path / "baseline.json"))
    assert clean.returncode == 0, clean.stdout
    assert "no shift against the baseline" in clean.stdout
    poisoned = run(str(write("poisoned.csv", batch(5_000, 3, flip=0.3))), "--baseline", str(tmp_path / "baseline.json"))
    assert poisoned.returncode == 1
    assert "HOLD POISONING_SUSPECTED: label_feature_psi" in poisoned.stdout
