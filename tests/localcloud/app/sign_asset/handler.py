"""Test function of the local-cloud test app: a custom resource that signs a code asset with AWS Signer, as a
`cdk deploy` step would (GUIDE.md section 9): StartSigningJob on the asset's current version, poll
DescribeSigningJob, answer with the signed object's bucket, key and version."""

import json
import time
import urllib.request

import boto3

s3 = boto3.client("s3")
signer = boto3.client("signer")


def handler(event, context):
    props = event["ResourceProperties"]
    try:
        version = s3.head_object(Bucket=props["Bucket"], Key=props["Key"])["VersionId"]
        job = signer.start_signing_job(
            source={"s3": {"bucketName": props["Bucket"], "key": props["Key"], "version": version}},
            destination={"s3": {"bucketName": props["Bucket"], "prefix": props["Prefix"]}},
            profileName=props["ProfileName"],
            clientRequestToken=event["RequestId"],
        )["jobId"]
        while (described := signer.describe_signing_job(jobId=job))["status"] == "InProgress":
            time.sleep(0.1)
        if described["status"] != "Succeeded":
            raise RuntimeError(f"signing job {job} {described['status']}: {described.get('statusReason')}")
        key = described["signedObject"]["s3"]["key"]
        signed_version = s3.head_object(Bucket=props["Bucket"], Key=key)["VersionId"]
        answer("SUCCESS", event, job, {"Bucket": props["Bucket"], "Key": key, "Version": signed_version, "JobId": job})
    except Exception as err:
        answer("FAILED", event, "not-signed", {}, reason=str(err))
        raise


def answer(status, event, physical, data, reason=""):
    body = {
        "Status": status,
        "Reason": reason,
        "PhysicalResourceId": physical,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data,
    }
    request = urllib.request.Request(event["ResponseURL"], data=json.dumps(body).encode(), method="PUT")  # noqa: S310
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - the URL CloudFormation gave
