"""The training manifest: the exact lake objects a model is trained on, taken from the ingest ledger.

Only ACCEPTED ledger records of the dataset qualify (never HELD, REJECTED or RECEIVED), and each entry pins the
lake object *version* and its SHA-256: a manifest never says "the latest object under a prefix". Entries are
sorted, so the same accepted records always give the same manifest; its canonical JSON (sorted keys, no
whitespace) is hashed into `Manifest.digest` and stored content-addressed under
`manifests/<dataset>/sha256=<digest>.json`. Loading it back verifies that digest (fail closed).

Finding a dataset's accepted records: the ledger is keyed by object version (pk "OBJ#<bucket>/<key>",
sk "V#<version>"), so this module runs a paginated, consistent Scan filtered on status and dataset. That reads
the whole table (nonces, revocations and baselines included) and costs read capacity in proportion to it; the
scalable way is a global secondary index on (dataset, status) queried for ACCEPTED. Until the table has one, keep
manifests to scheduled pipeline runs.

A run of the lambda engine trains on a bounded manifest (`build_bounded_manifest`): its rows stay within the
model's `max_rows`, counted from the rows each accepted record holds (the contract check counted them; no file is
read to count). Whole files only, never a part of one, and no single producer can keep the others out:

1. all the accepted files fit: all are taken (the manifest is the unbounded one);
2. otherwise a file with more rows than `max_rows` on its own is left out, and the others are taken in rounds:
   round r offers each producer's r-th newest file (newest by acceptance: the earliest `verdict_at` of the
   file's ledger records, the time a review released it for a held one; ties by lake URI); within a round the
   smaller file goes first (then the newer, then the producer's name). An offered file is taken if its rows fit
   in what is left of `max_rows`, else it is left out; the next ones may still fit.

So every producer's newest file that has at most max_rows / (number of producers) rows is taken, however much
another producer uploads; after the first round a producer's newer files come before its older ones. The same
ledger state gives the same manifest. What was left out is said in the run (`BoundedManifest.left_out_json`:
the count and rows of every file left out, per producer, and the newest LEFT_OUT_LISTED of them); the manifest
itself, and so the lineage and the provenance, lists only what is trained on. When nothing fits (every file
alone has more rows than `max_rows`) there is no manifest: NO_TRAINABLE_DATA, naming the cap.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from mlvault.canonical import canonical_json, versioned_uri
from mlvault.errors import ManifestError, ManifestReason
from mlvault.ledger import Ledger, LedgerRecord

MANIFEST_FORMAT = "mlvault.manifest/v1"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # bound before reading a stored manifest back
_ENTRY_ATTRIBUTES = ("lake_bucket", "lake_key", "lake_version", "sha256", "producer", "key_id", "rows")
LEFT_OUT_LISTED = 20  # the left-out files a run's record names (newest first); all of them are counted
LEFT_OUT_REASON = "over max_rows"


@dataclass(frozen=True, order=True)
class IngestRef:
    """The ingest object version a lake object was accepted from (its ledger record's key)."""

    bucket: str
    key: str
    version_id: str

    def to_json(self) -> dict[str, str]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id}


