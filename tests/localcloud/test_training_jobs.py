"""Gaps 23 and 24: SageMaker training jobs run as SageMaker runs them (the script-mode toolkit in a job process,
channels downloaded with the job's role, max runtime, StopTrainingJob, model.tar.gz with the output key), and Step
Functions' `createTrainingJob.sync` waits for them."""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import eventually
from tests.localcloud.app.stack import NO_PASS, TRAINING_ROLE, URL_CALLER

IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SUBMIT = "/opt/ml/input/data/code/sourcedir.tar.gz"


def bucket(cloud):
    return cloud.physical_id("gaps", "AWS::S3::Bucket", "TrainingData")


def key_arn(cloud):
    key = cloud.physical_id("gaps", "AWS::KMS::Key", "TrainingKey")
    return cloud.client("kms").describe_key(KeyId=key)["KeyMetadata"]["Arn"]


def role(cloud, name):
    return f"arn:aws:iam::{cloud.state['account']}:role/{name}"


def channel(name, uri, data_type="S3Prefix"):
    return {"ChannelName": name, "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": uri}}}


def request(cloud, name, channels, *, mode="ok", runtime=60, isolation=False, **extra):
    code = channel("code", f"s3://{bucket(cloud)}/code/sourcedir.tar.gz")
    hyperparameters = {"sagemaker_program": "train.py", "sagemaker_submit_directory": SUBMIT, "mode": mode}
    return {
        "TrainingJobName": name,
        "RoleArn": role(cloud, TRAINING_ROLE),
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {**hyperparameters, "epochs": "3", **extra.pop("hyperparameters", {})},
        "InputDataConfig": [*channels, code],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket(cloud)}/jobs/", "KmsKeyId": key_arn(cloud)},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
        "EnableNetworkIsolation": isolation,
        **extra,
    }


def finished(cloud, name, timeout=60):
    sm = cloud.client("sagemaker")
    return eventually(
        lambda: (
            (d := sm.describe_training_job(TrainingJobName=name))["TrainingJobStatus"]
            in ("Completed", "Failed", "Stopped")
            and d
        ),
        timeout=timeout,
    )


def secondary(cloud, name):
    try:
        return cloud.client("sagemaker").describe_training_job(TrainingJobName=name)["SecondaryStatus"]
    except ClientError:
        return None  # not created yet


def model_of(cloud, described):
    location = described["ModelArtifacts"]["S3ModelArtifacts"]
    name, key = location.removeprefix("s3://").split("/", 1)
    obj = cloud.client("s3").get_object(Bucket=name, Key=key)
    with tarfile.open(fileobj=io.BytesIO(obj["Body"].read())) as archive:
        return obj, {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def put(cloud, key, body=b"a,b\n1,2\n"):
    cloud.client("s3").put_object(Bucket=bucket(cloud), Key=key, Body=body)


def test_a_job_runs_the_entry_point_with_the_script_mode_environment(byom_cloud):
    cloud, data = byom_cloud, bucket(byom_cloud)
    for key in ("part-0.csv", "part-1.csv", "many/a/b.csv", "many/c.csv"):
        put(cloud, f"channels/t1/{key}")
    manifest = [{"prefix": f"s3://{data}/channels/t1/"}, "part-1.csv"]
    put(cloud, "channels/t1/manifest.json", json.dumps(manifest).encode())
    channels = [
        channel("train", f"s3://{data}/channels/t1/part-0.csv"),  # an object's key: that object alone
        channel("many", f"s3://{data}/channels/t1/many/"),
        channel("listed", f"s3://{data}/channels/t1/manifest.json", "ManifestFile"),
    ]
    sm = cloud.client("sagemaker")
    tags = [{"Key": "model", "Value": "credit"}]
    arn = sm.create_training_job(**request(cloud, "t1", channels, Tags=tags))["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == tags
    assert arn == f"arn:aws:sagemaker:eu-west-1:{cloud.state['account']}:training-job/t1"
    described = finished(cloud, "t1")
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Completed", "Completed"), described
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{data}/jobs/t1/output/model.tar.gz"
    assert described["TrainingStartTime"] <= described["TrainingEndTime"]
    assert described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "FullyReplicated"
    obj, files = model_of(cloud, described)
    assert (obj["ServerSideEncryption"], obj["SSEKMSKeyId"]) == ("aws:kms", key_arn(cloud))  # the output key
    record = json.loads(files["model.json"])
    assert record["argv"] == ["--epochs", "3", "--mode", "ok"]  # the user's hyperparameters, sorted; no sagemaker_*
    assert record["channels"] == {
        "train": ["part-0.csv"],
        "many": ["a/b.csv", "c.csv"],
        "listed": ["part-1.csv"],
        "code": ["sourcedir.tar.gz"],
    }
    env = record["environment"]
    base = str(cloud.state_dir.resolve() / "sagemaker" / "t1" / "opt" / "ml")
    assert env["SM_MODEL_DIR"] == f"{base}/model"
    assert env["SM_CHANNEL_TRAIN"] == f"{base}/input/data/train"
    assert env["SM_OUTPUT_DATA_DIR"] == f"{base}/output/data"
    assert json.loads(env["SM_CHANNELS"]) == ["code", "listed", "many", "train"]
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "mode": "ok"}
    assert (env["SM_HP_EPOCHS"], env["SM_HP_MODE"]) == ("3", "ok")
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "t1"
    assert record["cwd"] == f"{base}/code"
    # without network isolation the job has its role's credentials and the local endpoint
    assert env["AWS_ENDPOINT_URL"] == cloud.endpoint
    assert env["AWS_ACCESS_KEY_ID"].startswith("LKIA")
    config = cloud.state_dir / "sagemaker" / "t1" / "opt" / "ml" / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == request(cloud, "t1", [])["HyperParameters"]
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"train", "many", "listed", "code"}
    assert json.loads((config / "resourceconfig.json").read_text())["current_host"] == "algo-1"
    output = cloud.client("s3").get_object(Bucket=data, Key="jobs/t1/output/output.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(output)) as archive:
        assert archive.getnames() == ["metrics.json"]
    summaries = sm.list_training_jobs(NameContains="t1", StatusEquals="Completed")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in summaries] == ["t1"]


