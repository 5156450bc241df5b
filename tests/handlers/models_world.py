"""The model side of a stage on moto, for the handler tests of the pipeline, deploy, rollback and revoke functions:
accepted iris data (through the verify handler), the model bucket and registry, the model-signing KMS key and
the trust anchors, models document, serving document and trust registry bundled with the functions' code, two
models' serving functions (iris's, and petals', a second built-in model on the iris data, which the pipeline trains
with `two_models`) with versions and an alias, each model's alarms, and the alerts topic and event bus read back
through SQS. No gate or training parameter is in any function's environment: they are the bundled models document's."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.services.cloudwatch import alarm_history
from mlvault.attestation.openssf import kms_public_key_pem
from mlvault.trust.anchors import SigningKey
from mlvault.wiring import DetailType
from tests.handlers.conftest import REGION, ROOT, LambdaContext, _arn, load_handler

STAGE = "test"
SERVE = "mlvault-test-serve"
ALIAS = "live"
ERRORS, REFUSED, DRIFT = (
    "mlvault-test-serving-errors",
    "mlvault-test-model-attestation-failed",
    "mlvault-test-feature-drift",
)
ROLLBACK_ALARMS = [ERRORS, DRIFT]
CANARY_ALARMS = [ERRORS, REFUSED, DRIFT]
# the second model: its own function, alarms and lock
PETALS = "petals"
PETALS_SERVE = "mlvault-test-petals-serve"
PETALS_ERRORS, PETALS_REFUSED, PETALS_DRIFT = (
    "mlvault-test-petals-serving-errors",
    "mlvault-test-petals-model-attestation-failed",
    "mlvault-test-petals-feature-drift",
)
FUNCTIONS = {"iris": SERVE, PETALS: PETALS_SERVE}
REVOKER = "arn:aws:iam::123456789012:user/security-lead"  # who revokes, as sts:GetCallerIdentity names the caller
ALARMS = {
    "iris": {"rollback": ROLLBACK_ALARMS, "canary": CANARY_ALARMS},
    PETALS: {"rollback": [PETALS_ERRORS, PETALS_DRIFT], "canary": [PETALS_ERRORS, PETALS_REFUSED, PETALS_DRIFT]},
}


def signing_key(kms: Any, arn: str) -> SigningKey:
    return SigningKey(arn, hashlib.sha256(kms_public_key_pem(kms, arn)).hexdigest())


def write_anchors(task_root: Path, key: SigningKey, **changes: Any) -> dict[str, Any]:
    """trust/anchors.json in the functions' bundle, as the deploy-time signer writes it."""
    document = {
        "stage": STAGE,
        "model_signing_key": {"arn": key.arn, "public_key_sha256": key.public_key_sha256},
        "alarms": {"rollback": ROLLBACK_ALARMS, "canary": CANARY_ALARMS},
        **changes,
    }
    path = task_root / "trust" / "anchors.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return document


def serving_document(**changes: Any) -> dict[str, Any]:
    """trust/serving.json as the deploy-time signer writes it (infra/constructs/model_facts.py): both models."""
    return {
        "stage": STAGE,
        "models": {
            model: {"function": function, "alias": ALIAS, "alarms": ALARMS[model], "lock": f"serving-{model}"}
            for model, function in FUNCTIONS.items()
        },
        **changes,
    }


