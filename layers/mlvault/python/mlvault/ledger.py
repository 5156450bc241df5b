"""The ingest ledger: one item per ingest object version (DynamoDB, pk/sk).

Writes are conditional so that duplicate and re-delivered events cannot create a second record. A verdict or a
review decision is written together with its pending announcement (mlvault.outbox), in the same request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlvault.outbox import Announcement, Outbox, stage

STATUS_RECEIVED = "RECEIVED"
STATUS_ACCEPTED = "ACCEPTED"
STATUS_REJECTED = "REJECTED"
STATUS_HELD = "HELD"  # the poisoning screen's verdict pending a human review: kept out of training
TERMINAL = (STATUS_ACCEPTED, STATUS_REJECTED, STATUS_HELD)  # a verdict: never re-verified nor re-driven
FINAL = (STATUS_ACCEPTED, STATUS_REJECTED)


def version_pk(bucket: str, key: str) -> str:
    return f"OBJ#{bucket}/{key}"


def version_sk(version_id: str) -> str:
    return f"V#{version_id}"


def version_key(bucket: str, key: str, version_id: str) -> dict[str, dict[str, str]]:
    """The primary key of a version's item."""
    return {"pk": {"S": version_pk(bucket, key)}, "sk": {"S": version_sk(version_id)}}


@dataclass(frozen=True)
class LedgerRecord:
    bucket: str
    key: str
    version_id: str
    status: str
    size: int
    received_at: str
    attributes: dict[str, str]


