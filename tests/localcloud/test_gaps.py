"""Each moto gap the local cloud closes (mlvault/localcloud/gaps.py), shown on a small synthesized app."""

from __future__ import annotations

import json
import time

import pytest
from aws_cdk import CfnResource
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlvault.localcloud import control
from tests.e2e.conftest import eventually
from tests.localcloud.app.stack import build_gaps_app


@pytest.fixture(scope="module")
def gaps(tmp_path_factory):
    root = tmp_path_factory.mktemp("gaps")
    build_gaps_app(root / "cdk.out")
    # a day passes in about two seconds: the Daily schedule rule fires while the tests run
    handle = control.up(cdk_out=root / "cdk.out", state_dir=root / "state", schedule_scale=43200)
    try:
        yield handle
    finally:
        control.down(root / "state")


def records(cloud, prefix):
    s3c = cloud.client("s3")
    bucket = cloud.physical_id("gaps", "AWS::S3::Bucket", "Records")
    keys = [o["Key"] for o in s3c.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return [json.loads(s3c.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]


def function_name(cloud):
    return cloud.physical_id("gaps", "AWS::Lambda::Function", "Echo")


def test_request_response_invoke_runs_the_handler_from_its_asset(gaps):
    client = gaps.client("lambda")
    out = client.invoke(FunctionName=function_name(gaps), Payload=json.dumps({"hello": "world"}))
    assert "FunctionError" not in out
    payload = json.loads(out["Payload"].read())
    assert payload == {"echo": {"hello": "world"}, "function": function_name(gaps)}
    failed = client.invoke(FunctionName=function_name(gaps), Payload=json.dumps({"fail": True}))
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorMessage"] == "asked to fail"


def test_async_invoke_retries_twice_then_goes_to_the_dlq(gaps):
    client = gaps.client("lambda")
    out = client.invoke(
        FunctionName=function_name(gaps),
        InvocationType="Event",
        Payload=json.dumps({"fail": True, "source": "async-test"}),
    )
    assert out["StatusCode"] == 202
    sqs = gaps.client("sqs")
    dlq = gaps.physical_id("gaps", "AWS::SQS::Queue", "EchoDlq")
    message = eventually(lambda: sqs.receive_message(QueueUrl=dlq).get("Messages"), timeout=30)
    assert json.loads(message[0]["Body"]) == {"fail": True, "source": "async-test"}
    assert len(records(gaps, "async-test/")) == 3  # the first attempt and two retries


def test_eventbridge_delivers_to_lambda_and_step_functions_targets(gaps):
    gaps.client("events").put_events(
        Entries=[{"Source": "mlvault.test", "DetailType": "ping", "Detail": json.dumps({"n": 1})}]
    )
    (event,) = eventually(lambda: records(gaps, "mlvault.test/") or None)
    assert event["detail-type"] == "ping"
    assert event["detail"] == {"n": 1}
    assert event["account"] == gaps.state["account"]
    sfn = gaps.client("stepfunctions")
    machine = gaps.physical_id("gaps", "AWS::StepFunctions::StateMachine", "Machine")
    done = eventually(
        lambda: [e for e in sfn.list_executions(stateMachineArn=machine)["executions"] if e["status"] == "SUCCEEDED"],
        timeout=30,
    )
    output = json.loads(sfn.describe_execution(executionArn=done[0]["executionArn"])["output"])
    assert output["echo"]["detail"] == {"n": 1}


def test_step_functions_lambda_task_runs_the_handler(gaps):
    sfn = gaps.client("stepfunctions")
    machine = gaps.physical_id("gaps", "AWS::StepFunctions::StateMachine", "Machine")
    arn = sfn.start_execution(stateMachineArn=machine, name="direct-run", input=json.dumps({"x": 2}))["executionArn"]
    status = eventually(
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=30
    )
    assert status["status"] == "SUCCEEDED"
    assert json.loads(status["output"])["echo"] == {"x": 2}


def test_alarm_state_changes_emit_the_aws_event(gaps):
    cw = gaps.client("cloudwatch")
    alarm = gaps.physical_id("gaps", "AWS::CloudWatch::Alarm", "Drift")
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="drift above 0.2")
    (event,) = eventually(lambda: records(gaps, "aws.cloudwatch/") or None)
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["detail"]["alarmName"] == alarm
    assert event["detail"]["state"]["value"] == "ALARM"
    assert event["detail"]["state"]["reason"] == "drift above 0.2"
    assert event["detail"]["previousState"]["value"] == "OK"
    assert event["resources"] == [f"arn:aws:cloudwatch:eu-west-1:{gaps.state['account']}:alarm:{alarm}"]


def test_asymmetric_keys_are_real_ecc_keys(gaps):
    kms = gaps.client("kms")
    key = gaps.physical_id("gaps", "AWS::KMS::Key", "Signing")
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeySpec"] == "ECC_NIST_P256"
    signature = kms.sign(KeyId=key, Message=b"model digest", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")[
        "Signature"
    ]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    public.verify(signature, b"model digest", ec.ECDSA(hashes.SHA256()))  # raises if not a real signature


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            lambda stack: CfnResource(stack, "Vpc", type="AWS::EC2::VPC", properties={"CidrBlock": "10.0.0.0/16"}),
            "resource type AWS::EC2::VPC",
        ),
        (
            lambda stack: s3.Bucket(stack, "Fast", transfer_acceleration=True),
            "AWS::S3::Bucket property AccelerateConfiguration",
        ),
        (
            lambda stack: events.Rule(stack, "Cron", schedule=events.Schedule.cron(minute="0", hour="3")).add_target(
                targets.SqsQueue(sqs.Queue(stack, "CronQueue"))
            ),
            "schedule expression 'cron",
        ),
    ],
)
def test_unsupported_resources_and_properties_fail_loudly(tmp_path, extra, message):
    build_gaps_app(tmp_path / "cdk.out", extra=extra)
    started = time.monotonic()
    with pytest.raises(control.LocalCloudError, match=message):
        control.up(cdk_out=tmp_path / "cdk.out", state_dir=tmp_path / "state")
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(15 minutes)", 900), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_schedules(expression, seconds):
    from mlvault.localcloud.gaps import rate_seconds

    assert rate_seconds(expression) == seconds


def test_rate_schedules_emit_scheduled_events_to_their_targets(gaps):
    events = eventually(lambda: records(gaps, "aws.events/") or None, timeout=30)
    assert events[0]["detail-type"] == "Scheduled Event"
    assert events[0]["resources"] == [
        f"arn:aws:events:eu-west-1:{gaps.state['account']}:rule/"
        f"{gaps.physical_id('gaps', 'AWS::Events::Rule', 'Daily')}"
    ]


def test_cli_local_env_and_errors(tmp_path):
    import subprocess
    import sys

    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlvault.cli",
            "local",
            "up",
            "--cdk-out",
            str(tmp_path / "none"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "no synthesized app at" in missing.stderr
    env = subprocess.run(
        [sys.executable, "-m", "mlvault.cli", "local", "env", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env.returncode == 2
    assert "no local cloud is running" in env.stderr


def test_cli_local_env_points_at_the_cloud(gaps):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "mlvault.cli", "local", "env", "--state-dir", str(gaps.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"export MLVAULT_ENDPOINT_URL={gaps.endpoint}" in out.stdout.splitlines()
    assert f"export AWS_ENDPOINT_URL={gaps.endpoint}" in out.stdout.splitlines()