@pytest.mark.parametrize(
    ("name", "key", "reason"),
    [
        (
            "t2-unlisted",
            "private/data.csv",  # outside the prefixes the role may list
            'ClientError: No S3 objects found under S3 URL "s3://{bucket}/private/data.csv" given in input data '
            "source. Please ensure that the bucket exists in the selected region (eu-west-1), that objects exist "
            'under that S3 prefix, and that the role "{role}" has "s3:ListBucket" permissions on bucket "{bucket}".',
        ),
        (
            "t2-locked",
            "channels/locked/data.csv",  # listed, but the role's policy denies reading it
            "ClientError: Data download failed:Could not download s3://{bucket}/channels/locked/data.csv: "
            "AccessDenied (403): User: arn:aws:sts::{account}:assumed-role/gaps-training/gaps-training is not "
            "authorized to perform: s3:GetObject on resource: arn:aws:s3:::{bucket}/channels/locked/data.csv with an "
            "explicit deny in an identity-based policy",
        ),
    ],
)
def test_a_job_whose_role_may_not_read_a_channel_fails_with_the_reason(byom_cloud, name, key, reason):
    cloud = byom_cloud
    put(cloud, key)
    cloud.client("sagemaker").create_training_job(
        **request(cloud, name, [channel("train", f"s3://{bucket(cloud)}/{key}")])
    )
    described = finished(cloud, name)
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == reason.format(
        bucket=bucket(cloud), role=role(cloud, TRAINING_ROLE), account=cloud.state["account"]
    )
    assert "ModelArtifacts" not in described


def test_a_job_that_writes_its_failure_and_exits_1_fails_with_that_reason(byom_cloud):
    cloud = byom_cloud
    put(cloud, "channels/t3/part-0.csv")
    sm = cloud.client("sagemaker")
    train = [channel("train", f"s3://{bucket(cloud)}/channels/t3/part-0.csv")]
    sm.create_training_job(**request(cloud, "t3", train, mode="fail"))
    sm.create_training_job(**request(cloud, "t3-crash", train, mode="crash"))
    failed = finished(cloud, "t3")
    assert (failed["TrainingJobStatus"], failed["SecondaryStatus"]) == ("Failed", "Failed")
    assert failed["FailureReason"] == (
        "AlgorithmError: INPUT_DIGEST_MISMATCH: train/part-0.csv: expected sha256 00, got ff, exit code: 1"
    )
    crashed = finished(cloud, "t3-crash")  # no failure file of its own: the toolkit's
    assert crashed["FailureReason"].startswith(
        'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "ValueError: the data has no label column"'
    )
    assert crashed["FailureReason"].endswith(", exit code: 1")
    with pytest.raises(ClientError, match="is in status Failed"):
        sm.stop_training_job(TrainingJobName="t3")


