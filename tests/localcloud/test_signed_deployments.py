"""Deployments as AWS runs them (gaps 18-21 of localcloud/gaps.py): custom resources answering their ResponseURL,
AWS Signer signing jobs, Lambda code signing under Enforce and Warn, functions running the code they were
deployed with; and the smaller fidelity gaps (1, 2, 5, 7, 17): non-JSON payloads, S3 -> SNS notifications, rate
expressions, scaled Wait states, events of AWS sources."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
from botocore.exceptions import ClientError

from localcloud import control
from tests.e2e.conftest import eventually
from tests.localcloud.app.stack import build_gaps_app, failing_custom_resource, guarantees


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("deployments")
    build_gaps_app(root / "cdk.out", extra=guarantees)
    handle = control.up(cdk_out=root / "cdk.out", state_dir=root / "state", alarm_scale=60)
    try:
        yield handle
    finally:
        control.down(root / "state")


def code(cloud, name):
    return cloud.physical_id("gaps", "AWS::Lambda::Function", name)


def error(call):
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"]


def model_zip(answer: str) -> bytes:
    """A function zip whose handler answers with `answer` (a different model than the asset's)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "handler.py",
            "import os\n\ndef handler(event, context):\n"
            f"    return {{'model': {answer!r}, 'version': context.function_version,"
            " 'env': os.environ.get('MODEL')}\n",
        )
    return buffer.getvalue()


def invoke(cloud, name, **kwargs):
    out = cloud.client("lambda").invoke(FunctionName=name, Payload=b"{}", **kwargs)
    assert "FunctionError" not in out, out["Payload"].read()
    return json.loads(out["Payload"].read())


def profile(cloud):
    name = cloud.physical_id("gaps", "AWS::Signer::SigningProfile", "Profile")
    return cloud.client("signer").get_signing_profile(profileName=name.rsplit("/", 1)[-1])


def assets_bucket(cloud):
    return f"cdk-hnb659fds-assets-{cloud.state['account']}-{cloud.region}"


def signed(cloud, data: bytes, key: str, profile_name: str | None = None) -> dict:
    """Upload a zip to the versioned assets bucket and sign it as a deployment step would: the job's description."""
    s3, signer = cloud.client("s3"), cloud.client("signer")
    version = s3.put_object(Bucket=assets_bucket(cloud), Key=key, Body=data)["VersionId"]
    job = signer.start_signing_job(
        source={"s3": {"bucketName": assets_bucket(cloud), "key": key, "version": version}},
        destination={"s3": {"bucketName": assets_bucket(cloud), "prefix": "signed/"}},
        profileName=profile_name or profile(cloud)["profileName"],
        clientRequestToken=key,
    )["jobId"]
    return eventually(lambda: (d := signer.describe_signing_job(jobId=job))["status"] != "InProgress" and d, timeout=10)


# --- 18. custom resources ----------------------------------------------------------------------------------


def test_a_custom_resource_is_created_by_its_function_answering_the_response_url(cloud):
    assert cloud.client("ssm").get_parameter(Name="/gaps/answer")["Parameter"]["Value"] == "4"  # Fn::GetAtt Data
    assert cloud.physical_id("gaps", "Custom::Answer", "Answer") == "answer-life"  # the PhysicalResourceId
    (call,) = [e for e in cloud.events("invoke") if e["source"] == "cloudformation" and "Responder" in e["function"]]
    assert not call["errored"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (failing_custom_resource(reason="the answer is no"), "failed: the answer is no"),
        (failing_custom_resource(silent=True), "sent no response to the ResponseURL"),
    ],
)
def test_a_failed_or_silent_custom_resource_fails_local_up(tmp_path, extra, message):
    build_gaps_app(tmp_path / "cdk.out", extra=extra)
    with pytest.raises(control.LocalCloudError, match=message):
        control.up(cdk_out=tmp_path / "cdk.out", state_dir=tmp_path / "state")


# --- 19. AWS Signer ----------------------------------------------------------------------------------------


