"""The signer (lambdas/signer/handler.py), the custom resource provider that signs every asset, on moto's S3 and KMS.

moto has Signer profiles and platforms but no signing jobs, so the two Signer calls the signer makes
(StartSigningJob, DescribeSigningJob) are stubbed here, and only those: `FakeSigner` "signs" by copying the source
version it is given to `<prefix><jobId>.zip`, as Signer writes its output, so the test sees exactly which version
the signer asked to have signed. Everything else (S3 versions, the zip the signer writes, KMS GetPublicKey, the
PUT to CloudFormation's ResponseURL, served on 127.0.0.1) is real code against moto or a local HTTP server.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from mlvault.wiring import Anchor, Bundle

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
ASSETS = "cdk-hnb659fds-assets-123456789012-eu-west-1"
SIGNED = "mlvault-dev-signed-code-123456789012-eu-west-1"
PREFIX = "signed/mlvault-dev-models/abc123/"


def _load_signer():
    spec = importlib.util.spec_from_file_location("mlvault_signer_handler", ROOT / "lambdas/signer/handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


signer_handler = _load_signer()


class FakeSigner:
    """StartSigningJob / DescribeSigningJob only (moto has no signing jobs)."""

    def __init__(self, s3, *, outcome: str = "Succeeded", reason: str = "", pending: int = 1) -> None:
        self.s3, self.outcome, self.reason, self.pending = s3, outcome, reason, pending
        self.started: list[dict] = []
        self.described = 0

    def start_signing_job(self, **request):
        self.started.append(request)
        return {"jobId": f"job-{len(self.started)}"}

    def describe_signing_job(self, *, jobId):
        self.described += 1
        request = self.started[int(jobId.split("-")[1]) - 1]
        if self.described <= self.pending:
            return {"jobId": jobId, "status": "InProgress"}
        if self.outcome != "Succeeded":
            return {"jobId": jobId, "status": self.outcome, "statusReason": self.reason}
        source, destination = request["source"]["s3"], request["destination"]["s3"]
        key = f"{destination['prefix']}{jobId}.zip"
        self.s3.copy_object(
            CopySource={"Bucket": source["bucketName"], "Key": source["key"], "VersionId": source["version"]},
            Bucket=destination["bucketName"],
            Key=key,
        )
        return {
            "jobId": jobId,
            "status": "Succeeded",
            "signedObject": {"s3": {"bucketName": destination["bucketName"], "key": key}},
        }


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (ASSETS, SIGNED):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        kms = boto3.client("kms", region_name=REGION)
        key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        yield {"s3": s3, "kms": kms, "key": key}


def asset(s3, files: dict[str, str], key: str = "0123.zip") -> str:
    s3.put_object(Bucket=ASSETS, Key=key, Body=zip_of(files))
    return key


def properties(source_key: str, **extra) -> dict:
    return {
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:signer",
        "SourceBucket": ASSETS,
        "SourceKey": source_key,
        "ProfileName": "mlvault_dev_profile",
        "DestinationBucket": SIGNED,
        "DestinationPrefix": PREFIX,
        **extra,
    }


def anchors_bundle(key_arn: str) -> dict:
    return {
        Bundle.ANCHORS: {
            Anchor.STAGE: "dev",
            Anchor.MODEL_SIGNING_KEY: {Anchor.KEY_ARN: key_arn},
            Anchor.ALARMS: {Anchor.ROLLBACK_ALARMS: ["a"], Anchor.CANARY_ALARMS: ["a", "b"]},
        }
    }


def sign(aws, props, fake=None, **kwargs):
    fake = fake or FakeSigner(aws["s3"])
    data = signer_handler.sign(
        props,
        request_id="req-1",
        deadline=kwargs.pop("deadline", 1e12),
        s3=aws["s3"],
        signer=fake,
        kms=aws["kms"],
        sleep=lambda _: None,
        **kwargs,
    )
    return data, fake


def signed_files(aws, data) -> dict[str, bytes]:
    body = aws["s3"].get_object(Bucket=data["Bucket"], Key=data["Key"], VersionId=data["Version"])["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_a_function_is_signed_with_its_trust_anchors_and_the_pinned_public_key(aws):
    from mlvault.attestation.openssf import kms_public_key_pem

    key = asset(aws["s3"], {"handler.py": "def handler(e, c): ...", "trust/producers.json": "{}"})
    data, fake = sign(
        aws, properties(key, Bundle=anchors_bundle(aws["key"]), PinKeys={"model_signing_key": aws["key"]})
    )

    assert set(data) == {"Bucket", "Key", "Version", "JobId"}
    assert data["Bucket"] == SIGNED
    assert data["Key"] == f"{PREFIX}job-1.zip"
    assert data["Version"] == aws["s3"].head_object(Bucket=SIGNED, Key=data["Key"])["VersionId"]
    files = signed_files(aws, data)
    assert set(files) == {"handler.py", "trust/producers.json", Bundle.ANCHORS}
    anchors = json.loads(files[Bundle.ANCHORS])
    expected = hashlib.sha256(kms_public_key_pem(aws["kms"], aws["key"])).hexdigest()  # the library's own PEM
    assert anchors[Anchor.MODEL_SIGNING_KEY] == {Anchor.KEY_ARN: aws["key"], Anchor.PUBLIC_KEY_SHA256: expected}
    assert anchors[Anchor.ALARMS] == {"rollback": ["a"], "canary": ["a", "b"]}

    # Signer was asked to sign the exact staged version, with the stage's profile, once per request.
    (request,) = fake.started
    staged = request["source"]["s3"]
    assert staged["bucketName"] == SIGNED
    assert staged["key"] == "unsigned/mlvault-dev-models/abc123/req-1.zip"
    assert staged["version"] == aws["s3"].head_object(Bucket=SIGNED, Key=staged["key"])["VersionId"]
    assert request["destination"] == {"s3": {"bucketName": SIGNED, "prefix": PREFIX}}
    assert request["profileName"] == "mlvault_dev_profile"
    assert request["clientRequestToken"] == "req-1"
    source_version = aws["s3"].head_object(Bucket=ASSETS, Key=key)["VersionId"]
    metadata = aws["s3"].head_object(Bucket=SIGNED, Key=staged["key"])["Metadata"]
    assert metadata["mlvault-source"] == f"s3://{ASSETS}/{key}?versionId={source_version}"


def test_the_signers_pem_is_the_librarys():
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    class Kms:
        def get_public_key(self, KeyId):
            return {"KeyId": KeyId, "KeyUsage": "SIGN_VERIFY", "PublicKey": der}

    pem = signer_handler.public_key_pem(Kms(), "arn:aws:kms:eu-west-1:123456789012:key/k")
    assert pem == public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    assert signer_handler.PUBLIC_KEY_SHA256 == Anchor.PUBLIC_KEY_SHA256


def test_a_layer_without_bundle_is_signed_byte_for_byte(aws):
    body = zip_of({"python/lib.py": "x = 1"})
    aws["s3"].put_object(Bucket=ASSETS, Key="layer.zip", Body=body)
    data, _ = sign(aws, properties("layer.zip"))
    assert aws["s3"].get_object(Bucket=data["Bucket"], Key=data["Key"])["Body"].read() == body


def test_the_version_signed_is_the_one_current_when_the_deployment_asked(aws):
    """The source is pinned by version: an object replaced later is not what was signed."""
    aws["s3"].put_object(Bucket=ASSETS, Key="code.zip", Body=zip_of({"handler.py": "good"}))
    fake = FakeSigner(aws["s3"], pending=0)
    data, _ = sign(aws, properties("code.zip"), fake)
    aws["s3"].put_object(Bucket=ASSETS, Key="code.zip", Body=zip_of({"handler.py": "evil"}))
    assert signed_files(aws, data) == {"handler.py": b"good"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Bundle": {"handler.py": {"x": 1}}}, "Bundle path 'handler.py' is already in"),
        ({"Bundle": {"../escape.json": {"x": 1}}}, "is not a relative path inside the zip"),
        ({"Bundle": {"/abs.json": {"x": 1}}}, "is not a relative path inside the zip"),
        ({"Bundle": {"a.json": "not json"}}, "Bundle document 'a.json' is not JSON"),
        ({"PinKeys": {"model_signing_key": "arn:x"}}, "names no entry of a Bundle document"),
        ({"DestinationPrefix": "elsewhere/"}, "DestinationPrefix must be a folder under signed/"),
        ({"DestinationPrefix": "signed/../unsigned/"}, "DestinationPrefix must be a folder under signed/"),
        ({"Extra": "x"}, "unknown ['Extra']"),
        ({"ProfileName": ""}, "missing ['ProfileName']"),
    ],
)
def test_bad_requests_are_refused(aws, change, message):
    key = asset(aws["s3"], {"handler.py": "x"})
    with pytest.raises(signer_handler.SigningError, match=None) as err:
        sign(aws, {**properties(key), **change})
    assert message in str(err.value)


def test_a_pinned_entry_must_carry_the_pinned_arn_and_no_fingerprint_of_its_own(aws):
    key = asset(aws["s3"], {"handler.py": "x"})
    other = aws["kms"].create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    with pytest.raises(signer_handler.SigningError, match="must be"):
        sign(aws, properties(key, Bundle=anchors_bundle(other), PinKeys={"model_signing_key": aws["key"]}))
    bundle = anchors_bundle(aws["key"])
    bundle[Bundle.ANCHORS][Anchor.MODEL_SIGNING_KEY][Anchor.PUBLIC_KEY_SHA256] = "0" * 64
    with pytest.raises(signer_handler.SigningError, match="only the signer writes it"):
        sign(aws, properties(key, Bundle=bundle, PinKeys={"model_signing_key": aws["key"]}))


def test_an_unversioned_source_is_refused(aws):
    aws["s3"].create_bucket(Bucket="plain", CreateBucketConfiguration={"LocationConstraint": REGION})
    aws["s3"].put_object(Bucket="plain", Key="code.zip", Body=zip_of({"handler.py": "x"}))
    with pytest.raises(signer_handler.SigningError, match="Signer signs only objects of versioned buckets"):
        sign(aws, {**properties("code.zip"), "SourceBucket": "plain"})


def test_a_failed_signing_job_fails_with_signers_reason(aws):
    key = asset(aws["s3"], {"handler.py": "x"})
    fake = FakeSigner(aws["s3"], outcome="Failed", reason="Signing profile is revoked")
    with pytest.raises(signer_handler.SigningError, match="failed: Signing profile is revoked"):
        sign(aws, properties(key), fake)


def test_the_signer_polls_a_running_job_backing_off_to_two_seconds(aws):
    key = asset(aws["s3"], {"handler.py": "x"})
    fake, pauses = FakeSigner(aws["s3"], pending=6), []
    signer_handler.sign(
        properties(key),
        request_id="req-1",
        deadline=1e12,
        s3=aws["s3"],
        signer=fake,
        kms=aws["kms"],
        sleep=pauses.append,
    )
    assert pauses == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]  # a quick job is seen quickly, a slow one costs little
    assert fake.described == 7


def test_a_job_still_running_at_the_deadline_fails(aws):
    key = asset(aws["s3"], {"handler.py": "x"})
    fake = FakeSigner(aws["s3"], pending=10**6)
    with pytest.raises(signer_handler.SigningError, match="still InProgress at the signer's deadline"):
        sign(aws, properties(key), fake, deadline=100.0, clock=iter(range(0, 10**6, 10)).__next__)


# --- the CloudFormation protocol: the answer PUT to ResponseURL ------------------------------------------------


@pytest.fixture
def response_url():
    """A ResponseURL on 127.0.0.1 that records what is PUT to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):
            length = int(self.headers["Content-Length"])
            received.append({"body": json.loads(self.rfile.read(length)), "type": self.headers["Content-Type"]})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/response?signature=x", received
    server.shutdown()
    server.server_close()


