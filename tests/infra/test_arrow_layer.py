"""The pyarrow layer's trim keeps what the verifier uses.

infra/layers.py trims the Lambda wheel (cp314); the local venv's pyarrow (cp311) has the same layout, so the
trim is applied to a copy of it, and a fresh interpreter that takes pyarrow from that copy only (and has no numpy,
as in Lambda) reads CSV, JSON Lines and Parquet with the options the data contracts use.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.layers import trim_pyarrow
from tests.conftest import ROOT

LIBRARY = ROOT / "layers" / "mlvault" / "python"

PROBE = r"""
import json, sys
trimmed, library, work = sys.argv[1:4]
sys.path[:0] = [trimmed, library]
sys.modules["numpy"] = sys.modules["pandas"] = None  # as in the Lambda layers: `import numpy` fails

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as csv
import pyarrow.json as pj
import pyarrow.parquet as pq
import mlvault.contracts.screen
import mlvault.contracts.validate

out = {"modules": sorted({getattr(m, "__file__", None) or "" for n, m in sys.modules.items()
                          if n == "pyarrow" or n.startswith("pyarrow.")} - {""})}

with open(f"{work}/iris.csv", "wb") as f:
    f.write(b"sepal_length,species\n5.1,setosa\n4.9,setosa\n6.3,virginica\n")
reader = csv.open_csv(
    f"{work}/iris.csv",
    read_options=csv.ReadOptions(block_size=1 << 20, use_threads=False),
    convert_options=csv.ConvertOptions(
        column_types={"sepal_length": pa.float64(), "species": pa.dictionary(pa.int32(), pa.string())}
    ),
)
table = pa.Table.from_batches(list(reader))
out["csv_rows"] = table.num_rows
out["csv_min_max"] = pc.min_max(table["sepal_length"]).as_py()
out["csv_species"] = sorted(pc.unique(table["species"].cast(pa.string())).to_pylist())

with open(f"{work}/iris.jsonl", "wb") as f:
    f.write(b'{"sepal_length": 5.1, "species": "setosa"}\n{"sepal_length": 7.0, "species": "versicolor"}\n')
schema = pa.schema([("sepal_length", pa.float64()), ("species", pa.string())])
reader = pj.open_json(
    f"{work}/iris.jsonl",
    read_options=pj.ReadOptions(use_threads=False),
    parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
)
out["jsonl_rows"] = sum(batch.num_rows for batch in reader)

pq.write_table(table.cast(schema), f"{work}/iris.parquet")
parquet = pq.ParquetFile(f"{work}/iris.parquet", pre_buffer=False, buffer_size=1 << 20, read_dictionary=["species"])
batches = list(parquet.iter_batches(batch_size=2, use_threads=False))
out["parquet_rows"] = sum(b.num_rows for b in batches)
out["parquet_sum"] = pc.sum(pa.concat_arrays([b.column(0) for b in batches])).as_py()

gone = {}
for name in ("pyarrow.flight", "pyarrow.orc", "pyarrow._s3fs", "pyarrow._gcsfs", "pyarrow._azurefs"):
    try:
        __import__(name)
        gone[name] = False
    except ImportError:
        gone[name] = True
out["gone"] = gone
print(json.dumps(out))
"""


def _venv_pyarrow() -> Path:
    spec = importlib.util.find_spec("pyarrow")
    assert spec is not None, "pyarrow is not installed in the venv (make setup)"
    assert spec.origin
    return Path(spec.origin).parent


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory) -> tuple[Path, int]:
    site = tmp_path_factory.mktemp("arrow-layer") / "python"
    source = _venv_pyarrow()
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(source, site / "pyarrow", ignore=ignore)
    libs = source.parent / "pyarrow.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / "pyarrow.libs")
    return site, trim_pyarrow(site)


def test_the_trim_removes_what_no_function_needs(trimmed):
    site, removed = trimmed
    package = site / "pyarrow"
    assert removed > 40 * 1024 * 1024, removed  # Flight and libarrow_s3 alone are ~48 MiB
    for gone in ("flight.py", "orc.py", "tests", "include", "src", "libarrow_python.so"):
        assert not (package / gone).exists(), gone
    for gone in ("libarrow_flight.so*", "libarrow_s3.so*", "_flight.*", "_orc.*", "_s3fs.*", "*.pyx", "*.pxd"):
        assert not list(package.glob(gone)), gone
    for kept in ("libarrow_substrait.so.*", "libparquet.so.*", "libarrow_python.so.*", "_csv.*", "_json.*"):
        assert list(package.glob(kept)), kept
    assert trim_pyarrow(site) == 0  # idempotent


def test_csv_json_and_parquet_work_from_the_trimmed_copy_alone(trimmed, tmp_path):
    site, _ = trimmed
    # -I: no PYTHON* variables, no user site, no working directory; the trimmed copy comes first on the path, and
    # every pyarrow module loaded must come from it (the venv's own pyarrow is further down the path).
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(site), str(LIBRARY), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "pyarrow/__init__.py" in "\n".join(out["modules"])
    assert all(Path(m).is_relative_to(site) for m in out["modules"]), out["modules"]
    assert out["csv_rows"] == 3
    assert out["csv_min_max"] == {"min": 4.9, "max": 6.3}
    assert out["csv_species"] == ["setosa", "virginica"]
    assert out["jsonl_rows"] == 2
    assert out["parquet_rows"] == 3
    assert out["parquet_sum"] == pytest.approx(16.3)
    assert all(out["gone"].values()), out["gone"]


def test_trim_refuses_a_directory_without_pyarrow(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pyarrow"):
        trim_pyarrow(tmp_path)