def test_a_signing_job_signs_that_version_into_the_destination(cloud):
    signer = cloud.client("signer")
    s3 = cloud.client("s3")
    assert s3.get_bucket_versioning(Bucket=assets_bucket(cloud))["Status"] == "Enabled"  # as the CDK bootstrap's
    version = s3.put_object(Bucket=assets_bucket(cloud), Key="models/a.zip", Body=model_zip("a"))["VersionId"]
    s3.put_object(Bucket=assets_bucket(cloud), Key="models/a.zip", Body=model_zip("later"))  # not what is signed
    job = signer.start_signing_job(
        source={"s3": {"bucketName": assets_bucket(cloud), "key": "models/a.zip", "version": version}},
        destination={"s3": {"bucketName": assets_bucket(cloud), "prefix": "signed/"}},
        profileName=profile(cloud)["profileName"],
        clientRequestToken="job-a",
    )["jobId"]
    assert signer.describe_signing_job(jobId=job)["status"] == "InProgress"
    done = eventually(lambda: (d := signer.describe_signing_job(jobId=job))["status"] == "Succeeded" and d, timeout=10)
    assert done["signedObject"]["s3"] == {"bucketName": assets_bucket(cloud), "key": f"signed/{job}.zip"}
    assert done["source"]["s3"]["version"] == version
    assert done["platformId"] == "AWSLambda-SHA384-ECDSA"
    assert done["profileVersion"] == profile(cloud)["profileVersion"]
    assert done["statusReason"] == "Signing Succeeded"
    assert done["signatureExpiresAt"] > done["createdAt"]
    signed_zip = s3.get_object(Bucket=assets_bucket(cloud), Key=f"signed/{job}.zip")["Body"].read()
    with zipfile.ZipFile(io.BytesIO(signed_zip)) as archive:
        assert b"'a'" in archive.read("handler.py")  # the version asked for, still a valid zip
        assert archive.comment.startswith(b"LCSIGNER1:")  # the signature rides in the archive comment
    again = signer.start_signing_job(
        source={"s3": {"bucketName": assets_bucket(cloud), "key": "models/a.zip", "version": version}},
        destination={"s3": {"bucketName": assets_bucket(cloud), "prefix": "signed/"}},
        profileName=profile(cloud)["profileName"],
        clientRequestToken="job-a",
    )["jobId"]
    assert again == job  # the same request token: the same job
    listed = signer.list_signing_jobs(status="Succeeded")["jobs"]
    assert job in {j["jobId"] for j in listed}
    signer.revoke_signature(jobId=job, reason="compromised build")
    assert signer.describe_signing_job(jobId=job)["revocationRecord"]["reason"] == "compromised build"
    assert job in {j["jobId"] for j in signer.list_signing_jobs(isRevoked=True)["jobs"]}


def test_signer_refuses_what_it_cannot_sign(cloud):
    signer, s3 = cloud.client("signer"), cloud.client("s3")
    source = {"bucketName": assets_bucket(cloud), "key": "models/missing.zip", "version": "nope"}
    destination = {"s3": {"bucketName": assets_bucket(cloud), "prefix": "signed/"}}
    name = profile(cloud)["profileName"]
    assert (
        error(lambda: signer.start_signing_job(source={"s3": source}, destination=destination, profileName=name))
        == "ValidationException"
    )
    version = s3.put_object(Bucket=assets_bucket(cloud), Key="models/x.zip", Body=model_zip("x"))["VersionId"]
    source = {"bucketName": assets_bucket(cloud), "key": "models/x.zip", "version": version}
    assert (
        error(lambda: signer.start_signing_job(source={"s3": source}, destination=destination, profileName="nobody"))
        == "ResourceNotFoundException"
    )
    assert error(lambda: signer.get_signing_profile(profileName="nobody")) == "ResourceNotFoundException"
    assert error(lambda: signer.describe_signing_job(jobId="no-such-job")) == "ResourceNotFoundException"
    not_a_zip = signed(cloud, b"not a zip", "models/text.zip")
    assert not_a_zip["status"] == "Failed"
    assert "not a zip" in not_a_zip["statusReason"]
    once = signed(cloud, model_zip("t"), "models/t.zip")["signedObject"]["s3"]["key"]
    twice = signed(cloud, s3.get_object(Bucket=assets_bucket(cloud), Key=once)["Body"].read(), "models/twice.zip")
    assert twice["status"] == "Failed"
    assert "already has a signature" in twice["statusReason"]


# --- 20, 21. code signing and what runs ---------------------------------------------------------------------


def test_the_signed_function_was_deployed_under_enforce_and_runs(cloud):
    fn = code(cloud, "Signed")
    assert invoke(cloud, fn)["model"] == "signed"  # the model asset, signed by the custom resource
    config = cloud.client("lambda").get_function_code_signing_config(FunctionName=fn)
    assert config["CodeSigningConfigArn"].startswith(f"arn:aws:lambda:{cloud.region}:")
    assert not [e for e in cloud.events("code-signing-warning") if e["subject"].endswith(fn)]
    warned = [e for e in cloud.events("code-signing-warning") if e["subject"].endswith(code(cloud, "Unsigned"))]
    assert [e["reason"] for e in warned] == ["the code is not signed"]  # Warn: deployed, with a warning
    assert invoke(cloud, code(cloud, "Unsigned"))["model"] == "unsigned"


