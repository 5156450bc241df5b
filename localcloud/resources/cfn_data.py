"""Data resources: KMS keys (including real ECC signing keys), DynamoDB tables and SSM parameters."""

from __future__ import annotations

import json
from typing import Any

from localcloud.resources.cfn_context import Handler, ResourceContext, tags


def key(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("Description", "EnableKeyRotation", "KeyPolicy", "KeySpec", "KeyUsage", "Tags", "Enabled")
    kms = c.client("kms")
    args: dict[str, Any] = {
        "Description": p.get("Description", ""),
        "KeyUsage": p.get("KeyUsage", "ENCRYPT_DECRYPT"),
        "KeySpec": p.get("KeySpec", "SYMMETRIC_DEFAULT"),
        "Tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags(p)],
    }
    if "KeyPolicy" in p:
        args["Policy"] = json.dumps(p["KeyPolicy"])
        args["BypassPolicyLockoutSafetyCheck"] = True
    meta = kms.create_key(**args)["KeyMetadata"]
    if p.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=meta["KeyId"])
    if p.get("Enabled") is False:
        kms.disable_key(KeyId=meta["KeyId"])
    return meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}


def table(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take(
        "TableName",
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "SSESpecification",
        "StreamSpecification",
        "DeletionProtectionEnabled",
        "PointInTimeRecoverySpecification",
        "TimeToLiveSpecification",
        "Tags",
    )
    db = c.client("dynamodb")
    name = p.get("TableName") or c.unique_name(255)
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": p["AttributeDefinitions"],
        "KeySchema": p["KeySchema"],
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
    }
    for key in (
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "StreamSpecification",
        "DeletionProtectionEnabled",
    ):
        if key in p:
            args[key] = p[key]
    if "SSESpecification" in p:
        sse = p["SSESpecification"]
        args["SSESpecification"] = {
            "Enabled": sse.get("SSEEnabled", False),
            **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {}),
            **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {}),
        }
    if p.get("Tags"):
        args["Tags"] = tags(p)
    table = db.create_table(**args)["TableDescription"]
    if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        db.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    if "TimeToLiveSpecification" in p:
        db.update_time_to_live(TableName=name, TimeToLiveSpecification=p["TimeToLiveSpecification"])
    return name, {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn", "")}


def parameter(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("Name", "Type", "Value", "Description", "Tier", "AllowedPattern", "DataType", "Tags")
    name = p.get("Name") or "/" + c.unique_name(200)
    args = {"Name": name, "Type": p["Type"], "Value": str(p["Value"]), "Description": p.get("Description", "")}
    for key in ("Tier", "AllowedPattern", "DataType"):
        if key in p:
            args[key] = p[key]
    c.client("ssm").put_parameter(**args)
    return name, {"Type": p["Type"], "Value": str(p["Value"])}


HANDLERS: dict[str, Handler] = {
    "AWS::KMS::Key": key,
    "AWS::DynamoDB::Table": table,
    "AWS::SSM::Parameter": parameter,
}
