"""Bring your own model, the training side, on moto: accepted credit data (through the verify handler) -> prepare
(channels, inputs.json, the held-out split kept out) -> the training job (tests/handlers/sagemaker_job.py: script
mode's layout, mlvault_job.py, the team's models/credit/train.py) -> collect -> evaluate -> register -> sign, through
the pipeline handler as the state machine calls it. Every bad input ends the run FAILED with its reason code, and
nothing is registered, signed or deployed."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlvault.contracts.schema import load_contract
from mlvault.model_package import file_digests, unpack
from mlvault.training.data import row_splitter, split_key
from mlvault.training.job_entry.source_asset import build_source_asset
from mlvault.training.pipeline import GatesFailed, Pipeline, PipelineConfig, PipelineFailed
from mlvault.training.specs import parse_specs
from mlvault_tools import samples
from tests.handlers.conftest import REGION, ROOT, LambdaContext, load_handler
from tests.handlers.sagemaker_job import catch_of, model_tar, run_job
from tests.handlers.test_content_gate import push
from tests.handlers.test_pipeline_steps import pipeline
from tests.handlers.test_pipeline_steps import pipeline_env as pipeline_env  # the fixture

CREDIT = load_contract(ROOT / "contracts", "credit")
ASSETS = "cdk-assets"
GATES = {"min_accuracy": 0.78, "max_parity_difference": 0.08, "min_disparate_impact": 0.85}
ROWS_PER_FILE = 8000  # the test stage's upload cap is 1 MiB


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[bytes, str]:
    path = tmp_path_factory.mktemp("source") / "sourcedir.tar.gz"
    digest = build_source_asset(ROOT / "models" / "credit", path)
    return path.read_bytes(), digest


@pytest.fixture
def byom(pipeline_env, source, monkeypatch, tmp_path):
    s3 = pipeline_env["s3"]
    s3.create_bucket(Bucket=ASSETS, CreateBucketConfiguration={"LocationConstraint": REGION})
    data, digest = source
    s3.put_object(Bucket=ASSETS, Key="assets/credit/sourcedir.tar.gz", Body=data)
    for seed in range(3):
        body = samples.credit_csv(ROWS_PER_FILE, 40 + seed)
        _, record = push(pipeline_env, body, key=f"producers/acme/credit/b{seed}.csv")
        assert record.status == "ACCEPTED", record.attributes
    models = {
        "credit": {
            "dataset": "credit",
            "engine": "sagemaker",
            "gates": GATES,
            "seed": 7,
            "heldout_fraction": 0.2,
            "validation_fraction": 0.1,
            "code": {"bucket": ASSETS, "key": "assets/credit/sourcedir.tar.gz", "sha256": digest},
            "entry_point": "train.py",
            "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sklearn:1.2-1",
            "hyperparameters": {"n_estimators": "40"},
            "part_rows": 6000,
        },
        "iris": {"dataset": "iris", "engine": "lambda", "gates": GATES, "training": {"seed": 1}},
    }
    task = tmp_path / "task"
    for folder in ("trust", "contracts"):
        (task / folder).mkdir(parents=True)
        for path in (ROOT / folder).glob("*.json"):
            (task / folder / path.name).write_bytes(path.read_bytes())
    (task / "trust" / "models.json").write_text(json.dumps(models))
    for name, value in {
        "LAMBDA_TASK_ROOT": str(task),
        "MLVAULT_MODEL_BUCKET": "models",
        "MLVAULT_REGISTRY_TABLE": "registry",
    }.items():
        monkeypatch.setenv(name, value)
    return {**pipeline_env, "models": models, "code_sha256": digest}


def steps(env, **credit) -> Pipeline:
    """The pipeline as the composition root builds it, with the credit model's settings changed by `credit`."""
    p = pipeline(env)
    models = json.loads(json.dumps(env["models"]))
    models["credit"].update(credit)
    config = PipelineConfig(**{**p._c.__dict__, "models": parse_specs(json.dumps(models)), "stage": "test"})
    return Pipeline(s3=env["s3"], dynamodb=env["ddb"], kms=env["kms"], config=config)


