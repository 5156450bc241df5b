"""Sample batches that satisfy contracts/iris.json, contracts/loans.json and contracts/credit.json, clean or
poisoned on purpose (demo, tests, `mlvault bench screen` and `mlvault bench model`).

Deterministic under a seed. Iris poisoning knobs: `flip` relabels that share of rows to another species, `shift`
adds to every sepal length, `skew_site` labels every row of one site "setosa". Loans: `flip` turns that share of
0/1 labels into the other value. Credit (numpy, vectorized, streamed in batches: `credit_batches`): `flip`
flips more decisions, `gender_bias` declines approved women on purpose. Not shipped to Lambda.
"""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pyarrow.csv as csv

SPECIES = ("setosa", "versicolor", "virginica")
MEANS = {"setosa": (5.0, 3.4, 1.5, 0.25), "versicolor": (5.9, 2.8, 4.3, 1.3), "virginica": (6.6, 3.0, 5.6, 2.0)}
SITES = ("fr-01", "de-02", "es-03")
COLUMNS = ("sample_id", "sepal_length", "sepal_width", "petal_length", "petal_width", "site", "notes", "species")
SCHEMA = pa.schema(
    [pa.field("sample_id", pa.int64(), False)]
    + [pa.field(n, pa.float64(), False) for n in COLUMNS[1:5]]
    + [pa.field("site", pa.string(), False), pa.field("notes", pa.string()), pa.field("species", pa.string(), False)]
)


def iris_batch(
    rows: int, seed: int, *, flip: float = 0.0, shift: float = 0.0, skew_site: str | None = None
) -> pa.RecordBatch:
    rng = random.Random(seed)  # noqa: S311 - sample data, deterministic on purpose
    columns: dict[str, list] = {name: [] for name in COLUMNS}
    for i in range(rows):
        species = rng.choice(SPECIES)
        site = rng.choice(SITES)
        measures = [round(max(0.1, rng.gauss(m, 0.3)), 2) for m in MEANS[species]]
        measures[0] = round(measures[0] + shift, 2)
        label = species
        if skew_site and site == skew_site:
            label = "setosa"
        elif flip and rng.random() < flip:
            label = rng.choice([s for s in SPECIES if s != species])
        for name, value in zip(COLUMNS, [i + 1, *measures, site, None, label], strict=True):
            columns[name].append(value)
    return pa.record_batch([pa.array(columns[f.name], f.type) for f in SCHEMA], schema=SCHEMA)


def iris_csv(rows: int = 200, seed: int = 0, **poison: object) -> bytes:
    """A contract-valid iris CSV (header, "," delimiter, empty cells for nulls)."""
    sink = pa.BufferOutputStream()
    csv.write_csv(iris_batch(rows, seed, **poison), sink, csv.WriteOptions(quoting_style="none"))
    return sink.getvalue().to_pybytes()


# --- loans: a 0/1 label that is a noisy function of the features -------------------------------------------

REGIONS = ("north", "south", "east", "west")
REGION_WEIGHTS = (0.35, 0.3, 0.2, 0.15)
REGION_INCOME = {"north": 0.15, "south": -0.1, "east": 0.0, "west": -0.2}  # log-income offset
REGION_RISK = {"north": -0.3, "south": 0.4, "east": 0.0, "west": 0.3}  # log-odds of default offset
GENDERS = ("female", "male")
LOANS_COLUMNS = ("loan_id", "income", "age", "region", "gender", "defaulted")
LOANS_SCHEMA = pa.schema(
    [
        pa.field("loan_id", pa.int64(), False),
        pa.field("income", pa.float64(), False),
        pa.field("age", pa.int64(), False),
        pa.field("region", pa.string(), False),
        pa.field("gender", pa.string(), False),
        pa.field("defaulted", pa.int64(), False),
    ]
)


def default_probability(income: float, age: int, region: str) -> float:
    """The loans generator's true P(defaulted = 1 | features): logistic in log-income, age and region (gender,
    the protected attribute, has no effect). About a quarter of the loans default; the features explain part of
    it, the rest is noise (a model reaches an AUC of about 0.8)."""
    logit = -1.0 - 1.3 * (math.log(income) - 10.6) / 0.55 - 0.03 * (age - 42) + REGION_RISK[region]
    return 1 / (1 + math.exp(-logit))


