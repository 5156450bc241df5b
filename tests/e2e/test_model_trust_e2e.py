"""Serving, the canary and the rollback on the local cloud as an insider with deploy rights would attack them, and
as a caller would misuse them: the canary judged by its alarms' whole history, bad requests answered (never a
function error, never a rollback), runs that end in their outcome, a signing key that configuration cannot
re-pin, a rollback function that believes no event, and a disabled signing key that stops signing. Each attack
asserts that trusted state (the serving alias, the registry) did not move."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import evaluations_pass, eventually, run_cli
from tests.e2e.test_models_e2e import ROWS, _invoke, forged_signature, serve, train
from tests.e2e.test_models_e2e import models as models

DRIFT = "mlvault-dev-iris-feature-drift"
ERRORS = "mlvault-dev-iris-serving-errors"
BREAK_GLASS = "mlvault-break-glass"


@pytest.fixture(scope="module")
def live(cloud, models):
    """A model DEPLOYED and serving through the alias (and one before it to roll back to)."""
    for _ in range(2):
        assert "at 100%" in train(cloud)
    return models


def trusted_state(models) -> tuple:
    alias = models.lam.get_alias(FunctionName=models.serve, Name="live")
    return (
        alias["FunctionVersion"],
        alias.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {},
        {m["model_id"]: m["status"] for m in models.registry.models("iris")},
    )


def _function(cloud, logical: str) -> str:
    return cloud.physical_id("-models", "AWS::Lambda::Function", logical)


# --- 12.6: invoke rollback with a forged or a foreign alarm event ------------------------------------------------


def _alarm_event(name: str) -> dict:
    return {
        "version": "0",
        "id": "forged",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "000000000000",
        "time": datetime.now(UTC).isoformat(),
        "region": "eu-west-1",
        "resources": [],
        "detail": {
            "alarmName": name,
            "state": {"value": "ALARM", "reason": "forged", "timestamp": datetime.now(UTC).isoformat()},
            "previousState": {"value": "OK"},
        },
    }


def test_a_forged_or_foreign_alarm_event_moves_nothing(cloud, live):
    rollback_fn = _function(cloud, "AutoRollbackFunction")
    cw = cloud.client("cloudwatch")
    # The precondition of a forgery: CloudWatch has not seen our alarm in ALARM lately (a real, recent change into
    # ALARM that nobody handled yet would be acted on, rightly).
    assert cw.describe_alarms(AlarmNames=[DRIFT])["MetricAlarms"][0]["StateValue"] != "ALARM"
    recent = cw.describe_alarm_history(
        AlarmName=DRIFT, HistoryItemType="StateUpdate", StartDate=datetime.now(UTC) - timedelta(minutes=16)
    )["AlarmHistoryItems"]
    assert not [i for i in recent if "to ALARM" in i["HistorySummary"]], recent
    cw.put_metric_alarm(
        AlarmName="payments-latency",
        Namespace="payments",
        MetricName="Latency",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )

    def rollback_deliveries() -> int:
        return len([e for e in cloud.events("eventbridge-target") if "OnServingAlarm" in e["rule"]])

    delivered = rollback_deliveries()
    cw.set_alarm_state(AlarmName="payments-latency", StateValue="ALARM", StateReason="another team's alarm")
    # its real state change reached no mlvault rule: rules are matched when CloudWatch puts the event
    assert rollback_deliveries() == delivered
    before = trusted_state(live)
    for name in (DRIFT, "payments-latency"):  # ours but OK in CloudWatch; in ALARM but not ours
        report = _invoke(live, rollback_fn, _alarm_event(name))
        assert report["status"] == "IGNORED", report
    assert trusted_state(live) == before  # the invocations above have returned: nothing moved
    answer, error = serve(live, {"rows": ROWS})
    assert error is None
    assert "predictions" in answer


# --- 11.6: the canary judged by its alarms' history -------------------------------------------------------------


def test_an_alarm_that_flaps_during_the_bake_rolls_the_candidate_back(cloud, live):
    lam, events = live.lam, cloud.client("events")
    deploy_fn = _function(cloud, "DeployFunction")
    env = lam.get_function_configuration(FunctionName=deploy_fn)["Environment"]["Variables"]
    one_long_bake = json.dumps([{"percent": 10, "waitSeconds": 6}])
    rule = cloud.physical_id("-models", "AWS::Events::Rule", "OnServingAlarm")
    events.disable_rule(Name=rule)  # the pipeline's own judgement, not the rollback function's
    lam.update_function_configuration(
        FunctionName=deploy_fn, Environment={"Variables": {**env, "MLVAULT_CANARY_STEPS": one_long_bake}}
    )
    cw = cloud.client("cloudwatch")
    before = lam.get_alias(FunctionName=live.serve, Name="live")["FunctionVersion"]
    try:
        name = run_cli(cloud, "train", "--dataset", "iris").stdout.split("run ")[1].split(" ")[0]

        def canary():
            alias = lam.get_alias(FunctionName=live.serve, Name="live")
            return alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")

        eventually(canary, timeout=90, interval=0.1)
        cw.set_alarm_state(AlarmName=DRIFT, StateValue="ALARM", StateReason="test: a drift burst")
        cw.set_alarm_state(AlarmName=DRIFT, StateValue="OK", StateReason="test: over")  # back before the check
        arn = f"{live.machine.replace(':stateMachine:', ':execution:')}:{name}"
        done = eventually(
            lambda: (d := live.sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=90
        )
    finally:
        lam.update_function_configuration(FunctionName=deploy_fn, Environment={"Variables": env})
        events.enable_rule(Name=rule)
    assert (done["status"], done.get("error")) == ("FAILED", "RolledBack")
    (model,) = [m for m in live.registry.models("iris") if m["run_id"] == name]
    assert (model["status"], model["rollback_reason"]) == ("ROLLED_BACK", DRIFT)
    alias = lam.get_alias(FunctionName=live.serve, Name="live")
    assert (alias["FunctionVersion"], alias.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {}) == (
        before,
        {},
    )
    # 11.8: the run ends in its outcome, and the CLI says so
    run = live.registry.run(name)
    assert (run["status"], run["outcome"]["step"], run["outcome"]["reason"]) == ("ROLLED_BACK", "canary", "ALARM")
    listed = run_cli(cloud, "runs", "--dataset", "iris").stdout
    (row,) = [line for line in listed.splitlines() if line.startswith(f"{name} ")]
    assert row.split()[1:3] == ["ROLLED_BACK", model["model_id"]], listed
    assert "at canary ALARM" in row


# --- 11.7: bad requests are answered, counted apart, and roll nothing back ------------------------------------


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        (
            {"rows": [{k: v for k, v in ROWS[0].items() if k != "petal_length"}]},
            "MISSING_FEATURE",
            "rows[0].petal_length",
        ),
        ({"rows": [{**ROWS[0], "sepal_width": "wide"}]}, "NOT_A_NUMBER", "rows[0].sepal_width"),
        ({"rows": ROWS * 2000}, "TOO_MANY_ROWS", "rows"),
        ({"row": ROWS}, "MALFORMED_REQUEST", ""),
    ],
)
def test_a_bad_request_is_answered_with_what_was_wrong_and_rolls_nothing_back(cloud, live, payload, code, field):
    before = trusted_state(live)
    answer, error = serve(live, payload)
    assert error is None, answer  # not a function error: nothing for the serving-errors alarm to count
    assert answer["error"]["code"] == code
    assert (answer["error"]["field"], answer["error"]["kind"]) == (field, "client")
    assert "stackTrace" not in answer
    assert "Traceback" not in json.dumps(answer)
    cw = cloud.client("cloudwatch")

    def counted():
        stats = cw.get_metric_statistics(
            Namespace="mlvault",
            MetricName="ClientErrors",
            Dimensions=[{"Name": "Stage", "Value": "dev"}, {"Name": "Reason", "Value": code}],
            StartTime=datetime.now(UTC) - timedelta(minutes=10),
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        return sum(d["Sum"] for d in stats)

    assert eventually(counted, timeout=10) >= 1
    evaluations_pass(cloud, ERRORS)  # the errors alarm has judged the period of the bad request
    assert cw.describe_alarms(AlarmNames=[ERRORS])["MetricAlarms"][0]["StateValue"] != "ALARM"
    assert trusted_state(live) == before
    good, error = serve(live, {"rows": ROWS})  # and the good model still serves
    assert error is None
    assert len(good["predictions"]) == len(ROWS)


# --- 11.8: models show prints the lineage's lake versions ------------------------------------------------------


def test_models_show_prints_the_lake_versions_it_was_trained_on(cloud, live):
    model = next(m for m in live.registry.models("iris") if m["status"] == "DEPLOYED")
    shown = run_cli(cloud, "models", "show", model["model_id"]).stdout
    for entry in model["record"]["lineage"]:
        assert entry["lake_uri"] in shown  # s3://lake/key?versionId=...
    assert "?versionId=" in shown


# --- 12.6: re-pin the signing key via configuration -------------------------------------------------------------


def test_a_signing_key_named_in_the_configuration_is_not_trusted(cloud, live, tmp_path):
    lam = live.lam
    model = next(m for m in live.registry.models("iris") if m["status"] == "DEPLOYED")
    artifact = model["record"]["artifact"]
    # the package's own files and claims, signed with the attacker's key
    bundle, attacker = forged_signature(live.s3, cloud.client("kms"), model, tmp_path / "iris")
    forged = live.s3.put_object(
        Bucket=artifact["bucket"], Key=f"{model['signature_key']}.forged", Body=bundle, ChecksumAlgorithm="SHA256"
    )["VersionId"]
    before = trusted_state(live)
    config = lam.get_function_configuration(FunctionName=live.serve, Qualifier="live")
    env = {
        **config["Environment"]["Variables"],
        "MLVAULT_SIGNING_KEY_ARN": attacker,  # what the deploy step used to pin: re-pinned by configuration
        "MLVAULT_SIGNATURE_KEY": f"{model['signature_key']}.forged",
        "MLVAULT_SIGNATURE_VERSION": forged,
    }
    latest = lam.get_function_configuration(FunctionName=live.serve)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=live.serve, Environment={"Variables": env})
    try:
        version = lam.publish_version(FunctionName=live.serve)["Version"]
        answer, error = serve(live, {"rows": ROWS}, qualifier=version)
    finally:
        lam.update_function_configuration(FunctionName=live.serve, Environment={"Variables": latest})
    assert error is None, answer
    assert "predictions" not in answer  # that model is not served
    assert (answer["error"]["code"], answer["error"]["kind"]) == ("MODEL_SIGNATURE_INVALID", "model")
    assert trusted_state(live) == before
    answer, error = serve(live, {"rows": ROWS})
    assert error is None
    assert answer["model"]["id"] == model["model_id"]


# --- 12.6 / 12.4: sign with a disabled key ---------------------------------------------------------------------


def _break_glass(cloud, service: str):
    """A client signed as the stage's break-glass role: the only principal the key policy lets disable the key."""
    iam = cloud.client("iam")
    account = cloud.state["account"]
    try:
        iam.get_role(RoleName=BREAK_GLASS)
    except iam.exceptions.NoSuchEntityException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}
            ],
        }
        iam.create_role(RoleName=BREAK_GLASS, AssumeRolePolicyDocument=json.dumps(trust))
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=BREAK_GLASS, PolicyName="incident", PolicyDocument=json.dumps(allow))
    creds = cloud.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{BREAK_GLASS}", RoleSessionName="incident"
    )["Credentials"]
    return cloud.client(
        service,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def test_a_disabled_signing_key_signs_nothing_deploys_nothing_and_stops_cold_serving(cloud, live):
    lam = live.lam
    sign_fn = _function(cloud, "SignFunction")
    sns, sqs = cloud.client("sns"), cloud.client("sqs")
    queue = sqs.create_queue(QueueName="key-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = cloud.physical_id("-ingest", "AWS::SNS::Topic", "Alerts")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    state = {"dataset": "iris", "run_id": f"iris-disabled-key-{time.time_ns()}"}
    for step in ("train", "evaluate", "register"):
        state = _invoke(live, live.pipeline_fn, {"step": step, "state": state})
    arn = cloud.client("ssm").get_parameter(Name="/mlvault/dev/model-signing-key")["Parameter"]["Value"]
    key = arn.rsplit("/", 1)[1]  # moto's DisableKey and EnableKey take a key id only (AWS also takes the ARN)
    kms = _break_glass(cloud, "kms")
    before = trusted_state(live)
    live_config = lam.get_function_configuration(FunctionName=live.serve, Qualifier="live")
    latest = lam.get_function_configuration(FunctionName=live.serve)["Environment"]["Variables"]
    kms.disable_key(KeyId=key)
    try:
        response = lam.invoke(FunctionName=sign_fn, Payload=json.dumps({"state": state}))
        refusal = json.loads(response["Payload"].read())
        # serving: a new execution environment cannot get the key's public key (GetPublicKey fails on AWS too)
        lam.update_function_configuration(
            FunctionName=live.serve, Environment={"Variables": live_config["Environment"]["Variables"]}
        )
        cold = lam.publish_version(FunctionName=live.serve, Description="cold start, key disabled")["Version"]
        answer, error = serve(live, {"rows": ROWS}, qualifier=cold)
    finally:
        kms.enable_key(KeyId=key)
        lam.update_function_configuration(FunctionName=live.serve, Environment={"Variables": latest})
    assert response.get("FunctionError"), refusal
    assert refusal["errorMessage"].startswith("SIGNING_KEY_UNUSABLE"), refusal
    model = live.registry.model(state["model_id"])
    assert model["status"] == "REGISTERED"
    assert "signature_key" not in model
    assert trusted_state(live)[0:2] == before[0:2]  # nothing deployed
    run = live.registry.run(state["run_id"])
    assert (run["status"], run["outcome"]["step"], run["outcome"]["reason"]) == (
        "FAILED",
        "sign",
        "SIGNING_KEY_UNUSABLE",
    )

    def alert():
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        return [m for m in (json.loads(x["Body"]) for x in messages) if m.get("run_id") == state["run_id"]]

    (message,) = eventually(alert, timeout=20)
    assert (message["step"], message["reason"]) == ("sign", "SIGNING_KEY_UNUSABLE")
    assert error is None
    assert answer["error"]["code"] == "SIGNING_KEY_UNUSABLE"
    answer, error = serve(live, {"rows": ROWS}, qualifier=cold)  # enabled again: the same version serves
    assert error is None, answer
    assert "predictions" in answer, answer