def handler(event: dict) -> dict:
    from mlvault import composition

    composition.default_pipeline.cache_clear()
    return load_handler("pipeline").handler(event, LambdaContext())


def prepared(env, run_id: str = "credit-manual-1") -> dict:
    return handler({"step": "prepare", "state": {"run_id": run_id, "dataset": "credit", "model": "credit"}})


def nothing_registered_signed_or_deployed(p: Pipeline, env, run_id: str, reason: str, step: str) -> None:
    run = p.registry.run(run_id)
    assert (run["status"], run["outcome"]["step"], run["outcome"]["reason"]) == ("FAILED", step, reason), run["outcome"]
    assert p.registry.models() == []
    listed = env["s3"].list_object_versions(Bucket="models", Prefix="signatures/")
    assert listed.get("Versions", []) == []
    assert not [r for r in p.registry.runs() if r["status"] in ("SIGNED", "DEPLOYING", "DEPLOYED")]


# --- prepare ------------------------------------------------------------------------------------------------------


def test_prepare_writes_content_addressed_channels_and_keeps_the_heldout_split(byom, tmp_path):
    state = prepared(byom)
    s3, job = byom["s3"], state["job"]
    digest = state["split"]["sha256"]
    assert job["name"] == "mlvault-test-credit-manual-1"
    assert job["channels"]["train"]["s3_uri"] == f"s3://models/channels/credit/sha256={digest}/train/"
    assert job["channels"]["validation"]["s3_uri"] == f"s3://models/channels/credit/sha256={digest}/validation/"
    assert job["channels"]["mlvault"]["s3_uri"] == (
        f"s3://models/channels/credit/sha256={digest}/runs/credit-manual-1/inputs.json"
    )
    code = byom["code_sha256"]
    assert job["channels"]["code"]["s3_uri"] == (
        f"s3://models/channels/credit/sha256={digest}/code/sha256={code}/sourcedir.tar.gz"
    )
    assert job["output_s3_uri"] == "s3://models/jobs/credit/"
    assert job["model_artifacts"] == "s3://models/jobs/credit/mlvault-test-credit-manual-1/output/model.tar.gz"
    assert job["hyperparameters"] == {
        "n_estimators": "40",
        "sagemaker_program": "mlvault_job.py",
        "sagemaker_submit_directory": "/opt/ml/input/data/code/sourcedir.tar.gz",
        "mlvault_entry_point": "train.py",
        "mlvault_inputs_sha256": job["inputs_sha256"],
    }
    body = s3.get_object(Bucket="models", Key=job["inputs"]["key"], VersionId=job["inputs"]["version_id"])
    inputs = body["Body"].read()
    assert hashlib.sha256(inputs).hexdigest() == job["inputs_sha256"] == job["inputs"]["sha256"]
    inputs = json.loads(inputs)
    assert inputs["format"] == "mlvault.job-inputs/v1"
    assert (inputs["run_id"], inputs["model"], inputs["code"]) == (
        "credit-manual-1",
        "credit",
        {"file": "sourcedir.tar.gz", "sha256": code},
    )
    rows = {name: sum(p["rows"] for p in parts) for name, parts in inputs["channels"].items()}
    assert rows["train"] + rows["validation"] + state["heldout"]["rows"] == 3 * ROWS_PER_FILE
    assert len(inputs["channels"]["train"]) > 1  # bounded parts: 6,000 rows each
    ids = {}
    for name, parts in [*job["channels"].items(), ("heldout", state["heldout"])]:
        if name in ("mlvault", "code"):
            continue
        found = set()
        for part in parts["parts"]:
            obj = s3.get_object(Bucket="models", Key=part["key"], VersionId=part["version_id"])
            data = obj["Body"].read()
            assert hashlib.sha256(data).hexdigest() == part["sha256"]
            table = pq.read_table(io.BytesIO(data))
            assert table.schema.names == [c.name for c in CREDIT.columns]
            found |= set(table.column("application_id").to_pylist())
        ids[name] = found
    assert not ids["heldout"] & (ids["train"] | ids["validation"])  # the held-out split is never a channel
    assert not ids["train"] & ids["validation"]
    assert all(not p["key"].startswith("channels/") for p in state["heldout"]["parts"])
    run = steps(byom).registry.run("credit-manual-1")
    assert run["status"] == "PREPARED"
    assert run["code_digest"] == code
    assert run["job"]["inputs"]["sha256"] == job["inputs_sha256"]
    again = prepared(byom, "credit-manual-2")  # the same data and split: the same parts, reused
    assert again["job"]["channels"]["train"]["parts"] == job["channels"]["train"]["parts"]
    assert again["job"]["inputs_sha256"] != job["inputs_sha256"]  # another run id