def loans_batch(rows: int, seed: int, *, flip: float = 0.0, first_id: int = 1) -> pa.RecordBatch:
    """`rows` loan applications (income, age, region, gender) and whether each defaulted: a Bernoulli draw from
    `default_probability`, then, with probability `flip`, turned into the other label (the poisoning)."""
    rng = random.Random(seed)  # noqa: S311 - sample data, deterministic on purpose
    columns: dict[str, list] = {name: [] for name in LOANS_COLUMNS}
    for i in range(rows):
        region = rng.choices(REGIONS, REGION_WEIGHTS)[0]
        gender = rng.choice(GENDERS)
        age = min(90, max(18, round(rng.gauss(42, 12))))
        income = math.exp(rng.gauss(10.6 + REGION_INCOME[region] + 0.008 * (age - 42), 0.55))
        income = round(min(499_000.0, max(5_000.0, income)), 2)
        label = int(rng.random() < default_probability(income, age, region))
        if flip and rng.random() < flip:
            label = 1 - label
        for name, value in zip(LOANS_COLUMNS, (first_id + i, income, age, region, gender, label), strict=True):
            columns[name].append(value)
    return pa.record_batch([pa.array(columns[f.name], f.type) for f in LOANS_SCHEMA], schema=LOANS_SCHEMA)


def loans_csv(rows: int = 1000, seed: int = 0, **poison: object) -> bytes:
    """A contract-valid loans CSV (contracts/loans.json)."""
    sink = pa.BufferOutputStream()
    csv.write_csv(loans_batch(rows, seed, **poison), sink, csv.WriteOptions(quoting_style="none"))
    return sink.getvalue().to_pybytes()


# --- credit: a credit-decision dataset of numeric and categorical features, a protected attribute, a noisy label ---

EMPLOYMENT = ("salaried", "self-employed", "unemployed", "retired", "student")
EMPLOYMENT_WEIGHTS = (0.55, 0.17, 0.08, 0.12, 0.08)
EMPLOYMENT_RISK = {"salaried": -0.4, "self-employed": 0.1, "unemployed": 1.3, "retired": 0.0, "student": 0.6}
HOME = ("rent", "own", "mortgage")
HOME_WEIGHTS = (0.4, 0.25, 0.35)
HOME_RISK = {"rent": 0.25, "own": -0.35, "mortgage": -0.1}
PURPOSES = ("car", "home", "education", "business", "debt", "other")
PURPOSE_WEIGHTS = (0.22, 0.18, 0.1, 0.12, 0.28, 0.1)
PURPOSE_RISK = {"car": -0.1, "home": -0.3, "education": 0.1, "business": 0.35, "debt": 0.25, "other": 0.05}
TERMS = (12, 24, 36, 48, 60)
CREDIT_DECISIONS = ("approved", "declined")
CREDIT_COLUMNS = (
    "application_id",
    "age",
    "income",
    "loan_amount",
    "term_months",
    "credit_score",
    "employment",
    "home_ownership",
    "purpose",
    "gender",
    "decision",
)
CREDIT_SCHEMA = pa.schema(
    [
        pa.field("application_id", pa.int64(), False),
        pa.field("age", pa.int64(), False),
        pa.field("income", pa.float64(), False),
        pa.field("loan_amount", pa.float64(), False),
        pa.field("term_months", pa.int64(), False),
        pa.field("credit_score", pa.int64(), True),  # unknown for applicants without a credit history
        pa.field("employment", pa.string(), False),
        pa.field("home_ownership", pa.string(), False),
        pa.field("purpose", pa.string(), False),
        pa.field("gender", pa.string(), False),
        pa.field("decision", pa.string(), False),
    ]
)


