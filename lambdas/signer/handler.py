"""The signer: the CloudFormation custom resource provider (`Custom::MlvaultSignedCode`) that signs one Lambda asset
with the stage's AWS Signer profile during `cdk deploy` (infra/constructs/signed_code.py, code_signer.py).

The one bootstrapping exception to code signing: nothing can sign this function's own code before it exists, so it
runs unsigned, in a stack of its own, with a least-privilege role, on the standard library and boto3 only (no
layers, no mlvault package: nothing but this file runs here). It is not a thin handler over the library like the
others, for the same reason.

Protocol. CloudFormation invokes it with a request (RequestType, ResponseURL, StackId, RequestId,
LogicalResourceId, ResourceProperties, and PhysicalResourceId on Update/Delete) and waits for the answer PUT to
ResponseURL. ResourceProperties:

    SourceBucket, SourceKey   the asset as `cdk deploy` published it (the bootstrap assets bucket is versioned)
    ProfileName               the stage's Signer profile (platform AWSLambda-SHA384-ECDSA)
    DestinationBucket         the signed-code bucket
    DestinationPrefix         where the signed object goes: under signed/, ending in "/"
    Bundle (optional)         {path in the zip: JSON document (an object, or its JSON text)}: files to add
    PinKeys (optional)        {entry: KMS key ARN}: for each, every Bundle document with a top-level `entry`
                              {"arn": <that ARN>} gets "public_key_sha256", the hex SHA-256 of the key's
                              SubjectPublicKeyInfo PEM (read with kms:GetPublicKey, rendered as
                              mlvault.attestation.openssf.kms_public_key_pem renders it)

On Create and Update: read the source object's current VersionId and stage that exact version, with the Bundle
files added (a path already in the zip, or outside it, is refused), under unsigned/ of the signed-code bucket;
start a signing job whose source is the staged object's version (StartSigningJob, client token = the request id:
a retried invocation reuses its job); poll DescribeSigningJob until it Succeeded; answer SUCCESS with Data
{Bucket, Key, Version, JobId} of the signed object (PhysicalResourceId: its s3:// URI with the version). A failed
job, a timeout (the answer is sent before Lambda's own timeout) or any error answers FAILED with the reason, so a
deployment fails fast with Signer's words instead of waiting CloudFormation's hour. On Delete: SUCCESS, nothing
deleted (signed code is evidence of what ran).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import posixpath
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import boto3

SIGNED_PREFIX = "signed/"
STAGING_PREFIX = "unsigned/"
PUBLIC_KEY_SHA256 = "public_key_sha256"  # mlvault.wiring.Anchor.PUBLIC_KEY_SHA256 (no mlvault package here)
PROPERTIES = {"ServiceToken", "SourceBucket", "SourceKey", "ProfileName", "DestinationBucket", "DestinationPrefix"}
OPTIONAL = {"Bundle", "PinKeys"}
# DescribeSigningJob polls back off from a quarter second to two: a job done in a moment (a small zip, the local
# cloud) is seen in a moment, a slow one costs at most one call per two seconds.
POLL_FIRST_SECONDS = 0.25
POLL_MAX_SECONDS = 2.0
ANSWER_MARGIN_SECONDS = 30.0  # time kept to answer CloudFormation before Lambda ends the invocation
MAX_REASON = 1000  # CloudFormation's response is at most 4 KiB
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # bundled files get a fixed timestamp: the same inputs give the same bytes

log = logging.getLogger()
log.setLevel(logging.INFO)


class SigningError(Exception):
    """The asset cannot be signed: the message is the Reason CloudFormation reports."""


def handler(event: Mapping[str, Any], context: Any) -> None:
    request = event.get("RequestType")
    physical = event.get("PhysicalResourceId") or f"unsigned:{event.get('LogicalResourceId')}"
    try:
        if request == "Delete":
            log.info("delete: signed code is kept", extra={"physical_resource_id": physical})
            _respond(event, "SUCCESS", physical, {})
            return
        if request not in ("Create", "Update"):
            raise SigningError(f"unknown RequestType {request!r}")
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
        data = sign(
            event.get("ResourceProperties") or {},
            request_id=str(event["RequestId"]),
            deadline=deadline,
            s3=boto3.client("s3"),
            signer=boto3.client("signer"),
            kms=boto3.client("kms"),
        )
    except Exception as err:  # noqa: BLE001 - any failure must reach CloudFormation, or the stack waits an hour
        reason = f"{type(err).__name__}: {err}" if not isinstance(err, SigningError) else str(err)
        log.error("signing failed", extra={"reason": reason})
        _respond(event, "FAILED", physical, {}, reason=reason)
        return
    log.info("signed", extra=data)
    _respond(event, "SUCCESS", f"s3://{data['Bucket']}/{data['Key']}?versionId={data['Version']}", data)


def sign(
    properties: Mapping[str, Any],
    *,
    request_id: str,
    deadline: float,
    s3: Any,
    signer: Any,
    kms: Any,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, str]:
    """Stage, sign and locate one asset (see the module docstring); SigningError when it cannot be signed."""
    props = _checked(properties)
    source_bucket, source_key = props["SourceBucket"], props["SourceKey"]
    destination, prefix = props["DestinationBucket"], props["DestinationPrefix"]
    head = s3.head_object(Bucket=source_bucket, Key=source_key)
    source_version = head.get("VersionId")
    if not source_version or source_version == "null":
        raise SigningError(
            f"s3://{source_bucket}/{source_key} has no version id: Signer signs only objects of versioned buckets"
        )
    documents = _documents(props.get("Bundle") or {})
    _pin_keys(documents, props.get("PinKeys") or {}, kms)
    staged_key = f"{STAGING_PREFIX}{prefix[len(SIGNED_PREFIX) :]}{request_id}.zip"
    origin = f"s3://{source_bucket}/{source_key}?versionId={source_version}"
    if documents:
        staged_version = _stage_with_bundle(
            s3, source_bucket, source_key, source_version, destination, staged_key, documents, origin
        )
    else:
        copied = s3.copy_object(
            CopySource={"Bucket": source_bucket, "Key": source_key, "VersionId": source_version},
            Bucket=destination,
            Key=staged_key,
            Metadata={"mlvault-source": origin},
            MetadataDirective="REPLACE",
        )
        staged_version = copied.get("VersionId")
    if not staged_version or staged_version == "null":
        raise SigningError(
            f"s3://{destination}/{staged_key} has no version id: the signed-code bucket must be versioned"
        )
    job_id = signer.start_signing_job(
        source={"s3": {"bucketName": destination, "key": staged_key, "version": staged_version}},
        destination={"s3": {"bucketName": destination, "prefix": prefix}},
        profileName=props["ProfileName"],
        clientRequestToken=request_id,
    )["jobId"]
    job = _wait(signer, job_id, props["ProfileName"], deadline, sleep, clock)
    signed = (job.get("signedObject") or {}).get("s3") or {}
    bucket, key = signed.get("bucketName"), signed.get("key")
    if not bucket or not key:
        raise SigningError(f"signing job {job_id} succeeded without a signed object: {job.get('signedObject')!r}")
    version = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
    if not version or version == "null":
        raise SigningError(f"signed object s3://{bucket}/{key} has no version id")
    return {"Bucket": bucket, "Key": key, "Version": version, "JobId": job_id}


def _checked(properties: Mapping[str, Any]) -> Mapping[str, Any]:
    missing = sorted(
        p for p in PROPERTIES - {"ServiceToken"} if not isinstance(properties.get(p), str) or not properties[p]
    )
    unknown = sorted(set(properties) - PROPERTIES - OPTIONAL)
    if missing or unknown:
        raise SigningError(f"bad properties: missing {missing}, unknown {unknown}")
    prefix = properties["DestinationPrefix"]
    if not prefix.startswith(SIGNED_PREFIX) or not prefix.endswith("/") or ".." in prefix.split("/"):
        raise SigningError(f"DestinationPrefix must be a folder under {SIGNED_PREFIX}, got {prefix!r}")
    for name in OPTIONAL:
        if name in properties and not isinstance(properties[name], Mapping):
            raise SigningError(f"{name} must be an object, got {properties[name]!r}")
    return properties


def _documents(bundle: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The Bundle's documents by their path in the zip (each an object, given as one or as its JSON text)."""
    documents: dict[str, dict[str, Any]] = {}
    for path, document in bundle.items():
        normal = posixpath.normpath(path)
        if not path or path != normal or normal.startswith(("/", "../")) or normal == "..":
            raise SigningError(f"Bundle path {path!r} is not a relative path inside the zip")
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError as err:
                raise SigningError(f"Bundle document {path!r} is not JSON: {err}") from None
        if not isinstance(document, Mapping):
            raise SigningError(f"Bundle document {path!r} must be a JSON object")
        documents[path] = json.loads(json.dumps(document))  # a deep copy the signer may add to
    return documents


