"""`mlvault bench model`: the bring-your-own-model pipeline at scale (a command, not a test).

- prepare: the sagemaker engine's prepare step (mlvault.training.channels.prepare_inputs: every manifest entry
  read by version and re-verified, split three ways, written as bounded Parquet parts through a spool file) on
  1M and 10M credit rows (CSV files of 1M rows each, the lake); rows/s and the peak RSS of the process;
- evaluate: the evaluate step's measurements (mlvault.training.evaluation.evaluate_package: the credit model's
  ONNX graph under onnxruntime, one thread, over held-out Parquet parts downloaded and verified part by part) on
  1M held-out rows; rows/s and peak RSS.

Each measurement runs in a fresh Python process (its peak RSS is its own, ru_maxrss), against `DiskS3`: a
versioned object store on local files, so the memory measured is mlvault's, not an in-memory S3's. The credit
model is trained once by the team's own models/credit/train.py (script mode, in a temporary /opt/ml layout).

For serving: `credit_package(workdir)` returns the directory of a credit model package (model.onnx,
descriptor.json, drift.json) built the way the pipeline builds it, and `SECTIONS` is where another measurement
(serving latency with attestation) adds itself: `SECTIONS["serve"] = fn(workdir) -> dict`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
FILE_ROWS = 1_000_000
SECTIONS: dict[str, Callable[[Path], dict[str, Any]]] = {}


class DiskS3:
    """The S3 calls the pipeline's steps make (get, put, head by key and version), on local files."""

    class exceptions:
        NoSuchKey = ClientError

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, bucket: str, key: str, version: str) -> Path:
        return self.folder / bucket / key / version

    def _latest(self, bucket: str, key: str) -> str | None:
        folder = self.folder / bucket / key
        versions = sorted(p.name for p in folder.iterdir() if "." not in p.name) if folder.is_dir() else []
        return versions[-1] if versions else None

    def put_object(self, *, Bucket: str, Key: str, Body: Any, Metadata: dict | None = None, **_: Any) -> dict:
        latest = self._latest(Bucket, Key)
        version = f"v{int(latest[1:]) + 1 if latest else 1:08d}"
        path = self._path(Bucket, Key, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            if isinstance(Body, bytes | bytearray):
                out.write(Body)
            else:
                shutil.copyfileobj(Body, out, 1024 * 1024)
        path.with_suffix(".meta").write_text(json.dumps(Metadata or {}))
        return {"VersionId": version}

    def get_object(self, *, Bucket: str, Key: str, VersionId: str | None = None, **_: Any) -> dict:
        version = VersionId or self._latest(Bucket, Key)
        path = self._path(Bucket, Key, version or "none")
        if not path.is_file():
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": Key}}, "GetObject")
        return {"Body": path.open("rb"), "VersionId": version, "ContentLength": path.stat().st_size}

    def head_object(self, *, Bucket: str, Key: str, **_: Any) -> dict:
        version = self._latest(Bucket, Key)
        if version is None:
            raise ClientError({"Error": {"Code": "404", "Message": Key}}, "HeadObject")
        path = self._path(Bucket, Key, version)
        metadata = json.loads(path.with_suffix(".meta").read_text())
        return {"VersionId": version, "ContentLength": path.stat().st_size, "Metadata": metadata}

    def put_file(self, bucket: str, key: str, source: Path) -> tuple[str, str, int]:
        from mlvault.training.objects import file_sha256

        with source.open("rb") as body:
            version = self.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]
        digest, size = file_sha256(source)
        return version, digest, size


