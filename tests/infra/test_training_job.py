"""The sagemaker engine: its state machine runs prepare -> createTrainingJob.sync -> collect -> evaluate -> register ->
sign -> deploy, the job network-isolated with the channels, hyperparameters, output and limits of the design; a
failed or timed-out job is a recorded run failure; the training role and the state machine's SageMaker permissions
are of least privilege. The lambda engine keeps the built-in chain. Its source is a content-hashed asset."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack

from infra.constructs.model_source import build_source, model_source
from infra.model_settings import ENGINE_SAGEMAKER
from tests.infra.conftest import TEAM, TEAM_IMAGE
from tests.infra.templates import TOKEN, definition, logical_id_of, state_machine
from tests.infra.test_ingest_stack import actions_of, role_statements

CHAIN = ["Debounce", "PrepareInputs", "TrainingJob", "Collect", "Evaluate", "Register", "SignModel", "Prepare"]


@pytest.fixture(scope="module")
def team(team_app):
    models = team_app.template("-models")
    return models, definition(state_machine(models, "mlvault-dev-team-pipeline"))["States"]


def _chain(states, start="Debounce", stop="Advance"):
    order, name = [], start
    while name != stop:
        order.append(name)
        name = states[name]["Next"]
    return order


def test_the_sagemaker_pipeline_runs_the_job_with_create_training_job_sync(team):
    _, states = team
    assert _chain(states) == CHAIN
    job = states["TrainingJob"]
    assert job["Type"] == "Task"
    assert job["Resource"] == f"arn:{TOKEN}:states:::sagemaker:createTrainingJob.sync"  # RUN_JOB: .sync
    p = job["Parameters"]
    assert p["EnableNetworkIsolation"] is True
    assert p["TrainingJobName.$"] == "$.state.job.name"  # mlvault-<stage>-<run id>, from the prepare step
    assert p["AlgorithmSpecification"] == {"TrainingImage": TEAM_IMAGE, "TrainingInputMode": "File"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in p["InputDataConfig"]}
    assert list(channels) == ["train", "validation", "mlvault", "code"]
    for name, source in channels.items():
        assert source == {"S3DataType": "S3Prefix", "S3Uri.$": f"$.state.job.channels.{name}.s3_uri"}
    assert p["HyperParameters"] == {
        **TEAM["hyperparameters"],
        "sagemaker_program": "mlvault_job.py",
        "sagemaker_submit_directory": "/opt/ml/input/data/code/sourcedir.tar.gz",
        "mlvault_entry_point": "train.py",
        "mlvault_inputs_sha256.$": "$.state.job.inputs_sha256",
    }
    output = p["OutputDataConfig"]
    assert output["S3OutputPath"] == f"s3://mlvault-dev-model-{TOKEN}-eu-west-1/jobs/team/"
    assert output["KmsKeyId"] == TOKEN  # the stage's data key (a cross-stack import)
    assert p["ResourceConfig"] == {"InstanceCount": 2, "InstanceType": "ml.c5.2xlarge", "VolumeSizeInGB": 30}
    assert p["StoppingCondition"] == {"MaxRuntimeInSeconds": 5400, "MaxWaitTimeInSeconds": 10800}
    assert p["EnableManagedSpotTraining"] is True
    assert job["ResultPath"] == "$.training_job"
    assert job["ResultSelector"]["ModelArtifacts"] == {"S3ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts"}
    assert states["Collect"]["Parameters"] == {"step": "collect", "state.$": "$.state", "job.$": "$.training_job"}
    prepare = states["PrepareInputs"]["Parameters"]
    assert prepare["step"] == "prepare"
    assert prepare["state"]["model"] == "team"
    assert prepare["state"]["dataset"] == "loans"
    assert len(prepare["state"]["code_sha256"]) == 64  # the code digest travels with the run


def test_the_output_key_is_the_stages_data_key(team_app):
    models = team_app.template("-models")
    machine = state_machine(models, "mlvault-dev-team-pipeline")
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = json.dumps(parts)
    assert "ExportsOutputFnGetAttDataKey" in text


def test_a_failed_or_timed_out_job_is_a_recorded_run_failure(team):
    """The task's catch (SageMaker's description of the job as the Cause, its FailureReason inside) goes to the
    step that ends the run's record, then the execution fails with the job's error."""
    _, states = team
    for step, name in (("PrepareInputs", "prepare"), ("TrainingJob", "train"), ("Collect", "collect")):
        (catch,) = states[step]["Catch"]
        assert catch == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"{step}Failed"}
        assert states[f"{step}Failed"]["Result"] == name
        assert states[f"{step}Failed"]["Next"] == "RecordFailure"
    record = states["RecordFailure"]
    assert record["Parameters"]["state"]["model"] == "team"
    assert record["Parameters"]["error.$"] == "$.error"
    assert record["Next"] == "RunFailed"
    assert states["RunFailed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


def test_the_execution_may_outlast_the_job(team_app):
    machine = state_machine(team_app.template("-models"), "mlvault-dev-team-pipeline")
    assert definition(machine)["TimeoutSeconds"] >= 6 * 3600 + TEAM["maxWaitSeconds"]


def test_the_training_role_may_do_what_the_job_needs_and_nothing_else(team_app):
    models = team_app.template("-models")
    role_id = logical_id_of(models, "AWS::IAM::Role", "TeamTrainingRole")
    trust = models["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    (assume,) = trust
    assert assume["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert assume["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert json.dumps(assume["Condition"]["ArnLike"]).endswith(':training-job/mlvault-dev-team-*"]]}}')
    assert "ManagedPolicyArns" not in models["Resources"][role_id]["Properties"]
    statements = role_statements(models, "TeamTrainingRole")
    bucket = ["arn:aws:s3:::mlvault-dev-model-", {"Ref": "AWS::AccountId"}, "-eu-west-1"]

    def arn(suffix=""):
        return {"Fn::Join": ["", [*bucket[:2], bucket[2] + suffix]]}

    by_action = {tuple(s["Action"]) if isinstance(s["Action"], list) else (s["Action"],): s for s in statements}
    assert by_action[("s3:ListBucket",)] == {
        "Action": "s3:ListBucket",
        "Effect": "Allow",
        "Resource": arn(),
        "Condition": {"StringLike": {"s3:prefix": "channels/team/*"}},
    }
    assert by_action[("s3:GetObject",)]["Resource"] == arn("/channels/team/*")  # the model's channel prefix only
    assert by_action[("s3:PutObject",)]["Resource"] == arn("/jobs/team/*")  # its output prefix only
    kms = by_action[("kms:Decrypt", "kms:GenerateDataKey")]
    assert kms["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": arn()}
    }
    assert "DataKey" in json.dumps(kms["Resource"])
    pull = by_action[("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")]
    assert pull["Resource"] == "arn:aws:ecr:eu-west-1:141502667606:repository/sagemaker-scikit-learn"
    assert by_action[("ecr:GetAuthorizationToken",)]["Resource"] == "*"
    streams = by_action[("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")]
    assert json.dumps(streams["Resource"]).endswith(
        ':log-group:/aws/sagemaker/TrainingJobs:log-stream:mlvault-dev-team-*"]]}'
    )
    assert json.dumps(by_action[("logs:CreateLogGroup",)]["Resource"]).endswith(
        ':log-group:/aws/sagemaker/TrainingJobs"]]}'
    )
    assert len(statements) == 8
    actions = actions_of(statements)
    assert not [a for a in actions if a.startswith(("sagemaker:", "iam:", "s3:Delete", "kms:CreateGrant"))]
    assert not [a for a in actions if "*" in a]
    # the assets bucket is never the job's: prepare copies the (re-hashed) code into the channel prefix
    assert "cdk-hnb659fds-assets" not in json.dumps(statements)


def test_the_state_machine_may_run_the_models_jobs_and_pass_its_role_only(team_app):
    models = team_app.template("-models")
    statements = role_statements(models, "TeamModelPipelineRole")
    sagemaker = [s for s in statements if any(a.startswith("sagemaker:") for a in _actions(s))]
    jobs = [s for s in sagemaker if "sagemaker:CreateTrainingJob" in _actions(s)]
    (job,) = jobs
    assert sorted(_actions(job)) == [
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
    ]
    assert json.dumps(job["Resource"]).endswith(':training-job/mlvault-dev-team-*"]]}')
    assert {a for s in sagemaker for a in _actions(s) if a.startswith("sagemaker:")} == {
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
        "sagemaker:ListTags",
    }
    (passing,) = [s for s in statements if "iam:PassRole" in _actions(s)]
    assert passing["Resource"] == {"Fn::GetAtt": [logical_id_of(models, "AWS::IAM::Role", "TeamTrainingRole"), "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (rule,) = [s for s in statements if any(a.startswith("events:") for a in _actions(s))]
    assert sorted(_actions(rule)) == ["events:DescribeRule", "events:PutRule", "events:PutTargets"]
    assert json.dumps(rule["Resource"]).endswith(':rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"]]}')
    assert not [a for s in statements for a in _actions(s) if a in ("sagemaker:*", "iam:*", "*")]
    # the lambda engine's state machine has no SageMaker permission at all
    iris = role_statements(models, "IrisModelPipelineRole")
    assert not [a for a in actions_of(iris) if a.startswith(("sagemaker:", "iam:", "events:"))]


def _actions(statement):
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_the_pipeline_function_reads_the_code_asset_and_the_jobs_output(team_app):
    models = team_app.template("-models")
    statements = role_statements(models, "PipelineRole")
    text = json.dumps(statements)
    assert "cdk-hnb659fds-assets" in text  # prepare re-hashes the deployed asset
    (code,) = [s for s in statements if "cdk-hnb659fds-assets" in json.dumps(s["Resource"])]
    assert code["Action"] == "s3:GetObject"
    assert not json.dumps(code["Resource"]).endswith('/*"]]}')
    for prefix in ("/channels/*", "/heldout/*", "/jobs/*"):
        assert prefix in text, prefix


@pytest.mark.parametrize("app_name", ["synthesized", "team_app"])
def test_the_lambda_engine_keeps_the_built_in_chain(request, app_name):
    app = request.getfixturevalue(app_name)
    states = definition(state_machine(app.template("-models"), "mlvault-dev-iris-pipeline"))["States"]
    assert _chain(states) == ["Debounce", "Train", "Evaluate", "Register", "SignModel", "Prepare"]
    assert states["Train"]["Parameters"] == {
        "step": "train",
        "state": {"model": "iris", "dataset": "iris", "run_id.$": "$$.Execution.Name"},
    }
    assert "sagemaker" not in json.dumps(states)


def test_every_sagemaker_model_of_cdk_json_uses_create_training_job_sync(synthesized):
    """The app as configured (cdk.json): each sagemaker model's pipeline runs its job through `.sync`."""
    models = synthesized.template("-models")
    sagemaker = [m for m in synthesized.settings.models if m.engine == ENGINE_SAGEMAKER]
    for model in sagemaker:
        states = definition(state_machine(models, f"mlvault-dev-{model.name}-pipeline"))["States"]
        assert _chain(states) == CHAIN
        assert states["TrainingJob"]["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
        assert states["TrainingJob"]["Parameters"]["EnableNetworkIsolation"] is True


def test_the_source_asset_is_deterministic_and_its_hash_follows_the_code(tmp_path):
    model = tmp_path / "models" / "team"
    model.mkdir(parents=True)
    (model / "train.py").write_text("print('v1')\n")
    (model / "requirements.txt").write_text("scikit-learn\n")
    (model / "__pycache__").mkdir()
    (model / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    built = tmp_path / "built"
    first, digest = build_source(model, built)
    again, same = build_source(model, built)
    assert (again, same) == (first, digest)  # the same files, the same bytes
    import hashlib
    import tarfile

    assert hashlib.sha256(first.read_bytes()).hexdigest() == digest
    with tarfile.open(first) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in tar.getmembers())
    assert names == ["mlvault_job.py", "requirements.txt", "train.py"]  # the verifier beside the team's code

    (model / "train.py").write_text("print('v2')\n")
    _, changed = build_source(model, built)
    assert changed != digest

    def asset_hash(digest_dir):
        app = App()
        stack = Stack(app, "S")
        return model_source(stack, "Source", name="team", source_dir=digest_dir)

    v2 = asset_hash(model)
    (model / "train.py").write_text("print('v1')\n")
    v1 = asset_hash(model)
    assert v1.sha256 == digest
    assert v2.sha256 == changed
    assert v1.asset.asset_hash != v2.asset.asset_hash  # the file asset's content hash changes with train.py
    assert v1.key != v2.key
