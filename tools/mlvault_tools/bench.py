"""`mlvault bench ingest`: the verify path's hashing step against `openssl dgst -sha256` on the same file, in
one run; its peak memory; the verify handler's import time; each function's unzipped size with its layers.

A command, not a test: numbers depend on the machine. Targets (issue: zero-trust ingest): hashing at least
0.9x openssl's throughput, peak RSS under 64 MB whatever the size, import at most 0.45 s, < 250 MB unzipped.

Why one module of ~580 lines: the measurements share their subprocess harness (a fresh interpreter per probe, its
peak RSS read back) and their report; the model and serving benchmarks, which share nothing of it, have their own
modules (bench_model, bench_serve).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localcloud.cdkout import load_assembly

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Peak memory from VmHWM (per address space, reset by exec): ru_maxrss would carry the parent's peak over.
_HASH_CHILD = """
import re, sys, time
sys.path.insert(0, {library!r})
from mlvault.ingest.digest import sha256_stream
start = time.perf_counter()
with open({path!r}, "rb", buffering=0) as f:
    digest, size = sha256_stream(f)
elapsed = time.perf_counter() - start
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(digest, size, elapsed, hwm)
"""
_IMPORT_CHILD = """
import sys, time
sys.path[:0] = {paths!r}
start = time.perf_counter()
import handler  # noqa: F401
print(time.perf_counter() - start)
"""


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(64 * 1024 * 1024)
    with path.open("wb") as out:
        written = 0
        while written < size:
            chunk = block[: size - written]
            out.write(chunk)
            written += len(chunk)


def _openssl(path: Path) -> tuple[str, float]:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed: it is the reference this benchmark compares with")
    start = time.perf_counter()
    out = subprocess.run([openssl, "dgst", "-sha256", "-r", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0], time.perf_counter() - start


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _import_times(code: Path, layer_dirs: list[Path]) -> dict[str, float]:
    """Import time of the handler module: first-party code from copies of the assets (so that no .pyc lands in
    cdk.out), third-party packages from the local venv (the layer's wheels target Lambda's Python)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [shutil.copytree(code, Path(tmp) / "task")]
        for i, layer in enumerate(d for d in layer_dirs if not any((d / "python").glob("*.dist-info"))):
            paths.append(shutil.copytree(layer / "python", Path(tmp) / f"layer{i}"))
        env = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-1", "POWERTOOLS_SERVICE_NAME": "bench"}
        timings = []
        for _ in range(4):  # the first run compiles the first-party modules; Lambda's task root is read-only
            out = subprocess.run(
                [sys.executable, "-c", _IMPORT_CHILD.format(paths=[str(p) for p in paths])],
                capture_output=True,
                text=True,
                check=True,
                cwd=str(paths[0]),
                env=env,
            )
            timings.append(float(out.stdout.strip()))
    return {"import_s": round(min(timings[1:]), 3), "first_import_s": round(timings[0], 3)}


def run(*, cdk_out: Path, size_mib: int, workdir: Path | None = None) -> dict:
    library = str(Path(__file__).resolve().parents[1])
    report: dict = {"file_mib": size_mib}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "payload.bin"
        _make_file(path, size_mib * 1024 * 1024)
        _openssl(path)  # warm the page cache so both read from memory
        reference, openssl_seconds = _openssl(path)
        child = subprocess.run(
            [sys.executable, "-c", _HASH_CHILD.format(library=library, path=str(path))],
            capture_output=True,
            text=True,
            check=True,
        )
        digest, size, seconds, max_rss_kib = child.stdout.split()
        if digest != reference or int(size) != path.stat().st_size:
            raise RuntimeError(f"digest mismatch: mlvault {digest}, openssl {reference}")
        mib = size_mib
        report["hashing"] = {
            "openssl_mib_s": round(mib / openssl_seconds, 1),
            "mlvault_mib_s": round(mib / float(seconds), 1),
            "ratio_to_openssl": round(openssl_seconds / float(seconds), 3),
            "peak_rss_mib": round(int(max_rss_kib) / 1024, 1),
        }
    stacks = load_assembly(cdk_out)
    functions = {}
    for stack in stacks:
        resources = stack.template.get("Resources", {})
        layers = {
            logical: stack.assets[r["Properties"]["Content"]["S3Key"]]
            for logical, r in resources.items()
            if r["Type"] == "AWS::Lambda::LayerVersion"
        }
        for logical, resource in resources.items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            code = stack.assets[resource["Properties"]["Code"]["S3Key"]]
            layer_dirs = [layers[layer["Ref"]] for layer in resource["Properties"].get("Layers", [])]
            total = _tree_size(code) + sum(_tree_size(d) for d in layer_dirs)
            functions[logical] = {
                "unzipped_mib": round(total / 2**20, 1),
                "under_250_mib": total < LAMBDA_UNZIPPED_LIMIT,
                **_import_times(code, layer_dirs),
            }
    report["functions"] = functions
    return report