class Ledger:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def outbox(self, *, events: Any, sns: Any) -> Outbox:
        """The announcements pending on this table's records, delivered through these clients."""
        return Outbox(self._db, self._table, events=events, sns=sns)

    def record_received(self, *, bucket: str, key: str, version_id: str, size: int, attributes: dict[str, str]) -> bool:
        """Record that a version reached the verifier. False when it was already recorded (a duplicate)."""
        item = {
            "pk": {"S": version_pk(bucket, key)},
            "sk": {"S": version_sk(version_id)},
            "bucket": {"S": bucket},
            "key": {"S": key},
            "version_id": {"S": version_id},
            "status": {"S": STATUS_RECEIVED},
            "size": {"N": str(size)},
            "received_at": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
        }
        item.update({name: {"S": value} for name, value in attributes.items() if name not in item})
        try:
            self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def record_verdict(
        self,
        *,
        bucket: str,
        key: str,
        version_id: str,
        status: str,
        size: int,
        attributes: dict[str, str],
        profile: bytes | None = None,
        announcement: Announcement | None = None,
    ) -> bool:
        """Write the one terminal record of a version (with its content profile, if it has one, and its pending
        announcement). False when it already has one (nothing changes)."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a terminal status")
        return self._set_status(
            bucket=bucket,
            key=key,
            version_id=version_id,
            status=status,
            attributes={"size": str(size), **attributes},
            unless=TERMINAL,
            profile=profile,
            announcement=announcement,
        )

    def review(
        self,
        *,
        bucket: str,
        key: str,
        version_id: str,
        status: str,
        reviewed_by: str,
        reason: str,
        reviewed_at: str | None = None,
        announcement: Announcement | None = None,
        **extra: str,
    ) -> bool:
        """A human's decision on a HELD version: ACCEPTED (released) or REJECTED, with its pending announcement.
        False when the version is not held (already decided, or never held: the first decision stands) or still
        has an announcement pending (deliver it first)."""
        if status not in FINAL:
            raise ValueError(f"a review decides {FINAL}, not {status!r}")
        return self._set_status(
            bucket=bucket,
            key=key,
            version_id=version_id,
            status=status,
            attributes={
                "reviewed_by": reviewed_by,
                "review_reason": reason,
                "reviewed_at": reviewed_at or datetime.now(UTC).isoformat(timespec="milliseconds"),
                **extra,
            },
            only_if=STATUS_HELD,
            announcement=announcement,
        )

    def _set_status(
        self,
        *,
        bucket: str,
        key: str,
        version_id: str,
        status: str,
        attributes: dict[str, str],
        unless: tuple[str, ...] = (),
        only_if: str | None = None,
        profile: bytes | None = None,
        announcement: Announcement | None = None,
    ) -> bool:
        values = {
            "status": status,
            "verdict_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "bucket": bucket,
            "key": key,
            "version_id": version_id,
            **attributes,
        }
        names = {f"#a{i}": name for i, name in enumerate(values)}
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        expression += ", #received = if_not_exists(#received, :received)"
        names["#received"] = "received_at"
        names["#status"] = "status"
        attribute_values = {
            f":v{i}": ({"N": v} if name == "size" else {"S": v}) for i, (name, v) in enumerate(values.items())
        }
        attribute_values[":received"] = {"S": values["verdict_at"]}
        if profile is not None:
            expression += ", #profile = :profile"
            names["#profile"] = "profile"
            attribute_values[":profile"] = {"B": profile}
        if only_if is not None:
            condition = "#status = :only"
            attribute_values[":only"] = {"S": only_if}
        else:
            condition = (
                f"attribute_not_exists(#status) OR NOT #status IN ({', '.join(f':u{i}' for i in range(len(unless)))})"
            )
            attribute_values.update({f":u{i}": {"S": s} for i, s in enumerate(unless)})
        if announcement is not None:
            staged = stage(announcement)
            expression += f", {staged.update}"
            names.update(staged.names)
            attribute_values.update(staged.values)
            condition = f"({condition}) AND {staged.condition}"
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": version_pk(bucket, key)}, "sk": {"S": version_sk(version_id)}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attribute_values,
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def note_redrive(self, *, bucket: str, key: str, version_id: str, size: int) -> None:
        """Count a re-drive of a version that has no verdict yet (creating its RECEIVED record if missing)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": version_pk(bucket, key)}, "sk": {"S": version_sk(version_id)}},
                UpdateExpression="SET #status = if_not_exists(#status, :received), #bucket = :bucket, #key = :key, "
                "version_id = :version, #size = if_not_exists(#size, :size), "
                "received_at = if_not_exists(received_at, :now), redriven_at = :now ADD redrives :one",
                ConditionExpression="attribute_not_exists(#status) OR #status = :received",
                ExpressionAttributeNames={"#status": "status", "#bucket": "bucket", "#key": "key", "#size": "size"},
                ExpressionAttributeValues={
                    ":received": {"S": STATUS_RECEIVED},
                    ":bucket": {"S": bucket},
                    ":key": {"S": key},
                    ":version": {"S": version_id},
                    ":size": {"N": str(size)},
                    ":now": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
                    ":one": {"N": "1"},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return  # reached a verdict meanwhile

    def claim_nonce(self, producer: str, nonce: str, owner: str) -> str:
        """Record a nonce as used by `owner` (bucket/key#version). Returns the owner it belongs to: `owner` for
        a first use or a retry of the same verification, another object version for a replay."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"NONCE#{producer}#{nonce}"},
                    "sk": {"S": "NONCE"},
                    "owner": {"S": owner},
                    "claimed_at": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
            return owner
        except self._db.exceptions.ConditionalCheckFailedException:
            item = self._db.get_item(
                TableName=self._table,
                ConsistentRead=True,
                Key={"pk": {"S": f"NONCE#{producer}#{nonce}"}, "sk": {"S": "NONCE"}},
            )["Item"]
            return item["owner"]["S"]

    def revoke(self, key_id: str, *, effective_at: datetime, reason: str, revoked_by: str) -> bool:
        """Record a key revocation. False when the key was already revoked (the first record stands)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"KEY#{key_id}"},
                    "sk": {"S": "REVOCATION"},
                    "effective_at": {"S": effective_at.astimezone(UTC).isoformat()},
                    "reason": {"S": reason},
                    "revoked_by": {"S": revoked_by},
                    "recorded_at": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def revocation(self, key_id: str) -> dict[str, str] | None:
        item = self._db.get_item(
            TableName=self._table, ConsistentRead=True, Key={"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "REVOCATION"}}
        ).get("Item")
        return None if item is None else {k: v["S"] for k, v in item.items() if "S" in v}

    def revoked_at(self, key_id: str) -> datetime | None:
        """From when the key is revoked (its first revocation's effective time), or None."""
        revocation = self.revocation(key_id)
        return None if revocation is None else datetime.fromisoformat(revocation["effective_at"])

    def profile(self, bucket: str, key: str, version_id: str) -> bytes | None:
        """The content profile stored with a version's verdict (gzip JSON, see contracts.screen.Profile)."""
        item = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": version_pk(bucket, key)}, "sk": {"S": version_sk(version_id)}},
            ProjectionExpression="#p",
            ExpressionAttributeNames={"#p": "profile"},
        ).get("Item", {})
        return item["profile"]["B"] if "profile" in item else None

    def baseline(self, dataset: str, contract_version: str) -> LearnedBaseline | None:
        """The baseline learned from a dataset's accepted batches, for one contract version."""
        item = self._db.get_item(
            TableName=self._table, ConsistentRead=True, Key=_baseline_key(dataset, contract_version)
        ).get("Item")
        if item is None:
            return None
        return LearnedBaseline(
            profile=item["profile"]["B"],
            rows=int(item["rows"]["N"]),
            batches=int(item["batches"]["N"]),
            complete=item["complete"]["BOOL"],
            revision=int(item["revision"]["N"]),
        )

    def put_baseline(self, dataset: str, contract_version: str, baseline: LearnedBaseline, *, after: int) -> bool:
        """Replace the learned baseline if it is still at revision `after` (0: none yet). False on a race."""
        item = {
            **_baseline_key(dataset, contract_version),
            "profile": {"B": baseline.profile},
            "rows": {"N": str(baseline.rows)},
            "batches": {"N": str(baseline.batches)},
            "complete": {"BOOL": baseline.complete},
            "revision": {"N": str(after + 1)},
            "updated_at": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
        }
        try:
            if after == 0:
                self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
            else:
                self._db.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="revision = :after",
                    ExpressionAttributeValues={":after": {"N": str(after)}},
                )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def small_batches(self, dataset: str, contract_version: str, producer: str) -> SmallBatches | None:
        """The rolling screen's window of a producer's small batches of a dataset (contracts.gate)."""
        item = self._db.get_item(
            TableName=self._table, ConsistentRead=True, Key=_window_key(dataset, contract_version, producer)
        ).get("Item")
        if item is None:
            return None
        return SmallBatches(
            number=int(item["number"]["N"]),
            batches=tuple(b["S"] for b in item.get("batches", {}).get("L", [])),
            rows=int(item["rows"]["N"]),
            profile=item["profile"]["B"] if "profile" in item else b"",
            last=item["last"]["S"] if "last" in item else "",
            revision=int(item["revision"]["N"]),
        )

    def put_small_batches(
        self, dataset: str, contract_version: str, producer: str, window: SmallBatches, *, after: int
    ) -> bool:
        """Replace the window if it is still at revision `after` (0: none yet). False on a race."""
        item: dict[str, Any] = {
            **_window_key(dataset, contract_version, producer),
            "number": {"N": str(window.number)},
            "batches": {"L": [{"S": b} for b in window.batches]},
            "rows": {"N": str(window.rows)},
            "revision": {"N": str(after + 1)},
            "updated_at": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
        }
        if window.profile:
            item["profile"] = {"B": window.profile}
        if window.last:
            item["last"] = {"S": window.last}
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if after:
            condition = {
                "ConditionExpression": "revision = :after",
                "ExpressionAttributeValues": {":after": {"N": str(after)}},
            }
        try:
            self._db.put_item(TableName=self._table, Item=item, **condition)
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def accepted(self, dataset: str, *, page_size: int | None = None) -> Iterator[LedgerRecord]:
        """Every ACCEPTED record of a dataset that no key revocation tainted since (`tainted_by`): a paginated,
        consistent Scan (the ledger is small next to the data it describes; a dataset index can replace it)."""
        yield from self._scan(
            "begins_with(#pk, :obj) AND #status = :accepted AND #dataset = :dataset "
            "AND attribute_not_exists(tainted_by)",
            {"#pk": "pk", "#status": "status", "#dataset": "dataset"},
            {":obj": {"S": "OBJ#"}, ":accepted": {"S": STATUS_ACCEPTED}, ":dataset": {"S": dataset}},
            page_size=page_size,
        )

    def accepted_signed_by(self, key_id: str) -> Iterator[LedgerRecord]:
        """Every ACCEPTED record of an upload signed by a producer key (tainted or not)."""
        yield from self._scan(
            "begins_with(#pk, :obj) AND #status = :accepted AND key_id = :key",
            {"#pk": "pk", "#status": "status"},
            {":obj": {"S": "OBJ#"}, ":accepted": {"S": STATUS_ACCEPTED}, ":key": {"S": key_id}},
        )

    def taint(self, record: LedgerRecord, *, by: str) -> None:
        """Mark an accepted version as signed by a revoked key: no manifest takes it from now on."""
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": version_pk(record.bucket, record.key)}, "sk": {"S": version_sk(record.version_id)}},
            UpdateExpression="SET tainted_by = :by",
            ExpressionAttributeValues={":by": {"S": by}},
        )

    def _scan(
        self, condition: str, names: dict[str, str], values: dict[str, Any], *, page_size: int | None = None
    ) -> Iterator[LedgerRecord]:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "FilterExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if page_size is not None:
            arguments["PaginationConfig"] = {"PageSize": page_size}
        for page in self._db.get_paginator("scan").paginate(**arguments):
            for item in page.get("Items", []):
                yield record_from_item(item)

    def get(self, bucket: str, key: str, version_id: str) -> LedgerRecord | None:
        response = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": version_pk(bucket, key)}, "sk": {"S": version_sk(version_id)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else record_from_item(item)

    def versions(self, bucket: str, key: str) -> list[LedgerRecord]:
        response = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": version_pk(bucket, key)}},
            ConsistentRead=True,
        )
        return [record_from_item(item) for item in response.get("Items", [])]