def write_serving(task_root: Path, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """trust/serving.json in the deploy, rollback and revoke functions' bundle."""
    document = serving_document() if document is None else document
    path = task_root / "trust" / "serving.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return document


def write_producers(task_root: Path, registry: Path = ROOT / "trust" / "dev.json") -> dict[str, Any]:
    """trust/producers.json in the verify and revoke functions' bundle: the stage's reviewed trust registry, as synth
    bundles it (infra/constructs/verifier.py policy_files; the repository's dev registry unless told)."""
    document = json.loads(registry.read_text())
    path = task_root / "trust" / "producers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return document


GATES = {"min_accuracy": 0.85, "max_parity_difference": 0.25, "min_disparate_impact": 0.5}
# 40 epochs (the stage's 200 are for its real data): the worlds train several models per test, in pure Python
IRIS_MODEL = {"dataset": "iris", "engine": "lambda", "gates": GATES, "training": {"seed": 1, "epochs": 40}}


def write_models(task_root: Path, models: tuple[str, ...] = ("iris", PETALS)) -> dict[str, Any]:
    """trust/models.json in the pipeline and sign functions' bundle, as the deploy-time signer writes it: built-in
    models of the iris data (iris, and petals unless left out), each with the same gates and training."""
    document = {model: IRIS_MODEL for model in models}
    path = task_root / "trust" / "models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return document


@dataclass
class World:
    env: dict[str, Any]  # ingest_env and the pipeline's: s3, ddb, sqs, kms, key (the anchored key's ARN), ...
    task_root: Path
    monkeypatch: Any
    lam: Any = None
    cw: Any = None
    model_events: str = ""  # a queue receiving every mlvault.models event
    handlers: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> SigningKey:
        return signing_key(self.env["kms"], self.env["key"])

    def handler(self, name: str) -> Any:
        if name not in self.handlers:
            self.handlers[name] = load_handler(name)
        return self.handlers[name].handler

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        clear_composition()
        return self.handler(name)(event, LambdaContext())

    def alias(self, function: str = SERVE) -> dict[str, Any]:
        return self.lam.get_alias(FunctionName=function, Name=ALIAS)

    def alarm(self, name: str, state: str) -> None:
        self.cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"test: {state}")

    def events(self) -> list[dict[str, Any]]:
        """The mlvault.models events delivered so far (each read once)."""
        found = []
        while True:
            batch = self.env["sqs"].receive_message(QueueUrl=self.model_events, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return found
            for message in batch["Messages"]:
                found.append(json.loads(message["Body"]))
                self.env["sqs"].delete_message(QueueUrl=self.model_events, ReceiptHandle=message["ReceiptHandle"])

    def alerts(self) -> list[dict[str, Any]]:
        """The SNS alerts delivered so far (each read once)."""
        found = []
        while True:
            batch = self.env["sqs"].receive_message(QueueUrl=self.env["alerts"], MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return found
            for message in batch["Messages"]:
                found.append(json.loads(message["Body"]))
                self.env["sqs"].delete_message(QueueUrl=self.env["alerts"], ReceiptHandle=message["ReceiptHandle"])


def clear_composition() -> None:
    from mlvault import composition

    for builder in (
        composition.default_pipeline,
        composition.default_sign_step,
        composition.default_rollout,
        composition.default_rollback,
        composition.default_revocation,
    ):
        builder.cache_clear()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def world(pipeline_env, tmp_path, monkeypatch) -> World:
    """pipeline_env (tests/handlers/test_pipeline_steps.py) plus what the deploy, rollback and revoke functions
    work on, their environment, and the anchors, models document (iris only), serving document and trust registry
    in their bundle."""
    alarm_history()  # moto lacks DescribeAlarmHistory: the local cloud's gap 22, in this process
    env = pipeline_env
    task_root = tmp_path / "task"
    shutil.copytree(ROOT / "trust", task_root / "trust")
    shutil.copytree(ROOT / "contracts", task_root / "contracts")
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(task_root))
    w = World(env=env, task_root=task_root, monkeypatch=monkeypatch)
    write_anchors(task_root, w.key)
    write_models(task_root, ("iris",))
    write_serving(task_root)
    write_producers(task_root)
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="serve", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    w.lam = boto3.client("lambda")
    for function in FUNCTIONS.values():
        w.lam.create_function(
            FunctionName=function, Runtime="python3.12", Role=role, Handler="handler.handler", Code={"ZipFile": _zip()}
        )
    w.cw = boto3.client("cloudwatch")
    for name in sorted({a for alarms in ALARMS.values() for a in alarms["canary"]}):
        w.cw.put_metric_alarm(
            AlarmName=name,
            Namespace="mlvault",
            MetricName=name,
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    sqs, eventbridge = env["sqs"], boto3.client("events")
    w.model_events = sqs.create_queue(QueueName="model-events")["QueueUrl"]
    eventbridge.put_rule(Name="models", EventPattern=json.dumps({"source": ["mlvault.models"]}))
    eventbridge.put_targets(Rule="models", Targets=[{"Id": "q", "Arn": _arn(sqs, w.model_events)}])
    topic = boto3.client("sns").list_topics()["Topics"][0]["TopicArn"]
    for name, value in {
        "MLVAULT_STAGE": STAGE,
        "MLVAULT_MODEL_BUCKET": "models",
        "MLVAULT_REGISTRY_TABLE": "registry",
        "MLVAULT_LEDGER_TABLE": "ledger",
        "MLVAULT_CONTRACTS_DIR": "contracts",
        "MLVAULT_ALERT_TOPIC_ARN": topic,
        "MLVAULT_CANARY_STEPS": json.dumps([{"percent": 10, "waitSeconds": 0}, {"percent": 50, "waitSeconds": 0}]),
        "MLVAULT_ROLLBACK_COOLDOWN_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    clear_composition()
    yield w
    clear_composition()


@pytest.fixture
def two_models(world: World) -> World:
    """The world whose pipeline trains iris and petals (the bundled models document), each served by its own
    function."""
    write_models(world.task_root)
    return world


def train_and_sign(w: World, run_id: str, model: str = "iris") -> dict[str, Any]:
    """A run through the pipeline and sign handlers, as the state machine calls them: the signed state."""
    start = {"run_id": run_id, "dataset": "iris", **({"model": model} if model != "iris" else {})}
    state = w.invoke("pipeline", {"step": "train", "state": start})
    for step in ("evaluate", "register"):
        state = w.invoke("pipeline", {"step": step, "state": state})
    return w.invoke("sign", {"state": state})


def deploy(w: World, state: dict[str, Any], owner: str, *, flap: str | None = None) -> dict[str, Any]:
    """prepare -> (advance -> check)* -> promote through the deploy handler, as the state machine runs it; with
    `flap`, that alarm goes to ALARM and back to OK during the first bake. Returns the last state; a promote
    that raises propagates."""
    call = {"execution": owner}
    state = w.invoke("deploy", {"action": "prepare", "state": state, **call})
    while True:
        state = w.invoke("deploy", {"action": "advance", "state": state, **call})
        if state["rollout"]["done"]:
            return w.invoke("deploy", {"action": "promote", "state": state, **call})
        if flap and state["rollout"]["step"] == 1:
            w.alarm(flap, "ALARM")
            w.alarm(flap, "OK")
        state = w.invoke("deploy", {"action": "check", "state": state, **call})
        if state["rollout"]["alarm"]:
            return w.invoke("deploy", {"action": "rollback", "state": state, **call})


ALARM_EVENT = DetailType.ALARM_STATE_CHANGE


def alarm_event(name: str, state: str = "ALARM", timestamp: str = "2026-11-25T12:00:00.000+0000") -> dict[str, Any]:
    """An EventBridge `CloudWatch Alarm State Change` event as anyone may write it (the rollback function must
    believe none of it)."""
    return {
        "version": "0",
        "id": "forged",
        "detail-type": ALARM_EVENT,
        "source": "aws.cloudwatch",
        "region": REGION,
        "time": "2026-11-25T12:00:00Z",
        "detail": {"alarmName": name, "state": {"value": state, "reason": "claimed", "timestamp": timestamp}},
    }
