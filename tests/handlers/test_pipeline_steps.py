"""The model pipeline's steps on moto, from accepted uploads (through the verify handler) to a signed model
that the independent `model_signing` verifier accepts; every run recorded, a failing gate stops the run."""

from __future__ import annotations

import boto3
import pytest

from mlvault.registry.records import REGISTERED, SIGNED, ModelRegistryError
from mlvault.training.gates import Gates
from mlvault.training.params import TrainingParams
from mlvault.training.pipeline import GatesFailed, Pipeline, PipelineConfig, PipelineFailed
from mlvault_tools.samples import iris_csv
from tests.handlers.conftest import ROOT
from tests.handlers.test_content_gate import push

GATES = Gates(min_accuracy=0.85, max_parity_difference=0.25, min_disparate_impact=0.5)


@pytest.fixture
def pipeline_env(ingest_env):
    s3, ddb = ingest_env["s3"], ingest_env["ddb"]
    s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket="models", VersioningConfiguration={"Status": "Enabled"})
    ddb.create_table(
        TableName="registry",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    kms = boto3.client("kms")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    return {**ingest_env, "kms": kms, "key": key}


def pipeline(env, gates: Gates = GATES) -> Pipeline:
    config = PipelineConfig(
        model_bucket="models",
        ledger_table="ledger",
        registry_table="registry",
        contracts_dir=ROOT / "contracts",
        signing_key_arn=env["key"],
        gates=gates,
        params=TrainingParams(seed=1),
    )
    return Pipeline(s3=env["s3"], dynamodb=env["ddb"], kms=env["kms"], config=config)


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
    (tmp_path / "model.json").write_bytes(
        s3.get_object(Bucket="models", Key=artifact["key"], VersionId=artifact["version_id"])["Body"].read()
    )
    signature = s3.get_object(Bucket="models", Key=model["signature_key"], VersionId=model["signature_version"])
    (tmp_path / "model.sig").write_bytes(signature["Body"].read())
    (tmp_path / "key.pem").write_bytes(kms_public_key_pem(pipeline_env["kms"], pipeline_env["key"]))
    verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "key.pem").verify(
        tmp_path / "model.json", tmp_path / "model.sig"
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
