"""`screen_batch`: the screen of one batch as ingest decides it, which the producer's pre-flight reports too. It
says what it found, what happens to the batch, and each check it skipped with why: a batch under
`screening.min_rows` (ingest screens it later, in the producer's rolling window), a label under MIN_CLASS_ROWS, a
feature or a view the baseline lacks, a batch without labels. A "no shift" with checks skipped is not a clean
bill."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pytest

from mlvault.contracts.schema import load_all
from mlvault.contracts.screen import (
    ACCEPT,
    LABELS,
    MIN_CLASS_ROWS,
    SCREEN,
    Profile,
    ScreenResult,
    Skipped,
    build_profile,
    screen,
    screen_batch,
)
from mlvault_tools.samples import iris_batch as batch
from mlvault_tools.samples import loans_batch

CONTRACTS = load_all(Path(__file__).resolve().parents[2] / "contracts")
IRIS = CONTRACTS["iris"]
LOANS = CONTRACTS["loans"]
NUMERIC = "sepal_length, sepal_width, petal_length, petal_width"  # iris's numeric features, in contract order


def profile(*batches: pa.RecordBatch) -> Profile:
    return build_profile(batches, IRIS)


def with_labels(counts: dict[str, int], seed: int) -> pa.RecordBatch:
    """An iris batch with exactly these rows per species (the first ones a generated batch has)."""
    rows = batch(sum(counts.values()) * 4 + 1000, seed)
    species = rows.column(rows.schema.get_field_index("species")).to_pylist()
    keep, left = [], dict(counts)
    for i, label in enumerate(species):
        if left.get(label, 0) > 0:
            keep.append(i)
            left[label] -= 1
    assert not any(left.values())
    return rows.take(pa.array(keep))


def per_label(label: str, why: str) -> Skipped:
    return Skipped("label_feature_psi", label, f"{why}: its label_feature_psi skipped ({NUMERIC})")


@pytest.fixture(scope="module")
def baseline() -> Profile:
    return profile(*[batch(10_000, seed) for seed in range(3)])


# --- the whole batch: under min_rows --------------------------------------------------------------------------


def test_a_batch_under_min_rows_is_not_screened_and_says_so_as_ingest_records_it(baseline):
    assert IRIS.screening.min_rows == 100
    not_screened = ScreenResult((), ACCEPT, (Skipped(SCREEN, "", "not screened: 12 rows, fewer than min_rows 100"),))
    assert screen_batch(profile(batch(12, 5)), baseline, IRIS.screening) == not_screened
    assert not not_screened.screened
    # however poisoned: alone it is too small to judge (ingest adds it to the producer's rolling window)
    poisoned = profile(batch(12, 6, flip=1.0, shift=5.0))
    assert screen_batch(poisoned, baseline, IRIS.screening) == ScreenResult(
        (), ACCEPT, (Skipped(SCREEN, "", "not screened: 12 rows, fewer than min_rows 100"),)
    )
    lower = dataclasses.replace(IRIS.screening, min_rows=10)
    assert screen_batch(profile(batch(9, 5)), baseline, lower).skipped == (
        Skipped(SCREEN, "", "not screened: 9 rows, fewer than min_rows 10"),
    )


def test_min_rows_rows_are_screened_one_fewer_are_not(baseline):
    assert screen_batch(profile(batch(99, 5)), baseline, IRIS.screening).skipped == (
        Skipped(SCREEN, "", "not screened: 99 rows, fewer than min_rows 100"),
    )
    at = screen_batch(profile(batch(100, 5)), baseline, IRIS.screening)
    assert at.screened
    assert {s.check for s in at.skipped} == {"label_feature_psi"}  # every label of 100 rows is under 200


# --- per label: MIN_CLASS_ROWS -------------------------------------------------------------------------------


def test_labels_under_the_per_label_minimum_are_named_with_their_rows(baseline):
    assert MIN_CLASS_ROWS == 200
    found = screen_batch(
        profile(with_labels({"setosa": 250, "versicolor": 150, "virginica": 3}, 7)), baseline, IRIS.screening
    )
    assert found.skipped == (
        per_label("versicolor", "label versicolor has 150 rows in the batch, fewer than 200"),
        per_label("virginica", "label virginica has 3 rows in the batch, fewer than 200"),
    )
    assert ("label_psi", "label") in {(f.check, f.name) for f in found.findings}  # the label mix moved
    assert found.action == "hold"


def test_a_clean_batch_whose_labels_are_all_under_the_minimum_is_accepted_with_those_checks_skipped(baseline):
    # what the pre-flight used to print as "no shift": no label's feature distribution was compared
    found = screen_batch(
        profile(with_labels({"setosa": 100, "versicolor": 100, "virginica": 100}, 7)), baseline, IRIS.screening
    )
    assert found == ScreenResult(
        (),
        ACCEPT,
        (
            per_label("setosa", "label setosa has 100 rows in the batch, fewer than 200"),
            per_label("versicolor", "label versicolor has 100 rows in the batch, fewer than 200"),
            per_label("virginica", "label virginica has 100 rows in the batch, fewer than 200"),
        ),
    )
    assert found.screened


def test_a_label_small_in_the_baseline_or_absent_from_it_is_named():
    small = profile(with_labels({"setosa": 1000, "versicolor": 1000, "virginica": 150}, 8))
    assert screen_batch(profile(batch(5_000, 10)), small, IRIS.screening).skipped == (
        per_label("virginica", "label virginica has 150 rows in the baseline, fewer than 200"),
    )
    both = screen_batch(
        profile(with_labels({"setosa": 250, "versicolor": 250, "virginica": 3}, 7)), small, IRIS.screening
    )
    assert both.skipped == (
        per_label("virginica", "label virginica has 3 rows in the batch and 150 in the baseline, fewer than 200"),
    )
    two = profile(with_labels({"setosa": 1000, "versicolor": 1000}, 9))
    assert screen_batch(profile(batch(5_000, 10)), two, IRIS.screening).skipped == (
        per_label("virginica", "label virginica is not in the baseline"),
    )


def test_a_baseline_with_one_label_cannot_show_flips():
    one = profile(with_labels({"setosa": 1000}, 9))
    found = screen_batch(profile(batch(5_000, 10)), one, IRIS.screening)
    assert found.skipped == (
        per_label("versicolor", "label versicolor is not in the baseline"),
        per_label("virginica", "label virginica is not in the baseline"),
        *(
            Skipped(
                "label_flip",
                name,
                f"label_flip {name} skipped: the baseline has fewer than two labels where {name} has a value",
            )
            for name in NUMERIC.split(", ")
        ),
    )
    assert found.action == "hold"  # two labels the baseline never saw: label_psi


# --- what the batch or the baseline lacks ----------------------------------------------------------------------


def test_a_batch_without_labels_skips_every_label_check(baseline):
    rows = batch(5_000, 10)
    index = rows.schema.get_field_index("species")
    unlabelled = rows.set_column(index, rows.schema.field(index), pa.nulls(rows.num_rows, pa.string()))
    assert screen_batch(profile(unlabelled), baseline, IRIS.screening) == ScreenResult(
        (),
        ACCEPT,
        (Skipped(LABELS, "", "label_psi, label_feature_psi, label_flip and parity skipped: the batch has no labels"),),
    )


def test_a_feature_the_baseline_does_not_profile_is_named(baseline):
    older = json.loads(json.dumps(baseline.to_json()))  # to_json shares the numeric bins: not the fixture's
    del older["numeric"]["petal_width"], older["conditional"]["petal_width"]
    assert screen_batch(profile(batch(5_000, 10)), Profile.from_json(older), IRIS.screening) == ScreenResult(
        (),
        ACCEPT,
        (
            Skipped(
                "feature_psi",
                "petal_width",
                "feature_psi petal_width skipped: the baseline has no profile of petal_width",
            ),
            Skipped(
                "label_feature_psi",
                "petal_width",
                "label_feature_psi petal_width skipped: the baseline has no per-label counts of petal_width",
            ),
            Skipped(
                "label_flip",
                "petal_width",
                "label_flip petal_width skipped: the baseline has no per-label counts of petal_width",
            ),
        ),
    )


def test_a_baseline_written_before_the_label_conditional_view_of_text_features_says_so():
    learned = build_profile([loans_batch(10_000, 1)], LOANS).to_json()
    del learned["categorical_conditional"]
    assert screen_batch(
        build_profile([loans_batch(1000, 300)], LOANS), Profile.from_json(learned), LOANS.screening
    ) == (
        ScreenResult(
            (),
            ACCEPT,
            (
                Skipped(
                    "label_flip", "region", "label_flip region skipped: the baseline has no per-label counts of region"
                ),
            ),
        )
    )


# --- screened: a shift, a clean batch ----------------------------------------------------------------------------


def test_a_shifted_feature_is_found_and_the_contract_says_what_happens(baseline):
    shifted = profile(batch(5_000, 21, shift=1.0))
    found = screen_batch(shifted, baseline, IRIS.screening)
    assert ("feature_psi", "sepal_length") in {(f.check, f.name) for f in found.findings}
    assert {f.name.split("|")[0] for f in found.findings} == {"sepal_length"}
    assert (found.action, found.skipped, found.screened) == ("hold", (), True)
    assert found.findings == tuple(screen(shifted, baseline, IRIS.screening))  # the same comparison
    rejecting = dataclasses.replace(IRIS.screening, action="reject")
    assert screen_batch(shifted, baseline, rejecting) == dataclasses.replace(found, action="reject")


def test_a_clean_batch_is_accepted_with_nothing_skipped(baseline):
    assert screen_batch(profile(batch(5_000, 10)), baseline, IRIS.screening) == ScreenResult((), ACCEPT, ())