def _pin_keys(documents: dict[str, dict[str, Any]], pins: Mapping[str, Any], kms: Any) -> None:
    for entry, arn in pins.items():
        holders = [doc for doc in documents.values() if entry in doc]
        if not holders:
            raise SigningError(f"PinKeys entry {entry!r} names no entry of a Bundle document")
        for document in holders:
            named = document[entry]
            if not isinstance(named, dict) or named.get("arn") != arn:
                raise SigningError(f'Bundle entry {entry!r} must be {{"arn": {arn!r}}}, got {named!r}')
            if PUBLIC_KEY_SHA256 in named:
                raise SigningError(f"Bundle entry {entry!r} sets {PUBLIC_KEY_SHA256}: only the signer writes it")
        fingerprint = hashlib.sha256(public_key_pem(kms, arn)).hexdigest()
        for document in holders:
            document[entry][PUBLIC_KEY_SHA256] = fingerprint


def public_key_pem(kms: Any, arn: str) -> bytes:
    """The SubjectPublicKeyInfo PEM of a KMS signing key, byte for byte as the `cryptography` package writes it
    (what mlvault.attestation.openssf.kms_public_key_pem returns): base64 of the DER in 64-character lines."""
    response = kms.get_public_key(KeyId=arn)
    # AWS answers with the key's ARN (moto with its bare id): either way, the key that was asked for.
    if response.get("KeyId") not in (arn, arn.rsplit("/", 1)[-1]):
        raise SigningError(f"KMS answered for key {response.get('KeyId')!r}, not the pinned {arn!r}")
    if response.get("KeyUsage") != "SIGN_VERIFY":
        raise SigningError(f"key {arn} is not a signing key (KeyUsage {response.get('KeyUsage')!r})")
    encoded = base64.b64encode(response["PublicKey"]).decode()
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n").encode()


