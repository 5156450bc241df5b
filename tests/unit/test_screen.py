"""The poisoning screen: a poisoned batch (labels flipped, a feature shifted, one group's labels skewed) is
flagged against the baseline, while a fresh clean batch from the same distribution is not (no false alarm); label
flips on a dataset whose label is a noisy function of the features (loans) are caught by the label-conditional
view; profiles stay small and old ones still load."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mlvault.contracts.schema import load_all
from mlvault.contracts.screen import (
    MAX_VALUES,
    OTHER,
    Profile,
    ProfileBuilder,
    build_profile,
    compare,
    flip_estimate,
    parity_gap,
    psi,
    quantile_bins,
    screen,
)
from mlvault_tools.samples import iris_batch as batch
from mlvault_tools.samples import loans_batch

CONTRACTS = load_all(Path(__file__).resolve().parents[2] / "contracts")
IRIS = CONTRACTS["iris"]
LOANS = CONTRACTS["loans"]


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
    # flipped uniformly, the label counts barely move: each class's feature distribution does, and the labels'
    # rates within the baseline's bins of each feature move towards uniform
    found = findings(profile(batch(5_000, 20, flip=0.3)), baseline)
    assert {f.check for f in found} == {"label_feature_psi", "label_flip"}
    flips = {f.name: f.value for f in found if f.check == "label_flip"}
    assert 0.2 < flips["petal_length"] < 0.35  # an estimate of the share flipped


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
    assert poisoned.returncode == 4  # HELD: a verdict for a human
    assert "HOLD POISONING_SUSPECTED: label_feature_psi" in poisoned.stdout


# --- loans: a 0/1 label that is a noisy function of the features (issue 11, item 5) ------------------------


@pytest.fixture(scope="module")
def loans_baseline() -> Profile:
    return build_profile([loans_batch(10_000, 1)], LOANS)  # as the loans contract learns it (baseline_rows)


def loans_findings(rows: int, seed: int, flip: float = 0.0, baseline: Profile | None = None):
    return screen(build_profile([loans_batch(rows, seed, flip=flip)], LOANS), baseline, LOANS.screening)


@pytest.mark.parametrize("seed", range(5))
def test_loans_batches_with_a_fifth_of_labels_flipped_are_flagged_by_the_label_conditional_view(loans_baseline, seed):
    found = loans_findings(1000, 100 + seed, flip=0.2, baseline=loans_baseline)
    assert "label_flip" in {f.check for f in found}, found
    # the per-feature checks and the label counts do not see it: comparing each feature within each label misses
    # most 20% flips (issue 11: detected 0 times out of 5 before the label-conditional view)
    assert "feature_psi" not in {f.check for f in found}


def test_loans_batches_with_a_tenth_of_labels_flipped_are_flagged_mostly(loans_baseline):
    flagged = [bool(loans_findings(1000, 200 + seed, flip=0.1, baseline=loans_baseline)) for seed in range(5)]
    assert sum(flagged) >= 3, flagged


@pytest.mark.parametrize("seed", range(5))
def test_clean_loans_batches_raise_no_false_alarm(loans_baseline, seed):
    assert loans_findings(1000, 300 + seed, baseline=loans_baseline) == []


def test_labels_flipped_one_way_are_named_with_their_direction(loans_baseline):
    flipped = loans_batch(1000, 400)
    labels = flipped.column(flipped.schema.get_field_index("defaulted")).to_pylist()
    hidden = [0 if y == 1 and i % 3 else y for i, y in enumerate(labels)]  # two thirds of defaults turned to 0
    flipped = flipped.set_column(5, flipped.schema.field(5), pa.array(hidden, pa.int64()))
    found = screen(build_profile([flipped], LOANS), loans_baseline, LOANS.screening)
    assert {f.name for f in found if f.check == "label_flip"} >= {"income|to 0"}


def test_the_flip_estimate_is_the_share_flipped():
    baseline = {"0": [900, 500, 100], "1": [100, 500, 900]}
    flipped = {"0": [80 + 2, 50, 10 + 8], "1": [10 + 8, 50, 80 + 2]}  # a tenth flipped in every bin
    direction, estimate, noise = flip_estimate(flipped, baseline)
    assert direction == ""
    assert estimate == pytest.approx(0.1, abs=0.02)
    assert 0 < noise < 0.2
    assert flip_estimate({"0": [90, 50, 10], "1": [10, 50, 90]}, baseline)[1] == pytest.approx(0, abs=0.02)
    assert flip_estimate({"0": [5]}, {"0": [10]}) is None  # one label: nothing can be flipped


# --- profiles: absent columns, bounded size, old profiles ----------------------------------------------------


def test_a_column_the_file_lacks_is_profiled_as_nulls_not_as_another_column():
    without_notes = batch(500, 1).drop_columns(["notes"])
    built = build_profile([without_notes], IRIS)
    assert built.categorical["notes"] == {}
    assert built.nulls["notes"] == 500


def test_a_text_feature_of_any_cardinality_keeps_the_profile_small():
    builder = ProfileBuilder(IRIS)
    for seed in range(5):
        rows = batch(10_000, seed)
        notes = pa.array([f"note {seed}-{i}" for i in range(rows.num_rows)], pa.string())
        builder.add(rows.set_column(rows.schema.get_field_index("notes"), rows.schema.field("notes"), notes))
    built = builder.profile
    assert len(built.categorical["notes"]) == MAX_VALUES
    assert built.categorical["notes"][OTHER] == 50_000 - (MAX_VALUES - 1)
    assert sum(built.categorical_conditional["notes"].values()) == 50_000
    assert len(built.to_bytes()) < 20_000  # a ledger item is capped at 400 KB
    merged = built.merged(built)
    assert len(merged.categorical["notes"]) == MAX_VALUES


def test_profiles_written_before_the_label_conditional_view_still_load_and_compare(baseline):
    old = baseline.to_json()
    del old["categorical_conditional"]
    loaded = Profile.from_json(old)
    assert loaded.categorical_conditional == {}
    assert findings(profile(batch(5_000, 10)), loaded) == []
    assert "label_flip" in {f.check for f in findings(profile(batch(5_000, 20, flip=0.3)), loaded)}


def test_an_iris_profile_stays_a_few_kilobytes(baseline):
    assert len(profile(batch(600, 4)).to_bytes()) < 6_000
