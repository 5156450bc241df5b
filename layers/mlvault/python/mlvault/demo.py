"""`mlvault demo`: the scripted story, run through the deployed wiring of a fresh local cloud.

Each step checks what it shows; the demo exits non-zero when the system does not behave as told.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlvault.localcloud import control

PRODUCER = "demo-producer"
DATASET = "iris"


class StoryError(AssertionError):
    """The system did not do what the story says."""


@dataclass
class Step:
    title: str
    outcome: str
    seconds: float


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise StoryError(f"timed out after {timeout:.0f}s waiting for {what}")


class Story:
    def __init__(self, cloud: control.Handle) -> None:
        self.cloud = cloud
        self.s3 = cloud.client("s3")
        self.ddb = cloud.client("dynamodb")
        self.ingest = cloud.physical_id("-storage", "AWS::S3::Bucket", "IngestBucket")
        self.lake = cloud.physical_id("-storage", "AWS::S3::Bucket", "LakeBucket")
        self.ledger = cloud.physical_id("-storage", "AWS::DynamoDB::Table", "LedgerTable")

    def ledger_record(self, key: str, version_id: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(
            TableName=self.ledger,
            ConsistentRead=True,
            Key={"pk": {"S": f"OBJ#{self.ingest}/{key}"}, "sk": {"S": f"V#{version_id}"}},
        ).get("Item")
        return item

    def provisioned(self) -> str:
        counts = control.status(self.cloud, recent=0)["resources"]
        total = sum(counts.values())
        return (
            f"{total} resources of {len(counts)} types from {len(self.cloud.state['resources'])} stacks "
            f"in {self.cloud.state['startup_seconds']}s"
        )

    def upload_reaches_the_ledger(self) -> str:
        key = f"producers/{PRODUCER}/{DATASET}/batch-0001.csv"
        body = b"sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n"
        started = time.monotonic()
        version = self.s3.put_object(Bucket=self.ingest, Key=key, Body=body)["VersionId"]
        record = wait_for("the ledger record of the upload", lambda: self.ledger_record(key, version))
        took = time.monotonic() - started
        batches = [e for e in self.cloud.events("sqs-batch") if not e["errored"]]
        if not batches:
            raise StoryError("no SQS batch reached the verify function")
        return (
            f"{key} (version {version[:8]}…) -> S3 notification -> SQS -> verify function -> ledger "
            f"status {record['status']['S']} in {took:.2f}s"
        )

    def lake_is_locked(self) -> str:
        version = self.s3.put_object(Bucket=self.lake, Key="demo/locked.txt", Body=b"evidence")["VersionId"]
        head = self.s3.head_object(Bucket=self.lake, Key="demo/locked.txt", VersionId=version)
        try:
            self.s3.delete_object(Bucket=self.lake, Key="demo/locked.txt", VersionId=version)
        except self.s3.exceptions.ClientError as err:
            code = err.response["Error"]["Code"]
        else:
            raise StoryError("a lake object version was deleted")
        until = head["ObjectLockRetainUntilDate"].date().isoformat()
        return f"lake version under {head['ObjectLockMode']} retention until {until}; deleting it -> {code}"


def run(*, cdk_out: Path, state_dir: Path, port: int = 0) -> int:
    print("mlvault demo: the synthesized app on the local cloud (moto on 127.0.0.1, no AWS account)\n")
    started = time.monotonic()
    cloud = control.up(cdk_out=cdk_out, state_dir=state_dir, port=port)
    steps: list[Step] = []
    failed = None
    try:
        story = Story(cloud)
        for title, action in (
            ("local cloud provisioned from cdk.out", story.provisioned),
            ("an upload flows through the deployed wiring", story.upload_reaches_the_ledger),
            ("the lake refuses deletes", story.lake_is_locked),
        ):
            step_started = time.monotonic()
            try:
                outcome = action()
            except StoryError as err:
                failed = f"{title}: {err}"
                break
            steps.append(Step(title, outcome, time.monotonic() - step_started))
            print(f"  [ok] {title}\n       {outcome}")
    finally:
        control.down(state_dir)
    total = time.monotonic() - started
    print(f"\nsummary: {len(steps)} step(s) shown, wall time {total:.1f}s (local cloud stopped)")
    if failed:
        print(f"  [FAILED] {failed}")
        return 1
    return 0
