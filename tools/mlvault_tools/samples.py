"""Sample iris batches that satisfy contracts/iris.json, clean or poisoned on purpose (demo and tests).

Deterministic under a seed. Poisoning knobs: `flip` relabels that share of rows to another species, `shift` adds
to every sepal length, `skew_site` labels every row of one site "setosa". Not shipped to Lambda.
"""

from __future__ import annotations

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
