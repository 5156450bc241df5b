"""The optional manual approval (prod's setting) on a local cloud of its own: a signed model waits for a human;
rejected, it is never deployed; approved, the pipeline deploys it."""

from __future__ import annotations

import copy
import json

import pytest

from localcloud import control
from mlvault.registry.records import ModelRegistry
from mlvault_tools.samples import iris_csv
from tests.conftest import cdk_context
from tests.e2e.conftest import Ingest, eventually, run_cli


@pytest.fixture(scope="module")
def approving(tmp_path_factory):
    from aws_cdk import App

    from infra.assembly import build

    context = copy.deepcopy(cdk_context())
    context["mlvault:stages"]["dev"]["manualApproval"] = True
    outdir = tmp_path_factory.mktemp("cdk.out-approval")
    app = App(context=context, outdir=str(outdir))
    build(app)
    app.synth()
    state_dir = tmp_path_factory.mktemp("local-cloud-approval")
    cloud = control.up(cdk_out=outdir, state_dir=state_dir, alarm_scale=60)
    cloud.client("events").disable_rule(Name=cloud.physical_id("-models", "AWS::Events::Rule", "OnAcceptedBatch"))
    ingest = Ingest(cloud)
    for seed in range(3):
        key = f"producers/acme/iris/approve-{seed}.csv"
        assert ingest.verdict(key, ingest.signed_upload(key, iris_csv(600, 500 + seed)))["status"] == "ACCEPTED"
    try:
        yield cloud
    finally:
        control.down(state_dir)


def waiting_model(cloud, registry: ModelRegistry, known: set[str]) -> dict:
    def parked():
        found = [m for m in registry.models("iris") if m["model_id"] not in known and m.get("approval_token")]
        return found and found[0]

    return eventually(parked, timeout=60, interval=0.5)


def execution_of(cloud, run_id: str) -> dict:
    sfn = cloud.client("stepfunctions")
    machine = cloud.physical_id("-models", "AWS::StepFunctions::StateMachine", "ModelPipeline")
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{run_id}"
    return eventually(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=60)


def test_a_signed_model_waits_for_a_human_and_is_deployed_only_if_approved(approving):
    registry = ModelRegistry(
        approving.client("dynamodb"), approving.physical_id("-storage", "AWS::DynamoDB::Table", "RegistryTable")
    )
    assert "NO_PENDING_APPROVAL" in run_cli(approving, "models", "approve", "iris/9", "--reason", "x").stdout

    assert run_cli(approving, "train", "--dataset", "iris").returncode == 0
    rejected = waiting_model(approving, registry, set())
    assert rejected["status"] == "SIGNED"
    out = run_cli(approving, "models", "reject", rejected["model_id"], "--reason", "fairness report not reviewed")
    assert out.returncode == 0, out.stdout + out.stderr
    done = execution_of(approving, rejected["record"]["run_id"])
    assert (done["status"], done["error"]) == ("FAILED", "NotApproved")
    assert registry.model(rejected["model_id"])["status"] == "SIGNED"  # never deployed
    lam = approving.client("lambda")
    serve = approving.physical_id("-models", "AWS::Lambda::Function", "ServeFunction")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=serve, Name="live")

    assert run_cli(approving, "train", "--dataset", "iris").returncode == 0
    approved = waiting_model(approving, registry, {rejected["model_id"]})
    out = run_cli(approving, "models", "approve", approved["model_id"], "--reason", "reviewed the gate report")
    assert f"{approved['model_id']} approved by arn:aws:" in out.stdout
    done = execution_of(approving, approved["record"]["run_id"])
    assert done["status"] == "SUCCEEDED", done.get("cause")
    model = registry.model(approved["model_id"])
    assert model["status"] == "DEPLOYED"
    assert any("approved by" in h and "reviewed the gate report" in h for h in model["history"])
    assert json.loads(done["output"])["state"]["rollout"]["percent"] == 100
