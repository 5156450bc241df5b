"""Drift alarms and automated rollback on the local cloud: an alarm rolls serving back to the last verified model
without a human, a flapping alarm rolls back once, a revoked key's blast radius, and no verified target."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from mlvault_tools.samples import iris_csv
from tests.e2e.conftest import eventually, run_cli
from tests.e2e.test_models_e2e import ROWS, serve, train
from tests.e2e.test_models_e2e import models as models

DRIFT = "mlvault-dev-iris-feature-drift"


@pytest.fixture(scope="module")
def rollback(cloud, models):
    class Rollback:
        fn = cloud.physical_id("-models", "AWS::Lambda::Function", "AutoRollbackFunction")
        cw = cloud.client("cloudwatch")

        @staticmethod
        def live() -> str:
            return models.lam.get_alias(FunctionName=models.serve, Name="live")["FunctionVersion"]

        @staticmethod
        def set_cooldown(seconds: int) -> None:
            env = models.lam.get_function_configuration(FunctionName=Rollback.fn)["Environment"]["Variables"]
            env["MLVAULT_ROLLBACK_COOLDOWN_SECONDS"] = str(seconds)
            models.lam.update_function_configuration(FunctionName=Rollback.fn, Environment={"Variables": env})

        @staticmethod
        def alarm(state: str) -> None:
            Rollback.cw.set_alarm_state(AlarmName=DRIFT, StateValue=state, StateReason=f"test: {state}")

    for _ in range(2):  # two deployed generations: something good to roll back to
        assert "at 100%" in train(cloud)
    return Rollback


def deployed(models) -> dict:
    """The one DEPLOYED iris model, once the registry has exactly one: a rollback moves the alias first, marks the
    bad model ROLLED_BACK, then its target DEPLOYED, so a test that saw the first two can be early for the third."""

    def one():
        found = [m for m in models.registry.models("iris") if m["status"] == "DEPLOYED"]
        return found[0] if len(found) == 1 else None

    return eventually(one, timeout=10)


def test_drifted_traffic_rings_the_alarm_and_serving_rolls_back_without_a_human(cloud, models, rollback):
    from mlvault_tools.samples import iris_batch

    rollback.set_cooldown(0)
    bad = deployed(models)
    shifted = [{k: v for k, v in r.items() if k != "species"} for r in iris_batch(200, 77, shift=2.0).to_pylist()]

    def drifted_until_rolled_back():
        serve(models, {"rows": shifted})  # one drift window per call: MaxFeatureDrift as EMF, per model version
        return models.registry.model(bad["model_id"])["status"] == "ROLLED_BACK"

    eventually(drifted_until_rolled_back, timeout=30, interval=0.4)
    rolled = models.registry.model(bad["model_id"])
    assert DRIFT in rolled["rollback_reason"]
    good = deployed(models)
    assert rollback.live() == good["serving_version"]
    stats = rollback.cw.get_metric_statistics(
        Namespace="mlvault",
        MetricName="MaxFeatureDrift",
        Dimensions=[{"Name": "Stage", "Value": "dev"}, {"Name": "ModelVersion", "Value": bad["serving_version"]}],
        StartTime=datetime.now(UTC) - timedelta(minutes=10),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert max(d["Maximum"] for d in stats) > 0.2
    eventually(lambda: rollback.cw.describe_alarms(AlarmNames=[DRIFT])["MetricAlarms"][0]["StateValue"] == "OK")
    assert "at 100%" in train(cloud)  # a fresh deployment for the next tests


def test_an_alarm_rolls_back_once_even_when_it_flaps(cloud, models, rollback):
    bad = deployed(models)
    rollback.set_cooldown(0)  # earlier tests' alarms may have rolled back within the configured cooldown
    started = time.monotonic()
    rollback.alarm("ALARM")
    target = eventually(
        lambda: rollback.live() != bad["serving_version"] and models.registry.model(bad["model_id"]), timeout=30
    )
    took = time.monotonic() - started
    assert target["status"] == "ROLLED_BACK"
    assert DRIFT in target["rollback_reason"]
    good = deployed(models)
    assert good["serving_version"] == rollback.live()
    answer, error = serve(models, {"rows": ROWS})
    assert error is None
    assert answer["model"]["id"] == good["model_id"]
    rollback.set_cooldown(300)  # the stage's setting: it counts from the rollback that just ran

    def invocations() -> int:
        return len([e for e in cloud.events("invoke") if e.get("function") == rollback.fn])

    handled = invocations()
    for state in ("OK", "ALARM", "OK", "ALARM", "OK"):  # flapping within the cooldown
        rollback.alarm(state)
    eventually(lambda: invocations() >= handled + 2, timeout=30)  # both changes into ALARM were judged
    assert deployed(models)["model_id"] == good["model_id"]  # exactly one rollback
    assert rollback.live() == good["serving_version"]
    print(f"alarm to rollback complete: {took:.2f}s")


def test_the_revoke_function_itself_refuses_a_key_in_no_producer_entry(cloud, ingest):
    """A caller who skips the CLI's own check of the key id (anyone allowed to invoke the function) is refused by the
    function, from the trust registry in its signed bundle: a function error the CLI shows as one line, nothing
    recorded."""
    from mlvault.ledger import Ledger

    function = cloud.physical_id("-models", "AWS::Lambda::Function", "RevokeFunction")
    revoker = cloud.client("sts").get_caller_identity()["Arn"]
    event = {"key_id": "acme-p265", "effective_at": "2020-01-01T00:00:00Z", "reason": "typo", "revoked_by": revoker}
    response = cloud.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    payload = json.loads(response["Payload"].read())
    assert response.get("FunctionError") == "Unhandled"
    assert (payload["errorType"], payload["errorMessage"]) == (
        "RevocationRefused",
        "UNKNOWN_KEY: key 'acme-p265' is in no producer entry of the stage's trust registry (trust/producers.json "
        "in the function's bundle): nothing revoked",
    )
    assert Ledger(ingest.ddb, ingest.ledger).revocation("acme-p265") is None


def test_a_revoked_key_takes_its_data_and_models_out_and_rolls_back_a_live_one(
    cloud, models, rollback, ingest, tmp_path
):
    rollback.set_cooldown(0)
    before = datetime.now(UTC) - timedelta(seconds=5)
    for i in range(2):
        key = f"producers/acme/iris/ed25519-{i}.csv"
        body = iris_csv(600, 400 + i)
        assert ingest.verdict(key, ingest.signed_upload(key, body, key_id="acme-ed25519"))["status"] == "ACCEPTED"
    assert "at 100%" in train(cloud)
    tainted_model = deployed(models)
    assert any(e["key_id"] == "acme-ed25519" for e in tainted_model["record"]["lineage"])
    revoked = run_cli(
        cloud, "producers", "revoke", "acme-ed25519", "--reason", "key leaked", "--effective-at", before.isoformat()
    )
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert "2 accepted file(s) it signed since then, marked tainted" in revoked.stdout
    assert tainted_model["model_id"] in revoked.stdout
    assert "serving: ROLLED_BACK" in revoked.stdout
    assert models.registry.model(tainted_model["model_id"])["status"] == "REVOKED"
    checked = run_cli(cloud, "verify-model", tainted_model["model_id"], "--out", str(tmp_path / "check"), "--json")
    assert checked.returncode == 3, checked.stdout + checked.stderr  # its signature verifies; it must not serve
    answer = json.loads(checked.stdout)
    assert (answer["verdict"], answer["status"], answer["servable"]) == ("VERIFIED", "REVOKED", False)
    now_live = deployed(models)
    assert not any(e["key_id"] == "acme-ed25519" for e in now_live["record"]["lineage"])
    assert rollback.live() == now_live["serving_version"]
    out = train(cloud)  # the next model is trained without the tainted files
    model = models.registry.model(out.split("-> model ")[1].split(" ")[0])
    assert not any(e["key_id"] == "acme-ed25519" for e in model["record"]["lineage"])


def test_with_no_verified_target_serving_is_left_as_is_and_the_alert_says_so(cloud, models, rollback):
    sns, sqs = cloud.client("sns"), cloud.client("sqs")
    topic = cloud.physical_id("-ingest", "AWS::SNS::Topic", "Alerts")
    queue = sqs.create_queue(QueueName="rollback-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    live = deployed(models)
    version = rollback.live()
    for other in models.registry.models("iris"):  # every earlier model revoked: nothing verified to go back to
        if other["model_id"] != live["model_id"] and other["status"] == "SUPERSEDED":
            models.registry.set_status(other["model_id"], "REVOKED", allowed_from=("SUPERSEDED",), note="test")
    rollback.alarm("OK")
    rollback.alarm("ALARM")

    def alert():
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        found = [json.loads(m["Body"]) for m in messages]
        return [m for m in found if m.get("status") == "NO_VERIFIED_TARGET"]

    (message,) = eventually(alert, timeout=30)
    assert "serving left as is" in message["reason"]
    assert rollback.live() == version
    assert models.registry.model(live["model_id"])["status"] == "DEPLOYED"
    rollback.alarm("OK")