class Context:
    def get_remaining_time_in_millis(self):
        return 900_000


def event(url, request_type, props, **extra):
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/mlvault-dev-models/1",
        "RequestId": "req-1",
        "LogicalResourceId": "ServeCodeFFE0C7AD",
        "ResourceType": "Custom::MlvaultSignedCode",
        "ResourceProperties": props,
        **extra,
    }


def test_create_answers_success_with_the_signed_object(aws, response_url, monkeypatch):
    url, received = response_url
    key = asset(aws["s3"], {"handler.py": "x"})
    fake = FakeSigner(aws["s3"])
    real_client = boto3.client
    monkeypatch.setattr(
        signer_handler.boto3, "client", lambda name, **kw: fake if name == "signer" else real_client(name, **kw)
    )
    monkeypatch.setattr(signer_handler.time, "sleep", lambda _: None)
    signer_handler.handler(event(url, "Create", properties(key)), Context())
    ((answer,),) = [[r["body"] for r in received]]
    assert answer["Status"] == "SUCCESS"
    assert answer["Data"]["Key"] == f"{PREFIX}job-1.zip"
    assert answer["PhysicalResourceId"] == f"s3://{SIGNED}/{PREFIX}job-1.zip?versionId={answer['Data']['Version']}"
    assert (answer["StackId"], answer["RequestId"], answer["LogicalResourceId"]) == (
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/mlvault-dev-models/1",
        "req-1",
        "ServeCodeFFE0C7AD",
    )
    assert received[0]["type"] == ""  # the presigned URL signs no content type


