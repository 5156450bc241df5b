"""Reading training data from a manifest: every entry by its version id, verified, and the held-out split.

Each manifest entry is read from S3 *by its version id*, streamed once through a SHA-256 that is compared with the
manifest's digest when the object ends (a mismatch raises DigestMismatch naming the object, and nothing read so far
is kept); the bytes are parsed with pyarrow by the dataset's contract through
`mlvault.contracts.validate.validate_stream`, so the contract's checks run again on the way (no parsing of our
own, no type inference). Reading stops at the size the ledger recorded: an object that grew is refused.

Split: a row is held out when the SHA-256 of (seed, its key) falls below `heldout_fraction`; the key is the
contract's first unique column, or (without one) the object's digest and the row's position. The split does not
depend on the order of files or rows, and `read_split` re-derives the held-out rows from the manifest alone. The
sagemaker engine splits three ways (`row_assigner`: held out, validation, train) with the same points, so its
held-out rows are the ones `row_splitter` would hold out for the same seed and fraction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from mlvault.contracts.schema import NUMERIC, Contract
from mlvault.errors import TrainingError, TrainingReason, VerificationError
from mlvault.ingest.digest import CHUNK
from mlvault.training.manifest import Manifest, ManifestEntry
from mlvault.training.params import TrainingParams


class TrainingDataError(TrainingError):
    """A manifest entry cannot be trusted or read; `uri` names the object version."""

    def __init__(self, reason: str, entry: ManifestEntry, detail: str) -> None:
        super().__init__(reason, f"{entry.uri}: {detail}")
        self.uri = entry.uri
        self.entry = entry


class DigestMismatch(TrainingDataError):
    def __init__(self, entry: ManifestEntry, got: str) -> None:
        super().__init__(TrainingReason.DIGEST_MISMATCH, entry, f"expected sha256 {entry.sha256}, got {got}")
        self.expected = entry.sha256
        self.got = got


class _HashingReader:
    """A read-only stream that hashes what it yields and never yields more than `limit` + 1 bytes."""

    def __init__(self, body: BinaryIO, limit: int) -> None:
        self._body = body
        self._limit = limit
        self._sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def read(self, size: int | None = -1) -> bytes:
        room = self._limit + 1 - self.size
        if room <= 0:
            return b""
        wanted = CHUNK if size is None or size < 0 else size
        block = self._body.read(min(wanted, room))
        self._sha.update(block)
        self.size += len(block)
        return block

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def check(self, entry: ManifestEntry) -> None:
        if self.size > entry.size:
            raise TrainingDataError(
                TrainingReason.SIZE_MISMATCH, entry, f"more than the {entry.size} bytes the ledger recorded"
            )
        got = self._sha.hexdigest()
        if got != entry.sha256:
            raise DigestMismatch(entry, got)


def read_manifest(
    s3: Any, manifest: Manifest, contract: Contract, on_batch: Callable[[ManifestEntry, Any], None]
) -> None:
    """Stream every entry of the manifest by version id, verified: `on_batch(entry, record_batch)` sees each batch;
    an entry's SHA-256, size and row count are checked when it ends (an error names the object version)."""
    check_contract(manifest, contract)
    if contract.format not in ("csv", "jsonl"):
        raise TrainingError(TrainingReason.UNSUPPORTED, f"training streams csv and jsonl, not {contract.format}")
    from mlvault.contracts.validate import validate_stream  # pyarrow: only where data is read

    for entry in manifest.entries:
        response = s3.get_object(Bucket=entry.lake_bucket, Key=entry.lake_key, VersionId=entry.lake_version)
        body = response["Body"]
        try:
            if response.get("VersionId") != entry.lake_version:
                raise TrainingDataError(
                    TrainingReason.VERSION_MISMATCH, entry, f"S3 returned version {response.get('VersionId')!r}"
                )
            reader = _HashingReader(body, entry.size)
            try:
                report = validate_stream(reader, contract, size=entry.size, observe=lambda b, e=entry: on_batch(e, b))
            except VerificationError as err:
                reader.drain()
                reader.check(entry)  # other bytes than the accepted ones: say that first
                raise TrainingDataError(TrainingReason.CONTRACT_VIOLATION, entry, str(err)) from err
            reader.drain()
            reader.check(entry)
        finally:
            body.close()
        if report.rows != entry.rows:
            raise TrainingDataError(
                TrainingReason.ROW_COUNT_MISMATCH, entry, f"the ledger recorded {entry.rows} rows, read {report.rows}"
            )


def check_contract(manifest: Manifest, contract: Contract) -> None:
    if (manifest.dataset, manifest.contract_version) != (contract.dataset, contract.version):
        raise TrainingError(
            TrainingReason.CONTRACT_MISMATCH,
            f"the manifest is for {manifest.dataset} v{manifest.contract_version}, "
            f"the contract is {contract.dataset} v{contract.version}",
        )
    if not contract.label:
        raise TrainingError(TrainingReason.UNSUPPORTED, f"contract {contract.dataset} declares no label column")