def main(cdk_out: Path, size_mib: int) -> int:
    report = run(cdk_out=cdk_out, size_mib=size_mib)
    hashing = report["hashing"]
    print(f"hashing a {report['file_mib']} MiB file (page cache warm, one run each):")
    print(f"  openssl dgst -sha256   {hashing['openssl_mib_s']:8.1f} MiB/s")
    print(
        f"  mlvault sha256_stream  {hashing['mlvault_mib_s']:8.1f} MiB/s  = {hashing['ratio_to_openssl']:.2f}x openssl"
        f"   peak RSS {hashing['peak_rss_mib']} MiB"
    )
    print("functions (code + layers, unzipped; import time of the handler module with warm .pyc):")
    for name, fn in report["functions"].items():
        print(
            f"  {name:40s} {fn['unzipped_mib']:7.1f} MiB  import {fn['import_s']:.3f}s "
            f"(first {fn['first_import_s']:.3f}s)"
        )
    print(json.dumps(report))
    return 0


# --- data contracts ----------------------------------------------------------------------------------------

_READ_CHILD = """
import re, sys, time
sys.path.insert(0, {library!r})
from pathlib import Path
from mlvault.contracts.schema import load_contract, parse_contract
import json
contract = parse_contract({contract!r})
path = Path({path!r})
start = time.perf_counter()
if {mode!r} == "validate":
    from mlvault.contracts.validate import validate_file
    rows = validate_file(path, contract).rows
elif contract.format == "csv":
    from mlvault.contracts.validate import _open_csv
    with path.open("rb") as stream:
        reader, rows = _open_csv(stream, contract), 0
        for batch in reader:
            rows += batch.num_rows
else:
    import pyarrow.parquet as pq
    rows = sum(b.num_rows for b in pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20).iter_batches(
        batch_size=65536, use_threads=False))
elapsed = time.perf_counter() - start
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(rows, elapsed, hwm)
"""


