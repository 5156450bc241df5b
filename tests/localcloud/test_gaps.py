"""Each moto gap the local cloud closes (indexed in localcloud/gaps.py), shown on a small synthesized app."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

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

from localcloud import control
from localcloud.alarms import AlarmEvaluator, alarm_state
from localcloud.emf import EmfError, emf_metric_data
from tests.e2e.conftest import evaluations_pass, eventually
from tests.localcloud.app.stack import build_gaps_app


@pytest.fixture(scope="module")
def gaps(tmp_path_factory):
    root = tmp_path_factory.mktemp("gaps")
    build_gaps_app(root / "cdk.out")
    # a day passes in about two seconds: the Daily schedule rule fires while the tests run;
    # a minute of alarm evaluation passes in a second
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLVAULT_LOCAL_ROUTING_SEED", "mlvault")  # alias traffic splits are the same on every run
        handle = control.up(cdk_out=root / "cdk.out", state_dir=root / "state", schedule_scale=43200, alarm_scale=60)
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


@pytest.mark.parametrize("module", ["json", "boto3", "botocore.config", "s3transfer"])
def test_a_function_imports_the_standard_library_and_what_lambdas_runtime_provides(gaps, module):
    out = gaps.client("lambda").invoke(FunctionName=function_name(gaps), Payload=json.dumps({"import": module}))
    assert "FunctionError" not in out, json.loads(out["Payload"].read())


@pytest.mark.parametrize("module", ["yaml", "pyarrow", "moto", "localcloud", "cryptography"])
def test_a_package_no_layer_of_the_function_holds_is_not_there_though_the_venv_has_it(gaps, module):
    """Echo has no layer: whatever the local cloud's venv holds beyond the runtime's packages, it cannot import."""
    out = gaps.client("lambda").invoke(FunctionName=function_name(gaps), Payload=json.dumps({"import": module}))
    assert out["FunctionError"] == "Unhandled"
    error = json.loads(out["Payload"].read())
    assert error["errorType"] == "ModuleNotFoundError"
    assert error["errorMessage"].startswith(f"No module named {module!r}: not in the function's code or layers")


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
    # the rule's Lambda target records the event, and so does the Lambda task of the rule's state machine:
    # two records, each the same event
    delivered = eventually(lambda: len(found := records(gaps, "mlvault.test/")) >= 2 and found, timeout=30)
    assert len(delivered) == 2
    assert delivered[0] == delivered[1]
    event = delivered[0]
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
    # Drift has no data and treats missing data as missing: its first verdict (gap 13) was INSUFFICIENT_DATA
    assert event["detail"]["previousState"]["value"] == "INSUFFICIENT_DATA"
    assert event["resources"] == [f"arn:aws:cloudwatch:eu-west-1:{gaps.state['account']}:alarm:{alarm}"]
    evaluations_pass(gaps, alarm)  # the metric says nothing new, so the state set by hand stands
    assert cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] == "ALARM"
    assert len(records(gaps, "aws.cloudwatch/")) == 1


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
    with pytest.raises(control.LocalCloudError, match=message):
        control.up(cdk_out=tmp_path / "cdk.out", state_dir=tmp_path / "state")


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(15 minutes)", 900), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_schedules(expression, seconds):
    from localcloud.services.eventbridge import rate_seconds

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
            "mlvault_tools.cli",
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
    assert missing.returncode == 2  # a usage error: the option names no cloud assembly
    assert "argument --cdk-out:" in missing.stderr
    assert "does not exist (expected the cloud assembly `make synth` writes)" in missing.stderr
    env = subprocess.run(
        [sys.executable, "-m", "mlvault_tools.cli", "local", "env", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env.returncode == 1
    assert env.stderr.startswith("mlvault: no local cloud is running")


def test_cli_local_env_points_at_the_cloud(gaps):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "mlvault_tools.cli", "local", "env", "--state-dir", str(gaps.state_dir)],
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


# --- 12. Embedded Metric Format ---------------------------------------------------------------------------


def emit(cloud, **event):
    out = cloud.client("lambda").invoke(
        FunctionName=cloud.physical_id("gaps", "AWS::Lambda::Function", "Metrics"), Payload=json.dumps(event)
    )
    assert "FunctionError" not in out, out
    return json.loads(out["Payload"].read())["printed"]


def statistics(cloud, namespace, name, dimensions, at, stats=("Sum", "SampleCount", "Maximum")):
    points = cloud.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=datetime.fromtimestamp(at - 60, UTC),
        EndTime=datetime.fromtimestamp(at + 60, UTC),
        Period=300,
        Statistics=list(stats),
    )["Datapoints"]
    return [{k: p[k] for k in (*stats, "Unit")} for p in points]


def test_emf_lines_a_function_prints_become_metrics_for_each_dimension_set(gaps):
    at = int(time.time())
    emit(
        gaps,
        namespace="mlvault.emf",
        metrics={"Requests": [1, 2, 3], "Size": 7},
        dimensions={"Service": "emf", "Stage": "test"},
        dimension_sets=[["Service"], ["Service", "Stage"]],
        properties={"request": "not a dimension"},
        unit="Count",
        timestamp=at * 1000,
    )
    for dimensions in ({"Service": "emf"}, {"Service": "emf", "Stage": "test"}):
        requests = eventually(lambda d=dimensions: statistics(gaps, "mlvault.emf", "Requests", d, at), timeout=10)
        # each dimension set is its own metric: list values are one datapoint each, counted once per set
        assert requests == [{"Sum": 6.0, "SampleCount": 3.0, "Maximum": 3.0, "Unit": "Count"}]
        assert statistics(gaps, "mlvault.emf", "Size", dimensions, at) == [
            {"Sum": 7.0, "SampleCount": 1.0, "Maximum": 7.0, "Unit": "Count"}
        ]
    assert statistics(gaps, "mlvault.emf", "Requests", {}, at) == []  # no dimensionless metric was emitted
    assert statistics(gaps, "mlvault.emf", "Requests", {"Stage": "test"}, at) == []
    (extracted,) = [e for e in gaps.events("emf-metrics") if "mlvault.emf/Requests" in e["metrics"]]
    assert extracted["datapoints"] == 8  # (3 + 1) values, two dimension sets


def test_emf_documents_cloudwatch_would_not_extract_are_recorded(gaps):
    emit(gaps, namespace="mlvault.emf.bad", metrics={"Broken": 1}, dimension_sets=[["Missing"]])
    emit(gaps, namespace="mlvault.emf.bad", metrics={"Broken": "high"}, dimensions={"Service": "emf"})
    rejected = eventually(lambda: len(gaps.events("emf-rejected")) >= 2 and gaps.events("emf-rejected"), timeout=10)
    errors = [e["error"] for e in rejected]
    assert any("dimension 'Missing' has no string value" in e for e in errors), errors
    assert any("Broken: the value 'high' is not a number" in e for e in errors), errors
    assert not [e for e in gaps.events("emf-metrics") if any("mlvault.emf.bad" in m for m in e["metrics"])]


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({"_aws": {"CloudWatchMetrics": []}}, "Timestamp"),
        ({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Metrics": []}]}}, "no Namespace"),
        (
            {"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Metrics": [{"Name": "m"}]}]}},
            "not a number",
        ),
        (
            {
                "_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Metrics": [{"Name": "m"}]}]},
                "m": [],
            },
            "not a number",
        ),
        (
            {
                "_aws": {
                    "Timestamp": 1,
                    "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["d"]], "Metrics": [{"Name": "m"}]}],
                },
                "m": 1,
                "d": 5,
            },
            "dimension 'd' has no string value",
        ),
    ],
)
def test_emf_documents_that_extract_nothing(document, error):
    with pytest.raises(EmfError, match=error):
        emf_metric_data(document)


def test_emf_without_dimension_sets_is_one_dimensionless_metric():
    ((namespace, data),) = emf_metric_data(
        {
            "_aws": {
                "Timestamp": 1_700_000_000_000,
                "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [], "Metrics": [{"Name": "m"}]}],
            },
            "m": 2,
        }
    )
    assert namespace == "n"
    assert data == [
        {
            "MetricName": "m",
            "Dimensions": [],
            "Timestamp": datetime(2023, 11, 14, 22, 13, 20),
            "Unit": "None",
            "Value": 2.0,
        }
    ]


# --- 13. Alarm evaluation ---------------------------------------------------------------------------------


def alarm_of(cloud, logical):
    name = cloud.physical_id("gaps", "AWS::CloudWatch::Alarm", logical)
    return cloud.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def test_alarms_are_evaluated_from_metric_data_put_and_printed_in_emf(gaps):
    cw, sqs = gaps.client("cloudwatch"), gaps.client("sqs")
    queue = gaps.physical_id("gaps", "AWS::SQS::Queue", "LatencyAlarmEvents")
    name = alarm_of(gaps, "Latency")["AlarmName"]
    assert alarm_of(gaps, "Latency")["StateValue"] == "OK"  # no data, missing data ignored: moto's initial state

    def latency(value, at):  # one datapoint per (1 s) period: one by PutMetricData, one printed in EMF
        cw.put_metric_data(
            Namespace="mlvault.test",
            MetricData=[
                {
                    "MetricName": "Latency",
                    "Dimensions": [{"Name": "Service", "Value": "alarmed"}],
                    "Value": value,
                    "Timestamp": datetime.fromtimestamp(at - 1, UTC),
                }
            ],
        )
        emit(
            gaps,
            namespace="mlvault.test",
            metrics={"Latency": value},
            dimensions={"Service": "alarmed"},
            timestamp=int(at * 1000),
        )

    def events_received(count):
        messages = []
        deadline = time.monotonic() + 10
        while len(messages) < count and time.monotonic() < deadline:
            messages += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
        evaluations_pass(gaps, name)  # later evaluations, while the data leaves the window, send nothing more
        messages += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        for m in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    latency(0.5, time.time())
    assert eventually(lambda: alarm_of(gaps, "Latency")["StateValue"] == "ALARM", timeout=10)
    (event,) = events_received(1)
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["detail"]["alarmName"] == name
    assert (event["detail"]["previousState"]["value"], event["detail"]["state"]["value"]) == ("OK", "ALARM")
    assert "greater than the threshold (0.2)" in event["detail"]["state"]["reason"]
    assert event["detail"]["configuration"]["metrics"][0]["metricStat"]["stat"] == "Maximum"
    assert alarm_of(gaps, "Latency")["StateValue"] == "ALARM"  # missing data ignored: the state stands

    latency(0.1, time.time())
    assert eventually(lambda: alarm_of(gaps, "Latency")["StateValue"] == "OK", timeout=10)
    (event,) = events_received(1)
    assert (event["detail"]["previousState"]["value"], event["detail"]["state"]["value"]) == ("ALARM", "OK")
    changes = [e for e in gaps.events("alarm-state-change") if e["alarm"] == name]
    assert [(e["from"], e["to"]) for e in changes] == [("OK", "ALARM"), ("ALARM", "OK")]


def test_an_alarm_without_data_that_treats_missing_data_as_not_breaching_stays_ok(gaps):
    evaluations_pass(gaps, alarm_of(gaps, "Quiet")["AlarmName"])
    alarm = alarm_of(gaps, "Quiet")
    assert alarm["StateValue"] == "OK"
    assert not [e for e in gaps.events("alarm-state-change") if e["alarm"] == alarm["AlarmName"]]


@pytest.mark.parametrize(
    ("values", "treatment", "needed", "state"),
    [
        ([0.5, 0.6], None, 2, "ALARM"),
        ([0.1, 0.6], None, 2, "OK"),
        ([0.1, 0.6], None, 1, "ALARM"),
        ([None, 0.6], None, 2, "ALARM"),  # missing: judged on the datapoints there are
        ([None, 0.1], None, 2, "OK"),
        ([None, None], None, 2, "INSUFFICIENT_DATA"),
        ([None, None], "missing", 1, "INSUFFICIENT_DATA"),
        ([None, None], "ignore", 2, None),  # keep the state
        ([None, 0.6], "ignore", 2, "ALARM"),
        ([None, 0.6], "notBreaching", 2, "OK"),
        ([None, None], "notBreaching", 1, "OK"),
        ([None, 0.6], "breaching", 2, "ALARM"),
        ([None, None], "breaching", 2, "ALARM"),
        ([0.1, None], "breaching", 2, "OK"),
    ],
)
def test_alarm_state_over_the_evaluation_range(values, treatment, needed, state):
    assert (
        alarm_state(
            values,
            threshold=0.2,
            comparison="GreaterThanThreshold",
            datapoints_to_alarm=needed,
            treat_missing_data=treatment,
        )
        == state
    )


@pytest.mark.parametrize(
    ("comparison", "value", "state"),
    [
        ("GreaterThanThreshold", 0.2, "OK"),
        ("GreaterThanOrEqualToThreshold", 0.2, "ALARM"),
        ("LessThanThreshold", 0.2, "OK"),
        ("LessThanThreshold", 0.1, "ALARM"),
        ("LessThanOrEqualToThreshold", 0.2, "ALARM"),
    ],
)
def test_alarm_comparisons(comparison, value, state):
    assert (
        alarm_state(
            [value], threshold=0.2, comparison=comparison, datapoints_to_alarm=1, treat_missing_data="notBreaching"
        )
        == state
    )


def test_alarm_evaluator_buckets_scaled_periods_and_changes_state_only_on_a_new_verdict():
    """In-process, at chosen instants: scale 60 makes each 60 s period a second of wall time."""
    import boto3
    from moto import mock_aws
    from moto.cloudwatch.models import cloudwatch_backends

    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="eu-west-1")
        recorded = []
        cloud = SimpleNamespace(account="123456789012", region="eu-west-1", record=recorded.append)
        for stat in ("Average", "Sum", "Maximum", "Minimum", "SampleCount"):
            cw.put_metric_alarm(
                AlarmName=stat,
                Namespace="n",
                MetricName="m",
                Dimensions=[{"Name": "d", "Value": "x"}],
                Statistic=stat,
                Period=60,
                EvaluationPeriods=2,
                Threshold=0.5,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
            )
        cw.put_metric_alarm(
            AlarmName="math",
            Metrics=[{"Id": "e", "Expression": "1"}],
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        alarms = cloudwatch_backends["123456789012"]["eu-west-1"].alarms
        evaluator = AlarmEvaluator(cloud, scale=60)
        t = float(int(time.time()))

        def put(values, at):
            cw.put_metric_data(
                Namespace="n",
                MetricData=[
                    {
                        "MetricName": "m",
                        "Dimensions": [{"Name": "d", "Value": "x"}],
                        "Values": values,
                        "Timestamp": datetime.fromtimestamp(at, UTC),
                    },
                    {"MetricName": "m", "Values": [100.0], "Timestamp": datetime.fromtimestamp(at, UTC)},  # no dims
                ],
            )

        evaluator.evaluate(t + 0.5)
        assert {a.state_value for a in alarms.values()} == {"OK"}
        put([1.0, 2.0, 3.0], t - 1.5)  # period t-2
        put([4.0], t - 0.5)  # period t-1
        put([1000.0], t + 0.2)  # period t: not complete, not evaluated
        evaluator.evaluate(t + 0.5)  # the window: periods t-2 and t-1, each its own statistic
        assert {name: json.loads(a.state_reason_data).get("recentDatapoints") for name, a in alarms.items()} == {
            "Average": [2.0, 4.0],
            "Sum": [6.0, 4.0],
            "Maximum": [3.0, 4.0],
            "Minimum": [1.0, 4.0],
            "SampleCount": [3.0, 1.0],
            "math": None,
        }
        assert {name: a.state_value for name, a in alarms.items()} == {
            **{stat: "ALARM" for stat in ("Average", "Sum", "Maximum", "Minimum", "SampleCount")},
            "math": "OK",
        }
        reason = alarms["Sum"].state_reason
        assert reason.startswith("Threshold Crossed: 2 out of the last 2 datapoints [4 (")
        assert reason.endswith(
            "were greater than the threshold (0.5) (minimum 2 datapoints for OK -> ALARM transition)."
        )
        assert [r for r in recorded if r["kind"] != "alarm-evaluated"] == [
            {
                "kind": "alarm-not-evaluated",
                "alarm": "math",
                "reason": "metric math alarms (Metrics) are not evaluated locally",
            }
        ]

        cw.set_alarm_state(AlarmName="Sum", StateValue="OK", StateReason="by hand")
        evaluator.evaluate(t + 0.7)  # same period, no new data: nothing to evaluate
        evaluator.evaluate(t + 1.5)  # window t-1, t: Sum 4 + 1000, still ALARM: the verdict did not change
        assert alarms["Sum"].state_value == "OK"
        assert alarms["Sum"].state_reason == "by hand"
        evaluator.evaluate(t + 3.5)  # window t+1, t+2: no data, not breaching -> OK
        evaluator.evaluate(t + 4.5)
        assert {a.state_value for a in alarms.values()} == {"OK"}
        history = len(alarms["Maximum"].history)
        cw.set_alarm_state(AlarmName="Sum", StateValue="OK", StateReason="by hand")
        put([0.1], t + 3.2)
        put([5.0], t + 4.2)
        evaluator.evaluate(t + 5.5)  # one period of two breaching: still OK
        assert alarms["Maximum"].state_value == "OK"
        put([6.0], t + 5.2)
        evaluator.evaluate(t + 6.5)  # a new verdict: ALARM
        assert alarms["Maximum"].state_value == "ALARM"
        assert len(alarms["Maximum"].history) == history + 1
        assert alarms["Sum"].state_value == "ALARM"


def test_a_first_verdict_is_taken_silently_unless_it_is_alarm():
    import boto3
    from moto import mock_aws
    from moto.cloudwatch.models import cloudwatch_backends

    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="eu-west-1")
        cloud = SimpleNamespace(account="123456789012", region="eu-west-1", record=lambda e: None)
        common = {
            "Namespace": "n",
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanThreshold",
        }
        cw.put_metric_alarm(AlarmName="unknown", MetricName="nothing", **common)
        cw.put_metric_alarm(AlarmName="breached", MetricName="high", **common)
        cw.put_metric_alarm(AlarmName="forced", MetricName="nothing", **common)
        cw.set_alarm_state(AlarmName="forced", StateValue="ALARM", StateReason="by hand")
        t = float(int(time.time()))
        cw.put_metric_data(
            Namespace="n",
            MetricData=[{"MetricName": "high", "Value": 2.0, "Timestamp": datetime.fromtimestamp(t - 0.5, UTC)}],
        )
        AlarmEvaluator(cloud, scale=60).evaluate(t + 0.5)
        alarms = cloudwatch_backends["123456789012"]["eu-west-1"].alarms
        assert alarms["unknown"].state_value == "INSUFFICIENT_DATA"
        assert alarms["unknown"].history == []  # as if created so: no state change
        assert alarms["breached"].state_value == "ALARM"
        assert len(alarms["breached"].history) == 1  # a state change (gap 6 emits its event)
        assert alarms["forced"].state_value == "ALARM"  # set by hand before any verdict: it stands