def test_the_heldout_split_is_the_one_the_builtin_trainer_would_hold_out(byom):
    state = prepared(byom)
    s3 = byom["s3"]
    heldout = set()
    for part in state["heldout"]["parts"]:
        data = s3.get_object(Bucket="models", Key=part["key"], VersionId=part["version_id"])["Body"].read()
        heldout |= set(pq.read_table(io.BytesIO(data)).column("application_id").to_pylist())
    from dataclasses import dataclass

    @dataclass
    class Plan:
        key: str | None

    @dataclass
    class Params:
        seed: int = 7
        heldout_fraction: float = 0.2

    split = row_splitter(Plan(split_key(CREDIT)), Params())
    expected = set()
    for seed in range(3):
        batch = samples.credit_batch(ROWS_PER_FILE, 40 + seed)
        flags = split(None, batch)
        expected |= {i for i, f in zip(batch.column("application_id").to_pylist(), flags, strict=True) if f}
    assert heldout == expected


def test_a_state_machine_running_other_code_than_the_bundled_document_is_refused(byom):
    state = {"run_id": "credit-manual-1", "dataset": "credit", "model": "credit", "code_sha256": "f" * 64}
    with pytest.raises(PipelineFailed) as caught:
        handler({"step": "prepare", "state": state})
    assert caught.value.reason == "CODE_DIGEST_MISMATCH"
    nothing_registered_signed_or_deployed(steps(byom), byom, "credit-manual-1", "CODE_DIGEST_MISMATCH", "prepare")
    state["code_sha256"] = byom["code_sha256"]
    assert handler({"step": "prepare", "state": state})["job"]["code"]["sha256"] == byom["code_sha256"]


def test_a_source_asset_that_is_not_the_deployed_one_is_refused(byom):
    byom["s3"].put_object(Bucket=ASSETS, Key="assets/credit/sourcedir.tar.gz", Body=b"other code")
    with pytest.raises(PipelineFailed) as caught:
        prepared(byom)
    assert caught.value.reason == "CODE_DIGEST_MISMATCH"
    nothing_registered_signed_or_deployed(steps(byom), byom, "credit-manual-1", "CODE_DIGEST_MISMATCH", "prepare")


def test_each_engine_runs_its_own_steps(byom):
    with pytest.raises(PipelineFailed) as caught:
        handler({"step": "train", "state": {"run_id": "r1", "dataset": "credit", "model": "credit"}})
    assert caught.value.reason == "WRONG_ENGINE"
    with pytest.raises(PipelineFailed) as caught:
        handler({"step": "prepare", "state": {"run_id": "r2", "dataset": "iris", "model": "iris"}})
    assert caught.value.reason == "WRONG_ENGINE"
    with pytest.raises(PipelineFailed) as caught:
        handler({"step": "prepare", "state": {"run_id": "r3", "dataset": "credit", "model": "nobody"}})
    assert caught.value.reason == "UNKNOWN_MODEL"


# --- the whole chain ---------------------------------------------------------------------------------------------


