"""Each moto gap the local cloud closes (mlvault/localcloud/gaps.py), shown on a small synthesized app."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter

import pytest
from aws_cdk import CfnResource
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from mlvault.localcloud import control
from tests.e2e.conftest import eventually
from tests.localcloud.app.stack import build_gaps_app


@pytest.fixture(scope="module")
def gaps(tmp_path_factory):
    root = tmp_path_factory.mktemp("gaps")
    build_gaps_app(root / "cdk.out")
    # a day passes in about two seconds: the Daily schedule rule fires while the tests run
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLVAULT_LOCAL_ROUTING_SEED", "mlvault")  # alias traffic splits are the same on every run
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


def invoke(client, **kwargs):
    out = client.invoke(Payload=b"{}", **kwargs)
    assert "FunctionError" not in out, out
    return out["ExecutedVersion"], json.loads(out["Payload"].read())


def test_weighted_alias_routes_between_published_versions_each_with_its_own_environment(gaps):
    client = gaps.client("lambda")
    fn = gaps.physical_id("gaps", "AWS::Lambda::Function", "Model")
    fn_arn = client.get_function_configuration(FunctionName=fn)["FunctionArn"]
    published = {}
    for model in ("a", "b"):
        client.update_function_configuration(FunctionName=fn, Environment={"Variables": {"MODEL": model}})
        published[model] = client.publish_version(FunctionName=fn)["Version"]
    v1, v2 = published["a"], published["b"]
    assert (v1, v2) == ("1", "2")
    assert client.publish_version(FunctionName=fn)["Version"] == v2  # nothing changed since: no new version
    client.update_function_configuration(FunctionName=fn, Environment={"Variables": {"MODEL": "c"}})  # $LATEST only
    assert client.get_function_configuration(FunctionName=fn, Qualifier=v1)["Environment"]["Variables"] == {
        "MODEL": "a"
    }

    alias_arn = client.create_alias(
        FunctionName=fn, Name="live", FunctionVersion=v1, RoutingConfig={"AdditionalVersionWeights": {v2: 0.5}}
    )["AliasArn"]
    assert alias_arn == f"{fn_arn}:live"
    forms = [{"FunctionName": f"{fn}:live"}, {"FunctionName": alias_arn}, {"FunctionName": fn, "Qualifier": "live"}]
    executed = Counter()
    for i in range(210):
        version, payload = invoke(client, **forms[i % len(forms)])
        executed[version] += 1
        # each version runs with the environment it was published with, and knows it is that version
        assert payload == {"model": {v1: "a", v2: "b"}[version], "version": version, "arn": alias_arn}
    assert set(executed) == {v1, v2}
    assert 70 <= executed[v2] <= 140, executed  # binomial(210, 0.5): mean 105, sd 7.2

    # a version, by name or ARN, with Qualifier= or in the name; $LATEST keeps what was set after the publishes
    assert invoke(client, FunctionName=f"{fn}:{v1}") == (v1, {"model": "a", "version": v1, "arn": f"{fn_arn}:{v1}"})
    assert invoke(client, FunctionName=fn, Qualifier=v2)[1]["model"] == "b"
    assert invoke(client, FunctionName=f"{fn_arn}:{v2}")[1]["model"] == "b"
    assert invoke(client, FunctionName=fn) == ("$LATEST", {"model": "c", "version": "$LATEST", "arn": fn_arn})
    assert invoke(client, FunctionName=fn, Qualifier="$LATEST")[1]["model"] == "c"
    with pytest.raises(ClientError, match="does not match the specified qualifier"):
        client.invoke(FunctionName=f"{fn}:live", Qualifier=v1)

    # the canary is promoted: the alias points at v2 with no additional weights
    client.update_alias(
        FunctionName=fn, Name="live", FunctionVersion=v2, RoutingConfig={"AdditionalVersionWeights": {}}
    )
    answers = [invoke(client, **forms[i % len(forms)]) for i in range(30)]
    assert {version for version, _ in answers} == {v2}
    assert {payload["model"] for _, payload in answers} == {"b"}


@pytest.mark.parametrize(
    ("primary", "weights", "error"),
    [
        ("1", {"2": 1.5}, "ValidationException"),
        ("1", {"x": 0.1}, "ValidationException"),
        ("$LATEST", {"2": 0.1}, "InvalidParameterValueException"),
        ("2", {"2": 0.1}, "InvalidParameterValueException"),
        ("1", {"2": 0.1, "3": 0.1}, "InvalidParameterValueException"),
        ("1", {"99": 0.1}, "ResourceNotFoundException"),
    ],
)
def test_alias_routing_configurations_lambda_refuses(gaps, primary, weights, error):
    client = gaps.client("lambda")
    fn = function_name(gaps)
    bucket = gaps.physical_id("gaps", "AWS::S3::Bucket", "Records")
    while len(client.list_versions_by_function(FunctionName=fn)["Versions"]) < 3:  # $LATEST, 1 and 2
        count = len(client.list_versions_by_function(FunctionName=fn)["Versions"])
        client.update_function_configuration(
            FunctionName=fn, Environment={"Variables": {"RECORDS_BUCKET": bucket, "RELEASE": str(count)}}
        )
        client.publish_version(FunctionName=fn)
    name = f"refused-{primary.strip('$')}-{'-'.join(weights)}".replace(".", "")
    routing = {"AdditionalVersionWeights": weights}
    with pytest.raises(ClientError) as refused:
        client.create_alias(FunctionName=fn, Name=name, FunctionVersion=primary, RoutingConfig=routing)
    assert refused.value.response["Error"]["Code"] == error
    client.create_alias(FunctionName=fn, Name=name, FunctionVersion="1")
    with pytest.raises(ClientError) as refused:
        client.update_alias(FunctionName=fn, Name=name, FunctionVersion=primary, RoutingConfig=routing)
    assert refused.value.response["Error"]["Code"] == error
    assert client.get_alias(FunctionName=fn, Name=name)["FunctionVersion"] == "1"


def test_kms_sign_digest_signs_the_digest_as_prehashed(gaps):
    kms = gaps.client("kms")
    key = gaps.physical_id("gaps", "AWS::KMS::Key", "Signing")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    for message in (b"model manifest", b"model manifest " * 1000):  # the second is beyond RAW's 4096 bytes
        digest = hashlib.sha256(message).digest()
        signature = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")[
            "Signature"
        ]
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))  # over the ORIGINAL message; raises if not
        with pytest.raises(InvalidSignature):
            public.verify(signature, digest, ec.ECDSA(hashes.SHA256()))  # not over the digest, hashed again
        verify = {"KeyId": key, "Signature": signature, "SigningAlgorithm": "ECDSA_SHA_256"}
        assert kms.verify(Message=digest, MessageType="DIGEST", **verify)["SignatureValid"] is True
        with pytest.raises(kms.exceptions.KMSInvalidSignatureException):  # AWS fails Verify of a bad signature
            kms.verify(Message=hashlib.sha256(message + b"!").digest(), MessageType="DIGEST", **verify)

    # a signature of the digest is a signature of the message: RAW and DIGEST verify each other's
    message, digest = b"model manifest", hashlib.sha256(b"model manifest").digest()
    for signed, signed_type, checked, checked_type in (
        (digest, "DIGEST", message, "RAW"),
        (message, "RAW", digest, "DIGEST"),
    ):
        signature = kms.sign(KeyId=key, Message=signed, MessageType=signed_type, SigningAlgorithm="ECDSA_SHA_256")[
            "Signature"
        ]
        assert kms.verify(
            KeyId=key, Message=checked, MessageType=checked_type, Signature=signature, SigningAlgorithm="ECDSA_SHA_256"
        )["SignatureValid"]
    with pytest.raises(ClientError, match="Digest is invalid length"):
        kms.sign(KeyId=key, Message=digest[:31], MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")


def test_kms_sign_digest_with_an_rsa_key(gaps):
    kms = gaps.client("kms")
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    message = b"model manifest"
    digest = hashlib.sha256(message).digest()
    signature = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")[
        "Signature"
    ]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    verify = {"KeyId": key, "Signature": signature, "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"}
    assert kms.verify(Message=digest, MessageType="DIGEST", **verify)["SignatureValid"]
    assert kms.verify(Message=message, MessageType="RAW", **verify)["SignatureValid"]
