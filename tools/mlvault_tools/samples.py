"""Sample batches that satisfy contracts/iris.json and contracts/loans.json, clean or poisoned on purpose (demo,
tests and `mlvault bench screen`).

Deterministic under a seed. Iris poisoning knobs: `flip` relabels that share of rows to another species, `shift`
adds to every sepal length, `skew_site` labels every row of one site "setosa". Loans: `flip` turns that share of
0/1 labels into the other value. Not shipped to Lambda.
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