@dataclass(frozen=True)
class LearnedBaseline:
    profile: bytes  # gzip JSON (contracts.screen.Profile.to_bytes)
    rows: int
    batches: int
    complete: bool  # reached the contract's baseline_rows: frozen, batches are screened against it
    revision: int = 0


def _baseline_key(dataset: str, contract_version: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"BASELINE#{dataset}#{contract_version}"}, "sk": {"S": "PROFILE"}}


@dataclass(frozen=True)
class SmallBatches:
    """The rolling screen's state for one producer and dataset version (contracts.gate): the batches under
    `screening.min_rows` accumulated since the last screen of a window, and how the last window ended (so that
    a retry of a batch it held gets the same verdict)."""

    number: int  # the window's sequence number, from 1
    batches: tuple[str, ...]  # "key#version" of each batch in the window, in arrival order
    rows: int
    profile: bytes  # gzip JSON of the window's merged profile (contracts.screen.Profile), b"" when empty
    last: str = ""  # JSON: the last closed window (number, batches, rows, closed_by, findings)
    revision: int = 0


def _window_key(dataset: str, contract_version: str, producer: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"WINDOW#{dataset}#{contract_version}#{producer}"}, "sk": {"S": "SMALL_BATCHES"}}


_CORE = {"pk", "sk", "bucket", "key", "version_id", "status", "size", "received_at"}


def is_terminal(record: LedgerRecord | None) -> bool:
    return record is not None and record.status in TERMINAL


def record_from_item(item: dict[str, Any]) -> LedgerRecord:
    return LedgerRecord(
        bucket=item["bucket"]["S"],
        key=item["key"]["S"],
        version_id=item["version_id"]["S"],
        status=item["status"]["S"],
        size=int(item["size"]["N"]),
        received_at=item["received_at"]["S"],
        attributes={k: v.get("S", v.get("N")) for k, v in item.items() if k not in _CORE and ("S" in v or "N" in v)},
    )
