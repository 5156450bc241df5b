"""A stage of other settings on a local cloud of its own: the optional manual approval (prod's setting), where a
signed model waits for a human (rejected, it is never deployed; approved, the pipeline deploys it); and a second
model of the iris data, `strict`, whose reviewed gates no model meets (a failing gate stops its run, recorded,
whatever the functions' configuration says)."""

from __future__ import annotations

import copy
import json

import pytest

from localcloud import control
from mlvault.registry.records import ModelRegistry
from mlvault_tools.samples import iris_csv
from tests.conftest import cdk_context
from tests.e2e.conftest import Ingest, ModelsCloud, eventually, run_cli

STRICT = "strict"  # the iris model whose min_accuracy gate (in the signed bundle) no model meets


@pytest.fixture(scope="module")
def approving(tmp_path_factory):
    from aws_cdk import App

    from infra.assembly import build

    context = copy.deepcopy(cdk_context())
    stage = context["mlvault:stages"]["dev"]
    stage["manualApproval"] = True
    stage["models"][STRICT] = copy.deepcopy(stage["models"]["iris"])
    stage["models"][STRICT]["gates"]["min_accuracy"] = 0.9999
    outdir = tmp_path_factory.mktemp("cdk.out-approval")
    app = App(context=context, outdir=str(outdir))
    build(app)
    app.synth()
    state_dir = tmp_path_factory.mktemp("local-cloud-approval")
    cloud = ModelsCloud(control.up(cdk_out=outdir, state_dir=state_dir, alarm_scale=60))
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
    machine = cloud.model_id("iris", "AWS::StepFunctions::StateMachine", "ModelPipeline")
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{run_id}"
    return eventually(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=60)


def test_a_signed_model_waits_for_a_human_and_is_deployed_only_if_approved(approving):
    registry = ModelRegistry(
        approving.client("dynamodb"), approving.physical_id("-storage", "AWS::DynamoDB::Table", "RegistryTable")
    )
    assert "NO_PENDING_APPROVAL" in run_cli(approving, "models", "approve", "iris/9", "--reason", "x").stdout

    lam = approving.client("lambda")
    serve = approving.model_id("iris", "AWS::Lambda::Function", "ServeFunction")
    # the live alias starts on the version the template published, which pins no model
    initial = lam.get_alias(FunctionName=serve, Name="live")
    assert run_cli(approving, "train", "--model", "iris").returncode == 0
    rejected = waiting_model(approving, registry, set())
    assert rejected["status"] == "SIGNED"
    out = run_cli(approving, "models", "reject", rejected["model_id"], "--reason", "fairness report not reviewed")
    assert out.returncode == 0, out.stdout + out.stderr
    done = execution_of(approving, rejected["record"]["run_id"])
    assert (done["status"], done["error"]) == ("FAILED", "NotApproved")
    assert registry.model(rejected["model_id"])["status"] == "SIGNED"  # never deployed
    after = lam.get_alias(FunctionName=serve, Name="live")
    assert (after["FunctionVersion"], after.get("RoutingConfig")) == (
        initial["FunctionVersion"],
        initial.get("RoutingConfig"),
    )  # nothing moved

    assert run_cli(approving, "train", "--model", "iris").returncode == 0
    approved = waiting_model(approving, registry, {rejected["model_id"]})
    out = run_cli(approving, "models", "approve", approved["model_id"], "--reason", "reviewed the gate report")
    assert f"{approved['model_id']} approved by arn:aws:" in out.stdout
    done = execution_of(approving, approved["record"]["run_id"])
    assert done["status"] == "SUCCEEDED", done.get("cause")
    model = registry.model(approved["model_id"])
    assert model["status"] == "DEPLOYED"
    assert any("approved by" in h and "reviewed the gate report" in h for h in model["history"])
    assert json.loads(done["output"])["state"]["rollout"]["percent"] == 100


def test_a_failing_gate_stops_the_run_and_the_run_is_recorded_whatever_the_configuration_says(approving):
    """The gates are the signed bundle's: an insider who loosens the pipeline function's configuration (as the
    gates were once configured) changes nothing; the loser is recorded with its artifact, metrics and gates."""
    registry = ModelRegistry(
        approving.client("dynamodb"), approving.physical_id("-storage", "AWS::DynamoDB::Table", "RegistryTable")
    )
    lam = approving.client("lambda")
    pipeline_fn = approving.physical_id("-models", "AWS::Lambda::Function", "PipelineFunction")
    env = lam.get_function_configuration(FunctionName=pipeline_fn)["Environment"]["Variables"]
    loose = {**env, "MLVAULT_MODEL_GATES": json.dumps({"min_accuracy": 0.0})}
    lam.update_function_configuration(FunctionName=pipeline_fn, Environment={"Variables": loose})
    before = {m["model_id"] for m in registry.models("iris")}
    try:
        done = run_cli(approving, "train", "--model", STRICT, "--wait", "120")
    finally:
        lam.update_function_configuration(FunctionName=pipeline_fn, Environment={"Variables": env})
    out = done.stdout + done.stderr
    assert done.returncode == 3, out  # a verdict: the run failed its gates
    assert "FAILED GatesFailed" in out, out
    assert "min_accuracy" in out
    run = registry.run(out.split("run ")[1].split(" ")[0])
    assert (run["status"], run["model"]) == ("GATES_FAILED", STRICT)
    gate = next(g for g in run["gates"]["results"] if g["name"] == "min_accuracy")
    assert (float(gate["threshold"]), gate["passed"]) == (0.9999, False)  # the bundle's, not the configuration's
    assert run["artifact_digest"]  # the loser is recorded with its artifact, metrics and gates
    assert {m["model_id"] for m in registry.models("iris")} == before  # nothing registered
