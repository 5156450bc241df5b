"""Gaps 23 and 24 without a cloud: S3 locations as SageMaker takes them, the script-mode toolkit's arguments and
SM_* environment, channel manifests, exit codes, and Step Functions' view of a SageMaker answer."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from localcloud import sagemaker_toolkit as toolkit
from localcloud.sagemaker_runner import JobFailed, _exit_code, _manifest_objects
from localcloud.services.sagemaker_validation import SageMakerError, s3_location
from localcloud.services.sfn_sagemaker import _uses_training_sync, millis, sdk_error


@pytest.mark.parametrize(
    ("uri", "location"),
    [
        ("s3://bucket/jobs/", ("bucket", "jobs/")),
        ("s3://bucket", ("bucket", "")),
        ("https://s3.eu-west-1.amazonaws.com/bucket/jobs/", ("bucket", "jobs/")),  # as CDK's S3Location writes it
        ("https://bucket.s3.eu-west-1.amazonaws.com/a/b.csv", ("bucket", "a/b.csv")),
    ],
)
def test_s3_locations(uri, location):
    assert s3_location(uri) == location


@pytest.mark.parametrize("uri", ["bucket/key", "ftp://bucket/key", "https://example.com/key"])
def test_what_is_not_an_s3_location(uri):
    with pytest.raises(SageMakerError) as refused:
        s3_location(uri)
    assert refused.value.code == "ValidationException"


def test_hyperparameters_become_sorted_arguments_as_the_toolkit_makes_them():
    assert toolkit.cmd_args({"epochs": 3, "b": "x", "lr": 0.1, "map": {"k": 1, "a": 2}, "none": None}) == [
        "-b", "x", "--epochs", "3", "--lr", "0.1", "--map", "a=2,k=1", "--none", "",
    ]  # fmt: skip
    assert toolkit.env_value(True) == "true"
    assert toolkit.env_value("text") == "text"
    assert toolkit.env_value({"b": 1, "a": [1]}) == '{"a":[1],"b":1}'


def test_the_sm_environment_of_a_job(tmp_path):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(
        json.dumps(
            {"sagemaker_program": "train.py", "sagemaker_submit_directory": "/opt/ml/code", "epochs": "3", "name": "x"}
        )
    )
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {"TrainingInputMode": "File"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    env, framework = toolkit.training_env(str(tmp_path))
    assert framework == {"sagemaker_program": "train.py", "sagemaker_submit_directory": "/opt/ml/code"}
    assert env["hyperparameters"] == {"epochs": 3, "name": "x"}  # decoded where the value parses as JSON
    variables = toolkit.env_vars(env)
    assert variables["SM_CHANNEL_TRAIN"] == str(tmp_path / "input" / "data" / "train")
    assert variables["SM_CHANNELS"] == '["train"]'
    assert variables["SM_HPS"] == '{"epochs":3,"name":"x"}'
    assert (variables["SM_HP_EPOCHS"], variables["SM_HP_NAME"]) == ("3", "x")
    assert variables["SM_MODEL_DIR"] == str(tmp_path / "model")
    assert variables["SM_USER_ARGS"] == '["--epochs","3","--name","x"]'
    assert variables["SM_MODULE_NAME"] == "train"
    assert json.loads(variables["SM_TRAINING_ENV"])["hyperparameters"] == {"epochs": 3, "name": "x"}
    assert toolkit.local_path("/opt/ml/input/data/code/s.tar.gz", str(tmp_path)) == str(
        tmp_path / "input/data/code/s.tar.gz"
    )
    assert toolkit.local_path("/elsewhere/s.tar.gz", str(tmp_path)) == "/elsewhere/s.tar.gz"


def test_a_source_tar_that_escapes_its_directory_is_refused(tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        member = tarfile.TarInfo("../outside.py")
        member.size = 1
        archive.addfile(member, io.BytesIO(b"x"))
    (tmp_path / "source.tar.gz").write_bytes(data.getvalue())
    with pytest.raises(Exception, match="Path Traversal"):
        toolkit.download_and_extract(str(tmp_path / "source.tar.gz"), str(tmp_path / "code"))
    assert not (tmp_path / "outside.py").exists()


def test_a_manifest_names_the_objects_of_a_channel():
    manifest = json.dumps([{"prefix": "s3://bucket/data/"}, "a.csv", "b/c.csv"]).encode()
    assert _manifest_objects(manifest, "s3://bucket/m.json") == [
        ("bucket", "data/a.csv", "a.csv"),
        ("bucket", "data/b/c.csv", "b/c.csv"),
    ]
    for broken in (b"not json", b"[]", json.dumps([{"prefix": "s3://bucket/"}]).encode()):
        with pytest.raises(JobFailed, match="ClientError: Data download failed"):
            _manifest_objects(broken, "s3://bucket/m.json")


def test_exit_codes_as_a_container_reports_them():
    assert (_exit_code(0), _exit_code(1), _exit_code(-9), _exit_code(-15)) == (0, 1, 137, 143)


def test_step_functions_view_of_sagemaker():
    at = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    assert millis({"CreationTime": at, "SecondaryStatusTransitions": [{"StartTime": at}], "Name": "x"}) == {
        "CreationTime": 1767323045600,
        "SecondaryStatusTransitions": [{"StartTime": 1767323045600}],
        "Name": "x",
    }
    error = SimpleNamespace(
        response={
            "Error": {"Code": "ValidationException", "Message": "bad"},
            "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "r"},
        }
    )
    assert sdk_error(error) == (
        "SageMaker.AmazonSageMakerException",
        "bad (Service: AmazonSageMaker; Status Code: 400; Error Code: ValidationException; Request ID: r; Proxy: null)",
    )
    error.response["Error"]["Code"] = "ResourceInUse"
    assert sdk_error(error)[0] == "SageMaker.ResourceInUseException"
    sync = {"States": {"T": {"Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync"}}}
    assert _uses_training_sync(json.dumps(sync))
    assert not _uses_training_sync(
        json.dumps({"States": {"T": {"Resource": "arn:aws:states:::sagemaker:createTrainingJob"}}})
    )
