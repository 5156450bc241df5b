"""The model pipeline on the local cloud, through the synthesized state machine and the public CLI: from
accepted data to a model serving at 100% after canary steps; a failing gate; an artifact swapped after signing,
a tampered registry record and the wrong signing key refused; concurrent deployments; the debounced trigger."""

from __future__ import annotations

import json
import time

import pytest

from mlvault.registry.records import ModelRegistry
from mlvault_tools.samples import iris_batch, iris_csv
from tests.e2e.conftest import eventually, run_cli


@pytest.fixture(scope="module")
def models(cloud, ingest):
    """Accepted iris data for the pipeline, and handles on the model side of the app."""
    for seed in range(3):
        key = f"producers/acme/iris/train-{seed}.csv"
        assert ingest.verdict(key, ingest.signed_upload(key, iris_csv(600, 90 + seed)))["status"] == "ACCEPTED"

    class Models:
        lam = cloud.client("lambda")
        sfn = cloud.client("stepfunctions")
        s3 = cloud.client("s3")
        registry = ModelRegistry(
            cloud.client("dynamodb"), cloud.physical_id("-storage", "AWS::DynamoDB::Table", "RegistryTable")
        )
        serve = cloud.physical_id("-models", "AWS::Lambda::Function", "ServeFunction")
        pipeline_fn = cloud.physical_id("-models", "AWS::Lambda::Function", "PipelineFunction")
        deploy_fn = cloud.physical_id("-models", "AWS::Lambda::Function", "DeployFunction")
        machine = cloud.physical_id("-models", "AWS::StepFunctions::StateMachine", "ModelPipeline")

    return Models


def train(cloud, *extra: str) -> str:
    done = run_cli(cloud, "train", "--dataset", "iris", "--wait", "120", *extra)
    return done.stdout + done.stderr


def serve(models, payload: dict, qualifier: str = "live") -> tuple[dict, str | None]:
    response = models.lam.invoke(FunctionName=f"{models.serve}:{qualifier}", Payload=json.dumps(payload))
    return json.loads(response["Payload"].read()), response.get("FunctionError")


ROWS = [{k: v for k, v in r.items() if k != "species"} for r in iris_batch(5, 7).to_pylist()]


def test_accepted_data_becomes_a_signed_model_serving_after_canary_steps(cloud, models, tmp_path):
    out = train(cloud)
    assert "SUCCEEDED -> model iris/" in out, out
    assert "at 100%" in out
    model_id = out.split("-> model ")[1].split(" ")[0]
    model = models.registry.model(model_id)
    assert model["status"] == "DEPLOYED"
    assert [h.split(" ", 2)[2] for h in model["history"] if "canary" in h] in (
        [f"canary 10% on version {model['serving_version']}", f"canary 50% on version {model['serving_version']}"],
        [],  # the first model has nothing to canary against: it goes straight to 100%
    )
    assert {e["producer"] for e in model["record"]["lineage"]} >= {"acme"}
    shown = run_cli(cloud, "lineage", "--model", model_id)
    assert "producers/acme/iris/train-0.csv" in shown.stdout
    back = run_cli(cloud, "lineage", "--file", "producers/acme/iris/train-1.csv")
    assert [model_id, "DEPLOYED"] in [line.split() for line in back.stdout.splitlines()], back.stdout
    checked = run_cli(cloud, "verify-model", model_id, "--out", str(tmp_path))
    assert checked.stdout.startswith(f"VERIFIED {model_id}"), checked.stdout + checked.stderr
    from model_signing import verifying

    verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "signing-key.pem").verify(
        tmp_path / "model", tmp_path / "model.sig"
    )  # the package's directory: model.onnx, descriptor.json, drift.json, one resource each
    answer, error = serve(models, {"rows": ROWS})
    assert error is None, answer
    assert len(answer["predictions"]) == 5
    assert answer["model"]["id"] == model_id
    assert answer["model"]["digest"] == model["record"]["artifact"]["sha256"]


