"""The ingest ledger: one item per ingest object version (DynamoDB, pk/sk).

Writes are conditional so that duplicate and re-delivered events cannot create a second record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STATUS_RECEIVED = "RECEIVED"


def version_pk(bucket: str, key: str) -> str:
    return f"OBJ#{bucket}/{key}"


def version_sk(version_id: str) -> str:
    return f"V#{version_id}"


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

    def get(self, bucket: str, key: str, version_id: str) -> LedgerRecord | None:
        response = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": version_pk(bucket, key)}, "sk": {"S": version_sk(version_id)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else _record(item)

    def versions(self, bucket: str, key: str) -> list[LedgerRecord]:
        response = self._db.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": version_pk(bucket, key)}},
            ConsistentRead=True,
        )
        return [_record(item) for item in response.get("Items", [])]


_CORE = {"pk", "sk", "bucket", "key", "version_id", "status", "size", "received_at"}


def _record(item: dict[str, Any]) -> LedgerRecord:
    return LedgerRecord(
        bucket=item["bucket"]["S"],
        key=item["key"]["S"],
        version_id=item["version_id"]["S"],
        status=item["status"]["S"],
        size=int(item["size"]["N"]),
        received_at=item["received_at"]["S"],
        attributes={k: v["S"] for k, v in item.items() if k not in _CORE and "S" in v},
    )
