"""The prepare step (engine `sagemaker`): a manifest becomes the training job's inputs, and mlvault's held-out split.

Every manifest entry is read by its version id and re-verified (mlvault.training.data.read_manifest: SHA-256,
size, rows, the contract), its rows split three ways by the run's seed (`row_assigner`), and written as Parquet
parts, streaming: batches are gathered into row groups of ROW_GROUP_ROWS and written with a ParquetWriter to a
spool file; a part closes at `part_rows` rows or PART_BYTES bytes, is hashed, uploaded with its SHA-256 checksum
and removed. Memory is flat in rows (one row group and the reader's block); local storage holds one part per
channel at a time.

Where (model bucket), content-addressed by the split's identity D = SHA-256 of {format, model, manifest digest,
contract version, seed, fractions, split key, part_rows} (the same inputs always give the same keys and bytes; a
retried step reuses parts already stored with the same digest):

    channels/<model>/sha256=<D>/train/part-00000.parquet        the `train` channel (an S3Prefix: .../train/)
    channels/<model>/sha256=<D>/validation/part-00000.parquet   the `validation` channel (validation_fraction > 0)
    channels/<model>/sha256=<D>/runs/<run id>/inputs.json       the `mlvault` channel: the job's input manifest
    heldout/<model>/sha256=<D>/part-00000.parquet               the held-out split: never a channel, read by
                                                                 the evaluate step only
    channels/<model>/sha256=<D>/code/sha256=<C>/sourcedir.tar.gz
                                                                the `code` channel: the source asset, re-hashed
                                                                 and copied into the locked bucket

inputs.json (canonical JSON; its SHA-256 is the job's hyperparameter `mlvault_inputs_sha256`):

    {"format": "mlvault.job-inputs/v1", "run_id", "model", "dataset", "contract_version", "manifest_sha256",
     "split": {"sha256": D, "seed", "heldout_fraction", "validation_fraction", "key"},
     "channels": {"train": [{"file", "sha256", "bytes", "rows"}, ...], "validation": [...]},
     "code": {"file": "sourcedir.tar.gz", "sha256": C}}

Columns: every contract column, in the contract's order, typed as the contract says (strings plain, not
dictionary-encoded; an optional column a file lacks is null). The label and protected attributes are in the
channels (the team's code decides its features); the held-out rows are not.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlvault.canonical import canonical_json
from mlvault.contracts.schema import Contract
from mlvault.errors import TrainingError, TrainingReason
from mlvault.training.data import HELDOUT, TRAIN, VALIDATION, check_contract, read_manifest, row_assigner, split_key
from mlvault.training.manifest import Manifest, ManifestEntry
from mlvault.training.objects import download, put_bytes, put_file
from mlvault.training.specs import SOURCE_FILE, ModelSpec, job_hyperparameters, job_name

INPUTS_FORMAT = "mlvault.job-inputs/v1"
SPLIT_FORMAT = "mlvault.split/v1"
ROW_GROUP_ROWS = 65_536
PART_BYTES = 128 * 1024 * 1024
MAX_SOURCE_BYTES = 2 * 1024**3
PARQUET = "application/vnd.apache.parquet"


@dataclass(frozen=True)
class Part:
    file: str
    key: str
    version_id: str
    sha256: str
    bytes: int
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "key": self.key,
            "version_id": self.version_id,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "rows": self.rows,
        }


def split_identity(manifest: Manifest, contract: Contract, spec: ModelSpec) -> dict[str, Any]:
    return {
        "format": SPLIT_FORMAT,
        "model": spec.name,
        "manifest_sha256": manifest.digest,
        "contract_version": contract.version,
        "key": split_key(contract),
        "part_rows": spec.part_rows,
        **spec.split,
    }


def arrow_schema(contract: Contract) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(c.name, pa.type_for_alias(c.type), nullable=c.nullable) for c in contract.columns])


def conform(batch: Any, schema: Any) -> Any:
    """A validated batch in the channel schema: contract order, plain strings, nulls for an absent optional
    column."""
    import pyarrow as pa

    names = batch.schema.names
    arrays = []
    for target in schema:
        if target.name not in names:
            arrays.append(pa.nulls(batch.num_rows, target.type))
            continue
        column = batch.column(names.index(target.name))
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        arrays.append(column if column.type == target.type else column.cast(target.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass
class PartWriter:
    """Parquet parts under `prefix`, written through one spool file at a time (module docstring)."""

    s3: Any
    bucket: str
    prefix: str
    schema: Any
    spool: Path
    part_rows: int
    part_bytes: int = PART_BYTES
    parts: list[Part] = field(default_factory=list)
    _pending: list[Any] = field(default_factory=list)
    _pending_rows: int = 0
    _writer: Any = None
    _rows: int = 0

    def add(self, batch: Any) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        while self._pending_rows >= min(ROW_GROUP_ROWS, self.part_rows - self._rows):
            self._write_row_group(min(ROW_GROUP_ROWS, self.part_rows - self._rows))

    def _write_row_group(self, rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_batches(self._pending, schema=self.schema)
        group, rest = table.slice(0, rows), table.slice(rows)
        self._pending = rest.to_batches()
        self._pending_rows = rest.num_rows
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self._path), self.schema, compression="zstd", use_dictionary=True)
        self._writer.write_table(group, row_group_size=rows)
        self._rows += group.num_rows
        if self._rows >= self.part_rows or self._path.stat().st_size >= self.part_bytes:
            self._close_part()

    @property
    def _path(self) -> Path:
        return self.spool / f"part-{len(self.parts):05d}.parquet"

    def _close_part(self) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:  # an empty channel still has one part (SageMaker needs an object to copy)
            self._writer = pq.ParquetWriter(str(self._path), self.schema, compression="zstd")
        self._writer.close()
        path = self._path
        key = f"{self.prefix}/{path.name}"
        version, sha256, size = put_file(self.s3, self.bucket, key, path, content_type=PARQUET)
        self.parts.append(Part(path.name, key, version, sha256, size, self._rows))
        path.unlink()
        self._writer, self._rows = None, 0

    def close(self) -> list[Part]:
        while self._pending_rows:
            self._write_row_group(min(self._pending_rows, ROW_GROUP_ROWS, self.part_rows - self._rows))
        if self._writer is not None or not self.parts:
            self._close_part()
        return self.parts


def code_key(channels: str, sha256: str) -> str:
    """The `code` channel's one object, under the run's channel prefix (the job reads its code and data from
    channels/<model>/ only), addressed by the code's own digest too (two runs of one split with other code never
    share it)."""
    return f"{channels}/code/sha256={sha256}/{SOURCE_FILE}"


def copy_code(s3: Any, spec: ModelSpec, bucket: str, channels: str, spool: Path) -> dict[str, Any]:
    """The source asset, re-hashed against the digest infra deployed it with (CODE_DIGEST_MISMATCH otherwise) and
    stored content-addressed in the model bucket, where the job's `code` channel reads it."""
    code = spec.code
    if code is None:
        raise TrainingError(
            TrainingReason.UNSUPPORTED, f"model {spec.name} has no source asset (models.{spec.name}.code)"
        )
    path = spool / SOURCE_FILE

    def refuse(detail: str) -> TrainingError:
        return TrainingError(TrainingReason.CODE_DIGEST_MISMATCH, f"the source asset of {spec.name}: {detail}")

    download(
        s3, code.bucket, code.key, path, version_id=None, limit=MAX_SOURCE_BYTES, refuse=refuse, sha256=code.sha256
    )
    key = code_key(channels, code.sha256)
    version, _, size = put_file(s3, bucket, key, path, sha256=code.sha256, content_type="application/gzip")
    path.unlink()
    return {"bucket": bucket, "key": key, "version_id": version, "sha256": code.sha256, "bytes": size}


