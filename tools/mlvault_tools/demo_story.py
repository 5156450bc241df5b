"""The demo's shared machinery (`mlvault demo`, mlvault_tools.demo): the story's errors and waits, the names it
looks up, and the steps' common moves on the local cloud (a producer's signed upload, its verdict, a pipeline run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localcloud import control
from mlvault_tools import testkeys

PRODUCER = "demo-producer"  # trusted by the dev stage's registry (trust/dev.json) with public test keys
DATASET = "iris"
MODEL = "iris"  # the built-in model trained on it (cdk.json `models`)
# Each model's resources lead their logical ids with its name (infra/model_settings.py ModelSettings.scope_id).
SERVE_FUNCTION = f"{MODEL.capitalize()}ServeFunction"
STAGE = "dev"  # the stage `make synth` synthesizes (cdk.json context `stage`)
MAX_DRIFTED_REQUESTS = 120  # a drift window is 200 rows: the alarm (2 scaled periods) rings after a few


def pipeline_of(model: str) -> str:
    """The logical id prefix of a model's state machine."""
    return f"{model.capitalize()}ModelPipeline"


class StoryError(AssertionError):
    """The system did not do what the story says."""


@dataclass
class Step:
    title: str
    outcome: str
    seconds: float


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> Any:
    """Poll `probe` until it is truthy; on giving up, say what was awaited and (`describe`) where things stand."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    state = f"; {describe()}" if describe else ""
    raise StoryError(f"timed out after {timeout:.0f}s waiting for {what}{state}")


class StoryBase:
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

    def verdict(self, key: str, version: str) -> dict[str, str]:
        def terminal():
            item = self.ledger_record(key, version)
            return item if item and item["status"]["S"] in ("ACCEPTED", "REJECTED", "HELD") else None

        item = wait_for(f"the verdict on {key}", terminal)
        return {k: next(iter(v.values())) for k, v in item.items()}

    def push(
        self,
        name: str,
        body: bytes,
        *,
        key_id: str = "demo-producer-p256",
        tamper: bytes | None = None,
        sign_it: bool = True,
        dataset: str = DATASET,
    ) -> tuple[str, str, float]:
        """A producer signs and uploads (optionally the bytes are swapped after signing, or not signed)."""
        key = f"producers/{PRODUCER}/{dataset}/{name}"
        metadata = testkeys.signed_metadata(testkeys.claim_for(key, body), key_id) if sign_it else {}
        started = time.monotonic()
        version = self.s3.put_object(
            Bucket=self.ingest, Key=key, Body=tamper or body, Metadata=metadata, ChecksumAlgorithm="SHA256"
        )["VersionId"]
        return key, version, started

    def _run_pipeline(self, model: str = MODEL, dataset: str = DATASET, timeout: float = 120) -> dict[str, Any]:
        import json

        from mlvault.training.trigger import start_manual

        sfn = self.cloud.client("stepfunctions")
        machine = self.cloud.physical_id("-models", "AWS::StepFunctions::StateMachine", pipeline_of(model))
        name = start_manual(sfn, machine, dataset, model)
        execution = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
        done = wait_for(
            f"run {name}",
            lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d,
            timeout=timeout,
        )
        if done["status"] != "SUCCEEDED":
            raise StoryError(f"run {name}: {done['status']} {done.get('error')}: {done.get('cause', '')[:300]}")
        return self.registry().model(json.loads(done["output"])["state"]["model_id"])

    def registry(self):
        from mlvault.registry.records import ModelRegistry

        return ModelRegistry(self.ddb, self.cloud.physical_id("-storage", "AWS::DynamoDB::Table", "RegistryTable"))