def credit_batch(
    rows: int, seed: int, *, first_id: int = 1, noise: float = 0.05, flip: float = 0.0, gender_bias: float = 0.0
) -> pa.RecordBatch:
    """`rows` credit applications and their decision, deterministic under `seed` (numpy's PCG64).

    The decision is a Bernoulli draw from a logistic risk in the debt-to-income ratio, the credit score (a missing
    score counts as risky), age, employment, home ownership and purpose; gender (the protected attribute) has no
    effect. `noise` flips that share of decisions at random (the label is noisy: a model reaches about 0.84
    accuracy), `flip` flips more of them (poisoning), and `gender_bias` > 0 declines that share of the approved
    women on top (a biased history: a model trained on it fails the parity gates)."""
    import numpy as np

    rng = np.random.default_rng([seed, first_id])
    age = np.clip(np.rint(rng.normal(41, 12, rows)), 18, 90).astype(np.int64)
    employment = np.array(EMPLOYMENT)[rng.choice(len(EMPLOYMENT), rows, p=EMPLOYMENT_WEIGHTS)]
    employment = np.where((age < 25) & (rng.random(rows) < 0.4), "student", employment)
    employment = np.where((age > 66) & (rng.random(rows) < 0.7), "retired", employment)
    base = {"salaried": 10.9, "self-employed": 10.8, "unemployed": 9.6, "retired": 10.2, "student": 9.4}
    income = np.exp(np.array([base[e] for e in employment]) + rng.normal(0, 0.45, rows))
    income = np.round(np.clip(income, 3_000, 950_000), 2)
    home = np.array(HOME)[rng.choice(len(HOME), rows, p=HOME_WEIGHTS)]
    purpose = np.array(PURPOSES)[rng.choice(len(PURPOSES), rows, p=PURPOSE_WEIGHTS)]
    term = np.array(TERMS)[rng.choice(len(TERMS), rows)]
    loan = np.round(np.clip(income * rng.lognormal(-1.2, 0.6, rows), 500, 95_000), 2)
    score = np.clip(np.rint(rng.normal(660, 75, rows) + 0.9 * (age - 41)), 300, 850).astype(np.int64)
    missing = rng.random(rows) < 0.04
    gender = np.array(GENDERS)[rng.choice(2, rows)]
    dti = loan / income
    logit = 2.5 * (
        -0.4
        + 3.2 * (dti - 0.35)
        - 0.018 * (np.where(missing, 560, score) - 660)
        - 0.01 * (age - 41)
        + 0.006 * (term - 36)
        + np.array([EMPLOYMENT_RISK[e] for e in employment])
        + np.array([HOME_RISK[h] for h in home])
        + np.array([PURPOSE_RISK[p] for p in purpose])
    )
    declined = rng.random(rows) < 1 / (1 + np.exp(-logit))
    declined ^= rng.random(rows) < noise
    if flip:
        declined ^= rng.random(rows) < flip
    if gender_bias:
        declined |= (gender == "female") & (rng.random(rows) < gender_bias)
    columns = {
        "application_id": np.arange(first_id, first_id + rows, dtype=np.int64),
        "age": age,
        "income": income,
        "loan_amount": loan,
        "term_months": term.astype(np.int64),
        "credit_score": pa.array(score, mask=missing),
        "employment": employment,
        "home_ownership": home,
        "purpose": purpose,
        "gender": gender,
        "decision": np.where(declined, "declined", "approved"),
    }
    return pa.record_batch(
        [
            columns[f.name] if isinstance(columns[f.name], pa.Array) else pa.array(columns[f.name], f.type)
            for f in CREDIT_SCHEMA
        ],
        schema=CREDIT_SCHEMA,
    )


def credit_batches(rows: int, seed: int, *, batch_rows: int = 100_000, first_id: int = 1, **knobs: float):
    """`rows` applications as consecutive batches (ids first_id..first_id + rows - 1): memory flat in rows, the
    same rows for the same `batch_rows` (each batch is drawn from (seed, its first id))."""
    first = first_id
    while first < first_id + rows:
        count = min(batch_rows, first_id + rows - first)
        yield credit_batch(count, seed, first_id=first, **knobs)
        first += count


def credit_csv(rows: int = 100_000, seed: int = 0, **knobs: float) -> bytes:
    """A contract-valid credit CSV (contracts/credit.json), empty cells for a missing credit score."""
    sink = pa.BufferOutputStream()
    with csv.CSVWriter(sink, CREDIT_SCHEMA, write_options=csv.WriteOptions(quoting_style="none")) as writer:
        for batch in credit_batches(rows, seed, **knobs):
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def write_credit_csv(path, rows: int, seed: int = 0, *, first_id: int = 1, **knobs: float) -> None:
    """Stream a credit CSV of any size to a file (the benchmarks)."""
    with csv.CSVWriter(str(path), CREDIT_SCHEMA, write_options=csv.WriteOptions(quoting_style="none")) as writer:
        for batch in credit_batches(rows, seed, first_id=first_id, **knobs):
            writer.write_batch(batch)