def test_enforce_refuses_unsigned_tampered_revoked_and_foreign_code(cloud):
    lam = cloud.client("lambda")
    fn = code(cloud, "Signed")
    unsigned = model_zip("unsigned")
    assert (
        error(lambda: lam.update_function_code(FunctionName=fn, ZipFile=unsigned)) == "CodeVerificationFailedException"
    )
    key = "models/plain.zip"
    version = cloud.client("s3").put_object(Bucket=assets_bucket(cloud), Key=key, Body=unsigned)["VersionId"]
    assert (
        error(
            lambda: lam.update_function_code(
                FunctionName=fn, S3Bucket=assets_bucket(cloud), S3Key=key, S3ObjectVersion=version
            )
        )
        == "CodeVerificationFailedException"
    )
    job = signed(cloud, model_zip("good"), "models/good.zip")
    good = (
        cloud.client("s3").get_object(Bucket=assets_bucket(cloud), Key=job["signedObject"]["s3"]["key"])["Body"].read()
    )
    tampered = good.replace(b"'good'", b"'evil'")
    assert error(lambda: lam.update_function_code(FunctionName=fn, ZipFile=tampered)) == "InvalidCodeSignatureException"
    other = cloud.client("signer").put_signing_profile(profileName="not_allowed", platformId="AWSLambda-SHA384-ECDSA")
    foreign = signed(cloud, model_zip("foreign"), "models/foreign.zip", profile_name="not_allowed")
    assert foreign["status"] == "Succeeded"
    assert other["profileVersionArn"] != profile(cloud)["profileVersionArn"]
    foreign_zip = cloud.client("s3").get_object(Bucket=assets_bucket(cloud), Key=foreign["signedObject"]["s3"]["key"])
    assert (
        error(lambda: lam.update_function_code(FunctionName=fn, ZipFile=foreign_zip["Body"].read()))
        == "CodeVerificationFailedException"
    )
    assert invoke(cloud, fn)["model"] == "signed"  # nothing of it was deployed
    refused = [e for e in cloud.events("code-signing-refused") if e["subject"].endswith(fn)]
    assert {e["reason"].split(":")[0] for e in refused} >= {"the code is not signed", "integrity"}


def test_what_runs_is_what_was_deployed_and_versions_keep_their_code(cloud):
    lam, s3 = cloud.client("lambda"), cloud.client("s3")
    fn = code(cloud, "Signed")
    first = signed(cloud, model_zip("v1"), "models/v1.zip")
    bucket, key = first["signedObject"]["s3"]["bucketName"], first["signedObject"]["s3"]["key"]
    version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    lam.update_function_code(FunctionName=fn, S3Bucket=bucket, S3Key=key, S3ObjectVersion=version)
    assert invoke(cloud, fn)["model"] == "v1"
    v1 = lam.publish_version(FunctionName=fn)["Version"]
    second = signed(cloud, model_zip("v2"), "models/v2.zip")
    signed_v2 = s3.get_object(Bucket=bucket, Key=second["signedObject"]["s3"]["key"])["Body"].read()
    lam.update_function_code(FunctionName=fn, ZipFile=signed_v2)  # a signed zip, uploaded
    assert invoke(cloud, fn)["model"] == "v2"
    assert invoke(cloud, fn, Qualifier=v1) == {"model": "v1", "version": v1, "env": "signed"}
    # the S3 object version named, not the key's latest
    s3.put_object(Bucket=bucket, Key=key, Body=model_zip("overwritten"))
    lam.update_function_code(FunctionName=fn, S3Bucket=bucket, S3Key=key, S3ObjectVersion=version)
    assert invoke(cloud, fn)["model"] == "v1"
    assert (
        error(lambda: lam.update_function_code(FunctionName=fn, S3Bucket=bucket, S3Key=key, S3ObjectVersion="missing"))
        == "InvalidParameterValueException"
    )
    # a revoked signature: $LATEST's code can no longer be published
    cloud.client("signer").revoke_signature(jobId=first["jobId"], reason="leaked key")
    assert error(lambda: lam.publish_version(FunctionName=fn, Description="after revocation")) == (
        "CodeVerificationFailedException"
    )
    assert invoke(cloud, fn, Qualifier=v1)["model"] == "v1"  # what was published stays


def test_layers_are_checked_when_a_function_adds_them(cloud):
    lam, s3 = cloud.client("lambda"), cloud.client("s3")
    fn = code(cloud, "Signed")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("python/gaps_layer.py", "ANSWER = 'from the layer'\n")
    plain = lam.publish_layer_version(LayerName="gaps-plain", Content={"ZipFile": buffer.getvalue()})["LayerVersionArn"]
    assert error(lambda: lam.update_function_configuration(FunctionName=fn, Layers=[plain])) == (
        "CodeVerificationFailedException"
    )
    job = signed(cloud, buffer.getvalue(), "layers/gaps.zip")
    key = job["signedObject"]["s3"]["key"]
    layer = lam.publish_layer_version(
        LayerName="gaps-signed",
        Content={
            "S3Bucket": assets_bucket(cloud),
            "S3Key": key,
            "S3ObjectVersion": s3.head_object(Bucket=assets_bucket(cloud), Key=key)["VersionId"],
        },
    )["LayerVersionArn"]
    lam.update_function_configuration(FunctionName=fn, Layers=[layer])
    assert lam.get_function_configuration(FunctionName=fn)["Layers"][0]["Arn"] == layer