def test_a_second_model_goes_through_the_canary_and_supersedes_the_first(cloud, models):
    before = {m["model_id"] for m in models.registry.models("iris") if m["status"] == "DEPLOYED"}
    out = train(cloud)
    assert "at 100%" in out, out
    model = models.registry.model(out.split("-> model ")[1].split(" ")[0])
    canary = [h for h in model["history"] if "canary" in h]
    assert [c.split(" ")[3] for c in canary] == ["10%", "50%"]
    assert all(models.registry.model(m)["status"] == "SUPERSEDED" for m in before)


def _deploy(models, model_id: str, owner: str) -> tuple[dict, str | None]:
    event = {"action": "prepare", "state": {"model_id": model_id}, "execution": owner}
    response = models.lam.invoke(FunctionName=models.deploy_fn, Payload=json.dumps(event))
    return json.loads(response["Payload"].read()), response.get("FunctionError")


def _invoke(models, function: str, event: dict) -> dict:
    response = models.lam.invoke(FunctionName=function, Payload=json.dumps(event))
    assert not response.get("FunctionError"), response["Payload"].read()
    return json.loads(response["Payload"].read())


def _signed_model(cloud, models) -> dict:
    """A model trained, evaluated, registered and signed by the deployed functions, not yet deployed."""
    sign_fn = cloud.physical_id("-models", "AWS::Lambda::Function", "SignFunction")
    state = {"dataset": "iris", "run_id": f"iris-attack-{time.time_ns()}"}
    for step in ("train", "evaluate", "register"):
        state = _invoke(models, models.pipeline_fn, {"step": step, "state": state})
    state = _invoke(models, sign_fn, {"state": state})
    model = models.registry.model(state["model_id"])
    assert model["status"] == "SIGNED"
    return model


def package_dir(s3, artifact: dict, folder) -> object:
    """The files of a registered model package, fetched by version and digest (mlvault.training.package_io)."""
    from mlvault.training.package_io import fetch_package

    return fetch_package(s3, artifact, folder).folder


def test_an_artifact_swapped_after_signing_is_refused_at_deploy_and_at_serve(cloud, models, tmp_path):
    from mlvault.model_package import pack

    model = _signed_model(cloud, models)
    artifact = model["record"]["artifact"]
    folder = package_dir(models.s3, artifact, tmp_path / "swapped")
    descriptor = json.loads((folder / "descriptor.json").read_bytes())
    descriptor["classes"] = list(reversed(descriptor["classes"]))  # a backdoor would look as harmless
    (folder / "descriptor.json").write_text(json.dumps(descriptor))
    new = models.s3.put_object(
        Bucket=artifact["bucket"], Key=artifact["key"], Body=pack(folder), ChecksumAlgorithm="SHA256"
    )["VersionId"]
    # At serve: a version whose pin points at the swapped bytes refuses to serve.
    config = models.lam.get_function_configuration(FunctionName=models.serve, Qualifier="live")
    env = {**config["Environment"]["Variables"], "MLVAULT_MODEL_VERSION": new}
    models.lam.update_function_configuration(FunctionName=models.serve, Environment={"Variables": env})
    version = models.lam.publish_version(FunctionName=models.serve)["Version"]
    answer, error = serve(models, {"rows": ROWS}, qualifier=version)
    assert error is None  # a refusal is an answer (kind "model"), not a function error with a traceback
    assert (answer["error"]["code"], answer["error"]["kind"]) == ("MODEL_DIGEST_MISMATCH", "model")
    assert "predictions" not in answer
    # At deploy: a registry record rewritten (with a matching digest) to name the swapped version is refused.
    item = {"pk": {"S": f"MODEL#{model['model_id']}"}, "sk": {"S": "RECORD"}}
    record = {**model["record"], "artifact": {**artifact, "version_id": new}}
    _rewrite(models, item, record, rehash=True)
    answer, error = _deploy(models, model["model_id"], "attacker-run")
    assert error
    assert "RECORD_TAMPERED" in json.dumps(answer) or "MODEL_DIGEST_MISMATCH" in json.dumps(answer)