def test_the_teams_model_goes_through_the_same_chain_of_trust(byom, tmp_path):
    from model_signing import verifying

    from mlvault.attestation.openssf import kms_public_key_pem

    state = prepared(byom)
    done = run_job(byom["s3"], state["job"], tmp_path / "opt-ml")
    assert done["TrainingJobStatus"] == "Completed", done.get("FailureReason")
    state = handler({"step": "collect", "state": state, "job": done})
    p = steps(byom)
    run = p.registry.run("credit-manual-1")
    assert run["status"] == "TRAINED"
    artifact = state["artifact"]
    assert artifact["key"] == f"models/credit/sha256={artifact['sha256']}/model.tar"
    assert sorted(artifact["files"]) == ["descriptor.json", "drift.json", "model.onnx"]
    assert run["claims"]["validation_accuracy"] > 0.75  # what the team's code says: recorded, never a gate
    assert run["training_job"]["name"] == "mlvault-test-credit-manual-1"
    assert run["code_digest"] == byom["code_sha256"]
    state = handler({"step": "evaluate", "state": state})
    report = p.registry.run("credit-manual-1")["gates"]
    assert report["passed"], [r for r in report["results"] if not r["passed"]]
    assert report["heldout_rows"] == state["heldout"]["rows"]
    assert report["claims"] == run["claims"]
    state = handler({"step": "register", "state": state})
    assert state["model_id"] == "credit/1"
    record = p.registry.model("credit/1")["record"]
    assert (record["model"], record["dataset"], record["engine"]) == ("credit", "credit", "sagemaker")
    assert record["code"]["sha256"] == byom["code_sha256"]
    assert record["code"]["asset"]["key"].endswith("/sourcedir.tar.gz")
    assert record["training_job"]["inputs"]["sha256"] == state["job"]["inputs_sha256"]
    assert {e["producer"] for e in record["lineage"]} == {"acme"}
    state = p.sign(state)
    model = p.registry.model("credit/1")
    assert model["status"] == "SIGNED"
    s3 = byom["s3"]
    tar = s3.get_object(Bucket="models", Key=artifact["key"], VersionId=artifact["version_id"])["Body"].read()
    folder = tmp_path / "credit"
    folder.mkdir()
    assert file_digests(unpack(io.BytesIO(tar), folder)) == artifact["files"]
    signature = s3.get_object(Bucket="models", Key=model["signature_key"], VersionId=model["signature_version"])
    (tmp_path / "model.sig").write_bytes(signature["Body"].read())
    (tmp_path / "key.pem").write_bytes(kms_public_key_pem(byom["kms"], byom["key"]))
    verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "key.pem").verify(folder, tmp_path / "model.sig")
    provenance = s3.get_object(Bucket="models", Key=model["provenance_key"])["Body"].read()
    predicate = json.loads(base64.b64decode(json.loads(provenance)["payload"]))["predicate"]
    assert (predicate["code_sha256"], predicate["engine"]) == (byom["code_sha256"], "sagemaker")
    assert predicate["training_job"]["name"] == "mlvault-test-credit-manual-1"


def test_a_weak_model_fails_the_gates_mlvault_computes_whatever_it_claims(byom, tmp_path):
    """One boosting stage of depth one: the team's code claims 0.99 accuracy, mlvault measures its own."""
    p = steps(byom, hyperparameters={"n_estimators": "1", "max_depth": "1"})
    state = p.prepare("credit-weak-1", "credit", "credit")
    description = run_job(byom["s3"], state["job"], tmp_path / "opt-ml")
    folder = tmp_path / "opt-ml" / "model"
    _descriptor(folder, claims={"validation_accuracy": 0.99})
    bucket, key = state["job"]["model_artifacts"].removeprefix("s3://").split("/", 1)
    byom["s3"].put_object(Bucket=bucket, Key=key, Body=model_tar(folder))
    state = p.collect(state, description)
    with pytest.raises(GatesFailed) as caught:
        p.evaluate(state)
    assert "min_accuracy" in caught.value.failures
    run = p.registry.run("credit-weak-1")
    assert (run["status"], run["outcome"]["reason"]) == ("GATES_FAILED", "GATES_FAILED")
    accuracy = next(r for r in run["gates"]["results"] if r["name"] == "min_accuracy")
    assert accuracy["value"] < 0.7
    assert run["claims"] == run["gates"]["claims"] == {"validation_accuracy": 0.99}
    with pytest.raises(PipelineFailed, match="NOT_EVALUATED"):
        p.register(state)
    assert p.registry.models() == []


