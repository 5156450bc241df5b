"""Bring your own model on the local cloud: accepted credit data -> the credit model's own state machine (prepare,
the emulated SageMaker training job running models/credit/train.py behind mlvault_job.py, collect, evaluate,
register, sign, canary) -> a model package signed as a directory that the independent `model_signing` verifier
accepts, with the run's code digest that of the deployed source asset."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest

from mlvault.attestation.openssf import kms_public_key_pem
from mlvault.model_package import file_digests, unpack
from mlvault.registry.records import ModelRegistry
from mlvault.training.trigger import start_manual
from mlvault_tools.samples import credit_csv

ROWS = 60_000  # two files: 120,000 rows


@pytest.fixture(scope="module")
def credit(cloud, ingest):
    for index in range(2):
        key = f"producers/acme/credit/applications-{index}.csv"
        body = credit_csv(ROWS, 300 + index)
        record = ingest.verdict(key, ingest.signed_upload(key, body), timeout=120)
        assert record["status"] == "ACCEPTED", record

    class Credit:
        sfn = cloud.client("stepfunctions")
        s3 = cloud.client("s3")
        registry = ModelRegistry(
            cloud.client("dynamodb"), cloud.physical_id("-storage", "AWS::DynamoDB::Table", "RegistryTable")
        )
        machine = cloud.model_id("credit", "AWS::StepFunctions::StateMachine", "ModelPipeline")

    return Credit


def run_pipeline(credit, timeout: float = 900) -> tuple[str, dict]:
    arn = credit.machine
    name = start_manual(credit.sfn, arn, "credit", "credit")
    execution = f"{arn.replace(':stateMachine:', ':execution:')}:{name}"
    deadline = time.monotonic() + timeout
    while (status := credit.sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{name} still running after {timeout}s"
        time.sleep(1)
    return name, status


@pytest.fixture(scope="module")
def finished(credit) -> tuple[str, dict]:
    return run_pipeline(credit)


def test_the_teams_credit_model_trains_on_the_emulated_sagemaker_and_is_signed_as_a_directory(
    cloud, credit, finished, tmp_path
):
    from model_signing import verifying

    name, _ = finished
    run = credit.registry.run(name)
    assert run.get("model_id"), (run["status"], run.get("outcome"))
    assert name.startswith("credit-manual-")
    model = credit.registry.model(run["model_id"])
    assert model["status"] in ("SIGNED", "DEPLOYED", "SUPERSEDED"), (model["status"], run.get("outcome"))
    record = model["record"]
    assert (record["model"], record["engine"], record["dataset"]) == ("credit", "sagemaker", "credit")
    assert record["training_job"]["name"] == f"mlvault-dev-{name}"
    assert record["code"]["sha256"] == run["code_digest"] == run["job"]["code"]["sha256"]
    assert run["claims"]["validation_accuracy"] > 0.75  # what train.py says of itself: recorded
    gates = {r["name"]: r for r in run["gates"]["results"]}
    assert gates["min_accuracy"]["value"] >= 0.78  # what mlvault measured on the rows it kept
    assert run["rows"]["heldout"] == run["gates"]["heldout_rows"] > 0.15 * 2 * ROWS
    artifact = record["artifact"]
    tar = credit.s3.get_object(Bucket=artifact["bucket"], Key=artifact["key"], VersionId=artifact["version_id"])
    folder = tmp_path / "credit"
    folder.mkdir()
    assert file_digests(unpack(io.BytesIO(tar["Body"].read()), folder)) == artifact["files"]
    signature = credit.s3.get_object(
        Bucket=artifact["bucket"], Key=model["signature_key"], VersionId=model["signature_version"]
    )
    (tmp_path / "model.sig").write_bytes(signature["Body"].read())
    (tmp_path / "key.pem").write_bytes(kms_public_key_pem(cloud.client("kms"), model["signing_key_arn"]))
    verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "key.pem").verify(folder, tmp_path / "model.sig")
    statement = json.loads(
        base64.b64decode(json.loads((tmp_path / "model.sig").read_bytes())["dsseEnvelope"]["payload"])
    )
    assert statement["predicate"]["mlvault"]["code_sha256"] == record["code"]["sha256"]


def test_the_signed_credit_model_is_deployed(credit, finished):
    name, status = finished
    run = credit.registry.run(name)
    assert status["status"] == "SUCCEEDED", (status.get("error"), status.get("cause"), run.get("outcome"))
    assert credit.registry.model(run["model_id"])["status"] == "DEPLOYED"