def _lake(workdir: Path, rows: int) -> list[dict[str, Any]]:
    """Credit CSV files of FILE_ROWS rows (cached in workdir), stored in the disk lake; manifest entries."""
    from mlvault_tools.samples import write_credit_csv

    s3 = DiskS3(workdir / "s3")
    entries = []
    for index in range((rows + FILE_ROWS - 1) // FILE_ROWS):
        count = min(FILE_ROWS, rows - index * FILE_ROWS)
        csv = workdir / "csv" / f"credit-{index:03d}-{count}.csv"
        if not csv.exists():
            csv.parent.mkdir(parents=True, exist_ok=True)
            write_credit_csv(csv, count, seed=index, first_id=1 + index * FILE_ROWS)
        key = f"datasets/credit/bench/{csv.name}"
        version, digest, size = s3.put_file("lake", key, csv)
        entries.append(
            {
                "lake_bucket": "lake",
                "lake_key": key,
                "lake_version": version,
                "sha256": digest,
                "size": size,
                "rows": count,
                "producer": "acme",
                "key_id": "acme-p256",
                "contract_version": "1",
                "ingest": [{"bucket": "ingest", "key": key, "version_id": "v1"}],
            }
        )
    return entries


def _child(section: str, **arguments: Any) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its JSON result with its own peak RSS."""
    done = subprocess.run(
        [sys.executable, "-m", "mlvault_tools.bench_model", section, json.dumps(arguments)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers/mlvault/python"), str(ROOT / "tools")])},
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench {section} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spec(workdir: Path, *, heldout: float, validation: float) -> Any:
    from mlvault.training.specs import CodeAsset, ModelSpec

    code = workdir / "sourcedir.tar.gz"
    if not code.exists():
        from mlvault.training.job_entry.source_asset import build_source_asset

        build_source_asset(ROOT / "models" / "credit", code)
    s3 = DiskS3(workdir / "s3")
    _, digest, _ = s3.put_file("assets", "credit/sourcedir.tar.gz", code)
    return ModelSpec(
        name="credit",
        dataset="credit",
        engine="sagemaker",
        heldout_fraction=heldout,
        validation_fraction=validation,
        code=CodeAsset("assets", "credit/sourcedir.tar.gz", digest),
    )


def prepare_child(arguments: dict[str, Any]) -> dict[str, Any]:
    from mlvault.contracts.schema import load_contract
    from mlvault.training.channels import prepare_inputs
    from mlvault.training.manifest import Manifest, ManifestEntry

    workdir = Path(arguments["workdir"])
    entries = tuple(ManifestEntry.from_json(e) for e in arguments["entries"])
    manifest = Manifest("credit", "1", entries)
    spec = _spec(workdir, heldout=arguments["heldout"], validation=arguments["validation"])
    contract = load_contract(ROOT / "contracts", "credit")
    start = time.perf_counter()
    state = prepare_inputs(
        DiskS3(workdir / "s3"), bucket="models", manifest=manifest, contract=contract, spec=spec, run_id="bench-1"
    )
    took = time.perf_counter() - start
    channels = state["job"]["channels"]
    parts = [p for c in ("train", "validation") if c in channels for p in channels[c]["parts"]]
    return {
        "rows": manifest.rows,
        "seconds": round(took, 2),
        "rows_per_second": round(manifest.rows / took),
        "peak_rss_mib": round(_peak_mib(), 1),
        "parts": len(parts) + len(state["heldout"]["parts"]),
        "largest_part_mib": round(max(p["bytes"] for p in parts) / 2**20, 1),
        "heldout": state["heldout"],
    }


def credit_package(workdir: Path, *, rows: int = 100_000) -> Path:
    """A credit model package directory (model.onnx, descriptor.json, drift.json), trained once by
    models/credit/train.py on `rows` rows, its drift reference computed as the collect step computes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlvault.canonical import canonical_json
    from mlvault.model_package import parse_descriptor
    from mlvault.training.drift_stream import stream_reference
    from mlvault.training.onnx_scoring import OnnxScorer
    from mlvault_tools.samples import credit_batch

    package = workdir / "credit-package"
    if (package / "drift.json").exists():
        return package
    job = workdir / "credit-job"
    shutil.rmtree(job, ignore_errors=True)
    (job / "train").mkdir(parents=True)
    (job / "model").mkdir()
    table = pa.Table.from_batches([credit_batch(rows, 99)])
    pq.write_table(table, job / "train" / "part-00000.parquet")
    env = {**os.environ, "SM_CHANNEL_TRAIN": str(job / "train"), "SM_MODEL_DIR": str(job / "model")}
    subprocess.run([sys.executable, str(ROOT / "models/credit/train.py")], env=env, check=True, capture_output=True)
    package.mkdir(exist_ok=True)
    for name in ("model.onnx", "descriptor.json"):
        shutil.copyfile(job / "model" / name, package / name)
    descriptor = parse_descriptor((package / "descriptor.json").read_bytes())
    scorer = OnnxScorer.load(package / "model.onnx", descriptor)
    reference = stream_reference(
        lambda cols: table.select(cols).to_batches(65536), descriptor, scorer.predict, rows=rows
    )
    (package / "descriptor.json").write_bytes(descriptor.to_bytes())
    (package / "drift.json").write_bytes(canonical_json(reference.to_json()))
    return package


def evaluate_child(arguments: dict[str, Any]) -> dict[str, Any]:
    from mlvault.contracts.schema import load_contract
    from mlvault.model_package import parse_descriptor
    from mlvault.training.channels import iter_parts
    from mlvault.training.evaluation import evaluate_package
    from mlvault.training.gates import GateResult, Gates
    from mlvault.training.onnx_scoring import OnnxScorer

    workdir, package = Path(arguments["workdir"]), Path(arguments["package"])
    descriptor = parse_descriptor((package / "descriptor.json").read_bytes())
    scorer = OnnxScorer.load(package / "model.onnx", descriptor)
    heldout = arguments["heldout"]
    contract = load_contract(ROOT / "contracts", "credit")
    inputs = GateResult("inputs_accepted", 0, 0, True, "not measured here")
    start = time.perf_counter()
    report = evaluate_package(
        scorer,
        iter_parts(DiskS3(workdir / "s3"), "models", heldout["parts"]),
        contract,
        Gates(min_accuracy=0.8, max_parity_difference=0.05, min_disparate_impact=0.9),
        artifact={"bytes": 1, "sha256": "0" * 64},
        inputs=inputs,
        manifest_digest=None,
    )
    took = time.perf_counter() - start
    return {
        "rows": report.heldout_rows,
        "seconds": round(took, 2),
        "rows_per_second": round(report.heldout_rows / took),
        "peak_rss_mib": round(_peak_mib(), 1),
        "gates": {r.name: (round(r.value, 4) if r.value is not None else None, r.passed) for r in report.results},
    }


def run(workdir: Path, sizes: tuple[int, ...], evaluate_rows: int) -> dict[str, Any]:
    results: dict[str, Any] = {"prepare": []}
    for rows in sizes:
        entries = _lake(workdir, rows)
        shutil.rmtree(workdir / "s3" / "models", ignore_errors=True)
        result = _child("prepare", workdir=str(workdir), entries=entries, heldout=0.2, validation=0.1)
        result.pop("heldout")
        results["prepare"].append(result)
    entries = _lake(workdir, evaluate_rows * 2)
    shutil.rmtree(workdir / "s3" / "models", ignore_errors=True)
    split = _child("prepare", workdir=str(workdir), entries=entries, heldout=0.5, validation=0.0)
    package = credit_package(workdir)
    results["evaluate"] = _child("evaluate", workdir=str(workdir), package=str(package), heldout=split["heldout"])
    for name, section in SECTIONS.items():
        results[name] = section(workdir)
    return results


def main(sizes: tuple[int, ...] = (1_000_000, 10_000_000), evaluate_rows: int = 1_000_000, workdir: Path | None = None):
    with tempfile.TemporaryDirectory(prefix="mlvault-bench-model-") as scratch:
        folder = workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        results = run(folder, sizes, evaluate_rows)
    print(json.dumps(results, indent=1))
    for row in results["prepare"]:
        print(
            f"prepare {row['rows']:>10,} rows: {row['rows_per_second']:>9,} rows/s, "
            f"peak RSS {row['peak_rss_mib']} MiB, {row['parts']} parts (largest {row['largest_part_mib']} MiB)"
        )
    e = results["evaluate"]
    print(
        f"evaluate {e['rows']:>9,} held-out rows: {e['rows_per_second']:>9,} rows/s, peak RSS {e['peak_rss_mib']} MiB"
    )
    return 0


if __name__ == "__main__":
    section, arguments = sys.argv[1], json.loads(sys.argv[2])
    result = {"prepare": prepare_child, "evaluate": evaluate_child}[section](arguments)
    print(json.dumps(result))
