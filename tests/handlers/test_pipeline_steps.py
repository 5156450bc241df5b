"""The model pipeline's steps on moto, from accepted uploads (through the verify handler) to a signed model
that the independent `model_signing` verifier accepts; every run recorded to its outcome, a failing gate stops
the run; the sign step signs with the bundled anchor's key only, and a refused key stops the run with an alert."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import boto3
import pytest

from mlvault.model_package import file_digests, unpack
from mlvault.registry.records import REGISTERED, SIGNED, ModelRegistryError
from mlvault.training.gates import Gates
from mlvault.training.pipeline import GatesFailed, Pipeline, PipelineConfig, PipelineFailed
from mlvault.training.specs import parse_specs
from mlvault_tools.samples import iris_csv
from tests.handlers.conftest import ROOT, key_value_table, versioned_buckets
from tests.handlers.test_content_gate import push

GATES = Gates(min_accuracy=0.85, max_parity_difference=0.25, min_disparate_impact=0.5)


@pytest.fixture
def pipeline_env(ingest_env):
    s3, ddb = ingest_env["s3"], ingest_env["ddb"]
    versioned_buckets(s3, "models")
    key_value_table(ddb, "registry")
    kms = boto3.client("kms")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    return {**ingest_env, "kms": kms, "key": key}


def models_document(gates: Gates = GATES) -> dict:
    """The bundled models document (trust/models.json) of a stage training iris's built-in model."""
    return {"iris": {"dataset": "iris", "engine": "lambda", "gates": gates.to_json(), "training": {"seed": 1}}}


def pipeline(env, gates: Gates = GATES, *, key_arn: str | None = None) -> Pipeline:
    """The pipeline as the composition root builds it from its bundle: iris's model with `gates`."""
    from mlvault.attestation.openssf import kms_public_key_pem
    from mlvault.trust.anchors import SigningKey

    arn = key_arn or env["key"]
    config = PipelineConfig(
        model_bucket="models",
        ledger_table="ledger",
        registry_table="registry",
        contracts_dir=ROOT / "contracts",
        models=parse_specs(json.dumps(models_document(gates))),
        signing_key=SigningKey(arn, hashlib.sha256(kms_public_key_pem(env["kms"], env["key"])).hexdigest()),
        stage="test",
        alert_topic_arn=boto3.client("sns").list_topics()["Topics"][0]["TopicArn"],
    )
    return Pipeline(
        s3=env["s3"],
        dynamodb=env["ddb"],
        kms=env["kms"],
        config=config,
        events=boto3.client("events"),
        sns=boto3.client("sns"),
    )


def accepted_data(env, batches: int = 3) -> None:
    for seed in range(batches):
        _, rec = push(env, iris_csv(600, 70 + seed), key=f"producers/acme/iris/b{seed}.csv")
        assert rec.status == "ACCEPTED"


def test_from_accepted_data_to_a_signed_model_that_model_signing_verifies(pipeline_env, tmp_path):
    from model_signing import verifying  # the independent verifier (test-time only)

    from mlvault.attestation.openssf import kms_public_key_pem

    accepted_data(pipeline_env)
    p = pipeline(pipeline_env)
    state = p.train("run-1", "iris")
    assert state["manifest"]["entries"] == 3
    state = p.evaluate(state)
    state = p.register(state)
    assert state["model_id"] == "iris/1"
    assert p.registry.model("iris/1")["status"] == REGISTERED
    state = p.sign(state)
    model = p.registry.model("iris/1")
    assert model["status"] == SIGNED
    assert {e["producer"] for e in model["record"]["lineage"]} == {"acme"}
    assert len(model["record"]["lineage"]) == 3
    s3 = pipeline_env["s3"]
    artifact = model["record"]["artifact"]
    assert artifact["format"] == "mlvault.model-package/v1"
    assert artifact["key"] == f"models/iris/sha256={artifact['sha256']}/model.tar"
    tar = s3.get_object(Bucket="models", Key=artifact["key"], VersionId=artifact["version_id"])["Body"].read()
    assert hashlib.sha256(tar).hexdigest() == artifact["sha256"]
    (tmp_path / "iris").mkdir()
    files = unpack(io.BytesIO(tar), tmp_path / "iris")
    assert sorted(files) == ["descriptor.json", "drift.json", "model.onnx"]
    assert file_digests(files) == artifact["files"]
    signature = s3.get_object(Bucket="models", Key=model["signature_key"], VersionId=model["signature_version"])
    (tmp_path / "model.sig").write_bytes(signature["Body"].read())
    (tmp_path / "key.pem").write_bytes(kms_public_key_pem(pipeline_env["kms"], pipeline_env["key"]))
    verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "key.pem").verify(
        tmp_path / "iris", tmp_path / "model.sig"
    )
    statement = json.loads(
        base64.b64decode(json.loads((tmp_path / "model.sig").read_bytes())["dsseEnvelope"]["payload"])
    )
    assert [r["name"] for r in statement["predicate"]["resources"]] == ["descriptor.json", "drift.json", "model.onnx"]
    signed = statement["predicate"]["mlvault"]
    assert (signed["model_id"], signed["package_sha256"], signed["code_sha256"]) == (
        "iris/1",
        artifact["sha256"],
        model["record"]["code"]["sha256"],
    )
    assert p.register({**state})["model_id"] == "iris/1"  # registering the same run again: the same model