def _rewrite(models, key: dict, record: dict, *, rehash: bool) -> None:
    from mlvault.registry.records import record_digest

    ddb = models.registry._db
    table = models.registry._table
    values = {":r": {"S": json.dumps(record, sort_keys=True, separators=(",", ":"))}}
    expression = "SET #r = :r"
    if rehash:
        values[":h"] = {"S": record_digest(record)}
        expression += ", record_sha256 = :h"
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression=expression,
        ExpressionAttributeNames={"#r": "record"},
        ExpressionAttributeValues=values,
    )


def test_a_tampered_registry_record_is_refused_at_deploy(cloud, models):
    model = _signed_model(cloud, models)
    item = {"pk": {"S": f"MODEL#{model['model_id']}"}, "sk": {"S": "RECORD"}}
    tampered = {**model["record"], "metrics": {**model["record"]["metrics"], "heldout_accuracy": 1.0}}
    _rewrite(models, item, tampered, rehash=False)
    assert models.registry.model(model["model_id"])["record_intact"] is False
    answer, error = _deploy(models, model["model_id"], "attacker-run")
    assert error
    assert "RECORD_TAMPERED" in json.dumps(answer)


def forged_signature(s3, kms, model: dict, folder) -> tuple[bytes, str]:
    """The signature the sign step would write for `model` (its files and claims), made with a KMS key of the
    attacker's own instead of the anchored one; and that key's ARN."""
    from mlvault.attestation.openssf import kms_public_key_pem, sign_model
    from mlvault.signing.keys import KmsSigner
    from mlvault.training.sign_step import signed_claims

    other = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    bundle = sign_model(
        package_dir(s3, model["record"]["artifact"], folder),
        KmsSigner(kms, other, other),
        statement_extra=signed_claims(model),
        public_key_pem=kms_public_key_pem(kms, other),
    )
    return bundle, other


def test_a_model_signed_with_another_key_is_refused_at_deploy(cloud, models, tmp_path):
    model = _signed_model(cloud, models)
    artifact = model["record"]["artifact"]
    bundle, _ = forged_signature(models.s3, cloud.client("kms"), model, tmp_path / model["record"]["model"])
    forged = models.s3.put_object(
        Bucket=artifact["bucket"], Key=model["signature_key"], Body=bundle, ChecksumAlgorithm="SHA256"
    )["VersionId"]
    models.registry._db.update_item(
        TableName=models.registry._table,
        Key={"pk": {"S": f"MODEL#{model['model_id']}"}, "sk": {"S": "RECORD"}},
        UpdateExpression="SET signature_version = :v",
        ExpressionAttributeValues={":v": {"S": forged}},
    )
    answer, error = _deploy(models, model["model_id"], "attacker-run")
    assert error
    assert "MODEL_SIGNATURE_INVALID" in json.dumps(answer)


def test_concurrent_deployments_take_turns(cloud, models):
    names = [f"iris-concurrent-{i}-{int(time.time())}" for i in range(2)]
    arns = [
        models.sfn.start_execution(
            stateMachineArn=models.machine, name=n, input=json.dumps({"dataset": "iris", "debounce_seconds": 0})
        )["executionArn"]
        for n in names
    ]

    def finished():
        states = [models.sfn.describe_execution(executionArn=a) for a in arns]
        return all(s["status"] != "RUNNING" for s in states) and states

    states = eventually(finished, timeout=180, interval=1)
    assert [s["status"] for s in states] == ["SUCCEEDED", "SUCCEEDED"], [s.get("cause") for s in states]
    first, second = sorted(
        (models.registry.model(json.loads(s["output"])["state"]["model_id"]) for s in states),
        key=lambda m: next(h for h in m["history"] if "DEPLOYED" in h),
    )
    first_done = next(h for h in first["history"] if "DEPLOYED" in h).split(" ")[0]
    second_started = next(h for h in second["history"] if "canary" in h).split(" ")[0]
    assert first_done < second_started  # one deployment at a time: the second waited for the lock
    assert second["status"] == "DEPLOYED"
    assert first["status"] == "SUPERSEDED"