def test_a_job_past_its_max_runtime_is_stopped(byom_cloud):
    cloud = byom_cloud
    put(cloud, "channels/t4/part-0.csv")
    sm = cloud.client("sagemaker")
    started = time.monotonic()
    sm.create_training_job(
        **request(
            cloud, "t4", [channel("train", f"s3://{bucket(cloud)}/channels/t4/part-0.csv")], mode="sleep", runtime=2
        )
    )
    described = finished(cloud, "t4")
    assert 2 <= time.monotonic() - started < 20  # wall time: a job's runtime is never scaled
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "FailureReason" not in described  # a stopped job has none: the secondary status says why
    statuses = [t["Status"] for t in described["SecondaryStatusTransitions"]]
    assert statuses[-3:] == ["Stopping", "Uploading", "MaxRuntimeExceeded"]
    assert described["ModelArtifacts"]["S3ModelArtifacts"].endswith("/jobs/t4/output/model.tar.gz")  # what it saved


def test_stop_training_job(byom_cloud):
    cloud = byom_cloud
    put(cloud, "channels/t5/part-0.csv")
    sm = cloud.client("sagemaker")
    sm.create_training_job(
        **request(cloud, "t5", [channel("train", f"s3://{bucket(cloud)}/channels/t5/part-0.csv")], mode="sleep")
    )
    eventually(lambda: secondary(cloud, "t5") == "Training")
    sm.stop_training_job(TrainingJobName="t5")
    assert sm.describe_training_job(TrainingJobName="t5")["TrainingJobStatus"] in ("Stopping", "Stopped")
    described = finished(cloud, "t5")
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "Stopped")
    with pytest.raises(ClientError) as refused:
        sm.stop_training_job(TrainingJobName="t5")
    assert refused.value.response["Error"]["Message"] == (
        "The request was rejected because the training job is in status Stopped."
    )


def error_of(call):
    with pytest.raises(ClientError) as refused:
        call()
    error = refused.value.response["Error"]
    return error["Code"], error["Message"], refused.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_what_sagemaker_refuses_and_what_the_local_cloud_does_not_run(byom_cloud):
    cloud = byom_cloud
    sm = cloud.client("sagemaker")
    put(cloud, "channels/t6/part-0.csv")
    train = [channel("train", f"s3://{bucket(cloud)}/channels/t6/part-0.csv")]
    sm.create_training_job(**request(cloud, "t6", train))
    assert error_of(lambda: sm.create_training_job(**request(cloud, "t6", train)))[0] == "ResourceInUse"
    untrusting = {**request(cloud, "t6-role", train), "RoleArn": role(cloud, URL_CALLER)}
    assert error_of(lambda: sm.create_training_job(**untrusting))[:2] == (
        "ValidationException",
        f"Could not assume role {role(cloud, URL_CALLER)}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role.",
    )
    other = request(cloud, "x-other", train)  # the role's trust allows SageMaker for jobs t* and s* only
    assert error_of(lambda: sm.create_training_job(**other))[1].startswith(
        f"Could not assume role {role(cloud, TRAINING_ROLE)}"
    )
    too_long = request(cloud, "t6-hp", train, hyperparameters={"note": "x" * 2501})
    assert error_of(lambda: sm.create_training_job(**too_long))[0] == "ValidationException"
    piped = request(cloud, "t6-pipe", train)
    piped["AlgorithmSpecification"]["TrainingInputMode"] = "Pipe"
    code, message, status = error_of(lambda: sm.create_training_job(**piped))
    assert (code, status) == ("NotImplemented", 501)
    assert "TrainingInputMode Pipe" in message
    spot = request(cloud, "t6-spot", train, EnableManagedSpotTraining=True)
    assert "MaxWaitTimeInSeconds" in error_of(lambda: sm.create_training_job(**spot))[1]
    assert error_of(lambda: sm.describe_training_job(TrainingJobName="nothing"))[:2] == (
        "ValidationException",
        "Requested resource not found.",
    )
    finished(cloud, "t6")


def test_creating_a_job_needs_iam_pass_role_for_sagemaker(byom_cloud):
    cloud = byom_cloud
    sts = cloud.client("sts")
    creds = sts.assume_role(RoleArn=role(cloud, NO_PASS), RoleSessionName="carol")["Credentials"]
    sm = cloud.client(
        "sagemaker",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    code, message, _ = error_of(lambda: sm.create_training_job(**request(cloud, "t7", [])))
    assert code == "AccessDeniedException"
    assert f"iam:PassRole on resource: {role(cloud, TRAINING_ROLE)}" in message
    assert error_of(lambda: cloud.client("sagemaker").describe_training_job(TrainingJobName="t7"))[0]


# --- 24. Step Functions createTrainingJob.sync -------------------------------------------------------------


def execute(cloud, name, **job_input):
    sfn = cloud.client("stepfunctions")
    machine = cloud.physical_id("gaps", "AWS::StepFunctions::StateMachine", "Training")
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps({"name": name, **job_input}))
    return sfn, arn["executionArn"]


