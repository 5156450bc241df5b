"""The model registry (DynamoDB, pk/sk): every training run, every registered model, deployment locks.

- `RUN#<run_id>` / `RUN`: every run, winners and losers alike (parameters, manifest and code digests, metrics,
  artifact digest, gate report, the model it registered), ending in its outcome: the step it ended at, the
  reason code and detail (RUN_STATUSES; FINAL_RUN_STATUSES are where a run ends).
- `MODEL#<model>/<n>` / `RECORD`: a registered model (numbered per model name; a model without a name of its own
  is named like its dataset). Its `record` is validated against model_record.schema.json (format
  mlvault.model/v2: a model package) before it is written (a bad record is refused) and stored as canonical JSON
  with its SHA-256, which the model's signature covers: a record edited after signing no longer matches. Records
  of format mlvault.model/v1 (the single-file JSON artifact) may still be read; nothing deploys or serves them.
- `RUNMODEL#<run_id>`: registering is idempotent per run. `COUNTER#<model>`: model numbers.
- `LOCK#<name>`: one deployment at a time, owned by a Step Functions execution (idempotent for its owner).
- `ONCE#<key>` / `ONCE`: an action done at most once (an alarm's transition rolled back, a revocation handled, a
  run blocked), with its report and its announcement (mlvault.outbox: written with the report, delivered after
  it, swept if its writer died in between).
Status changes are conditional on the statuses they may come from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from mlvault.canonical import canonical_json
from mlvault.errors import ModelRegistryError, RegistryReason
from mlvault.outbox import Announcement, Outbox, stage

REGISTERED, SIGNED, DEPLOYED = "REGISTERED", "SIGNED", "DEPLOYED"
ROLLED_BACK, REVOKED, SUPERSEDED = "ROLLED_BACK", "REVOKED", "SUPERSEDED"
# A run's statuses, in the order a run goes through them; the final ones say how it ended.
RUN_STARTED, RUN_PREPARED, RUN_TRAINED, RUN_GATES_PASSED = "STARTED", "PREPARED", "TRAINED", "GATES_PASSED"
RUN_REGISTERED, RUN_SIGNED, RUN_AWAITING_APPROVAL, RUN_DEPLOYING = (
    "REGISTERED",
    "SIGNED",
    "AWAITING_APPROVAL",
    "DEPLOYING",
)
RUN_DEPLOYED, RUN_ROLLED_BACK, RUN_REVOKED = "DEPLOYED", "ROLLED_BACK", "REVOKED"
RUN_FAILED, RUN_GATES_FAILED, RUN_REFUSED, RUN_REJECTED = "FAILED", "GATES_FAILED", "REFUSED", "REJECTED"
RUN_STATUSES = (
    RUN_STARTED,
    RUN_PREPARED,
    RUN_TRAINED,
    RUN_GATES_FAILED,
    RUN_GATES_PASSED,
    RUN_REGISTERED,
    RUN_SIGNED,
    RUN_AWAITING_APPROVAL,
    RUN_DEPLOYING,
    RUN_DEPLOYED,
    RUN_ROLLED_BACK,
    RUN_REVOKED,
    RUN_REFUSED,
    RUN_REJECTED,
    RUN_FAILED,
)
FINAL_RUN_STATUSES = (
    RUN_DEPLOYED,
    RUN_ROLLED_BACK,
    RUN_REVOKED,
    RUN_REFUSED,
    RUN_REJECTED,
    RUN_FAILED,
    RUN_GATES_FAILED,
)
RECORD_FORMAT = "mlvault.model/v2"  # a model package; v1 (a single-file JSON artifact) is read, never written
SCHEMA_FILE = Path(__file__).with_name("model_record.schema.json")


@cache
def _validator():
    import fastjsonschema

    return fastjsonschema.compile(json.loads(SCHEMA_FILE.read_text()))


def validate_record(record: dict[str, Any]) -> None:
    """Refuse a model record that does not match the schema, naming the field."""
    import fastjsonschema

    try:
        _validator()(record)
    except fastjsonschema.JsonSchemaException as err:
        raise ModelRegistryError(RegistryReason.INVALID_RECORD, str(err.message)) from None


def record_digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()


def once_key(key: str) -> dict[str, dict[str, str]]:
    """The primary key of the item of an action done at most once (`claim_once`)."""
    return {"pk": _s(f"ONCE#{key}"), "sk": _s("ONCE")}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _s(value: str) -> dict[str, str]:
    return {"S": value}


class ModelRegistry:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    # --- runs ---------------------------------------------------------------------------------------------

    def record_run(self, run_id: str, *, dataset: str, status: str, body: dict[str, Any]) -> None:
        """Write (or rewrite, for the same run) a run's record."""
        self._db.put_item(
            TableName=self._table,
            Item={
                "pk": _s(f"RUN#{run_id}"),
                "sk": _s("RUN"),
                "run_id": _s(run_id),
                "dataset": _s(dataset),
                "status": _s(status),
                "body": _s(json.dumps(body, sort_keys=True)),
                "updated_at": _s(_now()),
            },
        )

    def update_run(
        self, run_id: str, status: str, *, dataset: str = "", outcome: dict[str, str] | None = None, **fields: Any
    ) -> None:
        """Move a run to `status`, merging `fields` into its record; with `outcome` (step, reason, detail), the
        outcome it ended in (stamped with the time). A run not recorded yet (its first step failed before it
        wrote) is recorded with `dataset`."""
        run = self.run(run_id) or {"dataset": dataset}
        body = {k: v for k, v in run.items() if k not in ("run_id", "status")}
        body.update(fields)
        if outcome is not None:
            body["outcome"] = {"status": status, **outcome, "at": _now()}
        self.record_run(run_id, dataset=body.get("dataset", dataset), status=status, body=body)

    def run(self, run_id: str) -> dict[str, Any] | None:
        item = self._get(f"RUN#{run_id}", "RUN")
        if item is None:
            return None
        return {"run_id": run_id, "status": item["status"]["S"], **json.loads(item["body"]["S"])}

    def runs(self, dataset: str | None = None) -> list[dict[str, Any]]:
        items = self._scan("RUN#")
        runs = [{"run_id": i["run_id"]["S"], "status": i["status"]["S"], **json.loads(i["body"]["S"])} for i in items]
        return sorted((r for r in runs if dataset in (None, r.get("dataset"))), key=lambda r: r.get("started_at", ""))

    # --- models -------------------------------------------------------------------------------------------

    def register(self, record: dict[str, Any]) -> dict[str, Any]:
        """Validate and register a model of a run, numbered per model name; the same run registers once."""
        record = {"model": record.get("dataset"), **record}
        name = record["model"]
        draft = {**record, "format": RECORD_FORMAT, "model_id": f"{name}/1"}
        validate_record(draft)  # before a number is spent
        run_id = record["run_id"]
        claimed = self._get(f"RUNMODEL#{run_id}", "MODEL")
        if claimed is not None:
            return self.model(claimed["model_id"]["S"])
        number = self._db.update_item(
            TableName=self._table,
            Key={"pk": _s(f"COUNTER#{name}"), "sk": _s("MODEL")},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )["Attributes"]["n"]["N"]
        model_id = f"{name}/{number}"
        try:
            self._db.put_item(
                TableName=self._table,
                Item={"pk": _s(f"RUNMODEL#{run_id}"), "sk": _s("MODEL"), "model_id": _s(model_id)},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:  # a concurrent retry of the same run won
            return self.model(self._get(f"RUNMODEL#{run_id}", "MODEL")["model_id"]["S"])
        final = {**draft, "model_id": model_id}
        validate_record(final)
        body = canonical_json(final).decode()
        self._db.put_item(
            TableName=self._table,
            Item={
                "pk": _s(f"MODEL#{model_id}"),
                "sk": _s("RECORD"),
                "model_id": _s(model_id),
                "dataset": _s(record["dataset"]),
                "model": _s(name),
                "run_id": _s(run_id),
                "status": _s(REGISTERED),
                "record": _s(body),
                "record_sha256": _s(record_digest(final)),
                "history": {"L": [{"S": f"{_now()} {REGISTERED}"}]},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        return self.model(model_id)

    def model(self, model_id: str) -> dict[str, Any] | None:
        """The record, its status, signature fields and history. `record_intact` is False when the stored
        record no longer hashes to the digest written with it."""
        item = self._get(f"MODEL#{model_id}", "RECORD")
        if item is None:
            return None
        record = json.loads(item["record"]["S"])
        extra = {k: v["S"] for k, v in item.items() if "S" in v and k not in ("pk", "sk", "record")}
        return {
            **extra,
            "record": record,
            "record_intact": record_digest(record) == item["record_sha256"]["S"],
            "history": [h["S"] for h in item.get("history", {}).get("L", [])],
        }

    def status(self, model_id: str) -> str | None:
        """A model's status (one consistent read of that attribute only), None if there is no such model."""
        item = self._db.get_item(
            TableName=self._table,
            Key={"pk": _s(f"MODEL#{model_id}"), "sk": _s("RECORD")},
            ConsistentRead=True,
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
        ).get("Item")
        if item is None:
            return None
        value = item.get("status")
        return value.get("S", "") if isinstance(value, dict) else ""  # no string status: nothing may serve it

    def models(self, dataset: str | None = None) -> list[dict[str, Any]]:
        found = [self.model(i["model_id"]["S"]) for i in self._scan("MODEL#")]
        found = [m for m in found if m is not None and dataset in (None, m["dataset"])]
        return sorted(found, key=lambda m: (m["dataset"], int(m["model_id"].split("/")[1])))

    def set_status(
        self,
        model_id: str,
        status: str,
        *,
        allowed_from: tuple[str, ...],
        note: str,
        settled: tuple[str, ...] = (),
        **attrs: str,
    ) -> None:
        """Move a model to `status` if it is in one of `allowed_from`. Otherwise nothing changes: a model already in
        one of `settled` (a state that makes this change moot, e.g. ROLLED_BACK for a second rollback) is left as
        it is; anything else raises ModelRegistryError, STATUS_CONFLICT naming what it is (NO_SUCH_MODEL if it
        does not exist)."""
        names = {"#status": "status", **{f"#a{i}": k for i, k in enumerate(attrs)}}
        values = {":status": _s(status), ":entry": {"L": [_s(f"{_now()} {status} {note}".strip())]}}
        values |= {f":v{i}": _s(v) for i, v in enumerate(attrs.values())}
        values |= {f":f{i}": _s(s) for i, s in enumerate(allowed_from)}
        sets = ", ".join(["#status = :status", *(f"#a{i} = :v{i}" for i in range(len(attrs)))])
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": _s(f"MODEL#{model_id}"), "sk": _s("RECORD")},
                UpdateExpression=f"SET {sets}, history = list_append(history, :entry)",
                ConditionExpression=f"#status IN ({', '.join(f':f{i}' for i in range(len(allowed_from)))})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            item = self._get(f"MODEL#{model_id}", "RECORD")
            if item is None:
                raise ModelRegistryError(RegistryReason.NO_SUCH_MODEL, f"no model {model_id}") from None
            if item["status"]["S"] in settled:
                return
            raise ModelRegistryError(
                RegistryReason.STATUS_CONFLICT,
                f"{model_id} is {item['status']['S']}: {status} needs one of {', '.join(allowed_from)}",
            ) from None

    def derived_from(
        self, *, producer: str | None = None, key_id: str | None = None, data: str | None = None
    ) -> list[dict[str, Any]]:
        """Every registered model (deployed or not) trained on data of that producer, signed by that key, or of
        that file (a lake or ingest S3 URI, or an object key, matched as a substring of the lineage URIs)."""

        def uses(entry: dict[str, Any]) -> bool:
            uris = [entry["lake_uri"], *entry["ingest"]]
            return (
                (producer is None or entry["producer"] == producer)
                and (key_id is None or entry["key_id"] == key_id)
                and (data is None or any(data in u for u in uris))
            )

        return [m for m in self.models() if any(uses(e) for e in m["record"]["lineage"])]

    def claim_once(self, key: str) -> bool:
        """True the first time `key` is claimed (idempotency for events delivered more than once)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={"pk": _s(f"ONCE#{key}"), "sk": _s("ONCE"), "at": _s(_now())},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def settle_once(self, key: str, report: dict[str, Any], announcement: Announcement | None = None) -> bool:
        """Store the report of a claimed action (`claim_once`) and its announcement, in one write. False when the
        action already has a report (the first one stands)."""
        update, names, values = "SET #report = :report", {"#report": "report"}, {":report": _s(json.dumps(report))}
        condition = "attribute_not_exists(#report)"
        if announcement is not None:
            staged = stage(announcement)
            update += f", {staged.update}"
            names |= staged.names
            values |= staged.values
            condition += f" AND {staged.condition}"
        try:
            self._db.update_item(
                TableName=self._table,
                Key=once_key(key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def report_once(self, key: str, report: dict[str, Any], announcement: Announcement, outbox: Outbox) -> bool:
        """Claim and settle an action whose report is known at once, then deliver its announcement. False when it
        was claimed before: its first report stands (settled now if its writer died before it could), and what is
        still pending of its announcement is delivered."""
        first = self.claim_once(key)
        if first or self.once_report(key) is None:
            self.settle_once(key, report, announcement)
        outbox.deliver(once_key(key))
        return first

    def once_report(self, key: str) -> dict[str, Any] | None:
        """The report of a claimed action, None while it has none (claimed, not settled: interrupted or running)."""
        claim = self.once(key)
        return None if claim is None else claim["report"]

    def once(self, key: str) -> dict[str, Any] | None:
        """A claimed action: when it was claimed ("at") and its report (None until settled); None if unclaimed."""
        item = self._get(f"ONCE#{key}", "ONCE")
        if item is None:
            return None
        report = json.loads(item["report"]["S"]) if "report" in item else None
        return {"at": item.get("at", {}).get("S", ""), "report": report}

    def outbox(self, *, events: Any, sns: Any) -> Outbox:
        """The announcements pending on this table's items (reports of actions), delivered through these clients."""
        return Outbox(self._db, self._table, events=events, sns=sns)

    def cooldown(self, name: str, now: datetime, seconds: int) -> bool:
        """Record an action on `name` now unless the last one was less than `seconds` ago (True: go ahead)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={"pk": _s(f"COOLDOWN#{name}"), "sk": _s("COOLDOWN"), "last": {"N": str(now.timestamp())}},
                ConditionExpression="attribute_not_exists(pk) OR #last <= :since",
                ExpressionAttributeNames={"#last": "last"},
                ExpressionAttributeValues={":since": {"N": str(now.timestamp() - seconds)}},
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # --- deployment lock ----------------------------------------------------------------------------------

    def acquire_lock(self, name: str, owner: str, *, is_stale: Callable[[str], bool] | None = None) -> str:
        """Take the lock for `owner`; returns who holds it (`owner` itself on success or on a retry). A holder
        that `is_stale` says has ended (an execution stopped or timed out before it released) is replaced."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={"pk": _s(f"LOCK#{name}"), "sk": _s("LOCK"), "owner": _s(owner), "acquired_at": _s(_now())},
                ConditionExpression="attribute_not_exists(pk) OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": _s(owner)},
            )
            return owner
        except self._db.exceptions.ConditionalCheckFailedException:
            item = self._get(f"LOCK#{name}", "LOCK")
            holder = item["owner"]["S"] if item else ""
            if not holder or is_stale is None or not is_stale(holder):
                return holder
        try:  # take over from a holder that ended, unless someone else did first
            self._db.put_item(
                TableName=self._table,
                Item={"pk": _s(f"LOCK#{name}"), "sk": _s("LOCK"), "owner": _s(owner), "acquired_at": _s(_now())},
                ConditionExpression="#owner = :holder",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":holder": _s(holder)},
            )
            return owner
        except self._db.exceptions.ConditionalCheckFailedException:
            item = self._get(f"LOCK#{name}", "LOCK")
            return item["owner"]["S"] if item else ""

    def release_lock(self, name: str, owner: str) -> None:
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": _s(f"LOCK#{name}"), "sk": _s("LOCK")},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": _s(owner)},
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return  # not ours (or already released): nothing to do

    # --- helpers ------------------------------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._db.get_item(TableName=self._table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True).get(
            "Item"
        )

    def _scan(self, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": _s(prefix)},
            "ConsistentRead": True,
        }
        while True:
            page = self._db.scan(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