def test_a_failing_gate_stops_the_run_and_the_run_is_recorded(pipeline_env):
    accepted_data(pipeline_env)
    p = pipeline(pipeline_env, Gates(min_accuracy=0.999, max_parity_difference=0.25, min_disparate_impact=0.5))
    state = p.train("run-strict", "iris")
    with pytest.raises(GatesFailed, match="min_accuracy"):
        p.evaluate(state)
    run = p.registry.run("run-strict")
    assert run["status"] == "GATES_FAILED"
    assert run["artifact_digest"] == state["artifact"]["sha256"]
    with pytest.raises(PipelineFailed, match="NOT_EVALUATED"):
        p.register(state)
    assert p.registry.models() == []


def test_no_accepted_data_fails_the_run_and_records_it(pipeline_env):
    p = pipeline(pipeline_env)
    with pytest.raises(PipelineFailed):
        p.train("run-empty", "iris")
    assert p.registry.run("run-empty")["status"] == "FAILED"


def test_a_record_that_breaks_the_schema_is_refused(pipeline_env):
    p = pipeline(pipeline_env)
    with pytest.raises(ModelRegistryError, match="INVALID_RECORD"):
        p.registry.register({"dataset": "iris", "run_id": "r", "artifact": {"sha256": "not-hex"}})


def test_a_deployment_lock_left_by_an_ended_execution_is_taken_over(pipeline_env):
    registry = pipeline(pipeline_env).registry
    stopped = "arn:aws:states:eu-west-1:123456789012:execution:pipeline:stopped-run"
    assert registry.acquire_lock("serving", stopped) == stopped
    assert registry.acquire_lock("serving", "second", is_stale=lambda holder: False) == stopped  # still running
    assert registry.acquire_lock("serving", "second", is_stale=lambda holder: holder == stopped) == "second"
    assert registry.acquire_lock("serving", "third", is_stale=lambda holder: False) == "second"


# --- runs end in their outcome ---------------------------------------------------------------------------------


def _lambda_error(error: str, message: str) -> dict:
    """A Step Functions Catch of a failed Lambda task: {"Error", "Cause"} (the Lambda error as JSON)."""
    return {"Error": error, "Cause": json.dumps({"errorMessage": message, "errorType": error, "stackTrace": []})}


def test_every_step_records_where_the_run_is_and_a_failed_step_ends_it_with_step_and_reason(pipeline_env):
    accepted_data(pipeline_env)
    p = pipeline(pipeline_env)
    state = p.train("run-1", "iris")
    assert p.registry.run("run-1")["status"] == "TRAINED"
    state = p.evaluate(state)
    assert p.registry.run("run-1")["status"] == "GATES_PASSED"
    state = p.register(state)
    assert (p.registry.run("run-1")["status"], p.registry.run("run-1")["model_id"]) == ("REGISTERED", "iris/1")
    assert p.register(state)["model_id"] == "iris/1"  # a retried register step: the same model
    state = p.sign(state)
    assert p.registry.run("run-1")["status"] == "SIGNED"
    ended = p.record_failure("run-1", "iris", "deploy", _lambda_error("RolloutRefused", "RECORD_TAMPERED: changed"))
    assert ended == {
        "run_id": "run-1",
        "status": "REFUSED",
        "step": "deploy",
        "reason": "RECORD_TAMPERED",
        "detail": "changed",
        "error": "RolloutRefused",
    }
    run = p.registry.run("run-1")
    assert run["status"] == "REFUSED"
    assert {k: run["outcome"][k] for k in ("status", "step", "reason", "detail")} == {
        "status": "REFUSED",
        "step": "deploy",
        "reason": "RECORD_TAMPERED",
        "detail": "changed",
    }
    assert run["metrics"]
    assert run["model_id"] == "iris/1"


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (_lambda_error("NotApproved", "alice: no"), "REJECTED", "NotApproved"),
        ({"Error": "States.Timeout", "Cause": ""}, "FAILED", "States.Timeout"),
        (_lambda_error("KeyError", "'state'"), "FAILED", "KeyError"),
    ],
)
def test_a_failure_of_any_kind_ends_the_run(pipeline_env, error, status, reason):
    p = pipeline(pipeline_env)
    p.record_failure("run-x", "iris", "approval", error)
    run = p.registry.run("run-x")  # recorded even though no step wrote it before
    assert (run["status"], run["dataset"], run["outcome"]["step"], run["outcome"]["reason"]) == (
        status,
        "iris",
        "approval",
        reason,
    )


