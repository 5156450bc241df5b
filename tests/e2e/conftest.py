"""The running local cloud, provisioned from the app synthesized for this test run (the same assembly
`cdk synth` writes). Tests drive it only through its public surface: uploads, the CLI, queries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud import control
from mlvault.signing.keys import private_pem
from mlvault_tools.samples import iris_csv
from mlvault_tools.testkeys import claim_for, private_key, signed_metadata

CLEAN = iris_csv(20, 0)  # satisfies contracts/iris.json


def clean_for(key: str) -> bytes:
    """A small clean iris batch of its own for each key: the session's uploads are distinct batches, as a
    producer's are (the same 20 rows sent under many names is repeated data, which the rolling screen may hold)."""
    import hashlib

    return iris_csv(20, int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big"))


# Each model's own resources lead their logical ids with its name (IrisServeFunction..., CreditModelPipeline...:
# infra/model_settings.py ModelSettings.scope_id). Before models had names there was one serving function and one
# pipeline: a lookup by those old prefixes means the built-in model's, iris.
LEGACY_MODEL = "iris"
LEGACY_PREFIXES = {
    ("AWS::Lambda::Function", "ServeFunction"): "ServeFunction",
    ("AWS::StepFunctions::StateMachine", "ModelPipeline"): "ModelPipeline",
    ("AWS::Logs::LogGroup", "ServeLogs"): "ServeLogs",
}


def model_prefix(model: str, kind: str) -> str:
    """The logical id prefix of one of a model's resources: `kind` ServeFunction, ModelPipeline, Live (its alias),
    LiveFunctionUrl, ServingErrors, ModelRefused, FeatureDriftAlarm, TrainingRole."""
    return f"{model.capitalize()}{kind}"


class ModelsCloud:
    """The local cloud's handle, with physical ids looked up per model (`model_id`), and the old single-model
    prefixes resolved to the iris model's."""

    def __init__(self, handle: control.Handle) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def physical_id(self, stack_suffix: str, type_: str, logical_prefix: str = "") -> str:
        legacy = LEGACY_PREFIXES.get((type_, logical_prefix))
        if legacy is not None:
            logical_prefix = model_prefix(LEGACY_MODEL, legacy)
        return self._handle.physical_id(stack_suffix, type_, logical_prefix)

    def model_id(self, model: str, type_: str, kind: str) -> str:
        """The physical id of one of `model`'s resources in the models stack (model_prefix)."""
        return self._handle.physical_id("-models", type_, model_prefix(model, kind))


@pytest.fixture(scope="session")
def cloud(synthesized, tmp_path_factory) -> Iterator[control.Handle]:
    state_dir = tmp_path_factory.mktemp("local-cloud")
    # Alarm periods of a minute pass in a second: alarms fire and clear within the tests.
    handle = ModelsCloud(control.up(cdk_out=synthesized.outdir, state_dir=state_dir, alarm_scale=60))
    # Accepted iris batches start (debounced) model pipeline runs, which would deploy models while the model
    # tests assert what is live: the rule is off for the session; test_models_e2e checks it on its own.
    events = handle.client("events")
    events.disable_rule(Name=handle.physical_id("-models", "AWS::Events::Rule", "OnAcceptedBatch"))
    try:
        yield handle
    finally:
        control.down(state_dir)


BREAK_GLASS = "mlvault-break-glass"  # cdk.json breakGlassRoleName: created by the account's owners, not by mlvault


def break_glass(cloud: control.Handle, service: str, actions: str = "*") -> Any:
    """A client signed as the stage's break-glass role (created here as an account's owners would, allowed
    `actions`): the only principal the bucket and key policies exempt from their guards."""
    import json

    iam = cloud.client("iam")
    account = cloud.state["account"]
    try:
        iam.get_role(RoleName=BREAK_GLASS)
    except iam.exceptions.NoSuchEntityException:
        trust = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}
        iam.create_role(
            RoleName=BREAK_GLASS, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]})
        )
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_role_policy(RoleName=BREAK_GLASS, PolicyName=f"incident-{service}", PolicyDocument=json.dumps(allow))
    role = f"arn:aws:iam::{account}:role/{BREAK_GLASS}"
    creds = cloud.client("sts").assume_role(RoleArn=role, RoleSessionName="incident")["Credentials"]
    return cloud.client(
        service,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def eventually(probe: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until probe() is truthy; fail with the last value after the timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s (last value: {value!r})")


def evaluations_pass(cloud: control.Handle, alarm: str, count: int = 2, timeout: float = 30.0) -> None:
    """Wait until the local cloud's alarm evaluator has judged `alarm` `count` more times (its `alarm-evaluated`
    records): what "nothing changed" is asserted after, instead of a sleep."""

    def judged() -> int:
        return sum(alarm in e["alarms"] for e in cloud.events("alarm-evaluated"))

    seen = judged()
    eventually(lambda: judged() >= seen + count, timeout=timeout)


class Ingest:
    """The ingest side of the deployed app, as a producer and an operator see it."""

    def __init__(self, cloud: control.Handle) -> None:
        self.cloud = cloud
        self.s3 = cloud.client("s3")
        self.ddb = cloud.client("dynamodb")
        self.sqs = cloud.client("sqs")
        self.bucket = cloud.physical_id("-storage", "AWS::S3::Bucket", "IngestBucket")
        self.lake = cloud.physical_id("-storage", "AWS::S3::Bucket", "LakeBucket")
        self.ledger = cloud.physical_id("-storage", "AWS::DynamoDB::Table", "LedgerTable")
        self.queue_url = cloud.physical_id("-storage", "AWS::SQS::Queue", "IngestEventsQueue")

    def upload(self, key: str, body: bytes = CLEAN, **kwargs: Any) -> str:
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **kwargs)["VersionId"]

    def signed_upload(self, key: str, body: bytes | None = None, key_id: str = "acme-p256", **changes: Any) -> str:
        """Upload as a producer would: the envelope in the same PUT (claims changed to build attacks)."""
        body = clean_for(key) if body is None else body
        return self.upload(key, body, Metadata=signed_metadata(claim_for(key, body, **changes), key_id))

    def verdict(self, key: str, version: str, timeout: float = 20.0) -> dict[str, Any]:
        """The version's terminal ledger record, once there."""

        def terminal():
            found = [r for r in self.records(key) if r["version_id"]["S"] == version]
            return found and found[0]["status"]["S"] in ("ACCEPTED", "REJECTED", "HELD") and found[0]

        record = eventually(terminal, timeout=timeout)
        return {k: next(iter(v.values())) for k, v in record.items()}

    def records(self, key: str) -> list[dict[str, Any]]:
        return self.ddb.query(
            TableName=self.ledger,
            KeyConditionExpression="pk = :pk",
            ConsistentRead=True,
            ExpressionAttributeValues={":pk": {"S": f"OBJ#{self.bucket}/{key}"}},
        )["Items"]


@pytest.fixture(scope="session")
def ingest(cloud) -> Ingest:
    return Ingest(cloud)


def run_cli(cloud: control.Handle, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The mlvault CLI as a user runs it, pointed at the local cloud by `mlvault local env`."""
    env = {**os.environ, **cloud.environment()}
    return subprocess.run(
        [sys.executable, "-m", "mlvault_tools.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="session")
def key_files(tmp_path_factory) -> Callable[[str], Path]:
    """PEM files of the public test keys (mlvault_tools.testkeys), as a producer keeps its private key."""
    folder = tmp_path_factory.mktemp("keys")

    def path(key_id: str) -> Path:
        target = folder / f"{key_id}.pem"
        if not target.exists():
            target.write_bytes(private_pem(private_key(key_id)))
        return target

    return path