# --- bad input: each a recorded run failure with a stable reason code -------------------------------------------


def _collect_with(byom, tmp_path, mutate) -> tuple[Pipeline, dict]:
    """Prepare, a job that completes, then `mutate(model_dir)` changes what it wrote before it is tarred."""
    state = prepared(byom)
    description = run_job(byom["s3"], state["job"], tmp_path / "opt-ml")
    folder = tmp_path / "opt-ml" / "model"
    mutate(folder)
    bucket, key = state["job"]["model_artifacts"].removeprefix("s3://").split("/", 1)
    byom["s3"].put_object(Bucket=bucket, Key=key, Body=model_tar(folder))
    return steps(byom), {"state": state, "job": description}


def _descriptor(folder: Path, **changes) -> None:
    document = json.loads((folder / "descriptor.json").read_text())
    document.update(changes)
    (folder / "descriptor.json").write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("reason", "mutate"),
    [
        ("NO_ONNX_MODEL", lambda f: (f / "model.onnx").unlink()),
        ("NO_DESCRIPTOR", lambda f: (f / "descriptor.json").unlink()),
        ("DESCRIPTOR_INVALID", lambda f: (f / "descriptor.json").write_text("{not json")),
        ("DESCRIPTOR_MISMATCH", lambda f: _descriptor(f, classes=["approved", "maybe"])),
        ("DESCRIPTOR_MISMATCH", lambda f: _descriptor(f, contract_version="2")),
        ("ONNX_INVALID", lambda f: (f / "model.onnx").write_bytes(b"\x08\x07 not a graph")),
        (
            "ONNX_INVALID",
            lambda f: _descriptor(
                f,
                inputs=[
                    *json.loads((f / "descriptor.json").read_text())["inputs"],
                    {"name": "gender", "column": "gender", "type": "string"},
                ],
            ),
        ),
    ],
    ids=[
        "no-onnx",
        "no-descriptor",
        "descriptor-not-json",
        "wrong-classes",
        "wrong-contract",
        "onnx-garbage",
        "onnx-inputs-differ",
    ],
)
def test_a_bad_training_output_ends_the_run_with_its_reason(byom, tmp_path, reason, mutate):
    p, event = _collect_with(byom, tmp_path, mutate)
    with pytest.raises(PipelineFailed) as caught:
        handler({"step": "collect", **event})
    assert caught.value.reason == reason
    nothing_registered_signed_or_deployed(p, byom, "credit-manual-1", reason, "collect")
    assert not byom["s3"].list_objects_v2(Bucket="models", Prefix="models/credit/").get("Contents")