def _stage_with_bundle(
    s3: Any,
    source_bucket: str,
    source_key: str,
    source_version: str,
    destination: str,
    staged_key: str,
    documents: Mapping[str, Mapping[str, Any]],
    origin: str,
) -> str:
    with tempfile.TemporaryFile() as spool:
        s3.download_fileobj(source_bucket, source_key, spool, ExtraArgs={"VersionId": source_version})
        spool.seek(0)
        try:
            with zipfile.ZipFile(spool, "a", compression=zipfile.ZIP_DEFLATED) as archive:
                present = set(archive.namelist())
                for path, document in sorted(documents.items()):
                    if path in present:
                        raise SigningError(f"Bundle path {path!r} is already in {origin}: refusing to shadow it")
                    info = zipfile.ZipInfo(path, date_time=ZIP_DATE)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o100644 << 16
                    archive.writestr(info, json.dumps(document, indent=2, sort_keys=True) + "\n")
        except zipfile.BadZipFile:
            raise SigningError(f"{origin} is not a zip: only zipped Lambda code can carry a Bundle") from None
        spool.seek(0)
        put = s3.put_object(Bucket=destination, Key=staged_key, Body=spool, Metadata={"mlvault-source": origin})
    return put.get("VersionId")


def _wait(
    signer: Any, job_id: str, profile: str, deadline: float, sleep: Callable[[float], None], clock: Callable[[], float]
) -> Mapping[str, Any]:
    pause = POLL_FIRST_SECONDS
    while True:
        job = signer.describe_signing_job(jobId=job_id)
        status = job.get("status")
        if status == "Succeeded":
            return job
        if status == "Failed":
            raise SigningError(f"signing job {job_id} (profile {profile}) failed: {job.get('statusReason')}")
        if clock() + pause > deadline:
            raise SigningError(f"signing job {job_id} (profile {profile}) still {status} at the signer's deadline")
        sleep(pause)
        pause = min(pause * 2, POLL_MAX_SECONDS)


def _respond(
    event: Mapping[str, Any], status: str, physical: str, data: Mapping[str, str], *, reason: str = ""
) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": (reason or status)[:MAX_REASON],
            "PhysicalResourceId": physical,
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
            "Data": dict(data),
        }
    ).encode()
    # CloudFormation's ResponseURL is a presigned S3 URL: PUT, no content type (it is not part of the signature).
    url = str(event["ResponseURL"])
    if not url.startswith(("https://", "http://")):
        raise SigningError(f"ResponseURL must be an http(s) URL, got {url[:80]!r}")
    headers = {"Content-Type": "", "Content-Length": str(len(body))}
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)  # noqa: S310 - checked above
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - checked above
        response.read()