def _iris_files(folder: Path, rows: int) -> tuple[Path, Path]:
    """A CSV and a Parquet file of `rows` iris-like rows that satisfy contracts/iris.json, written in chunks."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    schema = pa.schema(
        [pa.field("sample_id", pa.int64(), False)]
        + [pa.field(n, pa.float64(), False) for n in ("sepal_length", "sepal_width", "petal_length", "petal_width")]
        + [
            pa.field("site", pa.string(), False),
            pa.field("notes", pa.string(), True),
            pa.field("species", pa.string(), False),
        ]
    )
    sites, species = pa.array(["fr-01", "de-02", "es-03", "it-04"]), pa.array(["setosa", "versicolor", "virginica"])
    csv_path, parquet_path = folder / "iris.csv", folder / "iris.parquet"
    chunk = 1_000_000
    with csv.CSVWriter(csv_path, schema) as csv_out, pq.ParquetWriter(parquet_path, schema) as parquet_out:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)

            def pick(values: pa.Array, n: int = n) -> pa.Array:
                return pc.take(values, pc.cast(pc.floor(pc.multiply(pc.random(n), len(values))), pa.int64()))

            columns = [pa.array(range(start + 1, start + n + 1), pa.int64())]
            columns += [pc.round(pc.add(pc.multiply(pc.random(n), 6.0), 1.0), 1) for _ in range(4)]
            columns += [pick(sites), pa.nulls(n, pa.string()), pick(species)]
            batch = pa.record_batch(columns, schema=schema)
            csv_out.write_batch(batch)
            parquet_out.write_batch(batch)
    return csv_path, parquet_path


def _measure(mode: str, path: Path, contract: dict) -> tuple[int, float, float]:
    library = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _READ_CHILD.format(library=library, path=str(path), mode=mode, contract=contract)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"{mode} of {path.name} failed:\n{out.stderr[-2000:]}")
    rows, seconds, hwm = out.stdout.split()
    return int(rows), float(seconds), int(hwm) / 1024


def _peer(python: str, tool: str, path: Path, fmt: str, contract: dict) -> tuple[float, float]:
    script = Path(__file__).with_name("bench_peers.py")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TQDM_DISABLE": "1",
        "GX_ANALYTICS_ENABLED": "False",
        "HOME": tempfile.gettempdir(),
    }  # no analytics calls, no progress bars
    out = subprocess.run(
        [python, str(script), tool, str(path), fmt, json.dumps(contract)], capture_output=True, text=True, env=env
    )
    if out.returncode:
        raise RuntimeError(f"{tool} on {path.name} failed:\n{out.stderr[-2000:]}")
    ok, seconds, hwm = out.stdout.split()[-3:]
    if ok != "True":
        raise RuntimeError(f"{tool} found the valid file invalid: the comparison would not be the same checks")
    return float(seconds), int(hwm) / 1024


def contracts(
    *, rows: int, contracts_dir: Path, scales: tuple[int, ...] = (1, 4), peers_python: str | None = None
) -> dict:
    contract = json.loads((contracts_dir / "iris.json").read_text())
    parquet_contract = {k: v for k, v in contract.items() if k != "csv"} | {"format": "parquet"}
    report: dict = {"rows": rows, "runs": []}
    for scale in scales:
        with tempfile.TemporaryDirectory() as tmp:
            csv_path, parquet_path = _iris_files(Path(tmp), rows * scale)
            for fmt, path, spec in (("csv", csv_path, contract), ("parquet", parquet_path, parquet_contract)):
                _measure("read", path, spec)  # warm the page cache
                read_rows, read_s, read_mib = _measure("read", path, spec)
                checked_rows, check_s, check_mib = _measure("validate", path, spec)
                if read_rows != checked_rows:
                    raise RuntimeError(f"{fmt}: read {read_rows} rows, validated {checked_rows}")
                run = {
                    "format": fmt,
                    "rows": checked_rows,
                    "mib": round(path.stat().st_size / 2**20),
                    "pyarrow_read_s": round(read_s, 2),
                    "mlvault_validate_s": round(check_s, 2),
                    "overhead": round(check_s / read_s - 1, 3),
                    "read_peak_mib": round(read_mib, 1),
                    "validate_peak_mib": round(check_mib, 1),
                }
                for tool in ("pandera", "ge") if peers_python and scale == 1 else ():
                    seconds, peak = _peer(peers_python, tool, path, fmt, spec)
                    run |= {
                        f"{tool}_s": round(seconds, 2),
                        f"{tool}_peak_mib": round(peak, 1),
                        f"{tool}_vs_read": round(seconds / read_s, 1),
                        f"mlvault_faster_than_{tool}": round(seconds / check_s, 1),
                    }
                report["runs"].append(run)
    return report


def contracts_main(rows: int, contracts_dir: Path, peers_python: str | None = None) -> int:
    report = contracts(rows=rows, contracts_dir=contracts_dir, peers_python=peers_python)
    print("validation (contracts/iris.json: types, nulls, ranges, allowed values, pattern, increasing key,")
    print("formula injection) against a bare streaming pyarrow read of the same file, one run each:")
    for run in report["runs"]:
        print(
            f"  {run['format']:8s} {run['rows']:>10,d} rows {run['mib']:6d} MiB  "
            f"pyarrow {run['pyarrow_read_s']:6.2f}s  "
            f"mlvault {run['mlvault_validate_s']:6.2f}s  overhead {run['overhead']:+.0%}  peak RSS "
            f"{run['read_peak_mib']} / {run['validate_peak_mib']} MiB"
        )
        for tool, name in (("pandera", "pandera"), ("ge", "Great Expectations")):
            if f"{tool}_s" in run:
                print(
                    f"           {name:18s} {run[f'{tool}_s']:6.2f}s = {run[f'{tool}_vs_read']}x the bare read, "
                    f"mlvault {run[f'mlvault_faster_than_{tool}']}x faster; peak RSS {run[f'{tool}_peak_mib']} MiB"
                )
    print(json.dumps(report))
    return 0


# --- unique: true memory --------------------------------------------------------------------------------------

_UNIQUE_CHILD = """
import re, sys
sys.path.insert(0, {library!r})
from mlvault.contracts.schema import parse_contract
from mlvault.contracts.validate import validate_file
rows = validate_file({path!r}, parse_contract({contract!r}, check_memory=False)).rows
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(rows, hwm)
"""
UNIQUE_TYPES = ("int32", "int64", "float32", "float64", "date32", "timestamp[ms]", "string")


def _unique_file(folder: Path, fmt: str, type_: str, rows: int, text_bytes: int) -> Path:
    """One column of `rows` distinct values of a type (strings of `text_bytes` bytes), written in chunks."""
    import pyarrow as pa
    import pyarrow.csv as csv

    path = folder / f"unique-{type_.replace('[', '').replace(']', '')}-{text_bytes}.{fmt}"
    chunk = 500_000
    with path.open("wb") as out:
        for start in range(0, rows, chunk):
            ids = range(start + 1, min(rows, start + chunk) + 1)
            if type_ == "string":
                values = pa.array([f"{i:0{text_bytes}d}" for i in ids])
            elif type_ in ("float32", "float64"):
                values = pa.array([i + 0.5 for i in ids], pa.float64())
            elif type_ == "date32":
                values = pa.array(ids, pa.int32()).cast(pa.date32())
            elif type_ == "timestamp[ms]":
                values = pa.array(ids, pa.int64()).cast(pa.timestamp("ms"))
            else:
                values = pa.array(ids, pa.int64())
            if fmt == "csv":
                sink = pa.BufferOutputStream()
                table = pa.table({"key": values})
                csv.write_csv(table, sink, csv.WriteOptions(include_header=start == 0, quoting_style="none"))
                out.write(sink.getvalue().to_pybytes())
            else:  # JSON Lines: strings only (numbers are stored as in CSV)
                out.write("".join(json.dumps({"key": v}) + "\n" for v in values.to_pylist()).encode())
    return path


def _unique_peak(path: Path, contract: dict) -> float:
    library = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _UNIQUE_CHILD.format(library=library, path=str(path), contract=contract)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"validation of {path.name} failed:\n{out.stderr[-2000:]}")
    return int(out.stdout.split()[1]) * 1024


def unique_memory(*, rows: int, text_bytes: tuple[int, ...] = (8, 40)) -> dict:
    """Peak RSS of validating a file whose one column is `unique: true`, minus the same file validated with
    `unique: false`, per row: what the verifier holds per row of a unique column (all values until the end)."""
    report: dict = {"rows": rows, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for type_ in UNIQUE_TYPES:
            for fmt in ("csv", "jsonl") if type_ == "string" else ("csv",):
                for size in text_bytes if type_ == "string" else (0,):
                    n = min(rows, 2_500_000) if type_ == "date32" else rows  # dates end in year 9999
                    path = _unique_file(Path(tmp), fmt, type_, n, size)
                    contract = {"dataset": "bench", "version": "1", "format": fmt, "rows": {"max": n}}
                    column = {"name": "key", "type": type_}
                    plain = _unique_peak(path, {**contract, "columns": [column]})
                    unique = _unique_peak(path, {**contract, "columns": [{**column, "unique": True}]})
                    report["runs"].append(
                        {
                            "type": type_,
                            "rows": n,
                            "format": fmt,
                            "text_bytes": size,
                            "file_mib": round(path.stat().st_size / 2**20, 1),
                            "peak_mib": round(unique / 2**20, 1),
                            "without_unique_mib": round(plain / 2**20, 1),
                            "bytes_per_row": round((unique - plain) / n, 1),
                        }
                    )
                    path.unlink()
    return report


def unique_main(rows: int) -> int:
    from mlvault.contracts.schema import UNIQUE_BYTES_PER_ROW, UNIQUE_BYTES_PER_TEXT_BYTE

    report = unique_memory(rows=rows)
    print(f"memory per row of a unique: true column ({rows:,} rows; peak RSS with unique minus without):")
    for run in report["runs"]:
        text = f", {run['text_bytes']}-byte values" if run["type"] == "string" else ""
        print(
            f"  {run['type']:14s} {run['format']:6s}{text:18s} {run['bytes_per_row']:7.1f} B/row   "
            f"(peak {run['peak_mib']} MiB, {run['without_unique_mib']} MiB without)"
        )
    print(
        f"the contract module charges: {UNIQUE_BYTES_PER_ROW} bytes per row, "
        f"strings + {UNIQUE_BYTES_PER_TEXT_BYTE} per byte of text"
    )
    print(json.dumps(report))
    return 0


# --- the poisoning screen -----------------------------------------------------------------------------------


class _MemoryLedger:
    """The two ledger items the content gate uses (learned baseline, rolling window), in memory, with the same
    revision checks: the benchmark runs the real gate without DynamoDB."""

    def __init__(self) -> None:
        self._items: dict[tuple, object] = {}

    def baseline(self, dataset: str, version: str):
        return self._items.get(("baseline", dataset, version))

    def put_baseline(self, dataset: str, version: str, baseline, *, after: int) -> bool:
        return self._put(("baseline", dataset, version), baseline, after)

    def small_batches(self, dataset: str, version: str, producer: str):
        return self._items.get(("window", dataset, version, producer))

    def put_small_batches(self, dataset: str, version: str, producer: str, window, *, after: int) -> bool:
        return self._put(("window", dataset, version, producer), window, after)

    def _put(self, key: tuple, value, after: int) -> bool:
        import dataclasses

        current = self._items.get(key)
        if (current.revision if current else 0) != after:
            return False
        self._items[key] = dataclasses.replace(value, revision=after + 1)
        return True


SCREEN_RATES = (0.05, 0.1, 0.2, 0.3)


def _gate_run(gate, dataset: str, body: bytes, *, producer: str | None = None, source: str | None = None):
    import io

    return gate.inspect(
        dataset=dataset,
        contract_version="1",
        size=len(body),
        open_body=lambda: io.BytesIO(body),
        producer=producer,
        source=source,
    )


def screen_table(
    *,
    contracts_dir: Path,
    dataset: str = "loans",
    batch_rows: int = 1000,
    clean: int = 100,
    poisoned: int = 20,
    rates: tuple[float, ...] = SCREEN_RATES,
    small_rows: int = 50,
    small_batches: int = 40,
    baseline_rows: int | None = None,
) -> dict:
    """Batches of generated data through the real content gate (validation, profile, screen, rolling window),
    against a baseline the gate learns from clean batches first, as the verifier does: how many clean batches
    are held (false alarms) and how many with a share of flipped labels are (detection); then the same poison
    split into batches under min_rows, screened by the rolling window. `baseline_rows` overrides the contract's
    (a copy of the contracts directory is changed)."""
    import shutil as _shutil
    import tempfile as _tempfile

    from mlvault.contracts.gate import ContentGate
    from mlvault.contracts.schema import load_contract
    from mlvault_tools.samples import iris_csv, loans_csv

    make = {"loans": loans_csv, "iris": iris_csv}[dataset]
    workdir = Path(_tempfile.mkdtemp())
    if baseline_rows is not None:
        contracts_dir = Path(_shutil.copytree(contracts_dir, workdir / "contracts"))
        raw = json.loads((contracts_dir / f"{dataset}.json").read_text())
        raw.setdefault("screening", {})["baseline_rows"] = baseline_rows
        (contracts_dir / f"{dataset}.json").write_text(json.dumps(raw))
    contract = load_contract(contracts_dir, dataset)
    s = contract.screening
    report: dict = {
        "dataset": dataset,
        "batch_rows": batch_rows,
        "baseline_rows": s.baseline_rows,
        "min_rows": s.min_rows,
        "thresholds": {
            "feature_psi": s.feature_psi,
            "label_psi": s.label_psi,
            "parity_increase": s.parity_increase,
            "label_flip": s.label_flip,
        },
        "rows": [],
    }
    try:
        gate = ContentGate(Path(contracts_dir), _MemoryLedger(), spool_dir=str(workdir))  # type: ignore[arg-type]
        seed = 1_000_000
        while True:  # learn the baseline from clean batches, as the verifier does
            inspection = _gate_run(gate, dataset, make(batch_rows, seed))
            seed += 1
            if not inspection.learning:
                break
            gate.learn(inspection)
        report["baseline"] = inspection.baseline

        def run(label: str, batches: list[bytes], **window) -> None:
            held, checks = 0, {}
            for body in batches:
                found = _gate_run(gate, dataset, body, **window).findings
                held += bool(found)
                for check in {f.check for f in found}:
                    checks[check] = checks.get(check, 0) + 1
            report["rows"].append({"batches": label, "n": len(batches), "held": held, "checks": checks})

        run(f"clean, {batch_rows} rows", [make(batch_rows, 2_000_000 + i) for i in range(clean)])
        for rate in rates:
            seeds = range(3_000_000 + int(rate * 1000) * 1000, 3_000_000 + int(rate * 1000) * 1000 + poisoned)
            run(f"{rate:.0%} flipped, {batch_rows} rows", [make(batch_rows, i, flip=rate) for i in seeds])
        # the rolling screen: small batches (under min_rows) of one producer, screened per window of min_rows rows
        windows = -(-s.min_rows // small_rows)
        for rate in (0.0, 0.2):
            bodies = [
                make(small_rows, 4_000_000 + int(rate * 100) * 10_000 + i, flip=rate) for i in range(small_batches)
            ]
            held, done = 0, 0
            for i, body in enumerate(bodies):
                found = _gate_run(gate, dataset, body, producer=f"bench-{rate}", source=f"small-{i}.csv#v1").findings
                held += bool(found)
                done += (i + 1) % windows == 0
            report["rows"].append(
                {
                    "batches": f"{'clean' if not rate else f'{rate:.0%} flipped'}, {small_batches} x {small_rows} rows "
                    f"(windows of {windows} batches)",
                    "n": done,
                    "held": held,
                    "checks": {},
                    "unit": "windows",
                }
            )
    finally:
        _shutil.rmtree(workdir, ignore_errors=True)
    return report


def screen_main(
    contracts_dir: Path, datasets: tuple[str, ...] = ("loans", "iris"), baseline_rows: int | None = None
) -> int:
    reports = [screen_table(contracts_dir=contracts_dir, dataset=d, baseline_rows=baseline_rows) for d in datasets]
    for report in reports:
        t = report["thresholds"]
        print(
            f"{report['dataset']}: {report['batch_rows']}-row batches through the content gate, against the baseline "
            f"it learned ({report['baseline']}); thresholds feature_psi {t['feature_psi']}, label_psi "
            f"{t['label_psi']}, parity_increase {t['parity_increase']}, label_flip {t['label_flip']}, each plus "
            "its sampling noise"
        )
        print(f"  {'batches':58s} {'held':>12s}  by check")
        for row in report["rows"]:
            unit = row.get("unit", "batches")
            share = f"{row['held']}/{row['n']}" + (f" {row['held'] / row['n']:.0%}" if row["n"] else "")
            checks = ", ".join(f"{k} {v}" for k, v in sorted(row["checks"].items())) or "-"
            print(f"  {row['batches']:58s} {share:>12s}  {checks if unit == 'batches' else 'per window'}")
    print(json.dumps(reports))
    return 0