@dataclass(frozen=True)
class ManifestEntry:
    lake_bucket: str
    lake_key: str
    lake_version: str
    sha256: str
    size: int
    rows: int
    producer: str
    key_id: str
    contract_version: str
    ingest: tuple[IngestRef, ...]  # every accepted ingest version whose bytes are this lake object (usually one)

    @property
    def uri(self) -> str:
        return versioned_uri(self.lake_bucket, self.lake_key, self.lake_version)

    def to_json(self) -> dict[str, Any]:
        return {
            "lake_bucket": self.lake_bucket,
            "lake_key": self.lake_key,
            "lake_version": self.lake_version,
            "sha256": self.sha256,
            "size": self.size,
            "rows": self.rows,
            "producer": self.producer,
            "key_id": self.key_id,
            "contract_version": self.contract_version,
            "ingest": [ref.to_json() for ref in self.ingest],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ManifestEntry:
        return cls(
            lake_bucket=data["lake_bucket"],
            lake_key=data["lake_key"],
            lake_version=data["lake_version"],
            sha256=data["sha256"],
            size=int(data["size"]),
            rows=int(data["rows"]),
            producer=data["producer"],
            key_id=data["key_id"],
            contract_version=data["contract_version"],
            ingest=tuple(IngestRef(r["bucket"], r["key"], r["version_id"]) for r in data["ingest"]),
        )


@dataclass(frozen=True)
class Manifest:
    dataset: str
    contract_version: str
    entries: tuple[ManifestEntry, ...]

    @property
    def rows(self) -> int:
        return sum(entry.rows for entry in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "rows": self.rows,
            "entries": [entry.to_json() for entry in self.entries],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ManifestError(ManifestReason.MANIFEST_INVALID, f"expected a {MANIFEST_FORMAT} manifest, got {got!r}")
        try:
            manifest = cls(
                dataset=data["dataset"],
                contract_version=data["contract_version"],
                entries=tuple(ManifestEntry.from_json(e) for e in data["entries"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(
                ManifestReason.MANIFEST_INVALID, f"malformed manifest: {type(err).__name__}: {err}"
            ) from None
        if manifest.rows != data.get("rows"):
            raise ManifestError(
                ManifestReason.MANIFEST_INVALID,
                f"manifest says {data.get('rows')} rows, its entries add up to {manifest.rows}",
            )
        return manifest


def manifest_key(dataset: str, digest: str) -> str:
    return f"manifests/{dataset}/sha256={digest}.json"


def build_manifest(
    ledger: Ledger, dataset: str, *, contract_version: str | None = None, page_size: int | None = None
) -> Manifest:
    """The manifest of a dataset's accepted data, from the ledger (revoked keys' data excluded).

    With `contract_version`, only records produced for that version; without it, all accepted records must share
    one version (a model is trained against one contract). Two accepted ingest versions with the same bytes map
    to the same content-addressed lake object version: that object is one entry (listing both ingest versions),
    so it is not trained on twice. Raises ManifestError when nothing qualifies or a record lacks what it needs.
    """
    version, accepted = _accepted(ledger, dataset, contract_version=contract_version, page_size=page_size)
    return _manifest(dataset, version, [file.entry for file in accepted])


@dataclass(frozen=True)
class AcceptedFile:
    """A manifest entry and when its lake object was accepted (the earliest verdict of its ledger records)."""

    entry: ManifestEntry
    accepted_at: str  # as the ledger records it
    accepted: datetime  # the same, comparable

    @property
    def newest_first(self) -> tuple[float, str]:
        return -self.accepted.timestamp(), self.entry.uri

    def to_json(self) -> dict[str, Any]:
        return {
            "lake_uri": self.entry.uri,
            "producer": self.entry.producer,
            "rows": self.entry.rows,
            "accepted_at": self.accepted_at,
        }


@dataclass(frozen=True)
class BoundedManifest:
    """What a run trains on within `max_rows` (module docstring): the manifest, and the files left out."""

    manifest: Manifest  # no entries when nothing fits (`trainable` refuses it)
    max_rows: int
    left_out: tuple[AcceptedFile, ...]  # newest first

    def left_out_json(self) -> dict[str, Any] | None:
        """What was left out, for the run's record (`manifest.left_out`); None when nothing was."""
        if not self.left_out:
            return None
        producers: dict[str, dict[str, int]] = {}
        for file in self.left_out:
            tally = producers.setdefault(file.entry.producer, {"count": 0, "rows": 0})
            tally["count"] += 1
            tally["rows"] += file.entry.rows
        return {
            "reason": LEFT_OUT_REASON,
            "max_rows": self.max_rows,
            "count": len(self.left_out),
            "rows": sum(file.entry.rows for file in self.left_out),
            "producers": dict(sorted(producers.items())),
            "files": [file.to_json() for file in self.left_out[:LEFT_OUT_LISTED]],
        }

    def trainable(self) -> Manifest:
        """The manifest, or NO_TRAINABLE_DATA when every accepted file alone has more rows than `max_rows`."""
        if not self.manifest.entries:
            smallest = min(file.entry.rows for file in self.left_out)
            raise ManifestError(
                ManifestReason.NO_TRAINABLE_DATA,
                f"dataset {self.manifest.dataset!r}: each of its {len(self.left_out)} accepted file(s) has more rows "
                f"than max_rows {self.max_rows} (the smallest has {smallest}): nothing to train on "
                "(the run's manifest.left_out lists them; raise training.max_rows or train with the sagemaker engine)",
            )
        return self.manifest


def build_bounded_manifest(
    ledger: Ledger,
    dataset: str,
    *,
    max_rows: int,
    contract_version: str | None = None,
    page_size: int | None = None,
) -> BoundedManifest:
    """The manifest of a dataset's accepted data within `max_rows` rows, and what it leaves out (the rule: module
    docstring). Raises ManifestError as build_manifest does; nothing fitting is `BoundedManifest.trainable`'s."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
    version, accepted = _accepted(ledger, dataset, contract_version=contract_version, page_size=page_size)
    if sum(file.entry.rows for file in accepted) <= max_rows:
        return BoundedManifest(_manifest(dataset, version, [f.entry for f in accepted]), max_rows, ())
    left_out = [file for file in accepted if file.entry.rows > max_rows]
    by_producer: dict[str, list[AcceptedFile]] = {}
    for file in accepted:
        if file.entry.rows <= max_rows:
            by_producer.setdefault(file.entry.producer, []).append(file)
    offers: list[tuple[int, AcceptedFile]] = []
    for files in by_producer.values():
        offers.extend(enumerate(sorted(files, key=lambda f: f.newest_first)))
    offers.sort(key=lambda o: (o[0], o[1].entry.rows, o[1].newest_first, o[1].entry.producer))
    taken: list[ManifestEntry] = []
    room = max_rows
    for _, file in offers:
        if file.entry.rows <= room:
            taken.append(file.entry)
            room -= file.entry.rows
        else:
            left_out.append(file)
    left_out.sort(key=lambda f: f.newest_first)
    return BoundedManifest(_manifest(dataset, version, taken), max_rows, tuple(left_out))


def _manifest(dataset: str, contract_version: str, entries: list[ManifestEntry]) -> Manifest:
    entries = sorted(entries, key=lambda e: (e.lake_bucket, e.lake_key, e.lake_version))
    return Manifest(dataset=dataset, contract_version=contract_version, entries=tuple(entries))


def _accepted(
    ledger: Ledger, dataset: str, *, contract_version: str | None, page_size: int | None
) -> tuple[str, list[AcceptedFile]]:
    """The contract version and every accepted lake object of the dataset (build_manifest's rules)."""
    by_object: dict[tuple[str, str, str], list[LedgerRecord]] = {}
    versions: set[str] = set()
    for record in ledger.accepted(dataset, page_size=page_size):
        missing = [name for name in (*_ENTRY_ATTRIBUTES, "contract_version") if not record.attributes.get(name)]
        if missing:
            raise ManifestError(
                ManifestReason.RECORD_INVALID,
                f"accepted ledger record {versioned_uri(record.bucket, record.key, record.version_id)} lacks "
                f"{missing}: cannot pin the object it accepted",
            )
        version = record.attributes["contract_version"]
        if contract_version is not None and version != contract_version:
            continue
        versions.add(version)
        a = record.attributes
        by_object.setdefault((a["lake_bucket"], a["lake_key"], a["lake_version"]), []).append(record)
    if not by_object:
        wanted = f" for contract version {contract_version!r}" if contract_version is not None else ""
        raise ManifestError(
            ManifestReason.NO_ACCEPTED_DATA,
            f"dataset {dataset!r} has no ACCEPTED ledger records{wanted}: nothing to train on "
            "(HELD, REJECTED and RECEIVED versions never enter a manifest)",
        )
    if len(versions) > 1:
        raise ManifestError(
            ManifestReason.AMBIGUOUS_CONTRACT_VERSION,
            f"dataset {dataset!r} has accepted data for contract versions {sorted(versions)}: "
            "choose one with contract_version=",
        )
    return versions.pop(), [_accepted_file(obj, records) for obj, records in by_object.items()]


def _accepted_file(obj: tuple[str, str, str], records: list[LedgerRecord]) -> AcceptedFile:
    records = sorted(records, key=lambda r: (r.bucket, r.key, r.version_id))
    first = records[0].attributes
    for record in records[1:]:
        if record.attributes["sha256"] != first["sha256"]:
            raise ManifestError(
                ManifestReason.RECORD_INVALID,
                f"{versioned_uri(*obj)} is recorded with two digests "
                f"({first['sha256']} and {record.attributes['sha256']})",
            )
    try:
        rows = int(first["rows"])
    except ValueError:
        raise ManifestError(
            ManifestReason.RECORD_INVALID, f"s3://{obj[0]}/{obj[1]}: rows {first['rows']!r} is not a number"
        ) from None
    if rows < 0:
        raise ManifestError(ManifestReason.RECORD_INVALID, f"s3://{obj[0]}/{obj[1]}: rows {rows} is negative")
    entry = ManifestEntry(
        lake_bucket=obj[0],
        lake_key=obj[1],
        lake_version=obj[2],
        sha256=first["sha256"],
        size=records[0].size,
        rows=rows,
        producer=first["producer"],
        key_id=first["key_id"],
        contract_version=first["contract_version"],
        ingest=tuple(IngestRef(r.bucket, r.key, r.version_id) for r in records),
    )
    accepted, accepted_at = min(_acceptance(r) for r in records)
    return AcceptedFile(entry, accepted_at, accepted)


def _acceptance(record: LedgerRecord) -> tuple[datetime, str]:
    """When a record was accepted: its verdict (a review's, for a released version), else its receipt."""
    recorded = record.attributes.get("verdict_at") or record.received_at
    try:
        when = datetime.fromisoformat(recorded)
    except ValueError:
        raise ManifestError(
            ManifestReason.RECORD_INVALID,
            f"accepted ledger record {versioned_uri(record.bucket, record.key, record.version_id)}: "
            f"verdict_at {recorded!r} is not a time",
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)), recorded


def store_manifest(s3: Any, bucket: str, manifest: Manifest) -> str:
    """Write the manifest content-addressed, with its SHA-256 checksum (S3 verifies it on upload); returns the
    object's version id. A manifest already stored under its digest is reused (a retry writes nothing)."""
    body = manifest.to_bytes()
    digest = hashlib.sha256(body).hexdigest()
    key = manifest_key(manifest.dataset, digest)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise
    else:
        if head.get("Metadata", {}).get("mlvault-sha256") == digest and head.get("ContentLength") == len(body):
            return head["VersionId"]
    checksum = base64.b64encode(bytes.fromhex(digest)).decode()
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=checksum,
        Metadata={"mlvault-sha256": digest, "mlvault-dataset": manifest.dataset},
    )
    if response.get("ChecksumSHA256", checksum) != checksum:  # S3 verifies it; some emulators do not
        raise ManifestError(
            ManifestReason.MANIFEST_DIGEST_MISMATCH,
            f"s3://{bucket}/{key}: stored with checksum {response['ChecksumSHA256']}, sent {checksum}",
        )
    return response["VersionId"]


def load_manifest(s3: Any, bucket: str, dataset: str, digest: str, *, version_id: str | None = None) -> Manifest:
    """Read a stored manifest back and verify it: its bytes must hash to `digest` and be canonical."""
    key = manifest_key(dataset, digest)
    arguments = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
    response = s3.get_object(**arguments)
    if response.get("ContentLength", 0) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            ManifestReason.MANIFEST_TOO_LARGE,
            f"s3://{bucket}/{key}: {response['ContentLength']} bytes, above {MAX_MANIFEST_BYTES}",
        )
    body = response["Body"].read(MAX_MANIFEST_BYTES + 1)
    manifest = parse_manifest(body, digest=digest, where=f"s3://{bucket}/{key}")
    if manifest.dataset != dataset:
        raise ManifestError(
            ManifestReason.MANIFEST_INVALID,
            f"s3://{bucket}/{key}: a manifest of dataset {manifest.dataset!r}, expected {dataset!r}",
        )
    return manifest


def parse_manifest(data: bytes, *, digest: str, where: str = "manifest") -> Manifest:
    """A manifest from its stored bytes, verified against the digest it is addressed by."""
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        raise ManifestError(ManifestReason.MANIFEST_DIGEST_MISMATCH, f"{where}: expected sha256 {digest}, got {got}")
    try:
        manifest = Manifest.from_json(json.loads(data))
    except json.JSONDecodeError as err:
        raise ManifestError(ManifestReason.MANIFEST_INVALID, f"{where}: not JSON ({err})") from None
    if manifest.to_bytes() != data:
        raise ManifestError(
            ManifestReason.MANIFEST_INVALID, f"{where}: not in canonical form (sorted keys, no whitespace)"
        )
    return manifest
