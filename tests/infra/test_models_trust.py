"""The model stack's side of "trust no configuration, no event": revocation has a function and a permission of its
own, the rollback function cannot revoke, the canary and the rollback read alarm history, bad requests reach no
alarm, and every failed pipeline step ends its run's record before the execution fails."""

from __future__ import annotations

import json

import pytest

from tests.infra.templates import definition, state_machine
from tests.infra.test_ingest_stack import actions_of, function, of_type, role_statements


@pytest.fixture(scope="module")
def models(synthesized):
    return synthesized.template("-models")


def _resources(statements, action):
    return json.dumps([s["Resource"] for s in statements if action in json.dumps(s["Action"])])


def test_revocation_is_its_own_function_and_the_rollback_function_cannot_revoke(models):
    revoke = role_statements(models, "RevokeRole")
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "lambda:UpdateAlias", "kms:GetPublicKey"} <= actions_of(revoke)
    assert "LedgerTable" in _resources(revoke, "dynamodb:PutItem")
    rollback = role_statements(models, "AutoRollbackRole")
    assert "LedgerTable" not in json.dumps([s["Resource"] for s in rollback])  # no revocation, no taint
    env = function(models, "AutoRollbackFunction")["Environment"]["Variables"]
    assert not {"MLVAULT_LEDGER_TABLE", "MLVAULT_SIGNING_KEY_ARN"} & set(env)
    revoke_env = function(models, "RevokeFunction")["Environment"]["Variables"]
    assert {"MLVAULT_LEDGER_TABLE", "MLVAULT_REGISTRY_TABLE"} <= set(revoke_env)
    assert not {"MLVAULT_SIGNING_KEY_ARN", "MLVAULT_SERVE_FUNCTION"} & set(revoke_env)  # bundled facts
    (parameter,) = [
        p
        for p in of_type(models, "AWS::SSM::Parameter").values()
        if p["Properties"]["Name"].endswith("/revoke-function")
    ]
    assert "RevokeFunction" in json.dumps(parameter["Properties"]["Value"])


def test_the_revoke_function_carries_the_stages_trust_registry_in_its_signed_asset(synthesized):
    """The keys a revocation may name are the reviewed registry's (trust/dev.json, as the verifier has it), bundled
    in the asset the signer signs; the environment names no registry."""
    from localcloud.cdkout import load_assembly
    from tests.conftest import ROOT
    from tests.infra.test_ingest_stack import source_key

    (stack,) = [s for s in load_assembly(synthesized.outdir) if s.name.endswith("-models")]
    asset = stack.assets[source_key(stack.template, "RevokeFunction")]
    registry = json.loads((ROOT / synthesized.settings.trust_file).read_text())
    assert json.loads((asset / "trust/producers.json").read_text()) == registry
    assert (asset / "handler.py").is_file()
    assert "MLVAULT_TRUST_FILE" not in function(stack.template, "RevokeFunction")["Environment"]["Variables"]


def test_the_canary_and_the_rollback_read_the_alarms_history(models):
    for role in ("DeployRole", "AutoRollbackRole"):
        statements = role_statements(models, role)
        assert {"cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"} <= actions_of(statements), role
    deploy = _resources(role_statements(models, "DeployRole"), "cloudwatch:DescribeAlarmHistory")
    for alarm in ("IrisServingErrors", "IrisModelRefused", "IrisFeatureDriftAlarm"):
        assert alarm in deploy


def test_bad_requests_reach_no_alarm_and_other_versions_cannot_roll_back(models):
    alarms = of_type(models, "AWS::CloudWatch::Alarm").values()
    assert not [a for a in alarms if a["Properties"].get("MetricName") == "ClientErrors"]
    (errors,) = [a for a in alarms if a["Properties"]["AlarmName"] == "mlvault-dev-iris-serving-errors"]
    dimensions = {d["Name"]: d["Value"] for d in errors["Properties"]["Dimensions"]}
    assert set(dimensions) == {"FunctionName", "Resource"}
    assert dimensions["Resource"] == {"Fn::Join": ["", [dimensions["FunctionName"], ":live"]]}  # the alias only
    (dashboard,) = of_type(models, "AWS::CloudWatch::Dashboard").values()
    assert "ClientErrors" in json.dumps(dashboard["Properties"]["DashboardBody"])


def test_every_failed_step_ends_its_run_before_the_execution_fails(models):
    states = definition(state_machine(models, "mlvault-dev-iris-pipeline"))["States"]
    for step, name in (("Train", "train"), ("Evaluate", "evaluate"), ("Register", "register"), ("SignModel", "sign")):
        (catch,) = states[step]["Catch"]
        assert catch["Next"] == f"{step}Failed"
        assert states[f"{step}Failed"]["Result"] == name
        assert states[f"{step}Failed"]["Next"] == "RecordFailure"
    assert states["Prepare"]["Catch"][0]["Next"] == "PrepareFailed"
    assert states["RecordFailure"]["Next"] == "RunFailed"
    assert states["RunFailed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    for step in ("Advance", "CheckAlarms", "Promote"):  # the canary's failures roll back, the error with the state
        assert states[step]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.state.error", "Next": "Rollback"}
        ]
