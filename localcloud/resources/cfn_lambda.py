"""Lambda resources: layers, functions (recorded for the local runtime), versions, aliases, function URLs
(served by services/function_urls.py, gap 25), permissions, event source mappings, and code signing (Signer
profiles; code signing configs, enforced by services/lambda_codesigning.py, gap 20)."""

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
    # moto has no code signing configs: the local cloud records them, and services/lambda_codesigning.py (gap 20)
    # checks every deployment of a function naming one.
    p = c.take("AllowedPublishers", "CodeSigningPolicies", "Description", "Tags")
    policy = p.get("CodeSigningPolicies", {}).get("UntrustedArtifactOnDeployment", "Warn")
    if policy not in ("Warn", "Enforce"):
        raise UnsupportedError(
            f"AWS::Lambda::CodeSigningConfig UntrustedArtifactOnDeployment={policy} ({c.logical_id})"
        )
    publishers = p.get("AllowedPublishers", {}).get("SigningProfileVersionArns", [])
    if not publishers:
        raise UnsupportedError(f"AWS::Lambda::CodeSigningConfig without SigningProfileVersionArns ({c.logical_id})")
    csc_id = "csc-" + hashlib.sha256(f"{c.stack.name}/{c.logical_id}".encode()).hexdigest()[:17]
    arn = f"arn:aws:lambda:{c.region}:{c.account}:code-signing-config:{csc_id}"
    c.deployment.code_signing_configs[arn] = {
        "CodeSigningConfigArn": arn,
        "AllowedPublishers": {"SigningProfileVersionArns": list(publishers)},
        "CodeSigningPolicies": {"UntrustedArtifactOnDeployment": policy},
        "Description": p.get("Description", ""),
    }
    return arn, {"CodeSigningConfigArn": arn, "CodeSigningConfigId": csc_id}


def _s3_code(code: dict[str, Any], c: ResourceContext, what: str) -> dict[str, Any]:
    unknown = sorted(set(code) - {"S3Bucket", "S3Key", "S3ObjectVersion"})
    if unknown or "S3Key" not in code:
        raise UnsupportedError(f"{what} code {sorted(code)} ({c.logical_id}): the local cloud deploys S3 objects only")
    return {k: code[k] for k in ("S3Bucket", "S3Key", "S3ObjectVersion") if k in code}


def layer_version(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("Content", "CompatibleRuntimes", "CompatibleArchitectures", "Description", "LayerName", "LicenseInfo")
    name = p.get("LayerName") or c.unique_name(64)
    args = {
        "LayerName": name,
        "Content": _s3_code(p["Content"], c, "AWS::Lambda::LayerVersion"),
        "Description": p.get("Description", ""),
        "CompatibleRuntimes": p.get("CompatibleRuntimes", []),
    }
    arn = c.client("lambda").publish_layer_version(**args)["LayerVersionArn"]
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
        "KmsKeyArn",
        "ReservedConcurrentExecutions",
        "TracingConfig",
        "Tags",
    )
    code = _s3_code(p["Code"], c, "AWS::Lambda::Function")
    name = p.get("FunctionName") or c.unique_name(64)
    args: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": p["Runtime"],
        "Role": p["Role"],
        "Handler": p["Handler"],
        "Code": code,
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
    if "KmsKeyArn" in p:  # stored; environment variables are not encrypted at rest locally
        args["KMSKeyArn"] = p["KmsKeyArn"]
    client = c.client("lambda")
    arn = client.create_function(**args)["FunctionArn"]
    if "ReservedConcurrentExecutions" in p:
        client.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=int(p["ReservedConcurrentExecutions"])
        )
    c.deployment.functions[name] = FunctionSpec(
        name=name,
        arn=arn,
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
    p = c.take(
        "Action",
        "FunctionName",
        "Principal",
        "SourceArn",
        "SourceAccount",
        "FunctionUrlAuthType",
        "InvokedViaFunctionUrl",
    )
    statement_id = c.unique_name(100)
    args = {
        "FunctionName": p["FunctionName"],
        "StatementId": statement_id,
        "Action": p["Action"],
        "Principal": p["Principal"],
    }
    for key in ("SourceArn", "SourceAccount", "FunctionUrlAuthType"):
        if key in p:
            args[key] = p[key]
    if "InvokedViaFunctionUrl" in p:
        args["InvokedViaFunctionUrl"] = str(p["InvokedViaFunctionUrl"]).lower() == "true"
    c.client("lambda").add_permission(**args)
    return statement_id, {}


def version(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("FunctionName", "Description", "CodeSha256")
    args = {"FunctionName": p["FunctionName"], "Description": p.get("Description", "")}
    if "CodeSha256" in p:
        args["CodeSha256"] = p["CodeSha256"]
    out = c.client("lambda").publish_version(**args)
    return out["FunctionArn"], {"Version": out["Version"], "FunctionArn": out["FunctionArn"]}


def alias(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("Name", "FunctionName", "FunctionVersion", "Description", "RoutingConfig")
    args: dict[str, Any] = {
        "Name": p["Name"],
        "FunctionName": p["FunctionName"],
        "FunctionVersion": str(p["FunctionVersion"]),
        "Description": p.get("Description", ""),
    }
    weights = (p.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or []
    if weights:
        args["RoutingConfig"] = {
            "AdditionalVersionWeights": {str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights}
        }
    arn = c.client("lambda").create_alias(**args)["AliasArn"]
    return arn, {"AliasArn": arn}


def function_url(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("TargetFunctionArn", "AuthType", "Qualifier", "Cors", "InvokeMode")
    args: dict[str, Any] = {"FunctionName": p["TargetFunctionArn"], "AuthType": p["AuthType"]}
    for key in ("Qualifier", "Cors", "InvokeMode"):
        if key in p:
            args[key] = p[key]
    out = c.client("lambda").create_function_url_config(**args)
    return out["FunctionArn"], {"FunctionUrl": out["FunctionUrl"], "FunctionArn": out["FunctionArn"]}


HANDLERS: dict[str, Handler] = {
    "AWS::Signer::SigningProfile": signing_profile,
    "AWS::Lambda::CodeSigningConfig": code_signing_config,
    "AWS::Lambda::LayerVersion": layer_version,
    "AWS::Lambda::Function": function,
    "AWS::Lambda::EventSourceMapping": event_source_mapping,
    "AWS::Lambda::Permission": permission,
    "AWS::Lambda::Version": version,
    "AWS::Lambda::Alias": alias,
    "AWS::Lambda::Url": function_url,
}