def test_sync_task_waits_for_the_job_and_outputs_describe_training_job(byom_cloud):
    cloud = byom_cloud
    put(cloud, "channels/s1/part-0.csv")
    sfn, arn = execute(cloud, "s1", train=f"s3://{bucket(cloud)}/channels/s1/part-0.csv", mode="ok")
    done = eventually(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=60)
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == {
        "model": f"s3://{bucket(cloud)}/jobs/s1/output/model.tar.gz",  # $.ModelArtifacts.S3ModelArtifacts
        "status": "Completed",
    }
    history = sfn.get_execution_history(executionArn=arn)["events"]
    succeeded = next(e for e in history if e["type"] == "TaskSucceeded")
    output = json.loads(succeeded["taskSucceededEventDetails"]["output"])
    assert output["TrainingJobName"] == "s1"
    assert isinstance(output["CreationTime"], int)  # epoch milliseconds, as Step Functions writes them
    described = cloud.client("sagemaker").describe_training_job(TrainingJobName="s1")
    assert described["RoleArn"] == role(cloud, TRAINING_ROLE)
    assert described["EnableNetworkIsolation"] is True
    assert described["OutputDataConfig"]["S3OutputPath"].startswith("https://s3.eu-west-1.amazonaws.com/")
    env = json.loads(model_of(cloud, described)[1]["model.json"])["environment"]
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} & set(env)  # network isolation


def test_sync_task_fails_with_the_jobs_description_when_the_job_fails(byom_cloud):
    cloud = byom_cloud
    put(cloud, "channels/s2/part-0.csv")
    sfn, arn = execute(cloud, "s2", train=f"s3://{bucket(cloud)}/channels/s2/part-0.csv", mode="fail")
    done = eventually(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=60)
    assert done["status"] == "FAILED"
    assert done["error"] == "States.TaskFailed"
    cause = json.loads(done["cause"])
    assert cause["TrainingJobStatus"] == "Failed"
    assert cause["FailureReason"].startswith("AlgorithmError: INPUT_DIGEST_MISMATCH")


def test_sync_task_of_a_refused_job_fails_with_sagemakers_error(byom_cloud):
    sfn, arn = execute(byom_cloud, "s3-bad", train="not-an-s3-uri", mode="ok")
    done = eventually(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=30)
    assert done["error"] == "SageMaker.AmazonSageMakerException"
    assert "Error Code: ValidationException" in done["cause"]


def test_a_stopped_execution_stops_its_job(byom_cloud):
    cloud = byom_cloud
    put(cloud, "channels/s4/part-0.csv")
    sfn, arn = execute(cloud, "s4", train=f"s3://{bucket(cloud)}/channels/s4/part-0.csv", mode="sleep")
    eventually(lambda: secondary(cloud, "s4") == "Training", timeout=30)
    sfn.stop_execution(executionArn=arn)
    assert finished(cloud, "s4")["TrainingJobStatus"] == "Stopped"


def test_a_state_machine_with_a_sync_training_task_needs_the_managed_rule(byom_cloud):
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": {"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync", "End": True}
        },
    }
    sfn = byom_cloud.client("stepfunctions")
    caller = role(byom_cloud, URL_CALLER)  # no events:PutRule on the managed rule
    code, message, _ = error_of(
        lambda: sfn.create_state_machine(name="no-rule", definition=json.dumps(definition), roleArn=caller)
    )
    assert (code, message) == ("AccessDeniedException", f"'{caller}' is not authorized to create managed-rule.")


def test_requirements_the_local_venv_lacks_fail_the_job_as_the_toolkits_install_would(byom_cloud):
    cloud = byom_cloud
    source = io.BytesIO()
    with tarfile.open(fileobj=source, mode="w:gz") as archive:
        for name, text in (
            ("train.py", "print('never runs')\n"),
            ("requirements.txt", "scikit-learn\nno-such-package-x==1.0\n"),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(text)
            archive.addfile(member, io.BytesIO(text.encode()))
    put(cloud, "code/needs.tar.gz", source.getvalue())
    put(cloud, "channels/t8/part-0.csv")
    job = request(cloud, "t8", [channel("train", f"s3://{bucket(cloud)}/channels/t8/part-0.csv")])
    job["InputDataConfig"][-1] = channel("code", f"s3://{bucket(cloud)}/code/needs.tar.gz")
    job["HyperParameters"]["sagemaker_submit_directory"] = "/opt/ml/input/data/code/needs.tar.gz"
    cloud.client("sagemaker").create_training_job(**job)
    described = finished(cloud, "t8")
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("AlgorithmError: InstallRequirementsError:\nExitCode 1\n")
    assert "no-such-package-x" in described["FailureReason"]
