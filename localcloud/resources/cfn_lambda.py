"""Lambda resources: layers, functions (recorded for the local runtime), permissions, event source mappings,
and code signing (Signer profiles and code signing configs, Warn only)."""

from __future__ import annotations

import hashlib
from typing import Any

from localcloud.deployment import FunctionSpec
from localcloud.intrinsics import UnsupportedError
from localcloud.resources.cfn_context import Handler, ResourceContext, tag_map


def signing_profile(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("PlatformId", "SignatureValidityPeriod", "ProfileName", "Tags")
    name = p.get("ProfileName") or c.unique_name(64).replace("-", "_")
    args: dict[str, Any] = {"profileName": name, "platformId": p["PlatformId"]}
    if "SignatureValidityPeriod" in p:
        period = p["SignatureValidityPeriod"]
        args["signatureValidityPeriod"] = {"value": int(period["Value"]), "type": period["Type"]}
    if p.get("Tags"):
        args["tags"] = tag_map(p)
    out = c.client("signer").put_signing_profile(**args)
    return out["arn"], {
        "Arn": out["arn"],
        "ProfileName": name,
        "ProfileVersion": out["profileVersion"],
        "ProfileVersionArn": out["profileVersionArn"],
    }


def code_signing_config(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    # moto has no code signing configs: the local cloud records them. It cannot check Signer signatures,
    # so only the Warn policy (deploy unsigned code) can be honoured; Enforce fails loudly.
    p = c.take("AllowedPublishers", "CodeSigningPolicies", "Description", "Tags")
    policy = p.get("CodeSigningPolicies", {}).get("UntrustedArtifactOnDeployment", "Warn")
    if policy != "Warn":
        raise UnsupportedError(
            f"AWS::Lambda::CodeSigningConfig with UntrustedArtifactOnDeployment={policy} "
            f"({c.logical_id}): the local cloud cannot verify AWS Signer signatures"
        )
    csc_id = "csc-" + hashlib.sha256(f"{c.stack.name}/{c.logical_id}".encode()).hexdigest()[:17]
    arn = f"arn:aws:lambda:{c.region}:{c.account}:code-signing-config:{csc_id}"
    return arn, {"CodeSigningConfigArn": arn, "CodeSigningConfigId": csc_id}


def layer_version(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("Content", "CompatibleRuntimes", "CompatibleArchitectures", "Description", "LayerName", "LicenseInfo")
    name = p.get("LayerName") or c.unique_name(64)
    args = {
        "LayerName": name,
        "Content": {"S3Bucket": p["Content"]["S3Bucket"], "S3Key": p["Content"]["S3Key"]},
        "Description": p.get("Description", ""),
        "CompatibleRuntimes": p.get("CompatibleRuntimes", []),
    }
    arn = c.client("lambda").publish_layer_version(**args)["LayerVersionArn"]
    c.deployment.layers[arn] = c.asset(p["Content"]["S3Key"])
    return arn, {"LayerVersionArn": arn}


def function(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take(
        "FunctionName",
        "Runtime",
        "Handler",
        "Code",
        "Role",
        "Description",
        "Timeout",
        "MemorySize",
        "EphemeralStorage",
        "Environment",
        "Layers",
        "DeadLetterConfig",
        "LoggingConfig",
        "Architectures",
        "CodeSigningConfigArn",
        "ReservedConcurrentExecutions",
        "TracingConfig",
        "Tags",
    )
    code = p["Code"]
    if "S3Key" not in code:
        raise UnsupportedError(f"AWS::Lambda::Function Code without an S3 asset ({c.logical_id}): {sorted(code)}")
    name = p.get("FunctionName") or c.unique_name(64)
    args: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": p["Runtime"],
        "Role": p["Role"],
        "Handler": p["Handler"],
        "Code": {"S3Bucket": code["S3Bucket"], "S3Key": code["S3Key"]},
        "Description": p.get("Description", ""),
        "Timeout": int(p.get("Timeout", 3)),
        "MemorySize": int(p.get("MemorySize", 128)),
        "EphemeralStorage": {"Size": int(p.get("EphemeralStorage", {}).get("Size", 512))},
        "Environment": {"Variables": {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}},
        "Layers": p.get("Layers", []),
        "Architectures": p.get("Architectures", ["x86_64"]),
        "Tags": tag_map(p),
    }
    for key in ("DeadLetterConfig", "LoggingConfig", "TracingConfig", "CodeSigningConfigArn"):
        if key in p:
            args[key] = p[key]
    client = c.client("lambda")
    arn = client.create_function(**args)["FunctionArn"]
    if "ReservedConcurrentExecutions" in p:
        client.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=int(p["ReservedConcurrentExecutions"])
        )
    c.deployment.functions[name] = FunctionSpec(
        name=name,
        arn=arn,
        handler=p["Handler"],
        code_dir=c.asset(code["S3Key"]),
        layer_dirs=[c.deployment.layers[layer] for layer in p.get("Layers", [])],
        timeout=args["Timeout"],
        memory=args["MemorySize"],
        role_arn=p["Role"],
        log_group=p.get("LoggingConfig", {}).get("LogGroup"),
        dead_letter_arn=p.get("DeadLetterConfig", {}).get("TargetArn"),
    )
    return name, {"Arn": arn}


def event_source_mapping(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take(
        "EventSourceArn",
        "FunctionName",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes",
        "Enabled",
        "Tags",
    )
    args: dict[str, Any] = {
        "EventSourceArn": p["EventSourceArn"],
        "FunctionName": p["FunctionName"],
        "Enabled": p.get("Enabled", True),
    }
    for key in ("BatchSize", "MaximumBatchingWindowInSeconds"):
        if key in p:
            args[key] = int(p[key])
    if "FunctionResponseTypes" in p:
        args["FunctionResponseTypes"] = p["FunctionResponseTypes"]
    uuid = c.client("lambda").create_event_source_mapping(**args)["UUID"]
    c.deployment.event_source_mappings.append(uuid)
    return uuid, {"Id": uuid}


def permission(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("Action", "FunctionName", "Principal", "SourceArn", "SourceAccount")
    statement_id = c.unique_name(100)
    args = {
        "FunctionName": p["FunctionName"],
        "StatementId": statement_id,
        "Action": p["Action"],
        "Principal": p["Principal"],
    }
    for key in ("SourceArn", "SourceAccount"):
        if key in p:
            args[key] = p[key]
    c.client("lambda").add_permission(**args)
    return statement_id, {}


HANDLERS: dict[str, Handler] = {
    "AWS::Signer::SigningProfile": signing_profile,
    "AWS::Lambda::CodeSigningConfig": code_signing_config,
    "AWS::Lambda::LayerVersion": layer_version,
    "AWS::Lambda::Function": function,
    "AWS::Lambda::EventSourceMapping": event_source_mapping,
    "AWS::Lambda::Permission": permission,
}