# --- 1, 2, 5, 7, 17: smaller gaps ---------------------------------------------------------------------------


def test_a_payload_that_is_not_json_is_refused(cloud):
    lam = cloud.client("lambda")
    with pytest.raises(ClientError) as refused:
        lam.invoke(FunctionName=code(cloud, "Echo"), Payload=b"not json")
    assert refused.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert refused.value.response["Error"]["Message"].startswith("Could not parse request body into json")


def test_events_of_aws_sources_are_refused_per_entry(cloud):
    out = cloud.client("events").put_events(
        Entries=[
            {"Source": "aws.cloudwatch", "DetailType": "CloudWatch Alarm State Change", "Detail": "{}"},
            {"Source": "mlvault.test", "DetailType": "ping", "Detail": json.dumps({"n": 2})},
        ]
    )
    assert out["FailedEntryCount"] == 1
    assert out["Entries"][0]["ErrorCode"] == "NotAuthorizedForSourceException"
    assert "EventId" in out["Entries"][1]


def test_eventbridge_delivers_only_where_the_function_policy_allows_it(cloud):
    events = cloud.client("events")
    model = cloud.client("lambda").get_function_configuration(FunctionName=code(cloud, "Model"))["FunctionArn"]
    events.put_rule(Name="unpermitted", EventPattern=json.dumps({"source": ["gaps.unpermitted"]}))
    events.put_targets(Rule="unpermitted", Targets=[{"Id": "model", "Arn": model}])  # no AWS::Lambda::Permission
    events.put_events(Entries=[{"Source": "gaps.unpermitted", "DetailType": "x", "Detail": "{}"}])
    failed = eventually(lambda: [e for e in cloud.events("eventbridge-target-failed") if e["rule"] == "unpermitted"])
    assert "resource policy does not allow events.amazonaws.com" in failed[0]["reason"]


def test_rate_expressions_aws_refuses_are_refused(cloud):
    events = cloud.client("events")
    for expression in ("rate(0 minutes)", "rate(1 minutes)", "rate(5 minute)", "rate(-1 days)"):
        assert (
            error(lambda e=expression: events.put_rule(Name="bad-rate", ScheduleExpression=e)) == "ValidationException"
        )
    events.put_rule(Name="good-rate", ScheduleExpression="rate(5 minutes)", State="DISABLED")


def test_a_wait_state_is_scaled_like_alarm_periods(cloud):
    sfn = cloud.client("stepfunctions")
    machine = cloud.physical_id("gaps", "AWS::StepFunctions::StateMachine", "Bake")
    started = time.monotonic()
    arn = sfn.start_execution(stateMachineArn=machine, name="bake")["executionArn"]
    done = eventually(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, timeout=30)
    elapsed = time.monotonic() - started
    assert done["status"] == "SUCCEEDED"
    assert 1.5 <= elapsed < 15, elapsed  # a 2-minute Wait with alarm_scale 60: 2 s


def test_s3_notifications_to_a_topic_carry_the_configuration_id_and_are_recorded(cloud):
    s3, sqs, sns = cloud.client("s3"), cloud.client("sqs"), cloud.client("sns")
    notified = cloud.physical_id("gaps", "AWS::S3::Bucket", "Notified")
    queue = cloud.physical_id("gaps", "AWS::SQS::Queue", "UploadNotifications")
    version = s3.put_object(Bucket=notified, Key="sns/a.csv", Body=b"1")["VersionId"]

    def event_records():  # the queue also holds the s3:TestEvent S3 sent when the configuration was set
        bodies = [
            json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
        ]
        return [b["Records"][0] for b in bodies if "Records" in b]

    (record,) = eventually(event_records, timeout=10)
    assert record["s3"]["configurationId"]
    assert record["s3"]["object"]["versionId"] == version
    uploads = cloud.physical_id("gaps", "AWS::SNS::Topic", "Uploads")
    assert [e for e in cloud.events("s3-notification") if e["key"] == "sns/a.csv" and e["target"] == uploads]
    gone = cloud.physical_id("gaps", "AWS::SNS::Topic", "Gone")
    sns.delete_topic(TopicArn=gone)
    assert s3.put_object(Bucket=notified, Key="gone/a.csv", Body=b"1")["ResponseMetadata"]["HTTPStatusCode"] == 200
    failed = eventually(lambda: [e for e in cloud.events("s3-notification-failed") if e["target"] == gone])
    assert failed
    assert s3.head_object(Bucket=notified, Key="gone/a.csv")["ContentLength"] == 1