def test_a_failure_answers_failed_with_the_reason_and_keeps_the_old_physical_id(aws, response_url, monkeypatch):
    url, received = response_url
    key = asset(aws["s3"], {"handler.py": "x"})
    fake = FakeSigner(aws["s3"], outcome="Failed", reason="revoked")
    real_client = boto3.client
    monkeypatch.setattr(
        signer_handler.boto3, "client", lambda name, **kw: fake if name == "signer" else real_client(name, **kw)
    )
    monkeypatch.setattr(signer_handler.time, "sleep", lambda _: None)
    signer_handler.handler(event(url, "Update", properties(key), PhysicalResourceId="s3://old"), Context())
    (answer,) = [r["body"] for r in received]
    assert answer["Status"] == "FAILED"
    assert "failed: revoked" in answer["Reason"]
    assert answer["PhysicalResourceId"] == "s3://old"


def test_delete_succeeds_and_deletes_nothing(aws, response_url):
    url, received = response_url
    aws["s3"].put_object(Bucket=SIGNED, Key=f"{PREFIX}job-1.zip", Body=b"signed")
    signer_handler.handler(event(url, "Delete", {}, PhysicalResourceId=f"s3://{SIGNED}/{PREFIX}job-1.zip"), Context())
    (answer,) = [r["body"] for r in received]
    assert answer["Status"] == "SUCCESS"
    versions = aws["s3"].list_object_versions(Bucket=SIGNED)
    assert len(versions.get("Versions", [])) == 1
    assert not versions.get("DeleteMarkers")