def _archive(*members: tuple[str, bytes | None, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "archive",
    [
        _archive(("model.onnx", None, "symlink"), ("descriptor.json", b"{}", "file")),
        _archive(("../model.onnx", b"x", "file"), ("descriptor.json", b"{}", "file")),
        _archive(("/descriptor.json", b"{}", "file")),
        _archive(("model.onnx", b"x", "file"), ("model.onnx", b"y", "file")),
        b"not a tar at all",
    ],
    ids=["symlink", "dot-dot", "absolute", "twice", "not-a-tar"],
)
def test_an_unsafe_or_broken_archive_is_refused_before_anything_is_extracted(byom, archive):
    state = prepared(byom)
    bucket, key = state["job"]["model_artifacts"].removeprefix("s3://").split("/", 1)
    byom["s3"].put_object(Bucket=bucket, Key=key, Body=archive)
    with pytest.raises(PipelineFailed) as caught:
        handler({"step": "collect", "state": state})
    assert caught.value.reason == "TRAINING_OUTPUT_INVALID"
    nothing_registered_signed_or_deployed(steps(byom), byom, "credit-manual-1", "TRAINING_OUTPUT_INVALID", "collect")


def test_a_job_that_wrote_nothing_is_refused(byom):
    state = prepared(byom)
    with pytest.raises(PipelineFailed) as caught:
        handler({"step": "collect", "state": state})
    assert caught.value.reason == "TRAINING_OUTPUT_INVALID"
    assert "wrote no model.tar.gz" in caught.value.detail


def test_a_job_reporting_another_output_is_refused(byom):
    state = prepared(byom)
    reported = {"TrainingJobName": state["job"]["name"], "ModelArtifacts": {"S3ModelArtifacts": "s3://other/x.tar.gz"}}
    with pytest.raises(PipelineFailed) as caught:
        handler({"step": "collect", "state": state, "job": reported})
    assert caught.value.reason == "TRAINING_OUTPUT_INVALID"


def test_a_channel_file_whose_digest_differs_stops_the_job_before_the_teams_code(byom, tmp_path):
    state = prepared(byom)

    def tamper(root: Path) -> None:
        part = next((root / "input" / "data" / "train").glob("*.parquet"))
        part.write_bytes(part.read_bytes()[:-9] + b"tampered!")

    description = run_job(byom["s3"], state["job"], tmp_path / "opt-ml", before=tamper)
    assert description["TrainingJobStatus"] == "Failed"
    assert description["FailureReason"].startswith("INPUT_DIGEST_MISMATCH: train/part-")
    assert not any((tmp_path / "opt-ml" / "model").iterdir())  # the team's code never ran
    outcome = handler(
        {
            "step": "fail",
            "state": {"run_id": "credit-manual-1", "dataset": "credit"},
            "failed_step": "train",
            "error": catch_of(description),
        }
    )
    assert (outcome["status"], outcome["step"], outcome["reason"]) == ("FAILED", "train", "INPUT_DIGEST_MISMATCH")
    assert "expected sha256" in outcome["detail"]
    nothing_registered_signed_or_deployed(steps(byom), byom, "credit-manual-1", "INPUT_DIGEST_MISMATCH", "train")


@pytest.mark.parametrize(
    ("description", "error", "reason", "says"),
    [
        (
            {"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxRuntimeExceeded", "FailureReason": ""},
            "States.TaskFailed",
            "TRAINING_JOB_TIMEOUT",
            "Stopped/MaxRuntimeExceeded",
        ),
        (
            {
                "TrainingJobStatus": "Failed",
                "SecondaryStatus": "Failed",
                "FailureReason": 'AlgorithmError: ExecuteUserScriptError: ExitCode 1 ErrorMessage "MemoryError"',
            },
            "States.TaskFailed",
            "TRAINING_JOB_FAILED",
            "MemoryError",
        ),
        (
            {
                "TrainingJobStatus": "Failed",
                "FailureReason": 'AlgorithmError: ExitCode 1 ErrorMessage "INPUT_DIGEST_MISMATCH: '
                'code/sourcedir.tar.gz: expected sha256 aa, got bb"',
            },
            "States.TaskFailed",
            "INPUT_DIGEST_MISMATCH",
            "code/sourcedir.tar.gz",
        ),
        (None, "States.Timeout", "TRAINING_JOB_TIMEOUT", "Step Functions timeout"),
    ],
    ids=["max-runtime", "script-failed", "verifier-wrapped-by-the-toolkit", "task-timeout"],
)
def test_a_failed_or_timed_out_job_ends_the_run_with_sagemakers_reason(byom, description, error, reason, says):
    prepared(byom)
    cause = (
        "" if description is None else json.dumps({"TrainingJobName": "mlvault-test-credit-manual-1", **description})
    )
    outcome = handler(
        {
            "step": "fail",
            "state": {"run_id": "credit-manual-1", "dataset": "credit"},
            "failed_step": "train",
            "error": {"Error": error, "Cause": cause},
        }
    )
    assert (outcome["status"], outcome["reason"]) == ("FAILED", reason)
    assert says in outcome["detail"]
    nothing_registered_signed_or_deployed(steps(byom), byom, "credit-manual-1", reason, "train")