def test_an_accepted_batch_starts_one_debounced_run(cloud, models, ingest):
    events = cloud.client("events")
    rule = cloud.physical_id("-models", "AWS::Events::Rule", "OnAcceptedBatch")
    trigger = cloud.physical_id("-models", "AWS::Lambda::Function", "TriggerFunction")
    window = int(
        models.lam.get_function_configuration(FunctionName=trigger)["Environment"]["Variables"][
            "MLVAULT_TRAIN_DEBOUNCE_SECONDS"
        ]
    )
    events.enable_rule(Name=rule)
    began = time.time()
    try:
        for i in range(3):
            key = f"producers/acme/iris/trigger-{i}.csv"
            assert ingest.verdict(key, ingest.signed_upload(key, iris_csv(600, 300 + i)))["status"] == "ACCEPTED"
    finally:
        events.disable_rule(Name=rule)

    def started():
        runs = models.sfn.list_executions(stateMachineArn=models.machine)["executions"]
        return [r for r in runs if "-ingest-" in r["name"]]

    windows = len({int(began // window), int(time.time() // window)})
    runs = eventually(lambda: len(started()) >= windows and started(), timeout=20)
    assert len({r["name"] for r in runs}) == windows  # three batches in one window: one run
    for run in runs:
        models.sfn.stop_execution(executionArn=run["executionArn"], cause="test over")


def test_an_alarm_during_the_canary_rolls_the_deployment_back(cloud, models):
    cw = cloud.client("cloudwatch")
    alarm = "mlvault-dev-iris-serving-errors"
    if not any(m["status"] == "DEPLOYED" for m in models.registry.models("iris")):
        assert "at 100%" in train(cloud)  # something to roll back to
    live_before = models.lam.get_alias(FunctionName=models.serve, Name="live")["FunctionVersion"]
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test: errors while serving the canary")
    try:
        out = train(cloud)
    finally:
        cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test over")
    assert "FAILED RolledBack" in out, out
    run_id = out.split("run ")[1].split(" ")[0]
    (model,) = [m for m in models.registry.models("iris") if m["run_id"] == run_id]
    assert model["status"] == "ROLLED_BACK"
    assert model["rollback_reason"] == alarm
    alias = models.lam.get_alias(FunctionName=models.serve, Name="live")
    # The alarm also started the automated rollback (test_rollback_e2e), which may have moved the stable
    # version back further; what matters here: the canary's version carries no traffic.
    canary_version = model["history"][-1]
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    assert int(alias["FunctionVersion"]) <= int(live_before), canary_version
    answer, error = serve(models, {"rows": ROWS})
    assert error is None
    assert answer["model"]["id"] != model["model_id"]


def test_train_refuses_what_the_stage_does_not_train_and_starts_nothing(cloud):
    sfn = cloud.client("stepfunctions")

    def executions() -> int:
        machines = sfn.list_state_machines()["stateMachines"]
        return sum(len(sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]) for m in machines)

    before = executions()
    by_model = run_cli(cloud, "train", "--model", "iriss", "--wait", "30")
    assert (by_model.returncode, by_model.stdout) == (1, "")
    assert by_model.stderr == "mlvault: stage dev trains no model 'iriss' (its models: credit, iris)\n"
    by_dataset = run_cli(cloud, "train", "--dataset", "nope")
    assert (by_dataset.returncode, by_dataset.stdout) == (1, "")
    assert by_dataset.stderr == "mlvault: stage 'dev' trains no model on dataset 'nope'\n"
    assert executions() == before
