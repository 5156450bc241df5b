"""The model stack: least privilege per step, the state machine's shape, canary and gates from cdk.json."""

from __future__ import annotations

import json

import pytest

from tests.infra.test_ingest_stack import actions_of, function, of_type, role_statements


@pytest.fixture(scope="module")
def models(synthesized):
    return synthesized.template("-models")


def test_only_the_sign_function_may_sign(models):
    signers = [
        logical
        for logical in of_type(models, "AWS::IAM::Role")
        if "kms:Sign" in actions_of(role_statements(models, logical))
    ]
    assert [s.rstrip("0123456789ABCDEF") for s in signers] == ["SignRole"]


def test_serving_only_reads(models):
    actions = actions_of(role_statements(models, "ServeRole"))
    assert actions <= {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "kms:GetPublicKey",
        "dynamodb:GetItem",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:SendMessage",
    }


def test_deploy_may_only_change_the_serving_function(models):
    statements = role_statements(models, "DeployRole")
    lam = [s for s in statements if any(a.startswith("lambda:") for a in s["Action"])]
    (statement,) = lam
    assert "ServeFunction" in json.dumps(statement["Resource"])
    assert "lambda:UpdateFunctionCode" not in actions_of(statements)


def test_the_pipeline_runs_every_step_and_rolls_back_on_alarm(models):
    (machine,) = of_type(models, "AWS::StepFunctions::StateMachine").values()
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    for state in (
        "Debounce",
        "Train",
        "Evaluate",
        "Register",
        "SignModel",
        "Prepare",
        "Advance",
        "Bake",
        "CheckAlarms",
        "AlarmFired?",
        "Rollback",
        "Promote",
        "RolledBack",
    ):
        assert f'\\"{state}\\"' in definition, state
    assert "DeploymentLocked" in definition
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


def test_canary_steps_gates_and_training_come_from_cdk_json(models, synthesized):
    from mlvault.training.gates import Gates
    from mlvault.training.params import TrainingParams

    env = function(models, "DeployFunction")["Environment"]["Variables"]
    steps = [(s["percent"], s["waitSeconds"]) for s in json.loads(env["MLVAULT_CANARY_STEPS"])]
    assert tuple(steps) == synthesized.settings.canary_steps
    # whom to trust is not configuration: the signing key and the alarms are the bundled anchors
    assert not {"MLVAULT_SERVING_ALARMS", "MLVAULT_SIGNING_KEY_ARN"} & set(env)
    pipeline = function(models, "PipelineFunction")["Environment"]["Variables"]
    # parsed back as the pipeline function does (mlvault.composition): the stage's values, nothing else
    assert Gates.from_config(json.loads(pipeline["MLVAULT_MODEL_GATES"])) == synthesized.settings.model_gates
    assert synthesized.settings.model_gates.min_accuracy == 0.85
    assert TrainingParams(**json.loads(pipeline["MLVAULT_TRAINING_PARAMS"])) == synthesized.settings.training
    assert synthesized.settings.training.max_rows == 200_000


def test_the_pipeline_logs_are_kept_as_long_as_the_functions_logs(models, synthesized):
    (group,) = [
        g
        for g in of_type(models, "AWS::Logs::LogGroup").values()
        if g["Properties"]["LogGroupName"] == "/mlvault/dev/states/pipeline"
    ]
    assert group["Properties"]["RetentionInDays"] == synthesized.settings.log_retention_days


def test_alarms_start_the_rollback_and_the_dashboard_shows_the_story(models):
    (rule,) = [r for k, r in of_type(models, "AWS::Events::Rule").items() if k.startswith("OnServingAlarm")]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    names = json.dumps(pattern["detail"]["alarmName"])
    assert len(pattern["detail"]["alarmName"]) == 2
    assert "ServingErrors" in names
    assert "FeatureDriftAlarm" in names
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    refused = [
        a for a in of_type(models, "AWS::CloudWatch::Alarm").values() if "attestation" in a["Properties"]["AlarmName"]
    ]
    assert refused[0]["Properties"]["AlarmActions"]  # a refused model pages a human
    (dashboard,) = of_type(models, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in ("Ingest verdicts", "Reason codes", "Unaccounted", "Feature drift", "Canary weight", "Rollbacks"):
        assert title in body, title