def prepare_inputs(
    s3: Any, *, bucket: str, manifest: Manifest, contract: Contract, spec: ModelSpec, run_id: str, stage: str = ""
) -> dict[str, Any]:
    """The job's channels, its inputs.json, the code channel and the held-out parts (module docstring); returns
    the `job` and `heldout` parts of the run's state and the split's identity."""
    check_contract(manifest, contract)
    identity = split_identity(manifest, contract, spec)
    digest = hashlib.sha256(canonical_json(identity)).hexdigest()
    schema = arrow_schema(contract)
    split = spec.split
    assign = row_assigner(
        identity["key"],
        seed=split["seed"],
        heldout_fraction=split["heldout_fraction"],
        validation_fraction=split["validation_fraction"],
    )
    channels = f"channels/{spec.name}/sha256={digest}"
    with tempfile.TemporaryDirectory(prefix="mlvault-prepare-") as scratch:
        spool = Path(scratch)
        writers = {TRAIN: ("train", f"{channels}/train"), HELDOUT: ("heldout", f"heldout/{spec.name}/sha256={digest}")}
        if split["validation_fraction"] > 0:
            writers[VALIDATION] = ("validation", f"{channels}/validation")
        parts = {}
        for part, (name, prefix) in writers.items():
            (spool / name).mkdir()
            parts[part] = PartWriter(s3, bucket, prefix, schema, spool / name, spec.part_rows)

        def write(entry: ManifestEntry, batch: Any) -> None:
            import pyarrow as pa

            codes = assign(entry, batch)
            batch = conform(batch, schema)
            for part, writer in parts.items():
                mask = codes == part
                if mask.any():
                    writer.add(batch.filter(pa.array(mask)))

        read_manifest(s3, manifest, contract, write)
        written = {writers[p][0]: w.close() for p, w in parts.items()}
        if sum(p.rows for p in written["train"]) == 0:
            raise TrainingError(TrainingReason.NOT_ENOUGH_DATA, "the split left no row for the train channel")
        code = copy_code(s3, spec, bucket, channels, spool)
    inputs = {
        "format": INPUTS_FORMAT,
        "run_id": run_id,
        "model": spec.name,
        "dataset": manifest.dataset,
        "contract_version": manifest.contract_version,
        "manifest_sha256": manifest.digest,
        "split": {"sha256": digest, "key": identity["key"], **split},
        "channels": {
            name: [{"file": p.file, "sha256": p.sha256, "bytes": p.bytes, "rows": p.rows} for p in found]
            for name, found in written.items()
            if name != "heldout"
        },
        "code": {"file": SOURCE_FILE, "sha256": code["sha256"]},
    }
    body = canonical_json(inputs)
    inputs_sha256 = hashlib.sha256(body).hexdigest()
    inputs_key = f"{channels}/runs/{run_id}/inputs.json"
    inputs_version = put_bytes(s3, bucket, inputs_key, body)
    name = job_name(run_id, stage)
    uri = f"s3://{bucket}/"
    job_channels: dict[str, Any] = {
        channel: {
            "s3_uri": f"{uri}{channels}/{channel}/",
            "rows": sum(p.rows for p in found),
            "parts": [p.to_json() for p in found],
        }
        for channel, found in written.items()
        if channel != "heldout"
    }
    job_channels["mlvault"] = {"s3_uri": f"{uri}{inputs_key}"}
    job_channels["code"] = {"s3_uri": f"{uri}{code['key']}"}
    output = f"jobs/{spec.name}/"
    return {
        "split": {"sha256": digest, **split},
        "job": {
            "name": name,
            "channels": job_channels,
            "inputs": {"bucket": bucket, "key": inputs_key, "version_id": inputs_version, "sha256": inputs_sha256},
            "inputs_sha256": inputs_sha256,
            "code": code,
            "output_s3_uri": f"{uri}{output}",
            "model_artifacts": f"{uri}{output}{name}/output/model.tar.gz",
            "hyperparameters": job_hyperparameters(spec, inputs_sha256),
            "entry_point": spec.entry_point,
            "image": spec.image,
        },
        "heldout": {
            "rows": sum(p.rows for p in written["heldout"]),
            "parts": [p.to_json() for p in written["heldout"]],
        },
    }


