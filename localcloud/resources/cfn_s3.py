"""S3 resources: AWS::S3::Bucket (versioning, Object Lock, encryption, public access block, ownership,
lifecycle, logging, notifications) and AWS::S3::BucketPolicy.

9. Server access logging (gap 9 of gaps.py). moto refuses PutBucketLogging unless the target bucket's policy
   already grants the logging service, while CloudFormation (and CDK) create the target's policy after the
   source buckets, since the policy names them. Here logging configurations are applied once the rest of the
   stack exists. (moto delivers no access logs either way.)
"""

from __future__ import annotations

import json
from typing import Any

from localcloud.intrinsics import UnsupportedError
from localcloud.resources.cfn_context import Handler, ResourceContext, tags


def bucket(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take(
        "BucketName",
        "VersioningConfiguration",
        "ObjectLockEnabled",
        "ObjectLockConfiguration",
        "BucketEncryption",
        "PublicAccessBlockConfiguration",
        "OwnershipControls",
        "LifecycleConfiguration",
        "LoggingConfiguration",
        "NotificationConfiguration",
        "Tags",
    )
    s3 = c.client("s3")
    name = p.get("BucketName") or c.unique_name(63, lower=True)
    s3.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": c.region},
        ObjectLockEnabledForBucket=bool(p.get("ObjectLockEnabled")),
    )
    if "VersioningConfiguration" in p:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]}
        )
    if "ObjectLockConfiguration" in p:
        s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=p["ObjectLockConfiguration"])
    if "BucketEncryption" in p:
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                **({"BucketKeyEnabled": r["BucketKeyEnabled"]} if "BucketKeyEnabled" in r else {}),
            }
            for r in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in p:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in p:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
    if "LifecycleConfiguration" in p:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={"Rules": [_lifecycle_rule(r, c) for r in p["LifecycleConfiguration"]["Rules"]]},
        )
    if "LoggingConfiguration" in p:
        # gap 9: applied once the stack's other resources exist, the log target's policy included.
        logging = {
            "LoggingEnabled": {
                "TargetBucket": p["LoggingConfiguration"]["DestinationBucketName"],
                "TargetPrefix": p["LoggingConfiguration"].get("LogFilePrefix", ""),
            }
        }
        c.after_stack(lambda: s3.put_bucket_logging(Bucket=name, BucketLoggingStatus=logging))
    if "NotificationConfiguration" in p:
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration=_notification(p["NotificationConfiguration"], c)
        )
    if p.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags(p)})
    return name, {
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{c.region}.amazonaws.com",
        "DualStackDomainName": f"{name}.s3.dualstack.{c.region}.amazonaws.com",
    }


def bucket_policy(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("Bucket", "PolicyDocument")
    c.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
    return f"{p['Bucket']}-policy", {}


def _lifecycle_rule(rule: dict[str, Any], c: ResourceContext) -> dict[str, Any]:
    supported = {
        "Id",
        "Status",
        "Prefix",
        "TagFilters",
        "ExpirationInDays",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionExpirationInDays",
        "AbortIncompleteMultipartUpload",
        "ExpiredObjectDeleteMarker",
    }
    unknown = set(rule) - supported
    if unknown:
        raise UnsupportedError(f"AWS::S3::Bucket lifecycle rule properties {sorted(unknown)} ({c.logical_id})")
    out: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in rule.get("TagFilters", [])]
    prefix = rule.get("Prefix")
    if len(tags) > 1 or (tags and prefix):
        out["Filter"] = {"And": {**({"Prefix": prefix} if prefix else {}), "Tags": tags}}
    elif tags:
        out["Filter"] = {"Tag": tags[0]}
    else:
        out["Filter"] = {"Prefix": prefix or ""}
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = bool(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        out["Expiration"] = expiration
    noncurrent = rule.get("NoncurrentVersionExpiration") or (
        {"NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]}
        if "NoncurrentVersionExpirationInDays" in rule
        else None
    )
    if noncurrent:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(noncurrent["NoncurrentDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return out


def _key_filter(filter_: dict[str, Any] | None) -> dict[str, Any]:
    if not filter_:
        return {}
    rules = filter_.get("S3Key", {}).get("Rules", [])
    return {"Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}}


def _notification(config: dict[str, Any], c: ResourceContext) -> dict[str, Any]:
    unknown = set(config) - {
        "QueueConfigurations",
        "LambdaConfigurations",
        "TopicConfigurations",
        "EventBridgeConfiguration",
    }
    if unknown:
        raise UnsupportedError(f"AWS::S3::Bucket NotificationConfiguration {sorted(unknown)} ({c.logical_id})")
    out: dict[str, Any] = {}
    if "QueueConfigurations" in config:
        out["QueueConfigurations"] = [
            {"QueueArn": q["Queue"], "Events": [q["Event"]], **_key_filter(q.get("Filter"))}
            for q in config["QueueConfigurations"]
        ]
    if "LambdaConfigurations" in config:
        out["LambdaFunctionConfigurations"] = [
            {"LambdaFunctionArn": f["Function"], "Events": [f["Event"]], **_key_filter(f.get("Filter"))}
            for f in config["LambdaConfigurations"]
        ]
    if "TopicConfigurations" in config:
        out["TopicConfigurations"] = [
            {"TopicArn": t["Topic"], "Events": [t["Event"]], **_key_filter(t.get("Filter"))}
            for t in config["TopicConfigurations"]
        ]
    if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        out["EventBridgeConfiguration"] = {}
    return out


HANDLERS: dict[str, Handler] = {
    "AWS::S3::Bucket": bucket,
    "AWS::S3::BucketPolicy": bucket_policy,
}