def test_a_step_that_recorded_its_own_failure_keeps_its_account(pipeline_env):
    p = pipeline(pipeline_env)
    with pytest.raises(PipelineFailed):
        p.train("run-empty", "iris")
    p.record_failure("run-empty", "iris", "train", _lambda_error("PipelineFailed", "NO_ACCEPTED_DATA: nothing"))
    run = p.registry.run("run-empty")
    assert (run["status"], run["outcome"]["step"], run["outcome"]["reason"]) == ("FAILED", "train", "NO_ACCEPTED_DATA")
    assert "has no ACCEPTED ledger records" in run["outcome"]["detail"]


# --- the sign step signs with the bundled key only ----------------------------------------------------------


def _signature_objects(env) -> list[str]:
    listed = env["s3"].list_object_versions(Bucket="models", Prefix="signatures/")
    return [v["Key"] for v in listed.get("Versions", [])]


def _alerts(env) -> list[dict]:
    received = env["sqs"].receive_message(QueueUrl=env["alerts"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in received]


def _registered(env, p: Pipeline, run_id: str) -> dict:
    accepted_data(env)
    state = p.train(run_id, "iris")
    return p.register(p.evaluate(state))


def test_a_kms_key_whose_public_key_is_not_the_anchored_one_signs_nothing(pipeline_env):
    other = pipeline_env["kms"].create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    p = pipeline(pipeline_env, key_arn=other)  # the anchor's fingerprint is the stage key's, the ARN another key's
    state = _registered(pipeline_env, p, "run-untrusted")
    with pytest.raises(PipelineFailed) as caught:
        p.sign(state)
    assert caught.value.reason == "SIGNING_KEY_NOT_TRUSTED"
    assert p.registry.model(state["model_id"])["status"] == REGISTERED  # nothing signed
    assert _signature_objects(pipeline_env) == []
    run = p.registry.run("run-untrusted")
    assert (run["status"], run["outcome"]["step"], run["outcome"]["reason"]) == (
        "FAILED",
        "sign",
        "SIGNING_KEY_NOT_TRUSTED",
    )
    [alert] = [a for a in _alerts(pipeline_env) if a.get("step") == "sign"]
    assert (alert["reason"], alert["run_id"], alert["model_id"]) == (
        "SIGNING_KEY_NOT_TRUSTED",
        "run-untrusted",
        "iris/1",
    )


@pytest.mark.parametrize(
    ("state", "code"), [("Disabled", "DisabledException"), ("PendingDeletion", "KMSInvalidStateException")]
)
def test_a_disabled_or_pending_deletion_key_blocks_signing_with_an_alert(pipeline_env, monkeypatch, state, code):
    from botocore.exceptions import ClientError

    from mlvault.attestation import openssf

    p = pipeline(pipeline_env)
    registered = _registered(pipeline_env, p, "run-disabled")

    def as_aws(kms, key_arn):  # what AWS answers for a key in that state (moto answers anyway)
        raise ClientError({"Error": {"Code": code, "Message": f"{key_arn} is {state}."}}, "GetPublicKey")

    monkeypatch.setattr(openssf, "kms_public_key_pem", as_aws)
    for _ in range(2):  # a retried step: refused again, announced once
        with pytest.raises(PipelineFailed) as caught:
            p.sign(registered)
        assert caught.value.reason == "SIGNING_KEY_UNUSABLE"
    assert code in caught.value.detail
    assert p.registry.model(registered["model_id"])["status"] == REGISTERED
    assert _signature_objects(pipeline_env) == []
    assert p.registry.run("run-disabled")["outcome"]["reason"] == "SIGNING_KEY_UNUSABLE"
    alerts = [a for a in _alerts(pipeline_env) if a.get("step") == "sign"]
    assert [a["reason"] for a in alerts] == ["SIGNING_KEY_UNUSABLE"]
    assert alerts[0]["event_id"]  # consumers de-duplicate on it