def iter_parts(
    s3: Any,
    bucket: str,
    parts: list[dict[str, Any]],
    *,
    columns: list[str] | None = None,
    batch_rows: int = ROW_GROUP_ROWS,
) -> Any:
    """The record batches of stored parts (a channel's or the held-out split's), each part downloaded by its
    version, bounded by its recorded size and checked against its SHA-256 and row count (DIGEST_MISMATCH,
    ROW_COUNT_MISMATCH), one part on local storage at a time, read without buffering the whole file."""
    import pyarrow.parquet as pq

    def refuse(detail: str) -> TrainingError:
        return TrainingError(TrainingReason.DIGEST_MISMATCH, detail)

    with tempfile.TemporaryDirectory(prefix="mlvault-parts-") as scratch:
        for index, part in enumerate(parts):
            path = Path(scratch) / f"{index:05d}.parquet"
            download(
                s3,
                bucket,
                part["key"],
                path,
                version_id=part["version_id"],
                limit=part["bytes"],
                refuse=refuse,
                sha256=part["sha256"],
            )
            rows = 0
            parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1024 * 1024)
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
                rows += batch.num_rows
                yield batch
            if rows != part["rows"]:
                raise TrainingError(
                    TrainingReason.ROW_COUNT_MISMATCH,
                    f"s3://{bucket}/{part['key']}: {rows} rows, recorded {part['rows']}",
                )
            path.unlink()
