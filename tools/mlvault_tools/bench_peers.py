"""Validation by peers (pandera, Great Expectations) of the same file with the same checks, for `mlvault bench
contracts`. Run as a file by the bench venv's Python (pandas, pandera, great_expectations): no mlvault import.

Arguments: tool (pandera|ge), path, format (csv|parquet), the contract as JSON. Prints: ok seconds peak_kib.
Timing covers reading the file (pandas, pyarrow engine: the fastest it offers) and validating; imports excluded.
"""

import json
import re
import sys
import time

import pandas as pd

FORMULA = r"^[=+\-@\t\r]"
DTYPES = {
    "int64": "int64",
    "int32": "int32",
    "float64": "float64",
    "float32": "float32",
    "string": "string",
    "bool": "boolean",
}


def read(path: str, fmt: str, columns: list[dict]) -> pd.DataFrame:
    if fmt == "csv":
        dtypes = {c["name"]: DTYPES[c["type"]] for c in columns}
        return pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""], engine="pyarrow")
    return pd.read_parquet(path)


def with_pandera(df: pd.DataFrame, fmt: str, columns: list[dict]) -> bool:
    import pandera.pandas as pa

    schema = {}
    for c in columns:
        checks = []
        if "min" in c:
            checks.append(pa.Check.ge(c["min"]))
        if "max" in c:
            checks.append(pa.Check.le(c["max"]))
        if "allowed" in c:
            checks.append(pa.Check.isin(c["allowed"]))
        if "pattern" in c:
            checks.append(pa.Check.str_matches(f"^(?:{c['pattern']})$"))
        if c["type"] == "string" and fmt == "csv":
            checks.append(pa.Check(lambda s: ~s.str.match(FORMULA).fillna(False)))
        if c["type"].startswith("float"):
            checks.append(pa.Check(lambda s: s.abs().lt(float("inf")) | s.isna()))
        if c.get("unique") == "increasing":
            checks.append(pa.Check(lambda s: s.is_monotonic_increasing and s.is_unique))
        schema[c["name"]] = pa.Column(
            DTYPES[c["type"]],
            checks=checks,
            nullable=c.get("nullable", False),
            required=c.get("required", True),
            unique=c.get("unique") is True,
        )
    pa.DataFrameSchema(schema, strict=True).validate(df)
    return True


def with_great_expectations(df: pd.DataFrame, fmt: str, columns: list[dict]) -> bool:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("p")
        .add_dataframe_asset("df")
        .add_batch_definition_whole_dataframe("b")
        .get_batch(batch_parameters={"dataframe": df})
    )
    suite = context.suites.add(gx.ExpectationSuite(name="contract"))
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=[c["name"] for c in columns], exact_match=True))
    for c in columns:
        name = c["name"]
        if not c.get("nullable", False):
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=name))
        if "min" in c or "max" in c:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeBetween(column=name, min_value=c.get("min"), max_value=c.get("max"))
            )
        if "allowed" in c:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=c["allowed"]))
        if "pattern" in c:
            suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=f"^(?:{c['pattern']})$"))
        if c["type"] == "string" and fmt == "csv":
            suite.add_expectation(gxe.ExpectColumnValuesToNotMatchRegex(column=name, regex=FORMULA))
        if c.get("unique"):
            suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column=name))
        if c.get("unique") == "increasing":
            suite.add_expectation(gxe.ExpectColumnValuesToBeIncreasing(column=name, strictly=True))
    return batch.validate(suite).success


def main() -> None:
    tool, path, fmt, contract = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if tool == "ge":
        import great_expectations  # noqa: F401 - imported before the clock starts
    else:
        import pandera.pandas  # noqa: F401
    start = time.perf_counter()
    df = read(path, fmt, contract["columns"])
    ok = (with_pandera if tool == "pandera" else with_great_expectations)(df, fmt, contract["columns"])
    elapsed = time.perf_counter() - start
    with open("/proc/self/status") as status:
        hwm = re.search(r"VmHWM:\s+(\d+) kB", status.read()).group(1)
    print(ok, elapsed, hwm)


if __name__ == "__main__":
    main()
