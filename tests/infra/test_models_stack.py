"""The model stack: least privilege per step, the state machines' shape, canary steps from cdk.json (each model's
gates and training parameters: tests/infra/test_model_resources.py)."""

from __future__ import annotations

import json

import pytest

from tests.infra.templates import definition, state_machine
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


@pytest.mark.parametrize("model", ["Iris"])
def test_serving_only_reads(models, model):
    actions = actions_of(role_statements(models, f"{model}ServeRole"))
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


def test_deploy_may_only_change_the_serving_functions(models):
    statements = role_statements(models, "DeployRole")
    lam = [s for s in statements if any(a.startswith("lambda:") for a in s["Action"])]
    assert lam
    assert all("ServeFunction" in json.dumps(s["Resource"]) for s in lam)
    assert "lambda:UpdateFunctionCode" not in actions_of(statements)


def test_the_pipeline_runs_every_step_and_rolls_back_on_alarm(models):
    machine = state_machine(models, "mlvault-dev-iris-pipeline")
    states = definition(machine)["States"]
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
        assert state in states, state
    assert "DeploymentLocked" in json.dumps(states["Prepare"])
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


def test_canary_steps_come_from_cdk_json(models, synthesized):
    env = function(models, "DeployFunction")["Environment"]["Variables"]
    steps = [(s["percent"], s["waitSeconds"]) for s in json.loads(env["MLVAULT_CANARY_STEPS"])]
    assert tuple(steps) == synthesized.settings.canary_steps
    # whom to trust is not configuration: the signing key, the alarms and where models are served are bundled
    assert not {"MLVAULT_SERVING_ALARMS", "MLVAULT_SIGNING_KEY_ARN", "MLVAULT_SERVE_FUNCTION"} & set(env)
    pipeline = function(models, "PipelineFunction")["Environment"]["Variables"]
    assert not {"MLVAULT_MODEL_GATES", "MLVAULT_TRAINING_PARAMS"} & set(pipeline)  # each model's, bundled


def test_the_pipeline_logs_are_kept_as_long_as_the_functions_logs(models, synthesized):
    (group,) = [
        g
        for g in of_type(models, "AWS::Logs::LogGroup").values()
        if g["Properties"]["LogGroupName"] == "/mlvault/dev/states/iris-pipeline"
    ]
    assert group["Properties"]["RetentionInDays"] == synthesized.settings.log_retention_days


def test_alarms_start_the_rollback_and_the_dashboard_shows_the_story(models):
    (rule,) = [r for k, r in of_type(models, "AWS::Events::Rule").items() if k.startswith("OnServingAlarm")]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    names = pattern["detail"]["alarmName"]
    assert "mlvault-dev-iris-serving-errors" in names
    assert "mlvault-dev-iris-feature-drift" in names
    assert not [n for n in names if "attestation" in n]  # a refused model pages a human, it rolls nothing back
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    refused = [
        a for a in of_type(models, "AWS::CloudWatch::Alarm").values() if "attestation" in a["Properties"]["AlarmName"]
    ]
    assert refused
    assert all(a["Properties"]["AlarmActions"] for a in refused)
    (dashboard,) = of_type(models, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in ("Ingest verdicts", "Reason codes", "Unaccounted", "feature drift", "Canary weight", "Rollbacks"):
        assert title in body, title