@dataclass(frozen=True)
class FeaturePlan:
    label: str
    key: str | None
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]


def feature_plan(contract: Contract, params: TrainingParams) -> FeaturePlan:
    """Which contract columns feed the model (see the module docstring)."""
    label = contract.label
    key = split_key(contract)
    skipped = {label, key} | (set() if params.protected_as_features else set(contract.protected_attributes))
    numeric = tuple(c.name for c in contract.columns if c.name not in skipped and c.type in (*NUMERIC, "bool"))
    categorical = tuple(
        c.name for c in contract.columns if c.name not in skipped and c.type == "string" and not c.nullable
    )
    if not numeric and not categorical:
        raise TrainingError(TrainingReason.UNSUPPORTED, f"contract {contract.dataset} leaves no feature column")
    return FeaturePlan(label=label, key=key, numeric=numeric, categorical=categorical)


def split_key(contract: Contract) -> str | None:
    """The column rows are split by: the contract's first unique column (None: the object's digest and position)."""
    return next((c.name for c in contract.columns if c.unique), None)


def _split_points(key: str | None, seed: int) -> Callable[[ManifestEntry, Any], Any]:
    """Per batch, each row's point in [0, 2**64): the first 8 bytes of SHA-256(seed, its key), big-endian (a numpy
    uint64 array)."""
    import numpy as np

    prefix = f"mlvault-split\x1f{seed}\x1f".encode()
    sha256 = hashlib.sha256
    offsets: dict[str, int] = {}

    def points(entry: ManifestEntry, batch: Any) -> Any:
        if key is not None:
            keys = [repr(k).encode() for k in batch.column(key).to_pylist()]
        else:
            start = offsets.get(entry.sha256, 0)
            keys = [f"{entry.sha256}:{start + i}".encode() for i in range(batch.num_rows)]
            offsets[entry.sha256] = start + batch.num_rows
        digests = b"".join([sha256(prefix + k).digest()[:8] for k in keys])
        return np.frombuffer(digests, dtype=">u8").astype(np.uint64)

    return points


def _threshold(fraction: float) -> Any:
    import numpy as np

    return np.uint64(min(int(fraction * 2**64), 2**64 - 1))


def row_splitter(plan: FeaturePlan, params: TrainingParams) -> Callable[[ManifestEntry, Any], list[bool]]:
    """Per batch, which rows are held out (a pure function of the seed and each row's key)."""
    threshold = _threshold(params.heldout_fraction)
    points = _split_points(plan.key, params.seed)
    return lambda entry, batch: (points(entry, batch) < threshold).tolist()


TRAIN, VALIDATION, HELDOUT = 0, 1, 2  # the parts of a three-way split (`row_assigner`)


def row_assigner(
    key: str | None, *, seed: int, heldout_fraction: float, validation_fraction: float = 0.0
) -> Callable[[ManifestEntry, Any], Any]:
    """Per batch, each row's part (a numpy int8 array): HELDOUT below `heldout_fraction` (exactly the rows
    `row_splitter` holds out for the same seed and fraction), VALIDATION in the next `validation_fraction`, TRAIN
    above."""
    import numpy as np

    if not 0 < heldout_fraction < 1 or not 0 <= validation_fraction < 1 - heldout_fraction:
        raise ValueError(
            f"heldout_fraction must be in (0, 1) and validation_fraction in [0, 1 - heldout_fraction), got "
            f"{heldout_fraction!r} and {validation_fraction!r}"
        )
    heldout = _threshold(heldout_fraction)
    validation = _threshold(heldout_fraction + validation_fraction)
    points = _split_points(key, seed)

    def assign(entry: ManifestEntry, batch: Any) -> Any:
        found = points(entry, batch)
        return np.where(found < heldout, HELDOUT, np.where(found < validation, VALIDATION, TRAIN)).astype(np.int8)

    return assign


def read_split(
    s3: Any, manifest: Manifest, contract: Contract, params: TrainingParams, *, part: str = "heldout"
) -> list[dict[str, Any]]:
    """The rows of one part of the split ("heldout" or "train"), read and verified from the manifest."""
    if part not in ("heldout", "train"):
        raise ValueError(f"part must be heldout or train, got {part!r}")
    split = row_splitter(feature_plan(contract, params), params)
    rows: list[dict[str, Any]] = []

    def keep(entry: ManifestEntry, batch: Any) -> None:
        flags = split(entry, batch)
        if any(f == (part == "heldout") for f in flags):
            rows.extend(r for r, f in zip(batch.to_pylist(), flags, strict=True) if f == (part == "heldout"))

    read_manifest(s3, manifest, contract, keep)
    return rows


def as_strings(column: Any) -> Any:
    """A pyarrow column (chunked or not, dictionary-encoded or not) as one plain string array: how labels,
    predictions and categories are compared."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column.cast(pa.string())
